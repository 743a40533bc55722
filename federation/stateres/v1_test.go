package stateres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// Room version 1 resolves conflicting power levels in order of depth: the shallowest goes in,
// and each deeper one replaces it while the auth rules allow it in the state so far.
func TestV1PowerLevels(t *testing.T) {
	t.Run("deeper allowed", func(t *testing.T) {
		r := newRoom(t, id.RoomV1)
		l := r.start(nil, bob, charlie)
		f := l.fork()
		l.send("PA", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50}))
		f.send("PB", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, charlie: 50}))
		f.send("PB2", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, charlie: 60}))
		if got := r.resolve(l.state, f.state); got[keyPowerLevels] != r.ev("PB2") {
			t.Errorf("got %s; want PB2, the deeper and allowed", r.describe(got))
		}
	})
	t.Run("deeper refused", func(t *testing.T) {
		// PB2 is Charlie's, who has power only by PB; against PA he has none.
		r := newRoom(t, id.RoomV1)
		l := r.start(nil, bob, charlie)
		f := l.fork()
		l.send("PA", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50}))
		f.send("PB", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, charlie: 50}))
		f.send("PB2", charlie, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, charlie: 50, zara: 10}))
		if got := r.resolve(l.state, f.state); got[keyPowerLevels] != r.ev("PA") {
			t.Errorf("got %s; want PA, since PB2 fails against it", r.describe(got))
		}
	})
}

// Other conflicted keys take the deepest event the auth rules allow.
func TestV1NormalEvents(t *testing.T) {
	for _, c := range []struct {
		name   string
		sender id.UserID
		want   string
	}{
		{"deepest allowed", alice, "T2"},
		{"deepest refused", zara, "T1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRoom(t, id.RoomV1)
			l := r.start(nil, zara)
			f := l.fork()
			l.send("T1", alice, "m.room.topic", sk(""), topic("one"))
			f.send("M1", zara, "m.room.message", nil, map[string]any{"body": "a"})
			f.send("M2", zara, "m.room.message", nil, map[string]any{"body": "b"})
			f.send("T2", c.sender, "m.room.topic", sk(""), topic("two"))
			if got := r.resolve(l.state, f.state); got[keyTopic] != r.ev(c.want) {
				t.Errorf("got %s; want %s", r.describe(got), c.want)
			}
		})
	}
}

// Resolver.Authorize replaces eventauth in every algorithm: a host's own rule decides which
// conflicting event wins (here, refusing the deeper topic that eventauth would allow).
func TestResolverAuthorizeHook(t *testing.T) {
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV2, id.RoomV12} {
		t.Run("v"+string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(nil, zara)
			f := l.fork()
			l.send("T1", alice, "m.room.topic", sk(""), topic("one"))
			f.send("M1", zara, "m.room.message", nil, map[string]any{"body": "a"})
			f.send("T2", alice, "m.room.topic", sk(""), topic("two"))
			refuseTwo := func(version id.RoomVersion, ev *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error {
				if gjson.GetBytes(ev.Content, "topic").Str == "two" {
					return errors.New("refused by the host")
				}
				return eventauth.Authorize(version, ev, authEvents, getEvents, getKey)
			}
			for _, c := range []struct {
				auth func(id.RoomVersion, *pdu.PDU, []*pdu.PDU, eventauth.GetEventsFunc, pdu.GetKeyFunc) error
				want string
			}{{nil, "T2"}, {refuseTwo, "T1"}} {
				res := stateres.Resolver{Events: r.events, Authorize: c.auth}
				got, err := res.Resolve(context.Background(), v, r.id, []stateres.StateMap{l.state, f.state})
				if err != nil {
					t.Fatal(err)
				}
				if got[keyTopic] != r.ev(c.want) {
					t.Errorf("hook set %v: got %s; want %s", c.auth != nil, r.describe(got), c.want)
				}
			}
		})
	}
}
