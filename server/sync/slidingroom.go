package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

var (
	nameKey   = storage.StateKey{Type: "m.room.name"}
	avatarKey = storage.StateKey{Type: "m.room.avatar"}
)

// slidingRoom computes one room's answer and what the connection then holds of the room.
// The answer is nil when a room the client has turns out to have nothing new for it.
func (e *Engine) slidingRoom(ctx context.Context, req *SlidingRequest, p *slidingPlan, from *Token, to Token) (*SlidingRoomResult, *sentRoom, error) {
	ur, m := p.ur, p.ur.m
	room := &storage.Room{NID: m.RoomNID, ID: m.RoomID, Version: m.Version}
	v := rooms.Viewer{User: req.User, Device: req.Device}
	out := &SlidingRoomResult{BumpStamp: ur.bump, Initial: p.initial}
	sent := &sentRoom{limit: p.cfg.limit, spec: p.cfg.spec, membership: m.Membership, memberNID: m.EventNID, isDM: p.isDM}
	if p.initial || p.prev.membership != m.Membership {
		out.Membership = m.Membership
	}
	if (p.initial && p.isDM) || (!p.initial && p.prev.isDM != p.isDM) {
		dm := p.isDM
		out.IsDM = &dm
	}
	switch m.Membership {
	case "invite", "knock":
		evs, err := e.rooms.InviteState(ctx, v, room, m.EventNID)
		if err != nil {
			return nil, nil, fmt.Errorf("room %s: invite state: %w", ur.id, err)
		}
		out.InviteState = evs
		return out, sent, nil
	case "join", "leave", "ban":
	default:
		return nil, sent, nil
	}

	joined := m.Membership == "join"
	sr := rooms.SlidingRequest{Room: room, Upto: to.Pos, Current: joined, Limit: p.cfg.limit,
		Want: p.cfg.spec, LazyMembers: p.cfg.spec.lazy, Also: []storage.StateKey{nameKey, avatarKey}}
	if joined {
		sr.JoinedAt = m.StreamPos
	} else {
		sr.Upto = m.StreamPos // nothing after the leave
	}
	var summary *rooms.Summary
	var err error
	if joined && p.initial {
		if summary, err = e.rooms.RoomSummary(ctx, room.NID, req.User); err != nil {
			return nil, nil, fmt.Errorf("room %s: summary: %w", ur.id, err)
		}
		for _, h := range summary.Heroes {
			sr.Also = append(sr.Also, storage.StateKey{Type: "m.room.member", StateKey: string(h)})
		}
	}
	if !p.initial {
		sr.StateSince = p.since
		if !p.expanded {
			sr.TimelineSince = p.since
		}
		members := p.prev.members
		sr.Known = func(u id.UserID, nid int64) bool { return members[u] == nid }
		if !p.cfg.spec.within(p.prev.spec) {
			sr.Fresh = freshState{spec: p.cfg.spec, seen: p.prev.spec}
		}
	}
	res, err := e.rooms.SlidingRoom(ctx, v, sr)
	if err != nil {
		return nil, nil, fmt.Errorf("room %s: %w", ur.id, err)
	}

	name := contentString(res.Also[nameKey], "name")
	if p.initial || res.Changed[nameKey] {
		out.Name = nullableString(name, p.initial)
	}
	if p.initial || res.Changed[avatarKey] {
		out.Avatar = nullableString(contentString(res.Also[avatarKey], "url"), p.initial)
	}
	heroes := res.Also
	if joined && !p.initial && membersChanged(res.Changed) {
		if summary, err = e.rooms.RoomSummary(ctx, room.NID, req.User); err != nil {
			return nil, nil, fmt.Errorf("room %s: summary: %w", ur.id, err)
		}
		if name == "" {
			if heroes, err = e.heroEvents(ctx, v, ur.id, summary.Heroes); err != nil {
				return nil, nil, err
			}
		}
	}
	if summary != nil {
		joinedCount, invitedCount := summary.JoinedMemberCount, summary.InvitedMemberCount
		out.JoinedCount, out.InvitedCount = &joinedCount, &invitedCount
		if name == "" {
			for _, h := range summary.Heroes {
				ev := heroes[storage.StateKey{Type: "m.room.member", StateKey: string(h)}]
				out.Heroes = append(out.Heroes, Hero{UserID: h, DisplayName: contentString(ev, "displayname"),
					AvatarURL: contentString(ev, "avatar_url")})
			}
		}
	}

	if p.cfg.limit > 0 {
		if len(res.Timeline) > 0 {
			out.Timeline = res.Timeline
		}
		limited := res.Limited
		out.Limited, out.PrevBatch = &limited, res.PrevBatch
		// On a new connection nothing is live, as in Synapse.
		live := 0
		for i := len(res.Timeline) - 1; from != nil && i >= 0 && res.Timeline[i].Stored != nil && res.Timeline[i].Stored.StreamPos > from.Pos; i-- {
			live++
		}
		out.NumLive = &live
	}
	for _, ce := range res.State {
		out.RequiredState = append(out.RequiredState, ce)
	}
	for _, k := range res.Removed {
		out.RequiredState = append(out.RequiredState, StateStub{Type: k.Type, StateKey: k.StateKey})
	}
	if p.expanded {
		out.ExpandedTimeline, out.UnstableExpandedTimeline = true, true
	}

	// What the client now holds: the member events sent (for lazy loading), and the largest
	// timeline it has without a gap.
	if p.cfg.spec.lazy {
		members := map[id.UserID]int64{}
		if !p.initial && p.prev.members != nil {
			members = maps.Clone(p.prev.members)
		}
		for _, list := range [][]*rooms.ClientEvent{res.State, res.Timeline} {
			for _, ce := range list {
				if ce.Type == "m.room.member" && ce.StateKey != nil && ce.Stored != nil {
					members[id.UserID(*ce.StateKey)] = ce.Stored.NID
				}
			}
		}
		for u := range members {
			if len(members) <= maxLazyMembers {
				break
			}
			delete(members, u) // forgotten: sent again when needed
		}
		sent.members = members
	}
	if !p.initial && !p.expanded && p.cfg.limit < p.prev.limit && !res.Limited {
		sent.limit = p.prev.limit
	}

	if !p.initial && !p.expanded && len(res.Timeline) == 0 && len(out.RequiredState) == 0 && out.Name == nil &&
		out.Avatar == nil && out.JoinedCount == nil && out.IsDM == nil && out.Membership == "" {
		return nil, sent, nil
	}
	return out, sent, nil
}

// heroEvents reads the member events of a room's heroes from its current state.
func (e *Engine) heroEvents(ctx context.Context, v rooms.Viewer, roomID id.RoomID, heroes []id.UserID) (map[storage.StateKey]*rooms.ClientEvent, error) {
	out := map[storage.StateKey]*rooms.ClientEvent{}
	for _, h := range heroes {
		ce, err := e.rooms.StateEvent(ctx, v, roomID, "m.room.member", string(h))
		if errors.Is(err, rooms.ErrNotFound) || errors.Is(err, rooms.ErrForbidden) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("room %s: hero %s: %w", roomID, h, err)
		}
		out[storage.StateKey{Type: "m.room.member", StateKey: string(h)}] = ce
	}
	return out, nil
}

// membersChanged says whether a member event is among the keys.
func membersChanged(keys map[storage.StateKey]bool) bool {
	for k := range keys {
		if k.Type == "m.room.member" {
			return true
		}
	}
	return false
}

// contentString is a string field of an event's content, or "".
func contentString(ce *rooms.ClientEvent, field string) string {
	if ce == nil {
		return ""
	}
	if r := gjson.GetBytes(ce.Content, field); r.Type == gjson.String {
		return r.Str
	}
	return ""
}

// nullableString is s as JSON; an empty s is left out of an initial answer, and null (the
// value was removed) in a later one.
func nullableString(s string, initial bool) json.RawMessage {
	switch {
	case s != "":
		b, _ := json.Marshal(s)
		return b
	case initial:
		return nil
	}
	return json.RawMessage("null")
}

// slidingCounts fills in the joined rooms' unread notification counts, when a notification
// source is wired in.
func (e *Engine) slidingCounts(ctx context.Context, user id.UserID, set *roomSet, resp *SlidingResponse) error {
	if e.opt.Notifications == nil {
		return nil
	}
	var joined []id.RoomID
	for r := range resp.Rooms {
		if set.all[r].m.Membership == "join" {
			joined = append(joined, r)
		}
	}
	if len(joined) == 0 {
		return nil
	}
	counts, err := e.opt.Notifications.UnreadCounts(ctx, user, joined)
	if err != nil {
		return fmt.Errorf("unread counts: %w", err)
	}
	for r, c := range counts {
		if rr := resp.Rooms[r]; rr != nil {
			rr.NotificationCount, rr.HighlightCount = c.Main.NotificationCount, c.Main.HighlightCount
		}
	}
	return nil
}
