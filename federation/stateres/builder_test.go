package stateres_test

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// Rooms of version 1 and 2 name events freely ("$name:a.test"); eventauth checks the
// creator's first join by the create event's ID, which for those versions only InternalMeta
// knows. Hashed IDs of later versions are the same either way.
func TestMain(m *testing.M) {
	pdu.UseInternalMetaForGetEventID = true
	os.Exit(m.Run())
}

const (
	alice   = id.UserID("@alice:a.test")
	bob     = id.UserID("@bob:b.test")
	charlie = id.UserID("@charlie:c.test")
	dave    = id.UserID("@dave:d.test")
	evelyn  = id.UserID("@evelyn:e.test")
	zara    = id.UserID("@zara:z.test")
)

// room builds a room's event graph out of real PDUs. Event IDs are reference hashes from room
// version 3 on, and "$<name>:a.test" before. Timestamps rise by one per event built.
type room struct {
	tb      testing.TB
	version id.RoomVersion
	id      id.RoomID
	events  stateres.MapEvents
	byName  map[string]*pdu.PDU
	ts      int64
}

func newRoom(tb testing.TB, version id.RoomVersion) *room {
	return &room{tb: tb, version: version, events: stateres.MapEvents{}, byName: map[string]*pdu.PDU{}, ts: 1000}
}

// ev is the ID of the event built under name.
func (r *room) ev(name string) id.EventID {
	r.tb.Helper()
	p, ok := r.byName[name]
	if !ok {
		r.tb.Fatalf("no event named %q", name)
	}
	return p.InternalMeta.EventID
}

// name is the name an event was built under, for failure messages.
func (r *room) name(e id.EventID) string {
	for n, p := range r.byName {
		if p.InternalMeta.EventID == e {
			return n
		}
	}
	return string(e)
}

// build creates one event with explicit auth and prev events.
func (r *room) build(name string, sender id.UserID, typ string, stateKey *string, content any, auth, prev []id.EventID) *pdu.PDU {
	r.tb.Helper()
	raw, err := json.Marshal(content)
	if err != nil {
		r.tb.Fatal(err)
	}
	r.ts++
	var depth int64
	for _, pe := range prev {
		if p := r.events[pe]; p != nil && p.Depth > depth {
			depth = p.Depth
		}
	}
	p := &pdu.PDU{
		AuthEvents:     slices.Clone(auth),
		Content:        jsontext.Value(raw),
		Depth:          depth + 1,
		OriginServerTS: r.ts,
		PrevEvents:     slices.Clone(prev),
		RoomID:         r.id,
		Sender:         sender,
		StateKey:       stateKey,
		Type:           typ,
	}
	if p.AuthEvents == nil {
		p.AuthEvents = []id.EventID{}
	}
	if p.PrevEvents == nil {
		p.PrevEvents = []id.EventID{}
	}
	isCreate := typ == "m.room.create"
	if isCreate && r.version.RoomIDIsCreateEventID() {
		p.RoomID = ""
	}
	var eid id.EventID
	if r.version.EventIDFormat() == id.EventIDFormatCustom {
		eid = id.EventID("$" + name + ":a.test")
		if isCreate {
			r.id = id.RoomID("!room:a.test")
			p.RoomID = r.id
		}
	} else {
		if isCreate && !r.version.RoomIDIsCreateEventID() {
			r.id = id.RoomID("!room:a.test")
			p.RoomID = r.id
		}
		if eid, err = p.GetEventID(r.version); err != nil {
			r.tb.Fatal(err)
		}
		if isCreate && r.version.RoomIDIsCreateEventID() {
			r.id = id.RoomID("!" + string(eid)[1:])
		}
	}
	p.InternalMeta.EventID = eid
	if _, dup := r.byName[name]; dup {
		r.tb.Fatalf("event name %q used twice", name)
	}
	r.byName[name] = p
	r.events[eid] = p
	return p
}

// add creates an event whose auth events are picked from before, the state before it, by the
// auth events selection of the room version.
func (r *room) add(name string, sender id.UserID, typ string, stateKey *string, content any, before stateres.StateMap, prev ...id.EventID) *pdu.PDU {
	r.tb.Helper()
	probe := &pdu.PDU{Type: typ, Sender: sender, StateKey: stateKey}
	raw, _ := json.Marshal(content)
	probe.Content = raw
	var auth []id.EventID
	for _, k := range probe.AuthEventSelection(r.version) {
		if e, ok := before[k]; ok {
			auth = append(auth, e)
		}
	}
	return r.build(name, sender, typ, stateKey, content, auth, prev)
}

// powerLevels is power_levels content giving users their levels. Room version 12 creators
// cannot be listed, so they are left out there.
func (r *room) powerLevels(users map[id.UserID]int, extra ...map[string]any) map[string]any {
	u := map[id.UserID]int{}
	for k, v := range users {
		if r.version.PrivilegedRoomCreators() && k == alice {
			continue
		}
		u[k] = v
	}
	c := map[string]any{"users": u}
	for _, e := range extra {
		for k, v := range e {
			c[k] = v
		}
	}
	return c
}

func (r *room) createContent() map[string]any {
	c := map[string]any{"room_version": string(r.version)}
	if r.version.CreatorInContent() {
		c["creator"] = alice
	}
	return c
}

func sk(s string) *string      { return &s }
func skU(u id.UserID) *string  { s := u.String(); return &s }
func membership(m string) any  { return map[string]any{"membership": m} }
func topic(t string) any       { return map[string]any{"topic": t} }
func joinRule(rule string) any { return map[string]any{"join_rule": rule} }
func with(s stateres.StateMap) stateres.StateMap {
	out := stateres.StateMap{}
	for k, v := range s {
		out[k] = v
	}
	return out
}

// line is a linear timeline in a room: every event cites the one before as prev_event and
// takes its auth events from the state that timeline has reached.
type line struct {
	r     *room
	state stateres.StateMap
	last  []id.EventID
}

// start creates the room: Alice creates it, joins, sets power levels (users as given, Alice
// 100) and a public join rule, and then each of joiners joins.
func (r *room) start(users map[id.UserID]int, joiners ...id.UserID) *line {
	r.tb.Helper()
	l := &line{r: r, state: stateres.StateMap{}}
	l.send("CREATE", alice, "m.room.create", sk(""), r.createContent())
	l.send("IMA", alice, "m.room.member", skU(alice), membership("join"))
	all := map[id.UserID]int{alice: 100}
	for u, v := range users {
		all[u] = v
	}
	l.send("IPOWER", alice, "m.room.power_levels", sk(""), r.powerLevels(all))
	l.send("IJR", alice, "m.room.join_rules", sk(""), joinRule("public"))
	for _, u := range joiners {
		l.send("IM"+strings.ToUpper(u.Localpart()[:1]), u, "m.room.member", skU(u), membership("join"))
	}
	return l
}

// send adds an event to the timeline and, if it is a state event, to its state.
func (l *line) send(name string, sender id.UserID, typ string, stateKey *string, content any) *pdu.PDU {
	l.r.tb.Helper()
	p := l.r.add(name, sender, typ, stateKey, content, l.state, l.last...)
	l.apply(p)
	return p
}

func (l *line) apply(p *pdu.PDU) {
	if p.StateKey != nil {
		l.state[stateres.StateKey{Type: p.Type, StateKey: *p.StateKey}] = p.InternalMeta.EventID
	}
	l.last = []id.EventID{p.InternalMeta.EventID}
}

// fork returns a second timeline going on from the same point.
func (l *line) fork() *line {
	return &line{r: l.r, state: with(l.state), last: slices.Clone(l.last)}
}

// merge resolves the states of the timelines and returns a timeline that goes on from all of
// them.
func merge(tb testing.TB, ls ...*line) *line {
	tb.Helper()
	r := ls[0].r
	var states []stateres.StateMap
	var last []id.EventID
	for _, l := range ls {
		states = append(states, l.state)
		last = append(last, l.last...)
	}
	s, err := stateres.Resolve(context.Background(), r.version, r.id, states, r.events)
	if err != nil {
		tb.Fatalf("Resolve: %v", err)
	}
	return &line{r: r, state: s, last: last}
}

// resolve resolves states in the room and fails the test on error.
func (r *room) resolve(states ...stateres.StateMap) stateres.StateMap {
	r.tb.Helper()
	s, err := stateres.Resolve(context.Background(), r.version, r.id, states, r.events)
	if err != nil {
		r.tb.Fatalf("Resolve: %v", err)
	}
	return s
}

// describe renders a state by event names, for failure messages.
func (r *room) describe(s stateres.StateMap) string {
	var parts []string
	for k, v := range s {
		parts = append(parts, fmt.Sprintf("%s/%s=%s", k.Type, k.StateKey, r.name(v)))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// dag builds an event graph the way the classic state resolution tests describe one: the
// initial events of a room, then events wired by chains of prev_events ("A", "B", "C" means A
// cites B, B cites C). The state before each event is the resolution of the states after its
// prev_events, and its auth events come from that state. Events are built in topological
// order, ties by name, so timestamps follow that order.
type dag struct {
	r     *room
	after map[string]stateres.StateMap
}

// node describes an event of a dag.
type node struct {
	name     string
	sender   id.UserID
	typ      string
	stateKey *string
	content  any
}

// initialNodes are the events every classic test starts from: a public room with Alice as
// admin and Bob, Charlie and Zara joined, then a message START. END is the merge point.
func initialNodes(r *room) ([]node, []string) {
	return []node{
			{"CREATE", alice, "m.room.create", sk(""), r.createContent()},
			{"IMA", alice, "m.room.member", skU(alice), membership("join")},
			{"IPOWER", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100})},
			{"IJR", alice, "m.room.join_rules", sk(""), joinRule("public")},
			{"IMB", bob, "m.room.member", skU(bob), membership("join")},
			{"IMC", charlie, "m.room.member", skU(charlie), membership("join")},
			{"IMZ", zara, "m.room.member", skU(zara), membership("join")},
			{"START", zara, "m.room.message", nil, map[string]any{"body": "start"}},
			{"END", zara, "m.room.message", nil, map[string]any{"body": "end"}},
		},
		[]string{"START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"}
}

func buildDAG(tb testing.TB, r *room, nodes []node, chains ...[]string) *dag {
	tb.Helper()
	initial, initialChain := initialNodes(r)
	nodes = append(initial, nodes...)
	chains = append([][]string{initialChain}, chains...)
	byName := map[string]node{}
	prevs := map[string][]string{}
	for _, n := range nodes {
		byName[n.name] = n
		prevs[n.name] = nil
	}
	for _, c := range chains {
		for i := 0; i+1 < len(c); i++ {
			if _, ok := byName[c[i]]; !ok {
				tb.Fatalf("chain names unknown event %q", c[i])
			}
			if !slices.Contains(prevs[c[i]], c[i+1]) {
				prevs[c[i]] = append(prevs[c[i]], c[i+1])
			}
		}
	}
	d := &dag{r: r, after: map[string]stateres.StateMap{}}
	done := map[string]bool{}
	for len(done) < len(nodes) {
		var ready []string
		for name, ps := range prevs {
			if done[name] {
				continue
			}
			ok := true
			for _, p := range ps {
				ok = ok && done[p]
			}
			if ok {
				ready = append(ready, name)
			}
		}
		if len(ready) == 0 {
			tb.Fatal("dag has a cycle")
		}
		slices.Sort(ready)
		name := ready[0]
		n := byName[name]
		var before stateres.StateMap
		var prevIDs []id.EventID
		var states []stateres.StateMap
		for _, p := range prevs[name] {
			prevIDs = append(prevIDs, r.ev(p))
			states = append(states, d.after[p])
		}
		switch len(states) {
		case 0:
			before = stateres.StateMap{}
		case 1:
			before = with(states[0])
		default:
			before = r.resolve(states...)
		}
		p := r.add(name, n.sender, n.typ, n.stateKey, n.content, before, prevIDs...)
		after := with(before)
		if p.StateKey != nil {
			after[stateres.StateKey{Type: p.Type, StateKey: *p.StateKey}] = p.InternalMeta.EventID
		}
		d.after[name] = after
		done[name] = true
	}
	return d
}

// changedAtEnd returns the state at END, keeping only keys whose event differs from START's
// and the keys of the named events, as the classic tests state their expectations.
func (d *dag) changedAtEnd(names ...string) stateres.StateMap {
	keep := map[stateres.StateKey]bool{}
	for _, n := range names {
		p := d.r.byName[n]
		keep[stateres.StateKey{Type: p.Type, StateKey: *p.StateKey}] = true
	}
	out := stateres.StateMap{}
	for k, v := range d.after["END"] {
		if keep[k] || d.after["START"][k] != v {
			out[k] = v
		}
	}
	return out
}

// stateOf builds the expected state holding the named events.
func (r *room) stateOf(names ...string) stateres.StateMap {
	out := stateres.StateMap{}
	for _, n := range names {
		p := r.byName[n]
		if p == nil {
			r.tb.Fatalf("no event named %q", n)
		}
		out[stateres.StateKey{Type: p.Type, StateKey: *p.StateKey}] = p.InternalMeta.EventID
	}
	return out
}

func sameState(a, b stateres.StateMap) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
