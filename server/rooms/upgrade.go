package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// UpgradeRequest is POST /rooms/{roomId}/upgrade's body.
type UpgradeRequest struct {
	NewVersion id.RoomVersion `json:"new_version"`
	// AdditionalCreators become creators of the new room besides the upgrading user, in
	// versions with privileged creators (12). Those of the old room are not carried over.
	AdditionalCreators []id.UserID `json:"additional_creators"`
}

// upgradeSpec is what a replacement room needs beyond a createRoom request.
type upgradeSpec struct {
	// roomID is the new room's ID, chosen before it exists (versions before 12).
	roomID id.RoomID
	// powerLevels replace the default power levels.
	powerLevels json.RawMessage
	// state is sent after the initial state, in order.
	state []upgradeState
}

// upgradeState is one state event of a replacement room. An optional one that the upgrading
// user may not send is left out instead of failing the upgrade.
type upgradeState struct {
	StateEvent
	optional bool
}

// upgradeCopied are the state types an upgrade copies to the new room, as the spec
// recommends (power levels are copied separately).
var upgradeCopied = []string{"m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar",
	"m.room.topic", "m.room.guest_access", "m.room.history_visibility", "m.room.join_rules"}

// UpgradeRoom replaces a room with a new one of another version, as the spec's room upgrade
// module describes and as Synapse does it:
//
//   - the user must be joined with the power to send m.room.tombstone;
//   - the new room's create event names the old room as its predecessor (with the tombstone's
//     event ID, except in version 12 where the new room's ID hashes the create event) and
//     keeps its type and m.federate;
//   - the spec's transferable state is copied (name, topic, avatar, join rules, history
//     visibility, guest access, encryption, server ACL, power levels), and a space's
//     children and the room's bans too;
//   - the upgrading user's power is raised in the new room as far as copying needs and then
//     restored; in version 12 the creators leave the power levels' users, as they must;
//   - local aliases, the local part of the canonical alias and the directory listing move;
//   - the old room gets the tombstone, and its power levels are raised so that ordinary
//     members can no longer talk or invite: events_default and invite become at least
//     max(50, users_default+1).
//
// Other members are not joined or invited: they follow the tombstone themselves.
// See https://spec.matrix.org/v1.19/client-server-api/#room-upgrades
func (e *Engine) UpgradeRoom(ctx context.Context, user id.UserID, oldID id.RoomID, req UpgradeRequest) (id.RoomID, error) {
	newVersion := req.NewVersion
	if !slices.Contains(CreatableVersions, newVersion) {
		return "", fmt.Errorf("%w: this server upgrades rooms to versions %v, not %q", ErrUnsupportedVersion, CreatableVersions, newVersion)
	}
	if newVersion.PrivilegedRoomCreators() {
		for _, u := range req.AdditionalCreators {
			if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
				return "", fmt.Errorf("%w: additional_creators: %q is not a user ID", ErrInvalidParam, u)
			}
		}
	} else {
		req.AdditionalCreators = nil // the spec: ignored by versions without them
	}
	oldRoom, err := e.room(ctx, oldID)
	if err != nil {
		return "", err
	}
	unlock := e.lock(oldID)
	defer unlock()
	rs, err := e.loadRoom(ctx, oldID)
	if err != nil {
		return "", err
	}
	if rs.membership(user) != "join" {
		return "", fmt.Errorf("%w: you are not in this room", ErrForbidden)
	}
	pl, err := e.powerLevels(ctx, rs)
	if err != nil {
		return "", err
	}
	if need := pl.event("m.room.tombstone", true); pl.user(user) < need {
		return "", fmt.Errorf("%w: upgrading this room needs power level %d, to send m.room.tombstone", ErrForbidden, need)
	}
	st, err := e.upgradeSource(ctx, rs)
	if err != nil {
		return "", err
	}

	// The new room's create event.
	creation := map[string]json.RawMessage{}
	if t := gjson.GetBytes(st.create, "type"); t.Type == gjson.String {
		creation["type"] = mustJSON(t.Str)
	}
	if f := gjson.GetBytes(st.create, `m\.federate`); f.Type == gjson.False {
		creation["m.federate"] = mustJSON(false)
	}
	if newVersion.PrivilegedRoomCreators() && len(req.AdditionalCreators) > 0 {
		creation["additional_creators"] = mustJSON(req.AdditionalCreators)
	}
	predecessor := map[string]any{"room_id": oldID}

	plContent, restore, err := upgradedPowerLevels(st.powerLevels, user, rs.version, pl.creators, newVersion, req.AdditionalCreators)
	if err != nil {
		return "", err
	}
	cr := &CreateRequest{Preset: "private_chat", RoomVersion: newVersion, CreationContent: creation,
		upgrade: &upgradeSpec{powerLevels: plContent}}
	if oldRoom.Published {
		cr.Visibility = "public"
	}
	for _, typ := range upgradeCopied {
		if c, ok := st.copied[typ]; ok {
			cr.InitialState = append(cr.InitialState, StateEvent{Type: typ, Content: c})
		}
	}
	up := cr.upgrade
	for _, c := range st.children {
		up.state = append(up.state, upgradeState{StateEvent: c, optional: true})
	}
	for _, b := range st.bans {
		up.state = append(up.state, upgradeState{StateEvent: b, optional: true})
	}
	oldAlias, newAlias, err := e.splitCanonicalAlias(st.canonicalAlias)
	if err != nil {
		return "", err
	}
	if newAlias != nil {
		up.state = append(up.state, upgradeState{StateEvent: StateEvent{Type: "m.room.canonical_alias", Content: newAlias}, optional: true})
	}
	if restore != nil {
		up.state = append(up.state, upgradeState{StateEvent: StateEvent{Type: "m.room.power_levels", Content: restore}, optional: true})
	}

	// Build both rooms' events before writing either. Before version 12 the new room's ID is
	// chosen first and the tombstone's ID goes into predecessor; in 12 the ID is the create
	// event's hash, so the create event comes first and predecessor has no event_id.
	var oldEvents []*built
	if !newVersion.RoomIDIsCreateEventID() {
		up.roomID = e.newRoomID()
		if oldEvents, err = e.buildRetirement(ctx, rs, user, up.roomID, st.powerLevels, oldAlias); err != nil {
			return "", err
		}
		predecessor["event_id"] = oldEvents[0].id
	}
	creation["predecessor"] = mustJSON(predecessor)
	nr, err := e.buildRoom(ctx, user, cr)
	if err != nil {
		return "", err
	}
	newID := nr.rs.id
	if newVersion.RoomIDIsCreateEventID() {
		if oldEvents, err = e.buildRetirement(ctx, rs, user, newID, st.powerLevels, oldAlias); err != nil {
			return "", err
		}
	}
	nr.before = func(tx *storage.Tx) error {
		if oldRoom.Published {
			if err := tx.SetPublished(oldRoom.NID, false); err != nil {
				return err
			}
		}
		return tx.MoveAliases(string(oldID), string(newID))
	}
	if err := e.persistRoom(ctx, nr); err != nil {
		return "", err
	}
	if _, err := e.persist(ctx, rs, oldEvents, nil); err != nil {
		return "", fmt.Errorf("room %s replaced by %s, but its tombstone was not written: %w", oldID, newID, err)
	}
	return newID, nil
}

// upgradeSource is what an upgrade reads of the old room.
type upgradeSource struct {
	create         json.RawMessage
	powerLevels    json.RawMessage // nil: none
	canonicalAlias json.RawMessage // nil: none
	copied         map[string]json.RawMessage
	children       []StateEvent
	bans           []StateEvent
}

// upgradeSource reads the old room's state an upgrade carries over. The caller holds the
// room's lock.
func (e *Engine) upgradeSource(ctx context.Context, rs *roomState) (*upgradeSource, error) {
	src := &upgradeSource{copied: map[string]json.RawMessage{}}
	content := func(typ, stateKey string) (json.RawMessage, error) {
		p, err := e.stateEvent(ctx, rs, typ, stateKey)
		if err != nil || p == nil {
			return nil, err
		}
		return json.RawMessage(p.Content), nil
	}
	var err error
	if src.create, err = content("m.room.create", ""); err != nil {
		return nil, err
	}
	if src.powerLevels, err = content("m.room.power_levels", ""); err != nil {
		return nil, err
	}
	if src.canonicalAlias, err = content("m.room.canonical_alias", ""); err != nil {
		return nil, err
	}
	for _, typ := range upgradeCopied {
		c, err := content(typ, "")
		if err != nil {
			return nil, err
		}
		if c != nil {
			src.copied[typ] = c
		}
	}
	isSpace := gjson.GetBytes(src.create, "type").Str == "m.space"
	keys := slices.SortedFunc(maps.Keys(rs.state), func(a, b storage.StateKey) int {
		return strings.Compare(a.Type+"\x00"+a.StateKey, b.Type+"\x00"+b.StateKey)
	})
	for _, k := range keys {
		switch {
		case k.Type == "m.space.child" && isSpace:
			c, err := content(k.Type, k.StateKey)
			if err != nil {
				return nil, err
			}
			if len(gjson.ParseBytes(c).Map()) > 0 { // an emptied child event removed the child
				src.children = append(src.children, StateEvent{Type: k.Type, StateKey: k.StateKey, Content: c})
			}
		case k.Type == "m.room.member" && rs.membership(id.UserID(k.StateKey)) == "ban":
			c, err := content(k.Type, k.StateKey)
			if err != nil {
				return nil, err
			}
			src.bans = append(src.bans, StateEvent{Type: k.Type, StateKey: k.StateKey, Content: c})
		}
	}
	return src, nil
}

// buildRetirement builds, on a copy of the old room's state, the events that retire it: the
// tombstone, the canonical alias without the aliases that moved, and power levels that stop
// ordinary members from talking and inviting. Only the tombstone must succeed.
func (e *Engine) buildRetirement(ctx context.Context, rs *roomState, user id.UserID, newID id.RoomID, oldPL, oldAlias json.RawMessage) ([]*built, error) {
	work := rs.clone()
	var out []*built
	add := func(typ string, content json.RawMessage, optional bool) error {
		sk := ""
		b, err := e.build(ctx, work, draft{sender: user, typ: typ, stateKey: &sk, content: content})
		if err != nil {
			if optional && errors.Is(err, ErrForbidden) {
				e.log.Warn("room upgrade: old room not updated", "room_id", rs.id, "type", typ, "err", err)
				return nil
			}
			return err
		}
		e.events.put(b.id, b.pdu)
		e.apply(work, b, &storage.Persisted{})
		out = append(out, b)
		return nil
	}
	tombstone := mustJSON(map[string]any{"body": "This room has been replaced", "replacement_room": newID})
	if err := add("m.room.tombstone", tombstone, false); err != nil {
		return nil, err
	}
	if oldAlias != nil {
		if err := add("m.room.canonical_alias", oldAlias, true); err != nil {
			return nil, err
		}
	}
	if oldPL != nil {
		restricted, err := restrictedPowerLevels(oldPL)
		if err != nil {
			return nil, err
		}
		if restricted != nil {
			if err := add("m.room.power_levels", restricted, true); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// splitCanonicalAlias divides a canonical alias event between the rooms: the aliases of this
// server move to the new room, the others stay. Either result is nil when that room's event
// need not be sent.
func (e *Engine) splitCanonicalAlias(content json.RawMessage) (oldContent, newContent json.RawMessage, err error) {
	if content == nil {
		return nil, nil, nil
	}
	local := func(a string) bool { return strings.HasSuffix(a, ":"+e.opt.ServerName) }
	oldContent, changed, err := withoutAliases(content, local)
	if err != nil || !changed {
		return nil, nil, err
	}
	moved := map[string]any{}
	if a := gjson.GetBytes(content, "alias"); a.Type == gjson.String && local(a.Str) {
		moved["alias"] = a.Str
	}
	var alts []string
	for _, a := range gjson.GetBytes(content, "alt_aliases").Array() {
		if a.Type == gjson.String && local(a.Str) {
			alts = append(alts, a.Str)
		}
	}
	if len(alts) > 0 {
		moved["alt_aliases"] = alts
	}
	return oldContent, mustJSON(moved), nil
}

// upgradedPowerLevels computes the new room's power levels from the old room's (or the
// defaults when it had none) and, when the user's power was raised to copy the state, the
// power levels that restore it afterwards.
func upgradedPowerLevels(old json.RawMessage, user id.UserID, oldVersion id.RoomVersion, oldCreators map[id.UserID]bool,
	newVersion id.RoomVersion, additional []id.UserID) (initial, restore json.RawMessage, err error) {
	var pl map[string]any
	if old == nil {
		pl = defaultPowerLevels(newVersion, user)
	} else if pl, err = fixupPowerLevels(old); err != nil {
		return nil, nil, err
	}
	users, ok := pl["users"].(map[string]any)
	if !ok {
		users = map[string]any{}
	}
	pl["users"] = users
	if newVersion.PrivilegedRoomCreators() {
		// Creators hold unlimited power and may not appear in users.
		delete(users, string(user))
		for _, u := range additional {
			delete(users, string(u))
		}
		return mustJSON(pl), nil, nil
	}
	needed := max(plInt(pl["state_default"], 50), plInt(pl["ban"], 50))
	if events, ok := pl["events"].(map[string]any); ok {
		for _, v := range events {
			needed = max(needed, plInt(v, 0))
		}
	}
	if oldVersion.PrivilegedRoomCreators() {
		// Leaving a version with privileged creators: they keep an admin's power.
		for c := range oldCreators {
			users[string(c)] = int64(max(needed, 100))
		}
	}
	current, had := users[string(user)]
	if plInt(cmpOr(current, pl["users_default"]), 0) >= needed {
		return mustJSON(pl), nil, nil
	}
	users[string(user)] = int64(needed)
	initial = mustJSON(pl)
	if had {
		users[string(user)] = current
	} else {
		delete(users, string(user))
	}
	return initial, mustJSON(pl), nil
}

// restrictedPowerLevels are the old room's power levels with events_default and invite
// raised to at least max(50, users_default+1), or nil when they already are.
func restrictedPowerLevels(old json.RawMessage) (json.RawMessage, error) {
	pl, err := fixupPowerLevels(old)
	if err != nil {
		return nil, err
	}
	level := max(50, plInt(pl["users_default"], 0)+1)
	changed := false
	for _, k := range []string{"events_default", "invite"} {
		if plInt(pl[k], 0) < level {
			pl[k] = int64(level)
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	return mustJSON(pl), nil
}

// fixupPowerLevels parses power levels content with its levels as integers: older room
// versions allowed them as strings.
func fixupPowerLevels(content json.RawMessage) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(content))
	d.UseNumber()
	var pl map[string]any
	if err := d.Decode(&pl); err != nil {
		return nil, fmt.Errorf("%w: power levels: %v", ErrBadJSON, err)
	}
	if pl == nil {
		pl = map[string]any{}
	}
	fix := func(m map[string]any) {
		for k, v := range m {
			if n, ok := asLevel(v); ok {
				m[k] = n
			}
		}
	}
	fix(pl)
	for _, k := range []string{"users", "events", "notifications"} {
		if m, ok := pl[k].(map[string]any); ok {
			fix(m)
		}
	}
	return pl, nil
}

// asLevel reads a power level: a JSON integer, or a string holding one.
func asLevel(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// plInt reads a level, or def when it is missing or not a level.
func plInt(v any, def int) int {
	if n, ok := asLevel(v); ok {
		return int(n)
	}
	return def
}

func cmpOr(a, b any) any {
	if a != nil {
		return a
	}
	return b
}

// clone copies the room's state so that events can be built on it without touching the
// cached state.
func (rs *roomState) clone() *roomState {
	c := *rs
	c.state = maps.Clone(rs.state)
	c.memberships = maps.Clone(rs.memberships)
	c.joinedServers = maps.Clone(rs.joinedServers)
	c.extremities = slices.Clone(rs.extremities)
	return &c
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with values that marshal
	}
	return b
}
