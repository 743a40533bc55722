package stateres_test

import (
	"testing"

	"maunium.net/go/mautrix/id"
)

// v2Versions are the room versions whose algorithm is state resolution v2 or v2.1. The
// classic cases resolve the same way under all of them.
var v2Versions = []id.RoomVersion{id.RoomV2, id.RoomV6, id.RoomV10, id.RoomV11, id.RoomV12}

// The classic cases every implementation of state resolution v2 checks itself against
// (Synapse's tests/state/test_v2.py, ruma's state-res tests), rebuilt here: a public room with
// Alice as admin and Bob, Charlie and Zara joined; the events of each case hang off START and
// merge at END.
func TestClassicCases(t *testing.T) {
	cases := []struct {
		name   string
		nodes  func(r *room) []node
		chains [][]string
		// want names the events expected in the state at END, besides the keys it shares
		// with START.
		want []string
	}{
		{
			// Alice bans Bob while Bob, a moderator, sends power levels: the ban is ordered
			// first (Alice has more power) and Bob's event then fails, being sent by a
			// banned user.
			name: "ban vs power levels",
			nodes: func(r *room) []node {
				return []node{
					{"PA", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"MA", alice, "m.room.member", skU(alice), membership("join")},
					{"MB", alice, "m.room.member", skU(bob), membership("ban")},
					{"PB", bob, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
				}
			},
			chains: [][]string{{"END", "MB", "MA", "PA", "START"}, {"END", "PB", "PA"}},
			want:   []string{"PA", "MA", "MB"},
		},
		{
			// Alice makes the room invite-only while Evelyn joins on another branch: the
			// join rules are a power event and win; Evelyn's join then fails.
			name: "join rule evasion",
			nodes: func(*room) []node {
				return []node{
					{"JR", alice, "m.room.join_rules", sk(""), joinRule("invite")},
					{"ME", evelyn, "m.room.member", skU(evelyn), membership("join")},
				}
			},
			chains: [][]string{{"END", "JR", "START"}, {"END", "ME", "START"}},
			want:   []string{"JR"},
		},
		{
			// Charlie, made moderator by Bob, demotes himself on one branch; the other
			// branch still has Alice's PA. The chain PA, PB, PC is replayed in order.
			name: "offtopic power levels",
			nodes: func(r *room) []node {
				return []node{
					{"PA", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"PB", bob, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50, charlie: 50})},
					{"PC", charlie, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50, charlie: 0})},
				}
			},
			chains: [][]string{{"END", "PC", "PB", "PA", "START"}, {"END", "PA"}},
			want:   []string{"PC"},
		},
		{
			// Alice demotes Bob (PA2) while Bob re-sends his own level and sets a topic:
			// PA2 wins, Bob's topic T3 fails, and Alice's last topic T2 stays.
			name: "topic basic",
			nodes: func(r *room) []node {
				return []node{
					{"T1", alice, "m.room.topic", sk(""), topic("T1")},
					{"PA1", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"T2", alice, "m.room.topic", sk(""), topic("T2")},
					{"PA2", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 0})},
					{"PB", bob, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"T3", bob, "m.room.topic", sk(""), topic("T3")},
				}
			},
			chains: [][]string{{"END", "PA2", "T2", "PA1", "T1", "START"}, {"END", "T3", "PB", "PA1"}},
			want:   []string{"PA2", "T2"},
		},
		{
			// Bob sets a topic and is then banned; the other branch only saw T1. Bob's ban
			// is replayed before his topic T2, which then fails, so T1 is the topic.
			name: "topic reset",
			nodes: func(r *room) []node {
				return []node{
					{"T1", alice, "m.room.topic", sk(""), topic("T1")},
					{"PA", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"T2", bob, "m.room.topic", sk(""), topic("T2")},
					{"MB", alice, "m.room.member", skU(bob), membership("ban")},
				}
			},
			chains: [][]string{{"END", "MB", "T2", "PA", "T1", "START"}, {"END", "T1"}},
			want:   []string{"T1", "MB", "PA"},
		},
		{
			// topic basic with a message in between and a later topic by Alice, T4, which
			// wins on mainline order.
			name: "topic",
			nodes: func(r *room) []node {
				return []node{
					{"T1", alice, "m.room.topic", sk(""), topic("T1")},
					{"PA1", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"T2", alice, "m.room.topic", sk(""), topic("T2")},
					{"PA2", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 0})},
					{"PB", bob, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"T3", bob, "m.room.topic", sk(""), topic("T3")},
					{"MZ1", zara, "m.room.message", nil, map[string]any{"body": "hi"}},
					{"T4", alice, "m.room.topic", sk(""), topic("T4")},
				}
			},
			chains: [][]string{
				{"END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"},
				{"END", "MZ1", "T3", "PB", "PA1"},
			},
			want: []string{"T4", "PA2"},
		},
		{
			// T4 is sent after T3 but cites an older mainline power level (PA1 via PB),
			// so mainline ordering replays it first and T3 wins.
			name: "mainline sort",
			nodes: func(r *room) []node {
				return []node{
					{"T1", alice, "m.room.topic", sk(""), topic("T1")},
					{"PA1", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"T2", alice, "m.room.topic", sk(""), topic("T2")},
					{"PA2", alice, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50},
						map[string]any{"events": map[string]int{"m.room.power_levels": 100}})},
					{"PB", bob, "m.room.power_levels", sk(""), r.powerLevels(map[id.UserID]int{alice: 100, bob: 50})},
					{"T3", bob, "m.room.topic", sk(""), topic("T3")},
					{"T4", alice, "m.room.topic", sk(""), topic("T4")},
				}
			},
			chains: [][]string{
				{"END", "T3", "PA2", "T2", "PA1", "T1", "START"},
				{"END", "T4", "PB", "PA1"},
			},
			want: []string{"T3", "PA2"},
		},
		{
			// Evelyn and Dave join on separate branches: nothing conflicts but the keys
			// each branch lacks, and both joins stand.
			name: "concurrent joins",
			nodes: func(*room) []node {
				return []node{
					{"ME", evelyn, "m.room.member", skU(evelyn), membership("join")},
					{"MD", dave, "m.room.member", skU(dave), membership("join")},
				}
			},
			chains: [][]string{{"END", "ME", "START"}, {"END", "MD", "START"}},
			want:   []string{"ME", "MD"},
		},
	}
	for _, v := range v2Versions {
		for _, c := range cases {
			t.Run(string(v)+"/"+c.name, func(t *testing.T) {
				r := newRoom(t, v)
				d := buildDAG(t, r, c.nodes(r), c.chains...)
				got, want := d.changedAtEnd(c.want...), r.stateOf(c.want...)
				if !sameState(got, want) {
					t.Errorf("state at END:\n got %s\nwant %s", r.describe(got), r.describe(want))
				}
			})
		}
	}
}
