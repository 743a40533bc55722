package stateres_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// failingEvents fails every load with err, or answers with the wrong number of events.
type failingEvents struct {
	err   error
	short bool
}

func (f failingEvents) Get(_ context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
	if f.short {
		return make([]*pdu.PDU, len(ids)-1), nil
	}
	return nil, f.err
}

// A failing Events, a broken one and a cancelled context abort the resolution with an error
// that says why.
func TestLoadFailures(t *testing.T) {
	r := newRoom(t, id.RoomV11)
	l := r.start(map[id.UserID]int{bob: 50}, bob)
	f := l.fork()
	f.send("T", bob, "m.room.topic", sk(""), topic("x"))
	states := []stateres.StateMap{l.state, f.state}
	disk := errors.New("disk on fire")

	_, err := stateres.Resolve(context.Background(), r.version, r.id, states, failingEvents{err: disk})
	if !errors.Is(err, disk) {
		t.Errorf("Events failing: err = %v, want it to wrap %v", err, disk)
	}
	_, err = stateres.Resolve(context.Background(), r.version, r.id, states, failingEvents{short: true})
	if !errors.Is(err, stateres.ErrBadEvents) {
		t.Errorf("Events answering short: err = %v, want ErrBadEvents", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = stateres.Resolve(ctx, r.version, r.id, states, r.events)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
}

// A Room's AuthChain agrees with the package's and refuses events of other rooms.
func TestRoomAuthChain(t *testing.T) {
	ctx := context.Background()
	r := newRoom(t, id.RoomV12)
	l := r.start(nil, bob)
	tp := l.send("T", alice, "m.room.topic", sk(""), topic("x"))
	res := stateres.Resolver{Events: r.events}
	rm, err := res.Room(r.version, r.id)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := stateres.AuthChain(ctx, r.events, []id.EventID{tp.InternalMeta.EventID})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, missing, err := rm.AuthChain(ctx, []id.EventID{tp.InternalMeta.EventID})
		if err != nil || !slices.Equal(got, want) || len(missing) != 0 {
			t.Fatalf("Room.AuthChain = %v, %v, %v; want %v", names(r, got), missing, err, names(r, want))
		}
	}
	// IMA, IPOWER: the topic's auth events in room version 12, which leaves out the create event.
	if w := names(r, want); !slices.Equal(w, []string{"IMA", "IPOWER"}) {
		t.Errorf("auth chain of T = %v, want [IMA IPOWER]", w)
	}

	other := newRoom(t, id.RoomV12)
	other.ts = 5000 // a different create event, so a different room
	ol := other.start(nil)
	r.events[ol.last[0]] = other.events[ol.last[0]]
	if _, _, err := rm.AuthChain(ctx, ol.last); !errors.Is(err, stateres.ErrWrongRoom) {
		t.Errorf("Room.AuthChain of another room's event: err = %v, want ErrWrongRoom", err)
	}
}
