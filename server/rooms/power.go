package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

// powerLevels is the parsed m.room.power_levels content plus the room's creators, who in
// room version 12 have unlimited power.
type powerLevels struct {
	raw      gjson.Result
	creators map[id.UserID]bool
}

func (pl powerLevels) level(key string, def int) int {
	v := pl.raw.Get(gjson.Escape(key))
	if !v.Exists() {
		return def
	}
	return int(v.Int())
}

func (pl powerLevels) user(u id.UserID) int {
	if pl.creators[u] {
		return math.MaxInt
	}
	v := pl.raw.Get("users." + gjson.Escape(string(u)))
	if v.Exists() {
		return int(v.Int())
	}
	return pl.level("users_default", 0)
}

func (pl powerLevels) event(typ string, state bool) int {
	v := pl.raw.Get("events." + gjson.Escape(typ))
	if v.Exists() {
		return int(v.Int())
	}
	if state {
		return pl.level("state_default", 50)
	}
	return pl.level("events_default", 0)
}

// powerLevels reads the room's current power levels. A room without them gives the
// creator 100 (before v12) as the spec's defaults do.
func (e *Engine) powerLevels(ctx context.Context, rs *roomState) (powerLevels, error) {
	pl := powerLevels{creators: map[id.UserID]bool{}}
	create, err := e.stateEvent(ctx, rs, "m.room.create", "")
	if err != nil || create == nil {
		return pl, err
	}
	if rs.version.PrivilegedRoomCreators() {
		pl.creators[create.Sender] = true
		for _, u := range gjson.GetBytes(create.Content, "additional_creators").Array() {
			pl.creators[id.UserID(u.Str)] = true
		}
	}
	ev, err := e.stateEvent(ctx, rs, "m.room.power_levels", "")
	if err != nil {
		return pl, err
	}
	if ev == nil {
		creator := create.Sender
		pl.raw = gjson.Parse(fmt.Sprintf(`{"users":{%q:100},"state_default":0,"ban":50,"kick":50,"redact":50}`, creator))
		return pl, nil
	}
	pl.raw = gjson.ParseBytes(ev.Content)
	return pl, nil
}

// checkPowerLevels refuses a power-levels change that would leave nobody able to change
// them again (before v12, where creators always can).
func checkPowerLevels(rs *roomState, d *draft) error {
	if rs.version.PrivilegedRoomCreators() {
		return nil
	}
	var c struct {
		Users        map[id.UserID]json.Number `json:"users"`
		UsersDefault *json.Number              `json:"users_default"`
		StateDefault *json.Number              `json:"state_default"`
		Events       map[string]json.Number    `json:"events"`
	}
	if err := json.Unmarshal(d.content, &c); err != nil {
		return fmt.Errorf("%w: power levels: %v", ErrBadJSON, err)
	}
	need := int64(50)
	if c.StateDefault != nil {
		need, _ = c.StateDefault.Int64()
	}
	if v, ok := c.Events["m.room.power_levels"]; ok {
		need, _ = v.Int64()
	}
	def := int64(0)
	if c.UsersDefault != nil {
		def, _ = c.UsersDefault.Int64()
	}
	if def >= need {
		return nil
	}
	for u, lv := range c.Users {
		if n, _ := lv.Int64(); n >= need && rs.membership(u) == "join" {
			return nil
		}
	}
	return fmt.Errorf("%w: these power levels would leave no joined member able to change them again", ErrForbidden)
}

// validUserID checks a user ID's grammar, including its server name.
func validUserID(u id.UserID) bool {
	_, server, err := u.Parse()
	if err != nil || server == "" || len(u) > 255 {
		return false
	}
	host := server
	if h, port, ok := strings.Cut(server, ":"); ok && !strings.HasPrefix(server, "[") {
		if _, err := strconv.Atoi(port); err != nil {
			return false
		}
		host = h
	}
	if strings.HasPrefix(host, "[") {
		return strings.HasSuffix(strings.SplitN(host, "]", 2)[0]+"]", "]")
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return host != ""
}

// maxCanonicalInt is the largest integer canonical JSON allows (2^53 - 1).
const maxCanonicalInt = 1<<53 - 1

// checkPowerLevelsShape refuses power levels that no room version accepts, with 400: values
// that are not integers in canonical JSON's range, and (from v12) room creators listed in
// users, who hold unlimited power already.
func checkPowerLevelsShape(rs *roomState, d *draft, creators map[id.UserID]bool) error {
	var walk func(path string, v gjson.Result) error
	walk = func(path string, v gjson.Result) error {
		switch v.Type {
		case gjson.Number:
			if f := v.Float(); f > maxCanonicalInt || f < -maxCanonicalInt {
				return fmt.Errorf("%w: %s is outside canonical JSON's integer range", ErrBadJSON, path)
			}
		case gjson.JSON:
			var err error
			v.ForEach(func(k, val gjson.Result) bool {
				err = walk(path+"."+k.Str, val)
				return err == nil
			})
			return err
		}
		return nil
	}
	c := gjson.ParseBytes(d.content)
	for _, key := range []string{"users", "events", "notifications", "users_default", "events_default", "state_default", "ban", "kick", "redact", "invite"} {
		if err := walk(key, c.Get(key)); err != nil {
			return err
		}
	}
	if rs.version.PrivilegedRoomCreators() {
		for u := range creators {
			if c.Get("users." + gjson.Escape(string(u))).Exists() {
				return fmt.Errorf("%w: %s created the room and has unlimited power; room creators must not be listed in power levels", ErrBadJSON, u)
			}
		}
	}
	return nil
}
