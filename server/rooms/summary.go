package rooms

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// RoomSummary describes a room as the published room directory, the space hierarchy and the
// room summary API show it: the spec's PublishedRoomsChunk, extended to its RoomSummary.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias
type RoomSummary struct {
	RoomID           id.RoomID `json:"room_id"`
	Name             string    `json:"name,omitempty"`
	Topic            string    `json:"topic,omitempty"`
	CanonicalAlias   string    `json:"canonical_alias,omitempty"`
	NumJoinedMembers int       `json:"num_joined_members"`
	WorldReadable    bool      `json:"world_readable"`
	GuestCanJoin     bool      `json:"guest_can_join"`
	AvatarURL        string    `json:"avatar_url,omitempty"`
	JoinRule         string    `json:"join_rule,omitempty"`
	RoomType         string    `json:"room_type,omitempty"`
	// AllowedRoomIDs are a restricted room's allowed rooms (summary and hierarchy only).
	AllowedRoomIDs []id.RoomID `json:"allowed_room_ids,omitempty"`
	// Encryption is the room's m.room.encryption algorithm (summary and hierarchy only).
	Encryption string `json:"encryption,omitempty"`
	// RoomVersion is set in summaries and hierarchies, not in the directory.
	RoomVersion id.RoomVersion `json:"room_version,omitempty"`
	// Membership is the asking user's membership, in room summaries for a signed-in user.
	Membership string `json:"membership,omitempty"`
}

// summaryTypes are the state types a room's summary is made of.
var summaryTypes = []string{"m.room.create", "m.room.name", "m.room.topic", "m.room.avatar",
	"m.room.canonical_alias", "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access",
	"m.room.encryption"}

// roomInfo is a room's summary with what deciding who may see it needs. It is computed from
// the room's current state and cached until that state changes; never modify one.
type roomInfo struct {
	nid      int64
	snapshot int64
	version  id.RoomVersion
	summary  RoomSummary
	// allow are the rooms whose members may join (restricted join rules), when the room
	// version has restricted joins.
	allow []id.RoomID
}

func (ri *roomInfo) isSpace() bool { return ri.summary.RoomType == "m.space" }

// summaryCacheSize bounds the number of cached room summaries.
const summaryCacheSize = 4096

// summaryCache keeps roomInfos by room NID. An entry is current while the room's state
// snapshot is the one it was computed from: every state change makes a new snapshot.
type summaryCache struct {
	mu    sync.Mutex
	rooms map[int64]*roomInfo
}

func (c *summaryCache) get(room *storage.Room) *roomInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ri := c.rooms[room.NID]; ri != nil && ri.snapshot == room.SnapshotNID {
		return ri
	}
	return nil
}

func (c *summaryCache) put(ri *roomInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rooms == nil {
		c.rooms = map[int64]*roomInfo{}
	}
	if _, ok := c.rooms[ri.nid]; !ok && len(c.rooms) >= summaryCacheSize {
		for k := range c.rooms { // evict an arbitrary room; it is recomputed on next use
			delete(c.rooms, k)
			break
		}
	}
	c.rooms[ri.nid] = ri
}

// roomInfos returns the summaries of rooms, aligned with them, from the cache or storage.
func (e *Engine) roomInfos(ctx context.Context, rooms []*storage.Room) ([]*roomInfo, error) {
	out := make([]*roomInfo, len(rooms))
	var missing []int64
	missingAt := map[int64]int{}
	for i, r := range rooms {
		if ri := e.summaries.get(r); ri != nil {
			out[i] = ri
			continue
		}
		missing = append(missing, r.NID)
		missingAt[r.NID] = i
	}
	if len(missing) == 0 {
		return out, nil
	}
	stats, err := e.db.RoomStats(ctx, missing, summaryTypes)
	if err != nil {
		return nil, err
	}
	for _, st := range stats {
		i := missingAt[st.RoomNID]
		ri := newRoomInfo(rooms[i], st)
		e.summaries.put(ri)
		out[i] = ri
	}
	return out, nil
}

// roomInfoByID returns one room's summary, or ErrNotFound for a room this server does not hold.
func (e *Engine) roomInfoByID(ctx context.Context, roomID id.RoomID) (*roomInfo, error) {
	room, err := e.db.RoomByID(ctx, string(roomID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
	} else if err != nil {
		return nil, err
	}
	ris, err := e.roomInfos(ctx, []*storage.Room{room})
	if err != nil {
		return nil, err
	}
	return ris[0], nil
}

// newRoomInfo builds a summary from a room's current state, pruning redacted state as the
// room version's redaction rules say.
func newRoomInfo(room *storage.Room, st *storage.RoomStats) *roomInfo {
	version := id.RoomVersion(room.Version)
	content := func(typ string) gjson.Result {
		ev := st.State[typ]
		if ev == nil {
			return gjson.Result{}
		}
		c := gjson.GetBytes(ev.JSON, "content")
		if ev.RedactedBy != "" && c.IsObject() {
			c = gjson.ParseBytes(pdu.RedactContent(typ, []byte(c.Raw), version))
		}
		return c
	}
	str := func(r gjson.Result) string {
		if r.Type == gjson.String {
			return r.Str
		}
		return ""
	}
	ri := &roomInfo{nid: room.NID, snapshot: room.SnapshotNID, version: version}
	s := &ri.summary
	s.RoomID = id.RoomID(room.ID)
	s.RoomVersion = version
	s.NumJoinedMembers = st.JoinedMembers
	s.Name = str(content("m.room.name").Get("name"))
	s.Topic = plainTopic(content("m.room.topic"))
	s.CanonicalAlias = str(content("m.room.canonical_alias").Get("alias"))
	s.AvatarURL = str(content("m.room.avatar").Get("url"))
	s.WorldReadable = str(content("m.room.history_visibility").Get("history_visibility")) == "world_readable"
	s.GuestCanJoin = str(content("m.room.guest_access").Get("guest_access")) == "can_join"
	s.RoomType = str(content("m.room.create").Get("type"))
	s.Encryption = str(content("m.room.encryption").Get("algorithm"))
	jr := content("m.room.join_rules")
	s.JoinRule = str(jr.Get("join_rule"))
	if (s.JoinRule == "restricted" && version.RestrictedJoins()) || (s.JoinRule == "knock_restricted" && version.KnockRestricted()) {
		for _, a := range jr.Get("allow").Array() {
			if a.Get("type").Str == "m.room_membership" && a.Get("room_id").Type == gjson.String {
				ri.allow = append(ri.allow, id.RoomID(a.Get("room_id").Str))
			}
		}
		s.AllowedRoomIDs = ri.allow
	}
	return ri
}

// plainTopic is a topic's plain-text form: the topic field, or else the text/plain
// representation in m.topic.
func plainTopic(c gjson.Result) string {
	if t := c.Get("topic"); t.Type == gjson.String && t.Str != "" {
		return t.Str
	}
	for _, r := range c.Get(`m\.topic.m\.text`).Array() {
		mt := r.Get("mimetype")
		if (!mt.Exists() || mt.Str == "text/plain") && r.Get("body").Type == gjson.String {
			return r.Get("body").Str
		}
	}
	return ""
}

// preview decides whether user ("" for a client that did not sign in) may see a room's
// summary, as the spec's space hierarchy lists: the room is public or knockable, or world
// readable; or the user is joined or invited, or may join a restricted room through one of
// its allowed rooms. A banned user may not. It returns the user's membership too.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidhierarchy
func (e *Engine) preview(ctx context.Context, ri *roomInfo, user id.UserID) (membership string, ok bool, err error) {
	if user != "" {
		if membership, _, err = e.db.Membership(ctx, ri.nid, string(user)); err != nil {
			return "", false, err
		}
	}
	switch {
	case membership == "ban":
		return membership, false, nil
	case ri.summary.JoinRule == "public",
		ri.summary.JoinRule == "knock" && ri.version.Knocks(),
		ri.summary.JoinRule == "knock_restricted" && ri.version.KnockRestricted(),
		ri.summary.WorldReadable:
		return membership, true, nil
	case user == "":
		return "", false, nil
	case membership == "join" || membership == "invite":
		return membership, true, nil
	}
	for _, other := range ri.allow {
		r, err := e.db.RoomByID(ctx, string(other))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		} else if err != nil {
			return "", false, err
		}
		if m, _, err := e.db.Membership(ctx, r.NID, string(user)); err != nil {
			return "", false, err
		} else if m == "join" {
			return membership, true, nil
		}
	}
	return membership, false, nil
}

// Summary returns a room's summary for user ("" for a client that did not sign in), with
// the user's membership ("leave" when none). A room the user may not preview is ErrNotFound,
// as is one this server does not hold: fetching summaries over federation is not built yet.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias
func (e *Engine) Summary(ctx context.Context, user id.UserID, roomID id.RoomID) (*RoomSummary, error) {
	ri, err := e.roomInfoByID(ctx, roomID)
	if errors.Is(err, ErrNotFound) && isRemoteRoom(roomID, e.opt.ServerName) {
		return nil, fmt.Errorf("%w: summarising %s needs federation, which this server cannot do yet", ErrRemote, roomID)
	} else if err != nil {
		return nil, err
	}
	membership, ok, err := e.preview(ctx, ri, user)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: room %s is unknown or you may not preview it", ErrNotFound, roomID)
	}
	s := ri.summary
	if user != "" {
		s.Membership = membership
		if s.Membership == "" {
			s.Membership = "leave"
		}
	}
	return &s, nil
}
