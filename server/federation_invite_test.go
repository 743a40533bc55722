package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/federation/inbound"
	"fyr/server/servertest"
)

// pduTap hands PDUs on to the rooms engine and remembers the memberships among them, as
// "membership state_key".
type pduTap struct {
	next inbound.PDUHandler
	mu   sync.Mutex
	seen []string
}

func (p *pduTap) HandlePDUs(ctx context.Context, origin string, pdus []json.RawMessage) map[id.EventID]string {
	p.mu.Lock()
	for _, raw := range pdus {
		if gjson.GetBytes(raw, "type").Str == "m.room.member" {
			p.seen = append(p.seen, gjson.GetBytes(raw, "content.membership").Str+" "+gjson.GetBytes(raw, "state_key").Str)
		}
	}
	p.mu.Unlock()
	return p.next.HandlePDUs(ctx, origin, pdus)
}

func (p *pduTap) memberships() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// TestInviteReachesInviteeOnlyThroughInvite: a server that is not in a room learns of an
// invite through PUT /invite alone, not again in a transaction (where it is an event in a room
// it does not know: Dendrite then fetches the room's earlier events, rejects them all, and its
// user later cannot see the history from before joining). The invite's withdrawal, which it
// has no other way to learn of, does come in a transaction.
func TestInviteReachesInviteeOnlyThroughInvite(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	tap := &pduTap{next: hs2.Inbound.PDUs}
	hs2.Inbound.PDUs = tap
	alice := hs1.Register(t, "alice", "correct horse battery")
	carol := hs2.Register(t, "carol", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	membership := func() event.Membership {
		var m event.MemberEventContent
		if err := carol.StateEvent(ctx, room, event.StateMember, string(carol.UserID), &m); err != nil {
			return ""
		}
		return m.Membership
	}
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if m := membership(); m != event.MembershipInvite {
		t.Fatalf("carol's membership on hs2 after the invite: %q", m)
	}
	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	// hs1's queue to hs2 is ordered: had the invite been queued, it would arrive first.
	waitFor(t, "the withdrawal on hs2", func() bool { return membership() == event.MembershipLeave })
	if got, want := tap.memberships(), []string{"leave " + string(carol.UserID)}; !slices.Equal(got, want) {
		t.Errorf("memberships hs2 received in transactions: %q, want %q", got, want)
	}
}
