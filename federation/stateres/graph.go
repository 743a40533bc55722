package stateres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// node is one event of the auth graph, known or not.
type node struct {
	id id.EventID
	// ev is nil when the event is unknown to Events.
	ev *pdu.PDU
	// auth holds the distinct auth events, as node indices.
	auth []int32
	// missed is the call in which Events did not know the event. Unknown events are asked
	// for again in the next call: they may have arrived since.
	missed uint32
	// mark is the generation of the last walk that reached the node.
	mark uint32
	// call is the call that flags, reach and local belong to; see graph.at.
	call uint32
	// flags say what the current resolution knows about the node.
	flags uint16
	// reach counts the states whose auth chain holds the node (auth difference).
	reach int32
	// local is the node's index in the list a sort or subgraph search is working on.
	local int32
}

// Node flags, set during one resolution.
const (
	// fConflicted: the event is in the conflicted state set.
	fConflicted uint16 = 1 << iota
	// fUnconflicted: the event is in the auth chain of the unconflicted state, or is in it.
	fUnconflicted
	// fForward: the event is reachable from the conflicted state set (conflicted subgraph).
	fForward
	// fSubgraph: the event is on a path between conflicted events.
	fSubgraph
	// fFull: the event is in the full conflicted set.
	fFull
	// fPower: the event was sorted in step 1.
	fPower
)

// graph is the part of a room's auth DAG that resolutions have touched. Each event is loaded
// once and its auth_events are turned into node indices once; walks mark nodes with a
// generation number, so no walk needs a set of its own and none recurses. A graph may live
// for one call (Resolver.Resolve) or many (Room).
type graph struct {
	src     Events
	version id.RoomVersion
	room    id.RoomID
	index   map[id.EventID]int32
	nodes   []node
	// arena backs the nodes' auth slices, so loading allocates per batch, not per event.
	arena []int32
	// gen numbers walks, call numbers calls.
	gen, call uint32
}

func newGraph(src Events, version id.RoomVersion, room id.RoomID, sizeHint int) *graph {
	return &graph{src: src, version: version, room: room, index: make(map[id.EventID]int32, sizeHint)}
}

// begin starts a call: per-call node fields from earlier calls no longer count.
func (g *graph) begin() {
	g.call++
	if g.call == 0 {
		for i := range g.nodes {
			g.nodes[i].call, g.nodes[i].missed = 0, 0
		}
		g.call = 1
	}
}

// at returns a node for reading or changing its per-call fields, clearing them first if they
// are left over from an earlier call.
func (g *graph) at(n int32) *node {
	nd := &g.nodes[n]
	if nd.call != g.call {
		nd.call, nd.flags, nd.reach, nd.local = g.call, 0, 0, 0
	}
	return nd
}

// needsLoad says whether Events has yet to be asked for the event in this call.
func (g *graph) needsLoad(n int32) bool {
	nd := &g.nodes[n]
	return nd.ev == nil && nd.missed != g.call
}

// intern returns the node index of an event ID, adding the node if it is new.
func (g *graph) intern(e id.EventID) int32 {
	if n, ok := g.index[e]; ok {
		return n
	}
	n := int32(len(g.nodes))
	g.nodes = append(g.nodes, node{id: e})
	g.index[e] = n
	return n
}

// ev returns the event of a node, or nil when it is unknown.
func (g *graph) ev(n int32) *pdu.PDU {
	return g.nodes[n].ev
}

// load asks Events, in one batch, for those of the nodes that were never asked for.
func (g *graph) load(ctx context.Context, ns []int32) error {
	var ids []id.EventID
	var which []int32
	for _, n := range ns {
		if g.needsLoad(n) {
			g.nodes[n].missed = g.call
			ids = append(ids, g.nodes[n].id)
			which = append(which, n)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	evs, err := g.src.Get(ctx, ids)
	if err != nil {
		return fmt.Errorf("stateres: load events: %w", err)
	}
	if len(evs) != len(ids) {
		return fmt.Errorf("%w: asked for %d, got %d", ErrBadEvents, len(ids), len(evs))
	}
	for i, n := range which {
		ev := evs[i]
		if ev == nil {
			continue
		}
		if !g.inRoom(ids[i], ev) {
			return fmt.Errorf("%w: %s is in %s, not %s", ErrWrongRoom, ids[i], ev.RoomID, g.room)
		}
		start := len(g.arena)
		for _, a := range ev.AuthEvents {
			an := g.intern(a)
			if !slices.Contains(g.arena[start:], an) {
				g.arena = append(g.arena, an)
			}
		}
		g.nodes[n].ev = ev
		g.nodes[n].auth = g.arena[start:len(g.arena):len(g.arena)]
	}
	return nil
}

// inRoom says whether ev, loaded as id, belongs to the room being resolved. A room version
// 12 create event has no room_id: the room ID is its event ID with the sigil "!".
func (g *graph) inRoom(e id.EventID, ev *pdu.PDU) bool {
	if g.room == "" || ev.RoomID == g.room {
		return true
	}
	return ev.RoomID == "" && g.version.RoomIDIsCreateEventID() && strings.HasPrefix(string(e), "$") &&
		strings.HasPrefix(string(g.room), "!") && string(e)[1:] == string(g.room)[1:]
}

// walk visits every node reachable from starts through auth_events, starts included, each
// once, breadth first, loading each level in one batch. When visit returns false the walk
// does not go on through that node (it may still reach the node's auth events another way).
func (g *graph) walk(ctx context.Context, starts []int32, visit func(n int32) bool) error {
	g.gen++
	if g.gen == 0 {
		for i := range g.nodes {
			g.nodes[i].mark = 0
		}
		g.gen = 1
	}
	gen := g.gen
	frontier := make([]int32, 0, len(starts))
	for _, s := range starts {
		if g.nodes[s].mark != gen {
			g.nodes[s].mark = gen
			frontier = append(frontier, s)
		}
	}
	var next []int32
	for len(frontier) > 0 {
		if err := g.load(ctx, frontier); err != nil {
			return err
		}
		next = next[:0]
		for _, n := range frontier {
			if !visit(n) {
				continue
			}
			for _, a := range g.nodes[n].auth {
				if g.nodes[a].mark != gen {
					g.nodes[a].mark = gen
					next = append(next, a)
				}
			}
		}
		frontier, next = next, frontier
	}
	return nil
}

// authOf returns the first auth event of n with the given type and state key, or -1.
// Rejected auth events are skipped when notRejected is set.
func (g *graph) authOf(n int32, key StateKey, notRejected bool) int32 {
	for _, a := range g.nodes[n].auth {
		ev := g.nodes[a].ev
		if ev == nil || ev.StateKey == nil || ev.Type != key.Type || *ev.StateKey != key.StateKey {
			continue
		}
		if notRejected && ev.InternalMeta.Rejected {
			continue
		}
		return a
	}
	return -1
}

// AuthChain returns the auth chain of the given events: every event reachable from them
// through auth_events, not counting the given events themselves unless one is in the auth
// chain of another. Events that Events does not know, given ones included, cannot be
// followed; their IDs are returned in missing. Both lists are sorted by event ID. Walking is
// iterative, so any depth is fine.
func AuthChain(ctx context.Context, ev Events, ids []id.EventID) (chain, missing []id.EventID, err error) {
	g := newGraph(ev, "", "", 64)
	g.begin()
	return g.authChain(ctx, ids)
}

func (g *graph) authChain(ctx context.Context, ids []id.EventID) (chain, missing []id.EventID, err error) {
	starts := make([]int32, len(ids))
	for i, x := range ids {
		starts[i] = g.intern(x)
	}
	if err := g.load(ctx, starts); err != nil {
		return nil, nil, err
	}
	var next []int32
	for _, s := range starts {
		if g.nodes[s].ev == nil {
			missing = append(missing, g.nodes[s].id)
		}
		next = append(next, g.nodes[s].auth...)
	}
	err = g.walk(ctx, next, func(n int32) bool {
		if g.nodes[n].ev == nil {
			missing = append(missing, g.nodes[n].id)
		} else {
			chain = append(chain, g.nodes[n].id)
		}
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(chain)
	slices.Sort(missing)
	return chain, slices.Compact(missing), nil
}
