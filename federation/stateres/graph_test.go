package stateres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// chainRoom builds n custom state events in a room of version 2 (free-form IDs, no hashing),
// each citing the one before as its only auth event.
func chainRoom(tb testing.TB, n int) (*room, []id.EventID) {
	r := newRoom(tb, id.RoomV2)
	r.id = "!room:a.test"
	ids := make([]id.EventID, n)
	var prev []id.EventID
	for i := range n {
		p := r.build(fmt.Sprint("E", i), alice, "x.test", sk(fmt.Sprint(i)), map[string]any{}, prev, prev)
		ids[i] = p.InternalMeta.EventID
		prev = []id.EventID{ids[i]}
	}
	return r, ids
}

func TestAuthChain(t *testing.T) {
	ctx := context.Background()
	r, ids := chainRoom(t, 5)
	got, missing, err := stateres.AuthChain(ctx, r.events, []id.EventID{ids[3]})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(ids[:3]))
	if !slices.Equal(got, want) || len(missing) != 0 {
		t.Errorf("AuthChain(E3) = %v, missing %v; want %v, none missing", got, missing, want)
	}

	// E1 is lost: E2's chain stops there and says so.
	delete(r.events, ids[1])
	got, missing, err = stateres.AuthChain(ctx, r.events, []id.EventID{ids[3], "$nowhere"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []id.EventID{ids[2]}; !slices.Equal(got, want) {
		t.Errorf("AuthChain without E1 = %v, want %v", got, want)
	}
	if want := slices.Sorted(slices.Values([]id.EventID{ids[1], "$nowhere"})); !slices.Equal(missing, want) {
		t.Errorf("missing = %v, want %v", missing, want)
	}
}

// Auth chains are walked without recursion, so a chain far deeper than any goroutine stack
// could hold frames for is fine, for AuthChain and for a resolution that walks all of it.
func TestDeepAuthChain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100,000 events")
	}
	const depth = 100_000
	ctx := context.Background()
	r, ids := chainRoom(t, depth)
	got, _, err := stateres.AuthChain(ctx, r.events, ids[depth-1:])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != depth-1 {
		t.Fatalf("AuthChain of the deepest event has %d events, want %d", len(got), depth-1)
	}
	// Two states whose conflicted events sit at the bottom of the chain on one side: the auth
	// difference has to walk the whole chain.
	a := stateres.StateMap{{Type: "x.test", StateKey: "top"}: ids[depth-1]}
	b := stateres.StateMap{{Type: "x.test", StateKey: "top"}: ids[0]}
	full, err := stateres.FullConflictedSet(ctx, id.RoomV2, r.id, []stateres.StateMap{a, b}, r.events)
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != depth {
		t.Errorf("full conflicted set has %d events, want all %d", len(full), depth)
	}
}

// The auth chain of a state holds the state's own events, as in Synapse: an unconflicted
// event cited by one state's conflicted event but by nothing in the other is not in the auth
// difference, and so is not replayed.
func TestAuthDifferenceCountsStateEvents(t *testing.T) {
	ctx := context.Background()
	r := newRoom(t, id.RoomV11)
	l := r.start(map[id.UserID]int{bob: 50}, bob)
	f := l.fork()
	// Bob's topic cites IPOWER, which both states hold; the other fork's topic is Alice's.
	f.send("TB", bob, "m.room.topic", sk(""), topic("b"))
	l.send("TA", alice, "m.room.topic", sk(""), topic("a"))
	got, err := stateres.FullConflictedSet(ctx, r.version, r.id, []stateres.StateMap{l.state, f.state}, r.events)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values([]id.EventID{r.ev("TA"), r.ev("TB")}))
	if !slices.Equal(got, want) {
		t.Errorf("full conflicted set = %v, want only the two topics %v", names(r, got), names(r, want))
	}
}

// The conflicted state subgraph brings the events between conflicted events into the full
// conflicted set in room version 12 only: Bob's promotion P2 (between P3 and IPOWER), and
// the join rules and Bob's join, which cite IPOWER and are cited by ME2 and P3.
func TestConflictedSubgraphInFullSet(t *testing.T) {
	ctx := context.Background()
	for _, v := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		r, states := staleAuthChain(t, v)
		got, err := stateres.FullConflictedSet(ctx, v, r.id, states, r.events)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"IPOWER", "ME1", "ME2", "MZ", "P3"}
		if v == id.RoomV12 {
			want = append(want, "P2", "IJR", "IMB")
		}
		var wantIDs []id.EventID
		for _, n := range want {
			wantIDs = append(wantIDs, r.ev(n))
		}
		slices.Sort(wantIDs)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("v%s: full conflicted set = %v, want %v", v, names(r, got), names(r, wantIDs))
		}
	}
}

func names(r *room, ids []id.EventID) []string {
	out := make([]string, len(ids))
	for i, e := range ids {
		out[i] = r.name(e)
	}
	slices.Sort(out)
	return out
}
