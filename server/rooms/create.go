package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// StateEvent is a state event in a request (initial_state).
type StateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// CreateRequest is POST /createRoom's body.
type CreateRequest struct {
	Visibility      string                     `json:"visibility"`
	RoomAliasName   string                     `json:"room_alias_name"`
	Name            *string                    `json:"name"`
	Topic           *string                    `json:"topic"`
	Invite          []id.UserID                `json:"invite"`
	Invite3PID      []json.RawMessage          `json:"invite_3pid"`
	RoomVersion     id.RoomVersion             `json:"room_version"`
	CreationContent map[string]json.RawMessage `json:"creation_content"`
	InitialState    []StateEvent               `json:"initial_state"`
	Preset          string                     `json:"preset"`
	IsDirect        bool                       `json:"is_direct"`
	PowerOverride   map[string]json.RawMessage `json:"power_level_content_override"`

	// upgrade, set by UpgradeRoom only, shapes a room that replaces another.
	upgrade *upgradeSpec
}

// presets are the state each createRoom preset sets.
var presets = map[string]struct{ joinRule, history, guests string }{
	"private_chat":         {"invite", "shared", "can_join"},
	"trusted_private_chat": {"invite", "shared", "can_join"},
	"public_chat":          {"public", "shared", "forbidden"},
}

// CreateRoom creates a room as the spec's createRoom describes, writing every initial event
// in one transaction: either the whole room exists afterwards or nothing does.
func (e *Engine) CreateRoom(ctx context.Context, creator id.UserID, req *CreateRequest) (id.RoomID, error) {
	var nr *newRoom
	for attempt := 0; ; attempt++ {
		var err error
		if nr, err = e.buildRoom(ctx, creator, req); err != nil {
			return "", err
		}
		err = e.persistRoom(ctx, nr)
		if err == nil {
			break
		}
		// Two identical rooms created in the same millisecond hash to the same v12 room
		// ID: build again a millisecond later.
		if !errors.Is(err, storage.ErrExists) || attempt == 3 || !nr.rs.version.RoomIDIsCreateEventID() {
			return "", err
		}
		time.Sleep(time.Millisecond)
	}
	for _, u := range nr.remoteInvites {
		c := MemberChange{Target: u}
		if req.IsDirect {
			c.Extra = map[string]json.RawMessage{"is_direct": json.RawMessage("true")}
		}
		if err := e.Invite(ctx, creator, nr.rs.id, c); err != nil {
			// The room exists either way; an unreachable invitee can be invited again.
			e.log.Warn("createRoom: remote invite failed", "room_id", nr.rs.id, "user", u, "err", err)
		}
	}
	return nr.rs.id, nil
}

// newRoom is a room built in memory, its events signed and authorised, not yet persisted.
type newRoom struct {
	rs      *roomState
	events  []*built
	creator id.UserID
	alias   string
	public  bool
	// before, when set, runs in the room's first write once its row exists.
	before func(tx *storage.Tx) error
	// remoteInvites are invitees on other servers, invited after the room is written.
	remoteInvites []id.UserID
}

// buildRoom builds a new room's initial events as createRoom describes (and, with
// req.upgrade, as a room upgrade needs).
func (e *Engine) buildRoom(ctx context.Context, creator id.UserID, req *CreateRequest) (*newRoom, error) {
	up := req.upgrade
	version := req.RoomVersion
	if version == "" {
		version = DefaultVersion
	}
	if !slices.Contains(CreatableVersions, version) {
		return nil, fmt.Errorf("%w: this server creates rooms of versions %v, not %q", ErrUnsupportedVersion, CreatableVersions, version)
	}
	switch req.Visibility {
	case "", "private", "public":
	default:
		return nil, fmt.Errorf("%w: visibility must be public or private", ErrInvalidParam)
	}
	preset := req.Preset
	if preset == "" {
		preset = "private_chat"
		if req.Visibility == "public" {
			preset = "public_chat"
		}
	}
	ps, ok := presets[preset]
	if !ok {
		return nil, fmt.Errorf("%w: unknown preset %q", ErrInvalidParam, preset)
	}
	if len(req.Invite3PID) > 0 {
		return nil, fmt.Errorf("%w: invite_3pid needs an identity server, which this server does not use", ErrInvalidParam)
	}
	for _, u := range req.Invite {
		if _, _, err := u.Parse(); err != nil {
			return nil, fmt.Errorf("%w: invite: %q is not a user ID", ErrInvalidParam, u)
		}
	}
	var alias string
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ": \t\n#") {
			return nil, fmt.Errorf("%w: room_alias_name must be the local part only, without ':', '#' or spaces", ErrInvalidParam)
		}
		alias = "#" + req.RoomAliasName + ":" + e.opt.ServerName
		if len(alias) > 255 {
			return nil, fmt.Errorf("%w: the alias is longer than 255 bytes", ErrInvalidParam)
		}
		if _, err := e.db.AliasByName(ctx, alias); err == nil {
			return nil, fmt.Errorf("%w: %s already exists", ErrRoomInUse, alias)
		}
	}
	trusted := preset == "trusted_private_chat"

	// m.room.create
	create := map[string]any{}
	for k, v := range req.CreationContent {
		create[k] = v
	}
	create["room_version"] = version
	if version.CreatorInContent() {
		create["creator"] = creator
	} else {
		delete(create, "creator")
	}
	var additional []id.UserID
	if version.PrivilegedRoomCreators() {
		if raw, ok := req.CreationContent["additional_creators"]; ok {
			if err := json.Unmarshal(raw, &additional); err != nil {
				return nil, fmt.Errorf("%w: additional_creators must be a list of user IDs", ErrBadJSON)
			}
			for _, u := range additional {
				if !validUserID(u) {
					return nil, fmt.Errorf("%w: additional_creators: %q is not a valid user ID", ErrBadJSON, u)
				}
			}
		}
		if trusted {
			for _, u := range req.Invite {
				if !slices.Contains(additional, u) && u != creator {
					additional = append(additional, u)
				}
			}
		}
		if len(additional) > 0 {
			create["additional_creators"] = additional
		}
		// Creators hold unlimited power and must not be listed (MSC4289): a request that
		// lists them is the client's mistake, not a refusal by the room's rules.
		if raw, ok := req.PowerOverride["users"]; ok {
			var users map[id.UserID]json.RawMessage
			if err := json.Unmarshal(raw, &users); err != nil {
				return nil, fmt.Errorf("%w: power_level_content_override.users must be an object", ErrBadJSON)
			}
			for _, u := range append([]id.UserID{creator}, additional...) {
				if _, listed := users[u]; listed {
					return nil, fmt.Errorf("%w: %s creates the room and has unlimited power in room version %s; power_level_content_override must not list room creators", ErrBadJSON, u, version)
				}
			}
		}
	}
	createJSON, err := json.Marshal(create)
	if err != nil {
		return nil, err
	}

	rs := &roomState{version: version, state: map[storage.StateKey]stateEntry{},
		memberships: map[id.UserID]string{}, joinedServers: map[string]int{}}
	var bs []*built
	add := func(typ, stateKey string, content any) error {
		raw, err := asRaw(content)
		if err != nil {
			return err
		}
		sk := stateKey
		b, err := e.build(ctx, rs, draft{sender: creator, typ: typ, stateKey: &sk, content: raw})
		if err != nil {
			return fmt.Errorf("%s %q: %w", typ, stateKey, err)
		}
		e.events.put(b.id, b.pdu)
		e.apply(rs, b, &storage.Persisted{})
		bs = append(bs, b)
		return nil
	}

	// The create event decides the room ID in v12, so it is built by hand.
	var chosenID id.RoomID
	if up != nil {
		chosenID = up.roomID
	}
	cb, err := e.buildCreate(ctx, rs, creator, version, createJSON, chosenID)
	if err != nil {
		return nil, err
	}
	e.events.put(cb.id, cb.pdu)
	e.apply(rs, cb, &storage.Persisted{})
	bs = append(bs, cb)

	if err := add("m.room.member", string(creator), e.memberContent(ctx, creator, "join", nil)); err != nil {
		return nil, err
	}
	pl := defaultPowerLevels(version, creator)
	if trusted && !version.PrivilegedRoomCreators() {
		users := pl["users"].(map[string]any)
		for _, u := range req.Invite {
			users[string(u)] = 100
		}
	}
	for k, v := range req.PowerOverride {
		pl[k] = v
	}
	var plContent any = pl
	if up != nil {
		plContent = up.powerLevels
	}
	if err := add("m.room.power_levels", "", plContent); err != nil {
		return nil, err
	}
	if alias != "" {
		if err := add("m.room.canonical_alias", "", map[string]any{"alias": alias}); err != nil {
			return nil, err
		}
	}
	presetState := map[storage.StateKey]any{
		{Type: "m.room.join_rules"}:         map[string]any{"join_rule": ps.joinRule},
		{Type: "m.room.history_visibility"}: map[string]any{"history_visibility": ps.history},
		{Type: "m.room.guest_access"}:       map[string]any{"guest_access": ps.guests},
	}
	initial := map[storage.StateKey]json.RawMessage{}
	var initialOrder []storage.StateKey
	for _, s := range req.InitialState {
		k := storage.StateKey{Type: s.Type, StateKey: s.StateKey}
		if s.Type == "m.room.create" || s.Type == "m.room.member" {
			return nil, fmt.Errorf("%w: initial_state cannot set %s", ErrInvalidParam, s.Type)
		}
		if _, dup := initial[k]; !dup {
			initialOrder = append(initialOrder, k)
		}
		initial[k] = s.Content
	}
	for _, k := range []storage.StateKey{{Type: "m.room.join_rules"}, {Type: "m.room.history_visibility"}, {Type: "m.room.guest_access"}} {
		if _, overridden := initial[k]; overridden {
			continue
		}
		if k.Type == "m.room.guest_access" && ps.guests == "forbidden" {
			continue // the default when absent; Synapse does not send it either
		}
		if err := add(k.Type, k.StateKey, presetState[k]); err != nil {
			return nil, err
		}
	}
	for _, k := range initialOrder {
		if (k == storage.StateKey{Type: "m.room.name"} && req.Name != nil) || (k == storage.StateKey{Type: "m.room.topic"} && req.Topic != nil) {
			continue
		}
		if err := add(k.Type, k.StateKey, initial[k]); err != nil {
			return nil, err
		}
	}
	if req.Name != nil {
		if err := add("m.room.name", "", map[string]any{"name": *req.Name}); err != nil {
			return nil, err
		}
	}
	if req.Topic != nil {
		topic := map[string]any{"topic": *req.Topic, "m.topic": map[string]any{"m.text": []any{map[string]any{"body": *req.Topic}}}}
		if err := add("m.room.topic", "", topic); err != nil {
			return nil, err
		}
	}
	var remoteInvites []id.UserID
	for _, u := range req.Invite {
		if u == creator {
			continue
		}
		if !e.isLocal(u) {
			// Their server countersigns the invite: sent once the room exists.
			remoteInvites = append(remoteInvites, u)
			continue
		}
		extra := map[string]any{}
		if req.IsDirect {
			extra["is_direct"] = true
		}
		if err := add("m.room.member", string(u), e.memberContent(ctx, u, "invite", extra)); err != nil {
			return nil, err
		}
	}

	if up != nil {
		for _, s := range up.state {
			if err := add(s.Type, s.StateKey, s.Content); errors.Is(err, ErrForbidden) && s.optional {
				e.log.Warn("room upgrade: state not copied", "room_id", rs.id, "type", s.Type, "state_key", s.StateKey, "err", err)
			} else if err != nil {
				return nil, err
			}
		}
	}
	return &newRoom{rs: rs, events: bs, creator: creator, alias: alias, public: req.Visibility == "public", remoteInvites: remoteInvites}, nil
}

// persistRoom writes a built room in one transaction and caches its state.
func (e *Engine) persistRoom(ctx context.Context, nr *newRoom) error {
	rs := nr.rs
	unlock := e.lock(rs.id)
	defer unlock()
	_, err := e.persist(ctx, rs, nr.events, func(tx *storage.Tx) error {
		nid, err := tx.InsertRoom(string(rs.id), string(rs.version), e.now())
		if err != nil {
			return err
		}
		rs.nid = nid
		if nr.public {
			if err := tx.SetPublished(nid, true); err != nil {
				return err
			}
		}
		if nr.alias != "" {
			if err := tx.InsertAlias(nr.alias, string(rs.id), string(nr.creator)); errors.Is(err, storage.ErrExists) {
				return fmt.Errorf("%w: %s already exists", ErrRoomInUse, nr.alias)
			} else if err != nil {
				return err
			}
		}
		if nr.before != nil {
			return nr.before(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.cache.put(rs)
	return nil
}

// buildCreate builds the m.room.create event and sets the room's ID from it; in room
// versions whose IDs are not the create event's hash, the ID is roomID, or a random one.
func (e *Engine) buildCreate(ctx context.Context, rs *roomState, creator id.UserID, version id.RoomVersion, content json.RawMessage, roomID id.RoomID) (*built, error) {
	sk := ""
	d := draft{sender: creator, typ: "m.room.create", stateKey: &sk, content: content}
	if version.RoomIDIsCreateEventID() {
		// The room ID is the create event's reference hash: build the event without one.
		b, err := e.buildWithRoomID(ctx, rs, d, "")
		if err != nil {
			return nil, err
		}
		roomID, err := b.pdu.GetRoomID()
		if err != nil {
			return nil, err
		}
		rs.id = roomID
		return b, nil
	}
	rs.id = roomID
	if rs.id == "" {
		rs.id = e.newRoomID()
	}
	return e.buildWithRoomID(ctx, rs, d, rs.id)
}

// newRoomID makes a random room ID on this server, for versions whose IDs name a server.
func (e *Engine) newRoomID() id.RoomID {
	return id.RoomID("!" + randomString(18) + ":" + e.opt.ServerName)
}

func (e *Engine) buildWithRoomID(ctx context.Context, rs *roomState, d draft, roomID id.RoomID) (*built, error) {
	saved := rs.id
	rs.id = roomID
	b, err := e.build(ctx, rs, d)
	rs.id = saved
	return b, err
}

// tombstoneLevel is the default power to upgrade a room: above every ordinary admin from
// room version 12 (MSC4289), where only creators can upgrade by default.
func tombstoneLevel(version id.RoomVersion) int {
	if version.PrivilegedRoomCreators() {
		return 150
	}
	return 100
}

// defaultPowerLevels are the power levels of a new room before any override.
func defaultPowerLevels(version id.RoomVersion, creator id.UserID) map[string]any {
	users := map[string]any{}
	if !version.PrivilegedRoomCreators() {
		users[string(creator)] = 100
	}
	return map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.avatar":             50,
			"m.room.canonical_alias":    50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.tombstone":          tombstoneLevel(version),
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
		"notifications": map[string]any{"room": 50},
	}
}

// memberContent is the content of a membership event for a local user, with their profile.
func (e *Engine) memberContent(ctx context.Context, u id.UserID, membership string, extra map[string]any) map[string]any {
	c := map[string]any{"membership": membership}
	if e.isLocal(u) && e.opt.Profile != nil && membership != "leave" && membership != "ban" {
		name, avatar := e.opt.Profile(ctx, u)
		if name != "" {
			c["displayname"] = name
		}
		if avatar != "" {
			c["avatar_url"] = avatar
		}
	}
	maps.Copy(c, extra)
	return c
}

func asRaw(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return raw, nil
	}
	return json.Marshal(v)
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
