package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// SpaceHierarchy is a space and its children as GET /_matrix/federation/v1/hierarchy/{roomId}
// answers: the space's summary with its m.space.child events, the summaries of the children
// the asking server may see (each with its own m.space.child events when it is a space), and
// the children it may not.
// See https://spec.matrix.org/v1.19/server-server-api/#spaces
type SpaceHierarchy struct {
	Room                 *HierarchyRoom   `json:"room"`
	Children             []*HierarchyRoom `json:"children"`
	InaccessibleChildren []id.RoomID      `json:"inaccessible_children"`
}

// Bounds on the federation requests of one hierarchy walk, so that a space full of dead
// servers costs a client a bounded wait.
const (
	// maxHierarchyRequests is how many /hierarchy requests one walk may make.
	maxHierarchyRequests = 10
	// hierarchyRequestTimeout bounds one request, hierarchyRemoteBudget all of a walk's.
	hierarchyRequestTimeout = 10 * time.Second
	hierarchyRemoteBudget   = 20 * time.Second
	// maxHierarchyVia is how many servers of a child's via list are tried.
	maxHierarchyVia = 3
	// hierarchyCacheTTL is how long another server's answer is reused, as the spec suggests:
	// the pages of one walk ask once.
	hierarchyCacheTTL  = time.Minute
	hierarchyCacheSize = 1024
)

// ServerHierarchy answers another server's GET /hierarchy/{roomId}: the room, which must be
// one this server is joined to and origin may see (ErrNotFound otherwise, as the spec
// answers), and its children as origin may see them (see serverMayPreview). Children this
// server does not hold are left out: origin asks their servers itself.
func (e *Engine) ServerHierarchy(ctx context.Context, origin string, roomID id.RoomID, suggestedOnly bool) (*SpaceHierarchy, error) {
	notFound := fmt.Errorf("%w: room %s is unknown here or %s may not see it", ErrNotFound, roomID, origin)
	ri, err := e.roomInfoByID(ctx, roomID)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	if ok, err := e.serverMayPreview(ctx, ri, origin); err != nil {
		return nil, err
	} else if !ok {
		return nil, notFound
	}
	root, err := e.hierarchyRoom(ctx, ri, suggestedOnly)
	if err != nil {
		return nil, err
	}
	resp := &SpaceHierarchy{Room: root, Children: []*HierarchyRoom{}, InaccessibleChildren: []id.RoomID{}}
	for _, c := range root.ChildrenState {
		childID := id.RoomID(c.StateKey)
		cri, err := e.roomInfoByID(ctx, childID)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		ok, err := e.serverMayPreview(ctx, cri, origin)
		if err != nil {
			return nil, err
		}
		if !ok || !e.ServerAllowed(ctx, childID, origin) {
			resp.InaccessibleChildren = append(resp.InaccessibleChildren, childID)
			continue
		}
		hr, err := e.hierarchyRoom(ctx, cri, suggestedOnly)
		if err != nil {
			return nil, err
		}
		resp.Children = append(resp.Children, hr)
	}
	return resp, nil
}

// serverMayPreview decides whether another server may see a room's summary, as Synapse does:
// this server must be joined to the room (else its view of it is not current); then the room
// is public, knockable or world readable, or origin has users joined or invited there, or
// joined to one of the rooms a restricted room allows. The asking server filters further
// for its user.
func (e *Engine) serverMayPreview(ctx context.Context, ri *roomInfo, origin string) (bool, error) {
	joined, err := e.db.JoinedServers(ctx, ri.nid)
	if err != nil {
		return false, err
	}
	s := &ri.summary
	switch {
	case !slices.Contains(joined, e.opt.ServerName):
		return false, nil
	case s.JoinRule == "public", s.WorldReadable,
		s.JoinRule == "knock" && ri.version.Knocks(),
		s.JoinRule == "knock_restricted" && ri.version.KnockRestricted(),
		slices.Contains(joined, origin):
		return true, nil
	}
	invited, err := e.db.Members(ctx, ri.nid, "invite")
	if err != nil {
		return false, err
	}
	for _, m := range invited {
		if id.UserID(m.UserID).Homeserver() == origin {
			return true, nil
		}
	}
	for _, other := range ri.allow {
		r, err := e.db.RoomByID(ctx, string(other))
		if err != nil {
			continue // unknown here: nothing to say about origin's users in it
		}
		servers, err := e.db.JoinedServers(ctx, r.NID)
		if err != nil {
			return false, err
		}
		if slices.Contains(servers, origin) {
			return true, nil
		}
	}
	return false, nil
}

// remotePreview decides whether user may see a room another server described, as Synapse
// does: that server only answers with rooms this server may see, so what is left is the
// user's part: the room is public, knockable or world readable (a room without a join rule
// counts as public), or user is joined here to one of the rooms a restricted room allows.
func (e *Engine) remotePreview(ctx context.Context, s *RoomSummary, user id.UserID) (bool, error) {
	switch {
	case s.JoinRule == "" || s.JoinRule == "public" || s.JoinRule == "knock" || s.JoinRule == "knock_restricted" || s.WorldReadable:
		return true, nil
	case user == "":
		return false, nil
	}
	for _, other := range s.AllowedRoomIDs {
		m, err := e.Membership(ctx, user, other)
		if err != nil {
			return false, err
		}
		if m == "join" {
			return true, nil
		}
	}
	return false, nil
}

// hierarchyWalk is one client's walk of a space tree: what other servers said about rooms
// this server does not hold, and how much of the walk's federation budget is left.
type hierarchyWalk struct {
	e         *Engine
	user      id.UserID
	suggested bool
	remote    DirectoryRemote
	// learnt are the rooms other servers described, cleaned (see cleanRemoteRoom).
	learnt map[id.RoomID]*HierarchyRoom
	// inaccessible are rooms a server said this server may not see; asked are rooms already
	// asked about, answered or not.
	inaccessible, asked map[id.RoomID]bool
	requests            int
	// rctx bounds the walk's federation requests; nil until the first.
	rctx   context.Context
	cancel context.CancelFunc
}

func (e *Engine) newHierarchyWalk(user id.UserID, suggested bool) *hierarchyWalk {
	return &hierarchyWalk{e: e, user: user, suggested: suggested, remote: e.directoryRemote(),
		learnt: map[id.RoomID]*HierarchyRoom{}, inaccessible: map[id.RoomID]bool{}, asked: map[id.RoomID]bool{}}
}

func (w *hierarchyWalk) close() {
	if w.cancel != nil {
		w.cancel()
	}
}

// room is a room as the user sees it in the hierarchy: from this server when it holds the
// room, else from another server (via first, then the server in the room ID). It is nil
// when the user may not see it or no server described it.
func (w *hierarchyWalk) room(ctx context.Context, roomID id.RoomID, via []string) (*HierarchyRoom, error) {
	hr, err := w.e.localHierarchyRoom(ctx, w.user, roomID, w.suggested)
	if !errors.Is(err, ErrNotFound) {
		return hr, err
	}
	if hr = w.remoteRoom(ctx, roomID, via); hr == nil {
		return nil, nil
	}
	if ok, err := w.e.remotePreview(ctx, &hr.RoomSummary, w.user); err != nil || !ok {
		return nil, err
	}
	return hr, nil
}

// remoteRoom asks other servers about roomID, within the walk's budget, and remembers the
// children they described too, so that walking into them needs no further request.
func (w *hierarchyWalk) remoteRoom(ctx context.Context, roomID id.RoomID, via []string) *HierarchyRoom {
	if hr := w.learnt[roomID]; hr != nil {
		return hr
	}
	if w.remote == nil || w.inaccessible[roomID] || w.asked[roomID] {
		return nil
	}
	w.asked[roomID] = true
	for _, server := range hierarchyServers(roomID, via, w.e.opt.ServerName) {
		resp, err := w.fetch(ctx, server, roomID)
		if err != nil {
			w.e.log.Info("space hierarchy: another server did not describe a room", "server", server, "room_id", roomID, "err", err)
			if w.requests >= maxHierarchyRequests || (w.rctx != nil && w.rctx.Err() != nil) {
				return nil
			}
			continue
		}
		for _, c := range resp.Children {
			// A child space sent without its children is asked about on its own.
			if c == nil || !strings.HasPrefix(string(c.RoomID), "!") || (c.RoomType == "m.space" && c.ChildrenState == nil) {
				continue
			}
			if w.learnt[c.RoomID] == nil {
				w.learnt[c.RoomID] = cleanRemoteRoom(c, w.suggested)
			}
		}
		for _, r := range resp.InaccessibleChildren {
			w.inaccessible[r] = true
		}
		w.learnt[roomID] = cleanRemoteRoom(resp.Room, w.suggested)
		return w.learnt[roomID]
	}
	return nil
}

// fetch asks server about roomID, or reuses a recent answer.
func (w *hierarchyWalk) fetch(ctx context.Context, server string, roomID id.RoomID) (*SpaceHierarchy, error) {
	now := w.e.opt.Now()
	if resp := w.e.hierarchies.get(roomID, w.suggested, now); resp != nil {
		return resp, nil
	}
	if w.rctx == nil {
		w.rctx, w.cancel = context.WithTimeout(ctx, hierarchyRemoteBudget)
	}
	if w.requests >= maxHierarchyRequests {
		return nil, errors.New("the walk asked other servers too often")
	}
	if err := w.rctx.Err(); err != nil {
		return nil, fmt.Errorf("the walk's time for other servers is up: %w", err)
	}
	w.requests++
	rctx, cancel := context.WithTimeout(w.rctx, hierarchyRequestTimeout)
	defer cancel()
	resp, err := w.remote.Hierarchy(rctx, server, roomID, w.suggested)
	if err != nil {
		return nil, err
	}
	if resp == nil || resp.Room == nil || resp.Room.RoomID != roomID {
		return nil, fmt.Errorf("%s answered for another room", server)
	}
	w.e.hierarchies.put(roomID, w.suggested, resp, now)
	return resp, nil
}

// hierarchyServers are the servers to ask about a room: its via list in order, without this
// server and at most maxHierarchyVia of them, then the server named in the room ID (room
// versions before 12 have one).
func hierarchyServers(roomID id.RoomID, via []string, self string) []string {
	var out []string
	for _, s := range via {
		if s != "" && s != self && !slices.Contains(out, s) && len(out) < maxHierarchyVia {
			out = append(out, s)
		}
	}
	if _, s, ok := strings.Cut(string(roomID), ":"); ok && s != self && !slices.Contains(out, s) {
		out = append(out, s)
	}
	return out
}

// cleanRemoteRoom copies a room another server described, keeping only valid m.space.child
// events (suggested ones when asked), in the spec's order, and only for spaces.
func cleanRemoteRoom(hr *HierarchyRoom, suggestedOnly bool) *HierarchyRoom {
	out := &HierarchyRoom{RoomSummary: hr.RoomSummary, ChildrenState: []*SpaceChild{}}
	out.Membership = ""
	if out.RoomType == "m.space" {
		for _, c := range hr.ChildrenState {
			if validChild(c, suggestedOnly) {
				out.ChildrenState = append(out.ChildrenState, c)
			}
		}
		orderChildren(out.ChildrenState)
	}
	return out
}

// hierarchyCache keeps other servers' /hierarchy answers for hierarchyCacheTTL. Its zero
// value is ready.
type hierarchyCache struct {
	mu      sync.Mutex
	entries map[hierarchyKey]hierarchyEntry
}

type hierarchyKey struct {
	room      id.RoomID
	suggested bool
}

type hierarchyEntry struct {
	resp *SpaceHierarchy
	at   time.Time
}

func (c *hierarchyCache) get(room id.RoomID, suggested bool, now time.Time) *SpaceHierarchy {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hierarchyKey{room, suggested}]
	if !ok || now.Sub(e.at) > hierarchyCacheTTL || now.Before(e.at) {
		return nil
	}
	return e.resp
}

func (c *hierarchyCache) put(room id.RoomID, suggested bool, resp *SpaceHierarchy, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[hierarchyKey]hierarchyEntry{}
	}
	if len(c.entries) >= hierarchyCacheSize {
		for k, e := range c.entries {
			if now.Sub(e.at) > hierarchyCacheTTL {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // still full: evict an arbitrary answer
			if len(c.entries) < hierarchyCacheSize {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[hierarchyKey{room, suggested}] = hierarchyEntry{resp, now}
}
