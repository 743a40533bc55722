package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// MemberChange is a membership request: join, invite, leave (also kick), ban, unban, knock.
type MemberChange struct {
	Target id.UserID
	Reason string
	// Extra content fields (e.g. is_direct on invites); membership and reason win over it.
	Extra map[string]json.RawMessage
}

// Join joins a room as a local user. Joining a room one is already joined to changes nothing.
func (e *Engine) Join(ctx context.Context, user id.UserID, roomID id.RoomID, reason string, extra map[string]json.RawMessage) (id.RoomID, error) {
	return e.JoinVia(ctx, user, roomID, nil, reason, extra)
}

// JoinVia joins a room, through the given servers when this server is not in it.
func (e *Engine) JoinVia(ctx context.Context, user id.UserID, roomID id.RoomID, via []string, reason string, extra map[string]json.RawMessage) (id.RoomID, error) {
	servers := append([]string{}, via...)
	if _, err := e.db.RoomByID(ctx, string(roomID)); errors.Is(err, storage.ErrNotFound) {
		if s := roomServer(roomID); s != "" && s != e.opt.ServerName {
			servers = append(servers, s)
		}
		if len(servers) == 0 {
			return "", fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
		}
		return roomID, e.joinRemote(ctx, user, roomID, servers, reason, extra)
	}
	unlock := e.lock(roomID)
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		unlock()
		return "", err
	}
	if rs.membership(user) == "join" {
		unlock()
		return roomID, nil
	}
	if !e.joinsLocally(rs) {
		servers = append(servers, e.residentServers(ctx, rs, user)...)
		unlock()
		return roomID, e.joinRemote(ctx, user, roomID, servers, reason, extra)
	}
	defer unlock()
	content := e.memberContent(ctx, user, "join", nil)
	addExtra(content, extra, reason)
	if via, err := e.restrictedAuthoriser(ctx, rs, user); err != nil {
		return "", err
	} else if via != "" {
		content["join_authorised_via_users_server"] = via
	}
	if err := e.sendMember(ctx, rs, user, user, content); err != nil {
		return "", err
	}
	if err := e.db.Write(ctx, func(tx *storage.Tx) error { return tx.Unforget(string(user), rs.nid) }); err != nil {
		return "", err
	}
	return roomID, nil
}

func (e *Engine) joinRemote(ctx context.Context, user id.UserID, roomID id.RoomID, servers []string, reason string, extra map[string]json.RawMessage) error {
	content := e.memberContent(ctx, user, "join", nil)
	addExtra(content, extra, reason)
	return e.remoteMembership(ctx, user, roomID, servers, "join", content)
}

// residentServers are the servers to ask about a room we only partly know: those with
// joined members, and the sender of the user's invite.
func (e *Engine) residentServers(ctx context.Context, rs *roomState, user id.UserID) []string {
	var out []string
	if se, ok := rs.state[storage.StateKey{Type: "m.room.member", StateKey: string(user)}]; ok {
		if ps, err := e.pdus(ctx, rs.version, []id.EventID{se.id}); err == nil && ps[0] != nil {
			out = append(out, ps[0].Sender.Homeserver())
		}
	}
	for s := range rs.joinedServers {
		if s != e.opt.ServerName {
			out = append(out, s)
		}
	}
	if s := roomServer(rs.id); s != "" && s != e.opt.ServerName {
		out = append(out, s)
	}
	return out
}

// roomServer is the server named in a room ID ("" for v12 room IDs).
func roomServer(roomID id.RoomID) string {
	_, server, _ := strings.Cut(string(roomID), ":")
	return server
}

// restrictedAuthoriser picks a local member who can vouch for a restricted join: needed
// when the room's join rule is restricted (or knock_restricted), the user is not invited,
// and the user is joined to one of the rooms the rule allows.
func (e *Engine) restrictedAuthoriser(ctx context.Context, rs *roomState, user id.UserID) (id.UserID, error) {
	jr, err := e.stateEvent(ctx, rs, "m.room.join_rules", "")
	if err != nil || jr == nil {
		return "", err
	}
	rule := gjson.GetBytes(jr.Content, "join_rule").Str
	if (rule != "restricted" && rule != "knock_restricted") || !rs.version.RestrictedJoins() {
		return "", nil
	}
	if m := rs.membership(user); m == "invite" || m == "join" {
		return "", nil
	}
	allowed := false
	for _, a := range gjson.GetBytes(jr.Content, "allow").Array() {
		if a.Get("type").Str != "m.room_membership" {
			continue
		}
		other, err := e.db.RoomByID(ctx, a.Get("room_id").Str)
		if err != nil {
			continue
		}
		if m, _, err := e.db.Membership(ctx, other.NID, string(user)); err == nil && m == "join" {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", fmt.Errorf("%w: this room is restricted to members of other rooms, and you are in none of them", ErrForbidden)
	}
	pl, err := e.powerLevels(ctx, rs)
	if err != nil {
		return "", err
	}
	need := pl.level("invite", 0)
	for u, m := range rs.memberships {
		if m == "join" && e.isLocal(u) && pl.user(u) >= need {
			return u, nil
		}
	}
	return "", fmt.Errorf("%w: no member of this server can authorise your join", ErrForbidden)
}

// Invite invites a user.
func (e *Engine) Invite(ctx context.Context, sender id.UserID, roomID id.RoomID, c MemberChange) error {
	if _, _, err := c.Target.Parse(); err != nil {
		return fmt.Errorf("%w: %q is not a user ID", ErrInvalidParam, c.Target)
	}
	return e.changeMember(ctx, sender, roomID, c, "invite", func(rs *roomState) error {
		if rs.membership(c.Target) == "invite" {
			return errNoChange
		}
		return nil
	})
}

// Leave leaves a room (or rejects an invite, or withdraws a knock).
func (e *Engine) Leave(ctx context.Context, user id.UserID, roomID id.RoomID, reason string) error {
	if done, err := e.leaveStub(ctx, user, roomID, reason); done {
		return err
	}
	return e.changeMember(ctx, user, roomID, MemberChange{Target: user, Reason: reason}, "leave", func(rs *roomState) error {
		switch rs.membership(user) {
		case "leave":
			return errNoChange
		case "", "ban":
			return fmt.Errorf("%w: you are not in this room", ErrForbidden)
		}
		return nil
	})
}

// Kick removes another user from the room.
func (e *Engine) Kick(ctx context.Context, sender id.UserID, roomID id.RoomID, c MemberChange) error {
	return e.changeMember(ctx, sender, roomID, c, "leave", func(rs *roomState) error {
		switch rs.membership(c.Target) {
		case "join", "invite", "knock":
			return nil
		}
		return fmt.Errorf("%w: %s is not in the room", ErrForbidden, c.Target)
	})
}

// Ban bans a user.
func (e *Engine) Ban(ctx context.Context, sender id.UserID, roomID id.RoomID, c MemberChange) error {
	return e.changeMember(ctx, sender, roomID, c, "ban", nil)
}

// Unban lifts a ban.
func (e *Engine) Unban(ctx context.Context, sender id.UserID, roomID id.RoomID, c MemberChange) error {
	return e.changeMember(ctx, sender, roomID, c, "leave", func(rs *roomState) error {
		if rs.membership(c.Target) != "ban" {
			return fmt.Errorf("%w: %s is not banned", ErrForbidden, c.Target)
		}
		return nil
	})
}

// Knock asks to join a room whose join rule allows knocking.
func (e *Engine) Knock(ctx context.Context, user id.UserID, roomID id.RoomID, reason string, via ...string) (id.RoomID, error) {
	if _, err := e.db.RoomByID(ctx, string(roomID)); errors.Is(err, storage.ErrNotFound) {
		if !isRemoteRoom(roomID, e.opt.ServerName) && len(via) == 0 {
			return "", fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
		}
		content := map[string]any{"membership": "knock"}
		if reason != "" {
			content["reason"] = reason
		}
		servers := append(via, roomServer(roomID))
		return roomID, e.remoteMembership(ctx, user, roomID, servers, "knock", content)
	}
	// A room we only know from an earlier knock or invite is knocked on through its servers.
	unlock := e.lock(roomID)
	if rs, err := e.loadRoom(ctx, roomID); err == nil && !e.joinsLocally(rs) {
		servers := append(append([]string{}, via...), e.residentServers(ctx, rs, user)...)
		unlock()
		content := map[string]any{"membership": "knock"}
		if reason != "" {
			content["reason"] = reason
		}
		return roomID, e.remoteMembership(ctx, user, roomID, servers, "knock", content)
	}
	unlock()
	err := e.changeMember(ctx, user, roomID, MemberChange{Target: user, Reason: reason}, "knock", func(rs *roomState) error {
		if !rs.version.Knocks() {
			return fmt.Errorf("%w: room version %s does not support knocking", ErrForbidden, rs.version)
		}
		return nil
	})
	return roomID, err
}

// Forget forgets a room the user has left.
func (e *Engine) Forget(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	room, err := e.db.RoomByID(ctx, string(roomID))
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
	} else if err != nil {
		return err
	}
	m, _, err := e.db.Membership(ctx, room.NID, string(user))
	if err != nil {
		return err
	}
	if m == "join" || m == "invite" || m == "knock" {
		return fmt.Errorf("%w: leave the room before forgetting it", ErrStillMember)
	}
	return e.db.Write(ctx, func(tx *storage.Tx) error { return tx.Forget(string(user), room.NID) })
}

var errNoChange = errors.New("no change")

// changeMember sends a membership event for c.Target.
func (e *Engine) changeMember(ctx context.Context, sender id.UserID, roomID id.RoomID, c MemberChange, membership string, check func(*roomState) error) error {
	if _, _, err := c.Target.Parse(); err != nil || c.Target == "" {
		return fmt.Errorf("%w: %q is not a user ID", ErrInvalidParam, c.Target)
	}
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(rs); errors.Is(err, errNoChange) {
			return nil
		} else if err != nil {
			return err
		}
	}
	content := e.memberContent(ctx, c.Target, membership, nil)
	addExtra(content, c.Extra, c.Reason)
	if membership == "invite" && !e.isLocal(c.Target) {
		return e.inviteRemoteUser(ctx, rs, sender, c.Target, content)
	}
	return e.sendMember(ctx, rs, sender, c.Target, content)
}

// leaveStub rejects an invite (or withdraws a knock) in a room this server is not in,
// through the inviting server. When that server cannot be reached the rejection is kept
// locally, so a dead peer cannot pin an invite in the user's list.
func (e *Engine) leaveStub(ctx context.Context, user id.UserID, roomID id.RoomID, reason string) (bool, error) {
	if _, err := e.db.RoomByID(ctx, string(roomID)); err != nil {
		return false, nil
	}
	unlock := e.lock(roomID)
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil || e.joinsLocally(rs) {
		unlock()
		return false, nil
	}
	m := rs.membership(user)
	servers := e.residentServers(ctx, rs, user)
	version := rs.version
	unlock()
	if m != "invite" && m != "knock" {
		return false, nil
	}
	content := map[string]any{"membership": "leave"}
	if reason != "" {
		content["reason"] = reason
	}
	err = e.remoteMembership(ctx, user, roomID, servers, "leave", content)
	if err == nil || errors.Is(err, ErrForbidden) {
		return true, err
	}
	e.log.Info("rejecting the invite locally; the inviting server is unreachable", "room_id", roomID, "err", err)
	return true, e.localLeaveOutlier(ctx, user, roomID, version, reason)
}

// localLeaveOutlier records a leave signed by this server that no other server sees.
func (e *Engine) localLeaveOutlier(ctx context.Context, user id.UserID, roomID id.RoomID, version id.RoomVersion, reason string) error {
	content := map[string]any{"membership": "leave"}
	if reason != "" {
		content["reason"] = reason
	}
	raw, _ := json.Marshal(content)
	sk := string(user)
	p := &pdu.PDU{RoomID: roomID, Sender: user, Type: "m.room.member", StateKey: &sk, Content: raw,
		OriginServerTS: e.now(), PrevEvents: []id.EventID{}, AuthEvents: []id.EventID{}, Depth: 1}
	p, _, err := e.seal(ctx, version, p, nil)
	if err != nil {
		return err
	}
	return e.placeStubMembership(ctx, roomID, version, p, p.InternalMeta.EventID, nil)
}

func (e *Engine) sendMember(ctx context.Context, rs *roomState, sender, target id.UserID, content map[string]any) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return err
	}
	sk := string(target)
	b, err := e.build(ctx, rs, draft{sender: sender, typ: "m.room.member", stateKey: &sk, content: raw})
	if err != nil {
		return err
	}
	_, err = e.persist(ctx, rs, []*built{b}, nil)
	return err
}

func addExtra(content map[string]any, extra map[string]json.RawMessage, reason string) {
	for k, v := range extra {
		if k != "membership" {
			content[k] = v
		}
	}
	if reason != "" {
		content["reason"] = reason
	}
}

// isRemoteRoom says whether an unknown room's ID names another server (v12 room IDs name none).
func isRemoteRoom(roomID id.RoomID, self string) bool {
	_, server, ok := strings.Cut(string(roomID), ":")
	return ok && server != self
}

// ProfileChanged re-sends a local user's membership in every room they are joined to, with
// their new display name and avatar, as clients expect. Rooms where the user may no longer
// send are skipped.
func (e *Engine) ProfileChanged(ctx context.Context, user id.UserID) {
	rooms, err := e.db.UserRooms(ctx, string(user), "join")
	if err != nil {
		e.log.Warn("profile change: listing rooms", "user", user, "err", err)
		return
	}
	for _, r := range rooms {
		roomID := id.RoomID(r.RoomID)
		unlock := e.lock(roomID)
		rs, err := e.loadRoom(ctx, roomID)
		if err == nil && rs.membership(user) == "join" {
			content := e.memberContent(ctx, user, "join", nil)
			if ev, err := e.stateEvent(ctx, rs, "m.room.member", string(user)); err == nil && ev != nil {
				// Keep whatever else the membership carried, but not a join's one-off authoriser.
				var old map[string]any
				if json.Unmarshal(ev.Content, &old) == nil {
					for k, v := range old {
						if _, set := content[k]; !set && k != "displayname" && k != "avatar_url" && k != "join_authorised_via_users_server" && k != "reason" {
							content[k] = v
						}
					}
				}
			}
			err = e.sendMember(ctx, rs, user, user, content)
		}
		unlock()
		if err != nil {
			e.log.Info("profile change not sent to a room", "user", user, "room_id", roomID, "err", err)
		}
	}
}
