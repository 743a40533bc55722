package stateres_test

import (
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// The two state resets state resolution v2.1 (room version 12, MSC4297) was made to prevent.
// Both come from a server handing out stale state for one fork (say over /state_ids): the
// events agree among themselves, but the state sets contradict their auth chains. Version 11
// resets the room; version 12 does not.

var keyJoinRules = stateres.StateKey{Type: "m.room.join_rules"}
var keyPowerLevels = stateres.StateKey{Type: "m.room.power_levels"}

// Alice, an admin, makes the room invite-only and leaves. A stale fork still claims the
// public join rule. Both forks agree Alice has left, so v2 replays both join rules on top of
// that (the unconflicted state) and both fail: the room loses its join rules. v2.1 replays
// them from the empty state, each against its own auth events, and keeps the newer.
func TestV21StartsFromEmptyState(t *testing.T) {
	build := func(t *testing.T, v id.RoomVersion) (*room, []stateres.StateMap) {
		r := newRoom(t, v)
		l := r.start(map[id.UserID]int{bob: 100}, bob)
		l.send("JR2", alice, "m.room.join_rules", sk(""), joinRule("invite"))
		l.send("MA2", alice, "m.room.member", skU(alice), membership("leave"))
		stale := with(l.state)
		stale[keyJoinRules] = r.ev("IJR")
		return r, []stateres.StateMap{l.state, stale}
	}
	for _, v := range []id.RoomVersion{id.RoomV6, id.RoomV10, id.RoomV11} {
		t.Run(string(v), func(t *testing.T) {
			r, states := build(t, v)
			got := r.resolve(states...)
			if jr, ok := got[keyJoinRules]; ok {
				t.Errorf("v2 kept join rules %s; the spec's v2 loses them here (both fail against Alice's leave)", r.name(jr))
			}
			if got[stateres.StateKey{Type: "m.room.member", StateKey: alice.String()}] != r.ev("MA2") {
				t.Errorf("Alice's leave lost: %s", r.describe(got))
			}
		})
	}
	t.Run("12", func(t *testing.T) {
		r, states := build(t, id.RoomV12)
		got := r.resolve(states...)
		want := with(states[0])
		if !sameState(got, want) {
			t.Errorf("v2.1:\n got %s\nwant %s", r.describe(got), r.describe(want))
		}
	})
}

// Alice promotes Bob (P2), who promotes Charlie (P3). Evelyn joins citing P3 and then sends a
// second join citing the old P1. A server gives the state after that second join with the old
// P1 as the power levels. Against the state after Zara's join (P3), the auth difference of v2
// misses P2, which both forks have in their auth chains, so P3 is replayed on P1 without
// Bob's promotion and fails: the power levels reset to P1. v2.1 adds the events between
// conflicted events (P2, and Evelyn's first join) and replays them too.
func TestV21ReplaysConflictedSubgraph(t *testing.T) {
	base := func(r *room) stateres.StateMap {
		return r.stateOf("CREATE", "IMA", "IJR", "IMB", "IMC", "MZ")
	}
	for _, v := range []id.RoomVersion{id.RoomV6, id.RoomV11} {
		t.Run(string(v), func(t *testing.T) {
			r, states := staleAuthChain(t, v)
			got := r.resolve(states...)
			want := base(r)
			for k, e := range r.stateOf("IPOWER", "ME2") {
				want[k] = e
			}
			if !sameState(got, want) {
				t.Errorf("v2 (which resets the power levels here):\n got %s\nwant %s", r.describe(got), r.describe(want))
			}
		})
	}
	t.Run("12", func(t *testing.T) {
		r, states := staleAuthChain(t, id.RoomV12)
		got := r.resolve(states...)
		want := base(r)
		// ME2 is in P1's epoch of the mainline and is replayed before ME1, in P3's.
		for k, e := range r.stateOf("P3", "ME1") {
			want[k] = e
		}
		if !sameState(got, want) {
			t.Errorf("v2.1:\n got %s\nwant %s", r.describe(got), r.describe(want))
		}
	})
}

// staleAuthChain builds the room of TestV21ReplaysConflictedSubgraph and returns the stale
// state after ME2 and the state after Zara's join.
func staleAuthChain(t *testing.T, v id.RoomVersion) (*room, []stateres.StateMap) {
	r := newRoom(t, v)
	l := r.start(nil, bob, charlie)
	l.send("P2", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50}))
	l.send("P3", bob, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50, charlie: 50}))
	zaraFork := l.fork()
	me1 := l.send("ME1", evelyn, "m.room.member", skU(evelyn), membership("join"))
	// ME2 cites the old power levels IPOWER directly, and P3 only through ME1.
	auth := []id.EventID{r.ev("IPOWER"), r.ev("IJR"), r.ev("ME1")}
	if !v.RoomIDIsCreateEventID() {
		auth = append(auth, r.ev("CREATE"))
	}
	me2 := r.build("ME2", evelyn, "m.room.member", skU(evelyn),
		map[string]any{"membership": "join", "displayname": "Eve"}, auth, []id.EventID{me1.InternalMeta.EventID})
	dodgy := with(l.state)
	dodgy[keyPowerLevels] = r.ev("IPOWER")
	dodgy[stateres.StateKey{Type: "m.room.member", StateKey: evelyn.String()}] = me2.InternalMeta.EventID
	zaraFork.send("MZ", zara, "m.room.member", skU(zara), membership("join"))
	return r, []stateres.StateMap{dodgy, zaraFork.state}
}
