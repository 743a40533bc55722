package stateres_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
)

// try adds an event to the timeline if the timeline's own state allows it, as an honest
// server would; otherwise the event is dropped and try returns nil.
func (l *line) try(name string, sender id.UserID, typ string, stateKey *string, content any) *pdu.PDU {
	r := l.r
	r.tb.Helper()
	p := r.add(name, sender, typ, stateKey, content, l.state, l.last...)
	get := func(ids []id.EventID) ([]*pdu.PDU, error) {
		var out []*pdu.PDU
		for _, e := range ids {
			if ev := r.events[e]; ev != nil {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	if err := eventauth.Authorize(r.version, p, nil, get, nil); err != nil {
		delete(r.events, p.InternalMeta.EventID)
		delete(r.byName, name)
		return nil
	}
	l.apply(p)
	return p
}

// grow adds up to n events that the timeline's state allows, drawn at random: topics, power
// level changes, kicks, bans, joins, leaves, join rule changes and other state, sent by
// random users among users.
func (l *line) grow(rnd *rand.Rand, prefix string, n int, users []id.UserID) {
	r := l.r
	pick := func() id.UserID { return users[rnd.IntN(len(users))] }
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		sender := pick()
		switch rnd.IntN(8) {
		case 0:
			l.try(name, sender, "m.room.topic", sk(""), topic(name))
		case 1:
			levels := l.userLevels()
			levels[pick()] = []int{0, 50, 100}[rnd.IntN(3)]
			l.try(name, sender, "m.room.power_levels", sk(""), r.powerLevels(levels))
		case 2:
			l.try(name, sender, "m.room.member", skU(pick()), membership("ban"))
		case 3:
			l.try(name, sender, "m.room.member", skU(pick()), membership("leave"))
		case 4:
			l.try(name, sender, "m.room.member", skU(sender), membership("join"))
		case 5:
			l.try(name, sender, "m.room.join_rules", sk(""), joinRule([]string{"public", "invite"}[rnd.IntN(2)]))
		case 6:
			l.try(name, sender, "m.room.member", skU(pick()), membership("invite"))
		default:
			l.try(name, sender, "x.test", sk(fmt.Sprint(rnd.IntN(20))), map[string]any{"n": name})
		}
	}
}

// userLevels reads the users of the timeline's current power levels.
func (l *line) userLevels() map[id.UserID]int {
	var c struct {
		Users map[id.UserID]int `json:"users"`
	}
	if e, ok := l.state[keyPowerLevels]; ok {
		_ = json.Unmarshal(l.r.events[e].Content, &c)
	}
	if c.Users == nil {
		c.Users = map[id.UserID]int{}
	}
	if !l.r.version.PrivilegedRoomCreators() {
		c.Users[alice] = 100
	}
	return c.Users
}

// randomForks builds a room with a few admins and moderators and the given number of forks
// off one point, each grown at random from seed.
func randomForks(tb testing.TB, v id.RoomVersion, seed uint64, forks, events int) (*room, []stateres.StateMap) {
	r := newRoom(tb, v)
	users := []id.UserID{alice, bob, charlie, dave, evelyn, zara}
	l := r.start(map[id.UserID]int{bob: 100, charlie: 50, dave: 50}, bob, charlie, dave, evelyn, zara)
	rnd := rand.New(rand.NewPCG(seed, seed^0x5eed))
	l.grow(rnd, "BASE", events, users)
	var states []stateres.StateMap
	for i := range forks {
		f := l.fork()
		f.grow(rnd, fmt.Sprintf("F%d.", i), events, users)
		states = append(states, f.state)
	}
	return r, states
}

// The resolved state does not depend on the order of the states nor on Go's map order.
func TestDeterministic(t *testing.T) {
	for _, v := range []id.RoomVersion{id.RoomV2, id.RoomV6, id.RoomV11, id.RoomV12} {
		for seed := range uint64(5) {
			t.Run(fmt.Sprintf("%s/seed %d", v, seed), func(t *testing.T) {
				r, states := randomForks(t, v, seed, 3, 40)
				want := r.resolve(states...)
				rnd := rand.New(rand.NewPCG(seed, 7))
				for range 20 {
					shuffled := slices.Clone(states)
					rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
					if got := r.resolve(shuffled...); !sameState(got, want) {
						t.Fatalf("order changed the result:\n got %s\nwant %s", r.describe(got), r.describe(want))
					}
				}
			})
		}
	}
}

// Resolving a state with itself, or alone, gives it back.
func TestResolveIdentity(t *testing.T) {
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV11, id.RoomV12} {
		r, states := randomForks(t, v, 1, 1, 30)
		s := states[0]
		for _, in := range [][]stateres.StateMap{{s}, {s, s}, {s, with(s), s}} {
			if got := r.resolve(in...); !sameState(got, s) {
				t.Errorf("v%s: resolving %d copies of a state:\n got %s\nwant %s", v, len(in), r.describe(got), r.describe(s))
			}
		}
		if got := r.resolve(); len(got) != 0 {
			t.Errorf("v%s: resolving no states = %s, want empty", v, r.describe(got))
		}
	}
}
