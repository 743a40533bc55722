package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// MembershipRemote is the joining side of federation membership: make_* and send_*.
type MembershipRemote interface {
	MakeMembership(ctx context.Context, server, membership string, roomID id.RoomID, user id.UserID, versions []string) (id.RoomVersion, json.RawMessage, error)
	SendMembership(ctx context.Context, server, membership string, roomID id.RoomID, eventID id.EventID, event json.RawMessage) (*SendJoinResult, error)
}

// versionStrings are the room versions this server can join, for make_join's ver.
func versionStrings() []string {
	out := make([]string, 0, len(KnownVersions))
	for _, v := range KnownVersions {
		out = append(out, string(v))
	}
	return out
}

// joinsLocally says whether a local user can join a room without asking another server:
// this server has joined members there, or no other server has.
func (e *Engine) joinsLocally(rs *roomState) bool {
	if rs.joinedServers[e.opt.ServerName] > 0 {
		return true
	}
	if _, ok := rs.state[storage.StateKey{Type: "m.room.create"}]; !ok {
		return false // we only hold an invite or a knock
	}
	for s := range rs.joinedServers {
		if s != e.opt.ServerName {
			return false
		}
	}
	return true
}

// remoteMembership runs make_* and send_* against the given servers in turn and places the
// result: a join brings the room's state home; a leave or knock is stored as an outlier
// membership.
func (e *Engine) remoteMembership(ctx context.Context, user id.UserID, roomID id.RoomID, servers []string, membership string, content map[string]any) error {
	e.mu.RLock()
	mr, _ := e.remote.(MembershipRemote)
	e.mu.RUnlock()
	if mr == nil {
		return fmt.Errorf("%w: this server cannot reach other servers", ErrRemote)
	}
	var errs []error
	for _, server := range dedupe(servers) {
		if server == e.opt.ServerName || server == "" {
			continue
		}
		err := e.tryRemoteMembership(ctx, mr, server, user, roomID, membership, content)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrForbidden) {
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: no server to ask about %s; give one with server_name or via", ErrNotFound, roomID)
	}
	return fmt.Errorf("%w: %v", ErrRemote, errors.Join(errs...))
}

func (e *Engine) tryRemoteMembership(ctx context.Context, mr MembershipRemote, server string, user id.UserID, roomID id.RoomID, membership string, content map[string]any) error {
	version, tmpl, err := mr.MakeMembership(ctx, server, membership, roomID, user, versionStrings())
	if err != nil {
		return err
	}
	if !slices.Contains(KnownVersions, version) {
		return fmt.Errorf("%w: room version %q", ErrUnsupportedVersion, version)
	}
	p, refs, err := decodeTemplate(version, tmpl)
	if err != nil {
		return fmt.Errorf("%w: make_%s template: %v", ErrBadPDU, membership, err)
	}
	tc := gjson.ParseBytes(p.Content)
	if p.Type != "m.room.member" || p.StateKey == nil || *p.StateKey != string(user) || p.Sender != user ||
		p.RoomID != roomID || tc.Get("membership").Str != membership {
		return fmt.Errorf("%w: make_%s returned a template for something else", ErrBadPDU, membership)
	}
	if via := tc.Get("join_authorised_via_users_server"); via.Exists() {
		content["join_authorised_via_users_server"] = via.Str
	}
	raw, _ := json.Marshal(content)
	p.Content = raw
	p.Hashes, p.Signatures, p.Unsigned = nil, nil, nil
	p.OriginServerTS = e.now()
	p.Unknown = nil
	p.DeprecatedOrigin = nil
	p, evJSON, err := e.seal(ctx, version, p, refs)
	if err != nil {
		return err
	}
	evID := p.InternalMeta.EventID
	res, err := mr.SendMembership(ctx, server, membership, roomID, evID, evJSON)
	if err != nil {
		return err
	}
	if membership == "join" && len(res.Event) > 0 {
		evJSON = res.Event // countersigned by the authorising server
	}
	if membership != "join" {
		return e.placeOwnOutlier(ctx, roomID, version, evJSON)
	}
	return e.placeJoin(ctx, server, roomID, version, evJSON, res)
}

// placeJoin stores a room's state and auth chain from send_join, then the join on top.
func (e *Engine) placeJoin(ctx context.Context, server string, roomID id.RoomID, version id.RoomVersion, joinJSON json.RawMessage, res *SendJoinResult) error {
	unlock := e.lock(roomID)
	defer unlock()
	// Make sure the room exists in storage.
	if err := e.ensureRoomRow(ctx, roomID, version); err != nil {
		return err
	}
	e.cache.drop(roomID)
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return err
	}
	// Parse and check everything, then authorise in depth order against what came before.
	all := map[id.EventID]*pdu.PDU{}
	inState := map[id.EventID]bool{}
	var order []id.EventID
	for i, raw := range append(append([]json.RawMessage{}, res.AuthChain...), res.State...) {
		p, evID, err := e.parseRemote(ctx, version, raw)
		if err != nil {
			e.log.Info("send_join event dropped", "server", server, "event_id", evID, "err", err)
			continue
		}
		if p.RoomID != roomID && !(p.Type == "m.room.create" && version.RoomIDIsCreateEventID()) {
			continue
		}
		if _, dup := all[evID]; !dup {
			order = append(order, evID)
		}
		all[evID] = p
		if i >= len(res.AuthChain) {
			inState[evID] = true
		}
	}
	slices.SortStableFunc(order, func(a, b id.EventID) int { return int(all[a].Depth - all[b].Depth) })
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, len(ids))
		var rest []id.EventID
		for i, x := range ids {
			if p := all[x]; p != nil {
				out[i] = p
			} else {
				rest = append(rest, x)
			}
		}
		if len(rest) > 0 {
			stored, err := e.pdus(ctx, version, rest)
			if err != nil {
				return nil, err
			}
			j := 0
			for i := range out {
				if out[i] == nil {
					out[i] = stored[j]
					j++
				}
			}
		}
		return out, nil
	}
	rejected := map[id.EventID]bool{}
	for _, x := range order {
		if err := e.authorize(version, all[x], nil, getEvents); err != nil {
			rejected[x] = true
			all[x].InternalMeta.Rejected = true
		}
	}
	before := StateMap{}
	for _, x := range order {
		p := all[x]
		if p.StateKey != nil && !rejected[x] && inState[x] {
			before[storage.StateKey{Type: p.Type, StateKey: *p.StateKey}] = x
		}
	}
	join, joinID, err := e.parseRemote(ctx, version, joinJSON)
	if err != nil {
		return err
	}
	if _, ok := before[storage.StateKey{Type: "m.room.create"}]; !ok {
		return fmt.Errorf("%w: %s's send_join state has no create event", ErrBadPDU, server)
	}
	// Store the state and auth chain as outliers, in one write.
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		for _, x := range order {
			ne := e.newEvent(rs, all[x], x)
			if _, err := tx.InsertEvent(&storage.InboundEvent{NewEvent: *ne, Outlier: true, Rejected: rejected[x]}); err != nil && !errors.Is(err, storage.ErrExists) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, x := range order {
		e.events.put(x, all[x])
	}
	getAll := func(ids []id.EventID) ([]*pdu.PDU, error) { return e.pdus(ctx, version, ids) }
	authEvents, err := e.selectAuth(ctx, rs, join, before)
	if err != nil {
		return err
	}
	if err := e.authorize(version, join, authEvents, getAll); err != nil {
		return fmt.Errorf("%w: our join is not allowed by the room's state: %s", ErrForbidden, authMessage(err))
	}
	rs.extremities = nil
	return e.persistRemote(ctx, rs, join, joinID, before, StateMap{}, false)
}

// placeOwnOutlier stores our own leave or knock that went through another server.
func (e *Engine) placeOwnOutlier(ctx context.Context, roomID id.RoomID, version id.RoomVersion, raw json.RawMessage) error {
	if err := e.ensureRoomRow(ctx, roomID, version); err != nil {
		return err
	}
	p, evID, err := e.parseRemote(ctx, version, raw)
	if err != nil {
		return err
	}
	return e.placeStubMembership(ctx, roomID, version, p, evID, nil)
}

// AliasRemote resolves aliases on other servers.
type AliasRemote interface {
	QueryAlias(ctx context.Context, server, alias string) (id.RoomID, []string, error)
}

// LookupAlias resolves an alias, local or on another server, with the servers to join
// through: for local aliases, the servers with joined members, this one first.
func (e *Engine) LookupAlias(ctx context.Context, alias string) (id.RoomID, []string, error) {
	if !validAlias(alias) {
		return "", nil, fmt.Errorf("%w: %q is not a room alias", ErrInvalidParam, alias)
	}
	_, server, _ := cutAlias(alias)
	if server != e.opt.ServerName {
		e.mu.RLock()
		ar, _ := e.remote.(AliasRemote)
		e.mu.RUnlock()
		if ar == nil {
			return "", nil, fmt.Errorf("%w: cannot ask %s about %s", ErrRemote, server, alias)
		}
		roomID, servers, err := ar.QueryAlias(ctx, server, alias)
		if err != nil {
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden) {
				return "", nil, err
			}
			return "", nil, fmt.Errorf("%w: %s did not answer for %s: %v", ErrRemote, server, alias, err)
		}
		return roomID, append(servers, server), nil
	}
	return e.localAliasServers(ctx, alias)
}
