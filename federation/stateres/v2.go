package stateres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// v2res is one run of state resolution v2 or v2.1.
type v2res struct {
	r   *Resolver
	ctx context.Context
	g   *graph
	// name is "v2" or "v2.1", for errors.
	name string
	// createByRoomID is set where the room ID names the create event, which auth_events
	// then leave out (room version 12).
	createByRoomID bool
	// privileged is set where room creators have infinite power (room version 12).
	privileged bool
	// create is the room's create event where createByRoomID is set, nil when unknown.
	create *pdu.PDU
	// createID is create's event ID: the room ID with the sigil "$".
	createID id.EventID
	// createList is what getEvents answers when eventauth asks for the create event.
	createList []*pdu.PDU
	// loadErr is the first error Events gave while eventauth asked for an event.
	loadErr error
}

// resolveV2 runs state resolution v2, or v2.1 when v21 is set, as the room version
// specifications lay it out: split the states, find the full conflicted set, sort and replay
// the power events, then the rest by mainline, then put the unconflicted state back on top.
func (r *Resolver) resolveV2(ctx context.Context, g *graph, states []StateMap, v21 bool) (StateMap, error) {
	s := &v2res{r: r, ctx: ctx, g: g, name: "v2",
		createByRoomID: g.version.RoomIDIsCreateEventID(), privileged: g.version.PrivilegedRoomCreators()}
	if v21 {
		s.name = "v2.1"
	}
	unconflicted, conflictedKeys := split(states)
	if len(conflictedKeys) == 0 {
		return unconflicted, nil
	}
	full, err := s.fullConflictedSet(states, unconflicted, conflictedKeys, v21)
	if err != nil {
		return nil, err
	}

	powerOrder, err := s.powerOrder(full)
	if err != nil {
		return nil, s.errorf("step 1 (reverse topological power ordering)", err)
	}
	partial := &partialState{g: g, over: make(map[StateKey]int32)}
	if !v21 {
		partial.base = unconflicted
	}
	if err := s.iterate(partial, powerOrder); err != nil {
		return nil, s.errorf("step 2 (iterative auth checks)", err)
	}
	var rest []int32
	for _, n := range full {
		if g.at(n).flags&fPower == 0 {
			rest = append(rest, n)
		}
	}
	if err := s.mainlineOrder(rest, partial); err != nil {
		return nil, s.errorf("step 3 (mainline ordering)", err)
	}
	if err := s.iterate(partial, rest); err != nil {
		return nil, s.errorf("step 4 (iterative auth checks)", err)
	}

	// Step 5: the unconflicted state replaces whatever the checks put at its keys. The
	// unconflicted map is ours and no longer needed as the base, so it becomes the result.
	out := unconflicted
	for k, n := range partial.over {
		if _, ok := out[k]; !ok {
			out[k] = g.nodes[n].id
		}
	}
	return out, nil
}

// fullConflictedSet returns the full conflicted set: the conflicted state set, the auth
// difference and, for v2.1, the conflicted state subgraph, as the known state events among
// them.
func (s *v2res) fullConflictedSet(states []StateMap, unconflicted StateMap, conflictedKeys []StateKey, v21 bool) ([]int32, error) {
	g := s.g
	if s.createByRoomID {
		if err := s.loadCreate(); err != nil {
			return nil, s.errorf("load create event", err)
		}
	}
	// The conflicted state set, and each state's share of it.
	perState := make([][]int32, len(states))
	var conflicted []int32
	for i, st := range states {
		for _, k := range conflictedKeys {
			e, ok := st[k]
			if !ok {
				continue
			}
			n := g.intern(e)
			perState[i] = append(perState[i], n)
			if g.at(n).flags&fConflicted == 0 {
				g.at(n).flags |= fConflicted
				conflicted = append(conflicted, n)
			}
		}
	}
	diff, err := s.authDifference(unconflicted, perState)
	if err != nil {
		return nil, s.errorf("auth difference", err)
	}
	var subgraph []int32
	if v21 {
		if subgraph, err = s.conflictedSubgraph(conflicted); err != nil {
			return nil, s.errorf("conflicted state subgraph", err)
		}
	}
	return s.union(conflicted, diff, subgraph), nil
}

func (s *v2res) errorf(step string, err error) error {
	return fmt.Errorf("stateres: %s %s: %w", s.name, step, err)
}

// split divides the states into the unconflicted state map, the keys present in every state
// with the same event, and the conflicted keys, all the others. Every unconflicted key is in
// the smallest state, so only its keys are checked against the others.
func split(states []StateMap) (StateMap, []StateKey) {
	ref := 0
	for i, st := range states {
		if len(st) < len(states[ref]) {
			ref = i
		}
	}
	unconflicted := make(StateMap, len(states[ref]))
	var conflicted []StateKey
	for k, e := range states[ref] {
		same := true
		for i, st := range states {
			if i != ref {
				if o, ok := st[k]; !ok || o != e {
					same = false
					break
				}
			}
		}
		if same {
			unconflicted[k] = e
		} else {
			conflicted = append(conflicted, k)
		}
	}
	// Keys missing from the smallest state are conflicted too.
	var seen map[StateKey]bool
	if len(states) > 2 {
		seen = map[StateKey]bool{}
	}
	for i, st := range states {
		if i == ref {
			continue
		}
		for k := range st {
			if _, ok := states[ref][k]; ok {
				continue
			}
			if seen != nil {
				if seen[k] {
					continue
				}
				seen[k] = true
			}
			conflicted = append(conflicted, k)
		}
	}
	return unconflicted, conflicted
}

// loadCreate loads the room version 12 create event, named by the room ID.
func (s *v2res) loadCreate() error {
	room := string(s.g.room)
	if !strings.HasPrefix(room, "!") {
		return nil
	}
	s.createID = id.EventID("$" + room[1:])
	n := s.g.intern(s.createID)
	if err := s.g.load(s.ctx, []int32{n}); err != nil {
		return err
	}
	s.create = s.g.ev(n)
	if s.create != nil {
		s.createList = []*pdu.PDU{s.create}
	}
	return nil
}

// authDifference returns the events in the auth chains of some states but not all. A state's
// auth chain here holds the state's own events too, as Synapse's does. The unconflicted
// state's events and their auth chains are in every state's chain, so one walk marks them and
// the walk from each state's conflicted events stops where it meets them.
func (s *v2res) authDifference(unconflicted StateMap, perState [][]int32) ([]int32, error) {
	g := s.g
	starts := make([]int32, 0, len(unconflicted))
	for _, e := range unconflicted {
		starts = append(starts, g.intern(e))
	}
	err := g.walk(s.ctx, starts, func(n int32) bool {
		g.at(n).flags |= fUnconflicted
		return true
	})
	if err != nil {
		return nil, err
	}
	var touched []int32
	for _, ps := range perState {
		err := g.walk(s.ctx, ps, func(n int32) bool {
			nd := g.at(n)
			if nd.flags&fUnconflicted != 0 {
				return false
			}
			if nd.reach == 0 {
				touched = append(touched, n)
			}
			nd.reach++
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	diff := touched[:0]
	for _, n := range touched {
		if int(g.at(n).reach) < len(perState) {
			diff = append(diff, n)
		}
	}
	return diff, nil
}

// conflictedSubgraph returns the events on auth_events paths from one conflicted event to
// another, the endpoints included (room version 12). These are the events reachable from the
// conflicted set that can themselves reach a conflicted event: one walk down the auth DAG,
// then one back up along reversed edges among the events the first walk found.
func (s *v2res) conflictedSubgraph(conflicted []int32) ([]int32, error) {
	g := s.g
	var down []int32
	err := g.walk(s.ctx, conflicted, func(n int32) bool {
		g.at(n).flags |= fForward
		g.at(n).local = int32(len(down))
		down = append(down, n)
		return true
	})
	if err != nil {
		return nil, err
	}
	// Reversed edges, from each event to the events that cite it, in one flat array.
	start := make([]int32, len(down)+1)
	for _, n := range down {
		for _, a := range g.nodes[n].auth {
			if g.at(a).flags&fForward != 0 {
				start[g.at(a).local+1]++
			}
		}
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	citedBy := make([]int32, start[len(down)])
	fill := slices.Clone(start[:len(down)])
	for _, n := range down {
		for _, a := range g.nodes[n].auth {
			if g.at(a).flags&fForward != 0 {
				l := g.at(a).local
				citedBy[fill[l]] = n
				fill[l]++
			}
		}
	}
	sub := make([]int32, 0, len(conflicted))
	for _, n := range conflicted {
		g.at(n).flags |= fSubgraph
		sub = append(sub, n)
	}
	for i := 0; i < len(sub); i++ {
		l := g.at(sub[i]).local
		for _, c := range citedBy[start[l]:start[l+1]] {
			if g.at(c).flags&fSubgraph == 0 {
				g.at(c).flags |= fSubgraph
				sub = append(sub, c)
			}
		}
	}
	return sub, nil
}

// union returns the union of the given sets, keeping only known state events, and marks
// them as in the full conflicted set.
func (s *v2res) union(sets ...[]int32) []int32 {
	g := s.g
	var full []int32
	for _, set := range sets {
		for _, n := range set {
			nd := g.at(n)
			if nd.flags&fFull != 0 || nd.ev == nil || nd.ev.StateKey == nil {
				continue
			}
			nd.flags |= fFull
			full = append(full, n)
		}
	}
	return full
}

// powerOrder is step 1: the power events of the full conflicted set, with the events of their
// auth chains that are in the full conflicted set, in reverse topological power ordering.
// That is Kahn's algorithm over the auth DAG restricted to these events, taking at each step
// the ready event whose sender has the highest power by its own auth events, then the
// earliest origin_server_ts, then the smallest event ID.
func (s *v2res) powerOrder(full []int32) ([]int32, error) {
	g := s.g
	var power []int32
	for _, n := range full {
		if isPowerEvent(g.ev(n)) {
			power = append(power, n)
		}
	}
	if len(power) == 0 {
		return nil, nil
	}
	var xs []int32
	err := g.walk(s.ctx, power, func(n int32) bool {
		nd := g.at(n)
		if nd.flags&fFull == 0 {
			return false
		}
		nd.flags |= fPower
		nd.local = int32(len(xs))
		xs = append(xs, n)
		return true
	})
	if err != nil {
		return nil, err
	}
	if err := s.loadAuth(xs); err != nil {
		return nil, err
	}
	type key struct {
		power int64
		ts    int64
		id    id.EventID
	}
	keys := make([]key, len(xs))
	waiting := make([]int32, len(xs))
	start := make([]int32, len(xs)+1)
	for i, n := range xs {
		ev := g.ev(n)
		keys[i] = key{power: s.senderPower(n), ts: ev.OriginServerTS, id: g.nodes[n].id}
		for _, a := range g.nodes[n].auth {
			if g.at(a).flags&fPower != 0 {
				waiting[i]++
				start[g.at(a).local+1]++
			}
		}
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	citedBy := make([]int32, start[len(xs)])
	fill := slices.Clone(start[:len(xs)])
	for i, n := range xs {
		for _, a := range g.nodes[n].auth {
			if g.at(a).flags&fPower != 0 {
				l := g.at(a).local
				citedBy[fill[l]] = int32(i)
				fill[l]++
			}
		}
	}
	ready := heap{less: func(a, b int32) bool {
		ka, kb := &keys[a], &keys[b]
		if ka.power != kb.power {
			return ka.power > kb.power
		}
		if ka.ts != kb.ts {
			return ka.ts < kb.ts
		}
		return ka.id < kb.id
	}}
	for i := range xs {
		if waiting[i] == 0 {
			ready.push(int32(i))
		}
	}
	order := make([]int32, 0, len(xs))
	for ready.len() > 0 {
		i := ready.pop()
		order = append(order, xs[i])
		for _, c := range citedBy[start[i]:start[i+1]] {
			if waiting[c]--; waiting[c] == 0 {
				ready.push(c)
			}
		}
	}
	// Events on an auth_events cycle never become ready. Cycles cannot come from hashed
	// event IDs; in room versions 1 and 2 they can be forged, and such events are left out.
	return order, nil
}

// loadAuth loads the auth events of the given nodes, in one batch.
func (s *v2res) loadAuth(ns []int32) error {
	var auth []int32
	for _, n := range ns {
		for _, a := range s.g.nodes[n].auth {
			if s.g.needsLoad(a) {
				auth = append(auth, a)
			}
		}
	}
	return s.g.load(s.ctx, auth)
}

// mainlineOrder is step 3: it sorts events by mainline ordering based on the power levels
// event of the partially resolved state. An event's mainline position is found by following
// the power_levels event in its auth events, and in theirs, until one is on the mainline; it
// is infinite if none is. Events sort by greater position first, then origin_server_ts, then
// event ID.
func (s *v2res) mainlineOrder(events []int32, partial *partialState) error {
	if len(events) == 0 {
		return nil
	}
	g := s.g
	if err := s.loadAuth(events); err != nil {
		return err
	}
	// pos holds mainline positions: of the mainline itself, then of every power_levels
	// event walked through, so shared history is walked once.
	pos := make(map[int32]int)
	if pl, ok := partial.get(keyPower); ok {
		for i := 0; pl != -1; i++ {
			if _, seen := pos[pl]; seen {
				break
			}
			pos[pl] = i
			next, err := s.powerAuth(pl)
			if err != nil {
				return err
			}
			pl = next
		}
	}
	var path []int32
	position := func(n int32) (int, error) {
		path = path[:0]
		p := math.MaxInt
		for pl := g.authOf(n, keyPower, false); pl != -1; {
			if known, ok := pos[pl]; ok {
				p = known
				break
			}
			if len(path) > len(g.nodes) {
				break // a cycle: no position
			}
			path = append(path, pl)
			next, err := s.powerAuth(pl)
			if err != nil {
				return 0, err
			}
			pl = next
		}
		for _, q := range path {
			pos[q] = p
		}
		return p, nil
	}
	type key struct {
		pos int
		ts  int64
		id  id.EventID
	}
	keys := make(map[int32]key, len(events))
	for _, n := range events {
		p, err := position(n)
		if err != nil {
			return err
		}
		keys[n] = key{pos: p, ts: g.ev(n).OriginServerTS, id: g.nodes[n].id}
	}
	slices.SortFunc(events, func(a, b int32) int {
		ka, kb := keys[a], keys[b]
		if ka.pos != kb.pos {
			if ka.pos > kb.pos {
				return -1
			}
			return 1
		}
		if ka.ts != kb.ts {
			if ka.ts < kb.ts {
				return -1
			}
			return 1
		}
		return strings.Compare(string(ka.id), string(kb.id))
	})
	return nil
}

// powerAuth returns the power_levels event among n's auth events, or -1.
func (s *v2res) powerAuth(n int32) (int32, error) {
	if err := s.g.load(s.ctx, []int32{n}); err != nil {
		return -1, err
	}
	if err := s.loadAuth([]int32{n}); err != nil {
		return -1, err
	}
	return s.g.authOf(n, keyPower, false), nil
}
