package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// Timeline limits: the default when a filter names none (Synapse's), and the most one
// response carries per room.
const (
	DefaultTimelineLimit = 10
	MaxTimelineLimit     = 1000
)

// Filter is the part of a client's filter that sync applies.
// See https://spec.matrix.org/v1.16/client-server-api/#filtering
//
// event_fields is accepted and ignored, which the spec allows ("a server may include more
// fields than were requested").
type Filter struct {
	EventFields []string    `json:"event_fields"`
	EventFormat string      `json:"event_format"`
	Presence    EventFilter `json:"presence"`
	AccountData EventFilter `json:"account_data"`
	Room        RoomFilter  `json:"room"`
}

// EventFilter selects events by type and sender. A nil list matches everything; an empty
// one matches nothing.
type EventFilter struct {
	Limit      *int        `json:"limit"`
	Types      []string    `json:"types"`
	NotTypes   []string    `json:"not_types"`
	Senders    []id.UserID `json:"senders"`
	NotSenders []id.UserID `json:"not_senders"`
}

// RoomEventFilter is an EventFilter for room events.
type RoomEventFilter struct {
	EventFilter
	Rooms                     []id.RoomID `json:"rooms"`
	NotRooms                  []id.RoomID `json:"not_rooms"`
	ContainsURL               *bool       `json:"contains_url"`
	LazyLoadMembers           bool        `json:"lazy_load_members"`
	IncludeRedundantMembers   bool        `json:"include_redundant_members"`
	UnreadThreadNotifications bool        `json:"unread_thread_notifications"`
}

// RoomFilter selects rooms and what of them to send.
type RoomFilter struct {
	Rooms        []id.RoomID     `json:"rooms"`
	NotRooms     []id.RoomID     `json:"not_rooms"`
	IncludeLeave bool            `json:"include_leave"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	State        RoomEventFilter `json:"state"`
	Timeline     RoomEventFilter `json:"timeline"`
	AccountData  RoomEventFilter `json:"account_data"`
}

// ParseFilter reads a filter's JSON. Malformed JSON is ErrNotJSON; JSON that is not a valid
// filter is ErrBadFilter.
func ParseFilter(raw []byte) (*Filter, error) {
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: the filter is not valid JSON", ErrNotJSON)
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: a filter must be a JSON object", ErrBadFilter)
	}
	var f Filter
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFilter, err)
	}
	return &f, f.validate()
}

func (f *Filter) validate() error {
	switch f.EventFormat {
	case "", "client":
	case "federation":
		return fmt.Errorf("%w: event_format federation is not supported; use client", ErrBadFilter)
	default:
		return fmt.Errorf("%w: event_format must be client or federation", ErrBadFilter)
	}
	for _, ef := range []*EventFilter{&f.Presence, &f.AccountData, &f.Room.Ephemeral.EventFilter,
		&f.Room.State.EventFilter, &f.Room.Timeline.EventFilter, &f.Room.AccountData.EventFilter} {
		// The spec asks for a limit above 0; 0 is accepted as Synapse does, for clients that
		// want a room's state without its timeline.
		if ef.Limit != nil && *ef.Limit < 0 {
			return fmt.Errorf("%w: limit must not be negative", ErrBadFilter)
		}
		for _, u := range append(append([]id.UserID{}, ef.Senders...), ef.NotSenders...) {
			if !strings.HasPrefix(string(u), "@") {
				return fmt.Errorf("%w: %q in senders is not a user ID", ErrBadFilter, u)
			}
		}
	}
	for _, rs := range [][]id.RoomID{f.Room.Rooms, f.Room.NotRooms, f.Room.Ephemeral.Rooms, f.Room.Ephemeral.NotRooms,
		f.Room.State.Rooms, f.Room.State.NotRooms, f.Room.Timeline.Rooms, f.Room.Timeline.NotRooms,
		f.Room.AccountData.Rooms, f.Room.AccountData.NotRooms} {
		for _, r := range rs {
			if !strings.HasPrefix(string(r), "!") {
				return fmt.Errorf("%w: %q in rooms is not a room ID", ErrBadFilter, r)
			}
		}
	}
	return nil
}

// timelineLimit is the timeline's event limit, capped.
func (f *Filter) timelineLimit() int {
	if l := f.Room.Timeline.Limit; l != nil {
		return min(*l, MaxTimelineLimit)
	}
	return DefaultTimelineLimit
}

// loadFilter resolves the filter parameter: inline JSON (it starts with "{"), a stored
// filter's ID, or nothing (the default filter).
func (e *Engine) loadFilter(ctx context.Context, user id.UserID, param string) (*Filter, error) {
	if param == "" {
		return &Filter{}, nil
	}
	if strings.HasPrefix(param, "{") {
		return ParseFilter([]byte(param))
	}
	if e.opt.Filters == nil {
		return nil, fmt.Errorf("%w: no filter %q", ErrInvalidParam, param)
	}
	raw, ok, err := e.opt.Filters.Filter(ctx, user, param)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no filter %q", ErrInvalidParam, param)
	}
	return ParseFilter(raw)
}

// match says whether an event of this type and sender passes.
func (f *EventFilter) match(typ string, sender id.UserID) bool {
	for _, t := range f.NotTypes {
		if globMatch(t, typ) {
			return false
		}
	}
	if f.Types != nil && !anyGlob(f.Types, typ) {
		return false
	}
	for _, s := range f.NotSenders {
		if s == sender {
			return false
		}
	}
	if f.Senders != nil {
		found := false
		for _, s := range f.Senders {
			found = found || s == sender
		}
		if !found {
			return false
		}
	}
	return true
}

// filterRaw keeps the events (raw JSON with type and sender) that pass, up to the limit.
func (f *EventFilter) filterRaw(evs []json.RawMessage) []json.RawMessage {
	out := []json.RawMessage{}
	for _, ev := range evs {
		r := gjson.ParseBytes(ev)
		if f.match(r.Get("type").Str, id.UserID(r.Get("sender").Str)) {
			out = append(out, ev)
		}
	}
	if f.Limit != nil && len(out) > *f.Limit {
		out = out[len(out)-*f.Limit:]
	}
	return out
}

// allowsRoom says whether a room passes rooms and not_rooms.
func allowsRoom(rooms, notRooms []id.RoomID, room id.RoomID) bool {
	for _, r := range notRooms {
		if r == room {
			return false
		}
	}
	if rooms == nil {
		return true
	}
	for _, r := range rooms {
		if r == room {
			return true
		}
	}
	return false
}

// matcher returns the rooms engine's matcher for this filter in one room; nil when it
// passes everything.
func (f *RoomEventFilter) matcher(room id.RoomID) rooms.EventMatcher {
	if !allowsRoom(f.Rooms, f.NotRooms, room) {
		return func(*rooms.ClientEvent) bool { return false }
	}
	if f.Types == nil && f.NotTypes == nil && f.Senders == nil && f.NotSenders == nil && f.ContainsURL == nil {
		return nil
	}
	return func(ce *rooms.ClientEvent) bool {
		if !f.match(ce.Type, ce.Sender) {
			return false
		}
		if f.ContainsURL != nil && gjson.GetBytes(ce.Content, "url").Exists() != *f.ContainsURL {
			return false
		}
		return true
	}
}

// filterRoomRaw is filterRaw for one room's events, honouring rooms and not_rooms.
func (f *RoomEventFilter) filterRoomRaw(room id.RoomID, evs []json.RawMessage) []json.RawMessage {
	if !allowsRoom(f.Rooms, f.NotRooms, room) {
		return []json.RawMessage{}
	}
	return f.EventFilter.filterRaw(evs)
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// globMatch matches s against a pattern where "*" stands for any run of characters. It
// backtracks only to the last star, so it takes O(len(pattern)·len(s)) at worst.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
