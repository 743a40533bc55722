package stateres_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// largeRoom builds a room with 2,000 members and 5,000 pieces of state (the create event,
// power levels, join rules, Alice's and Bob's and 2,000 other memberships, and 2,995 other
// state events), then two forks of about 40 events each that conflict on 54 keys: a
// promotion, bans and kicks by moderators, topic, name, history visibility and profile
// changes, other state, and new joins.
func largeRoom(tb testing.TB, v id.RoomVersion) (*room, []stateres.StateMap) {
	r := newRoom(tb, v)
	members := make([]id.UserID, 2000)
	levels := map[id.UserID]int{bob: 100}
	for i := range members {
		members[i] = id.UserID(fmt.Sprintf("@u%04d:s%d.test", i, i%40))
		if i < 10 {
			levels[members[i]] = 50
		}
	}
	l := r.start(levels, bob)
	for i, u := range members {
		l.send(fmt.Sprint("J", i), u, "m.room.member", skU(u), membership("join"))
	}
	for i := range 2995 {
		l.send(fmt.Sprint("X", i), alice, "x.test", sk(fmt.Sprint("k", i)), map[string]any{"i": i})
	}
	if len(l.state) != 5000 {
		tb.Fatalf("large room has %d state keys, want 5000", len(l.state))
	}
	a, b := l.fork(), l.fork()
	promoted := map[id.UserID]int{alice: 100, bob: 100, members[10]: 50}
	for u, lv := range levels {
		promoted[u] = lv
	}
	a.send("A.PL", alice, "m.room.power_levels", sk(""), r.powerLevels(promoted))
	b.send("B.HV", bob, "m.room.history_visibility", sk(""), map[string]any{"history_visibility": "joined"})
	for i := range 4 {
		a.send(fmt.Sprint("A.T", i), members[i], "m.room.topic", sk(""), topic(fmt.Sprint("a", i)))
		b.send(fmt.Sprint("B.T", i), members[5+i], "m.room.topic", sk(""), topic(fmt.Sprint("b", i)))
		a.send(fmt.Sprint("A.N", i), members[i], "m.room.name", sk(""), map[string]any{"name": fmt.Sprint("a", i)})
		b.send(fmt.Sprint("B.N", i), members[5+i], "m.room.name", sk(""), map[string]any{"name": fmt.Sprint("b", i)})
	}
	for i := range 10 {
		a.send(fmt.Sprint("A.BAN", i), members[i%5], "m.room.member", skU(members[100+i]), membership("ban"))
		b.send(fmt.Sprint("B.KICK", i), members[5+i%5], "m.room.member", skU(members[200+i]), membership("leave"))
		a.send(fmt.Sprint("A.X", i), alice, "x.test", sk(fmt.Sprint("k", i)), map[string]any{"a": i})
		b.send(fmt.Sprint("B.X", i), bob, "x.test", sk(fmt.Sprint("k", i)), map[string]any{"b": i})
		u := members[300+i]
		a.send(fmt.Sprint("A.P", i), u, "m.room.member", skU(u), map[string]any{"membership": "join", "displayname": "A"})
		nu := id.UserID(fmt.Sprintf("@new%d:n.test", i))
		b.send(fmt.Sprint("B.J", i), nu, "m.room.member", skU(nu), membership("join"))
	}
	return r, []stateres.StateMap{a.state, b.state}
}

// BenchmarkResolveLargeRoom resolves the two forks of largeRoom, loading events from memory.
func BenchmarkResolveLargeRoom(b *testing.B) {
	ctx := context.Background()
	for _, v := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		b.Run("v"+string(v), func(b *testing.B) {
			r, states := largeRoom(b, v)
			full, err := stateres.FullConflictedSet(ctx, v, r.id, states, r.events)
			if err != nil {
				b.Fatal(err)
			}
			conflicted := 0
			for k, e := range states[0] {
				if states[1][k] != e {
					conflicted++
				}
			}
			for k := range states[1] {
				if _, ok := states[0][k]; !ok {
					conflicted++
				}
			}
			b.Logf("%d conflicted keys, full conflicted set of %d events", conflicted, len(full))
			b.Run("cold", func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					if _, err := stateres.Resolve(ctx, v, r.id, states, r.events); err != nil {
						b.Fatal(err)
					}
				}
				// The CPU time the process spent, per resolution: unlike ns/op, it does
				// not grow when other work shares the machine.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
			// A Room that has resolved in this room before walks its graph from memory.
			b.Run("room", func(b *testing.B) {
				res := stateres.Resolver{Events: r.events}
				rm, err := res.Room(v, r.id)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rm.Resolve(ctx, states); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					if _, err := rm.Resolve(ctx, states); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		})
	}
}

// TestLargeRoom checks what the benchmark resolves: Alice's promotion and Bob's history
// visibility both stand; fork A's topic, name and other state win, citing the newer power
// levels, which puts them later in mainline order; every ban, kick and join stands.
func TestLargeRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a room of 5,000 events")
	}
	for _, v := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		t.Run(string(v), func(t *testing.T) {
			r, states := largeRoom(t, v)
			got := r.resolve(states...)
			want := []string{"A.PL", "B.HV", "A.T3", "A.N3"}
			for i := range 10 {
				want = append(want, fmt.Sprint("A.BAN", i), fmt.Sprint("B.KICK", i), fmt.Sprint("A.P", i), fmt.Sprint("B.J", i), fmt.Sprint("A.X", i))
			}
			for _, n := range want {
				p := r.byName[n]
				if e := got[stateres.StateKey{Type: p.Type, StateKey: *p.StateKey}]; e != p.InternalMeta.EventID {
					t.Errorf("%s lost to %s", n, r.name(e))
				}
			}
			if len(got) != 5013 {
				t.Errorf("resolved state has %d keys, want 5013", len(got))
			}
		})
	}
}

// cpuTime is the user and system CPU time of the process so far, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
