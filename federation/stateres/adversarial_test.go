package stateres_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

func memberKey(u id.UserID) stateres.StateKey {
	return stateres.StateKey{Type: "m.room.member", StateKey: u.String()}
}

var keyTopic = stateres.StateKey{Type: "m.room.topic"}

// Alice demotes Bob while Bob, still a moderator on his fork, bans Charlie. The demotion is
// a power event by the more powerful sender and is replayed first; Bob's ban then fails.
func TestDemotionRacesBan(t *testing.T) {
	for _, v := range v2Versions {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(map[id.UserID]int{bob: 50}, bob, charlie)
			f := l.fork()
			l.send("DEMOTE", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 0}))
			f.send("BAN", bob, "m.room.member", skU(charlie), membership("ban"))

			got := r.resolve(l.state, f.state)
			if got[keyPowerLevels] != r.ev("DEMOTE") || got[memberKey(charlie)] != r.ev("IMC") {
				t.Errorf("got %s; want Bob demoted and Charlie still joined", r.describe(got))
			}
			// Without the demotion, the same ban stands: the test is about the race.
			if got := r.resolve(stateWith(l.state, keyPowerLevels, r.ev("IPOWER")), f.state); got[memberKey(charlie)] != r.ev("BAN") {
				t.Errorf("control: got %s; want Bob's ban of Charlie to stand", r.describe(got))
			}
		})
	}
}

// stateWith returns a copy of s with key set to e.
func stateWith(s stateres.StateMap, key stateres.StateKey, e id.EventID) stateres.StateMap {
	out := with(s)
	out[key] = e
	return out
}

// Alice bans Bob while Bob makes Charlie a moderator. The ban is replayed first, so Bob's
// power change comes from a banned user and fails.
func TestBanRacesPowerGrab(t *testing.T) {
	for _, v := range v2Versions {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(map[id.UserID]int{bob: 50}, bob, charlie)
			f := l.fork()
			f.send("GRAB", bob, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50, charlie: 50}))
			l.send("BAN", alice, "m.room.member", skU(bob), membership("ban"))

			got := r.resolve(l.state, f.state)
			if got[memberKey(bob)] != r.ev("BAN") || got[keyPowerLevels] != r.ev("IPOWER") {
				t.Errorf("got %s; want Bob banned and the power levels unchanged", r.describe(got))
			}
		})
	}
}

// Two moderators of equal power act on Charlie at the same moment, one kicking, one banning.
// Equal power, so the earlier is replayed first and the later one stands, whichever fork is
// listed first.
func TestModeratorsRaceOnOneUser(t *testing.T) {
	for _, v := range v2Versions {
		for _, kickFirst := range []bool{true, false} {
			name := string(v) + "/ban first"
			if kickFirst {
				name = string(v) + "/kick first"
			}
			t.Run(name, func(t *testing.T) {
				r := newRoom(t, v)
				l := r.start(map[id.UserID]int{bob: 50, dave: 50}, bob, charlie, dave)
				f := l.fork()
				if kickFirst {
					l.send("KICK", bob, "m.room.member", skU(charlie), membership("leave"))
					f.send("BAN", dave, "m.room.member", skU(charlie), membership("ban"))
				} else {
					f.send("BAN", dave, "m.room.member", skU(charlie), membership("ban"))
					l.send("KICK", bob, "m.room.member", skU(charlie), membership("leave"))
				}
				want := r.ev("BAN")
				if !kickFirst {
					want = r.ev("KICK")
				}
				for _, order := range [][]stateres.StateMap{{l.state, f.state}, {f.state, l.state}} {
					if got := r.resolve(order...); got[memberKey(charlie)] != want {
						t.Errorf("got %s; want %s, the later of the two", r.describe(got), r.name(want))
					}
				}
			})
		}
	}
}

// An admin bans a moderator while the moderator bans someone else: the admin's ban is
// replayed first, and the moderator's ban then comes from a banned user.
func TestAdminBansModeratorMidBan(t *testing.T) {
	for _, v := range v2Versions {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(map[id.UserID]int{bob: 100, dave: 50}, bob, charlie, dave)
			f := l.fork()
			f.send("DAVE_BANS", dave, "m.room.member", skU(charlie), membership("ban"))
			l.send("BOB_BANS", bob, "m.room.member", skU(dave), membership("ban"))
			got := r.resolve(l.state, f.state)
			if got[memberKey(dave)] != r.ev("BOB_BANS") || got[memberKey(charlie)] != r.ev("IMC") {
				t.Errorf("got %s; want Dave banned and Charlie still joined", r.describe(got))
			}
		})
	}
}

// The soft-failure example of the server-server spec: Alice bans Zara (B) while Zara sets the
// topic (C) on a fork; D merges both. The original algorithm keeps C; v2 orders the ban
// first, so C is sent by a banned user and is dropped.
func TestBanEvasionTopic(t *testing.T) {
	versions := append([]id.RoomVersion{id.RoomV1}, v2Versions...)
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(map[id.UserID]int{zara: 50}, zara)
			f := l.fork()
			l.send("B", alice, "m.room.member", skU(zara), membership("ban"))
			f.send("C", zara, "m.room.topic", sk(""), topic("evading the ban"))

			got := r.resolve(l.state, f.state)
			if got[memberKey(zara)] != r.ev("B") {
				t.Errorf("got %s; want Zara banned", r.describe(got))
			}
			tp, hasTopic := got[keyTopic]
			if v == id.RoomV1 {
				if tp != r.ev("C") {
					t.Errorf("v1: got %s; want C, the original algorithm keeps it", r.describe(got))
				}
			} else if hasTopic {
				t.Errorf("got topic %s; want none, its sender is banned", r.name(tp))
			}
		})
	}
}

// An event that was rejected is never admitted, even where the checks would pass it; and a
// rejected event is not used as an auth event.
func TestRejectedEventsAreSkipped(t *testing.T) {
	for _, v := range v2Versions {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(map[id.UserID]int{bob: 50}, bob)
			f := l.fork()
			tp := f.send("T", bob, "m.room.topic", sk(""), topic("hello"))
			if got := r.resolve(l.state, f.state); got[keyTopic] != r.ev("T") {
				t.Fatalf("control: got %s; want Bob's topic", r.describe(got))
			}
			tp.InternalMeta.Rejected = true
			if got, ok := r.resolve(l.state, f.state)[keyTopic]; ok {
				t.Errorf("got topic %s; want none, T was rejected", r.name(got))
			}
		})
	}
}

// Events the server does not have take no part; an event of another room, or an unknown room
// version, aborts.
func TestUnknownAndForeignEvents(t *testing.T) {
	ctx := context.Background()
	r := newRoom(t, id.RoomV11)
	l := r.start(nil, bob)
	f := l.fork()
	f.state[keyTopic] = "$unknown"
	got, err := stateres.Resolve(ctx, r.version, r.id, []stateres.StateMap{l.state, f.state}, r.events)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := got[keyTopic]; ok {
		t.Errorf("got topic %s from an unknown event", e)
	}

	foreign := *r.byName["IPOWER"]
	foreign.RoomID = "!other:a.test"
	foreign.InternalMeta.EventID = "$foreign"
	r.events["$foreign"] = &foreign
	f.state[keyPowerLevels] = "$foreign"
	_, err = stateres.Resolve(ctx, r.version, r.id, []stateres.StateMap{l.state, f.state}, r.events)
	if !errors.Is(err, stateres.ErrWrongRoom) {
		t.Errorf("Resolve with an event of another room: err = %v, want ErrWrongRoom", err)
	}

	_, err = stateres.Resolve(ctx, "org.example.custom", r.id, []stateres.StateMap{l.state, f.state}, r.events)
	if !errors.Is(err, stateres.ErrUnknownVersion) {
		t.Errorf("Resolve in an unknown room version: err = %v, want ErrUnknownVersion", err)
	}
}

// A restricted join authorised by another server's user carries that server's signature,
// which the auth rules verify: resolving such a join needs GetKey, and with it the join
// stands.
func TestRestrictedJoinNeedsKeys(t *testing.T) {
	ctx := context.Background()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []id.RoomVersion{id.RoomV10, id.RoomV11, id.RoomV12} {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(nil, bob)
			l.send("JR", alice, "m.room.join_rules", sk(""), map[string]any{
				"join_rule": "restricted",
				"allow":     []any{map[string]any{"type": "m.room_membership", "room_id": "!space:a.test"}},
			})
			f := l.fork()
			join := f.send("ME", evelyn, "m.room.member", skU(evelyn), map[string]any{
				"membership": "join", "join_authorised_via_users_server": bob,
			})
			if err := join.Sign(v, "b.test", "ed25519:1", priv); err != nil {
				t.Fatal(err)
			}
			states := []stateres.StateMap{l.state, f.state}

			_, err := stateres.Resolve(ctx, v, r.id, states, r.events)
			if !errors.Is(err, stateres.ErrNoGetKey) {
				t.Fatalf("Resolve without GetKey: err = %v, want ErrNoGetKey", err)
			}
			res := stateres.Resolver{Events: r.events, GetKey: func(server string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
				if server != "b.test" || keyID != "ed25519:1" {
					return "", time.Time{}, nil
				}
				return id.SigningKey(base64.RawStdEncoding.EncodeToString(pub)), time.Now().Add(time.Hour), nil
			}}
			got, err := res.Resolve(ctx, v, r.id, states)
			if err != nil {
				t.Fatal(err)
			}
			if got[memberKey(evelyn)] != r.ev("ME") {
				t.Errorf("got %s; want Evelyn's authorised join", r.describe(got))
			}
		})
	}
}

var _ stateres.Events = stateres.MapEvents(nil)

// Power events are ordered by their sender's power as the event's own auth events give it,
// not by the resolved power levels nor by time. Bob (50 when he sent it) and Dave (75) change
// the join rules on separate forks while Alice promotes Bob to 100 on a third. Dave's change
// is replayed first, so Bob's, replayed after, stands, though Bob sent his first and ends
// with more power than Dave.
func TestPowerOrderUsesAuthEvents(t *testing.T) {
	for _, v := range v2Versions {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			l := r.start(map[id.UserID]int{bob: 50, dave: 75}, bob, dave)
			fb, fd := l.fork(), l.fork()
			l.send("PROMOTE", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 100, dave: 75}))
			fb.send("JR_BOB", bob, "m.room.join_rules", sk(""), map[string]any{"join_rule": "invite", "by": "bob"})
			fd.send("JR_DAVE", dave, "m.room.join_rules", sk(""), map[string]any{"join_rule": "invite", "by": "dave"})
			got := r.resolve(l.state, fb.state, fd.state)
			if got[keyJoinRules] != r.ev("JR_BOB") || got[keyPowerLevels] != r.ev("PROMOTE") {
				t.Errorf("got %s; want Bob's join rules and Alice's promotion", r.describe(got))
			}
		})
	}
}
