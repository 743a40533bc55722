package stateres_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// countingEvents counts the events it is asked for.
type countingEvents struct {
	stateres.MapEvents
	asked int
}

func (c *countingEvents) Get(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
	c.asked += len(ids)
	return c.MapEvents.Get(ctx, ids)
}

// A Room gives the same answers as a fresh resolution, call after call, and asks Events for
// each event once.
func TestRoomRemembersGraph(t *testing.T) {
	ctx := context.Background()
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV6, id.RoomV11, id.RoomV12} {
		t.Run(string(v), func(t *testing.T) {
			var rooms []*room
			var forks [][]stateres.StateMap
			for seed := range uint64(4) {
				r, states := randomForks(t, v, seed, 3, 30)
				rooms, forks = append(rooms, r), append(forks, states)
			}
			// One Room per test room, each resolved twice: the second time from memory.
			for i, r := range rooms {
				ev := &countingEvents{MapEvents: r.events}
				res := stateres.Resolver{Events: ev}
				rm, err := res.Room(v, r.id)
				if err != nil {
					t.Fatal(err)
				}
				want := r.resolve(forks[i]...)
				for call := range 2 {
					got, err := rm.Resolve(ctx, forks[i])
					if err != nil {
						t.Fatal(err)
					}
					if !sameState(got, want) {
						t.Fatalf("call %d:\n got %s\nwant %s", call, r.describe(got), r.describe(want))
					}
					if call == 0 && ev.asked == 0 {
						t.Fatal("Events was never asked")
					}
					if call == 1 && ev.asked != rm.Len() && v != id.RoomV1 {
						// v2 loads every event it remembers exactly once.
						t.Errorf("Events was asked for %d events over two calls; the Room holds %d", ev.asked, rm.Len())
					}
				}
			}
		})
	}
}

// An event the Room could not load is asked for again in the next call, and an event it was
// told to forget is loaded afresh.
func TestRoomForgetsAndRetries(t *testing.T) {
	ctx := context.Background()
	r := newRoom(t, id.RoomV11)
	l := r.start(map[id.UserID]int{bob: 50}, bob)
	f := l.fork()
	tp := f.send("T", bob, "m.room.topic", sk(""), topic("hello"))
	res := stateres.Resolver{Events: r.events}
	rm, err := res.Room(r.version, r.id)
	if err != nil {
		t.Fatal(err)
	}
	states := []stateres.StateMap{l.state, f.state}

	delete(r.events, tp.InternalMeta.EventID)
	if got, _ := rm.Resolve(ctx, states); got[keyTopic] != "" {
		t.Fatalf("topic %s resolved from an unknown event", got[keyTopic])
	}
	r.events[tp.InternalMeta.EventID] = tp
	if got, _ := rm.Resolve(ctx, states); got[keyTopic] != tp.InternalMeta.EventID {
		t.Fatalf("topic not resolved once its event arrived: %s", r.describe(got))
	}

	// The topic is found to be rejected after all: the Room holds the old PDU until told.
	rejected := *tp
	rejected.InternalMeta.Rejected = true
	r.events[tp.InternalMeta.EventID] = &rejected
	if got, _ := rm.Resolve(ctx, states); got[keyTopic] != tp.InternalMeta.EventID {
		t.Fatalf("Room reloaded an event it was not told to forget: %s", r.describe(got))
	}
	rm.Forget(tp.InternalMeta.EventID)
	if got, _ := rm.Resolve(ctx, states); got[keyTopic] != "" {
		t.Errorf("after Forget, the rejected topic still resolved: %s", r.describe(got))
	}

	rm.MaxEvents = 1
	if _, err := rm.Resolve(ctx, states); err != nil || rm.Len() == 0 {
		t.Fatalf("resolve after the limit: err %v, %d events", err, rm.Len())
	}
	before := rm.Len()
	if _, err := rm.Resolve(ctx, states); err != nil || rm.Len() > before {
		t.Errorf("a Room over MaxEvents kept growing: %d then %d events", before, rm.Len())
	}
	if _, err := res.Room("99", r.id); err == nil {
		t.Error("Room in an unknown room version: no error")
	}
}
