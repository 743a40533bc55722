package stateres_test

import (
	"testing"

	"maunium.net/go/mautrix/id"
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
