package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

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
