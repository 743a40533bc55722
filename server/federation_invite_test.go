package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/federation/inbound"
	"fyr/federation/transport"
	"fyr/server/config"
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

// refusingPeer serves the federation API of server name over TLS (a certificate from the
// test CA) and answers every request with the status and JSON body in answer.
func refusingPeer(t *testing.T, caCert, caKey, name string, answer *atomic.Value) (addr string) {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "peer.crt"), filepath.Join(dir, "peer.key")
	if _, err := transport.EnsureCertificate(certPath, keyPath, name, caCert, caKey); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answer.Load().([2]string)
		w.Header().Set("Content-Type", "application/json")
		status := 400
		if a[0] == "401" {
			status = 401
		}
		w.WriteHeader(status)
		w.Write([]byte(a[1]))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).String()
}

// TestRemoteRefusalReachesClient: when the invitee's server refuses an invite with 400, the
// inviter gets that 400 and errcode (as from Synapse), not a 500; another status, such as a
// 401 about this server's signature, becomes 502, never a 401 the client would take for its
// own token's.
func TestRemoteRefusalReachesClient(t *testing.T) {
	ctx := context.Background()
	caCert, caKey := servertest.TestCA(t)
	var answer atomic.Value
	answer.Store([2]string{"400", `{"errcode":"M_INCOMPATIBLE_ROOM_VERSION","error":"no such version here","room_version":"12"}`})
	addr := refusingPeer(t, caCert, caKey, "old.test", &answer)
	hs := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.ServerName = "hs1.test"
		c.Federation.CAFile = caCert
		c.Federation.StaticPeers = "old.test=" + addr
	}))
	alice := hs.Register(t, "alice", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.InviteUser(ctx, resp.RoomID, &mautrix.ReqInviteUser{UserID: "@bob:old.test"})
	if code, status := servertest.ErrCode(err); status != 400 || code != "M_INCOMPATIBLE_ROOM_VERSION" || !strings.Contains(err.Error(), "old.test") {
		t.Errorf("invite refused by the invitee's server with 400: %d %s (%v), want 400 M_INCOMPATIBLE_ROOM_VERSION naming old.test", status, code, err)
	}
	answer.Store([2]string{"401", `{"errcode":"M_UNAUTHORIZED","error":"bad signature"}`})
	_, err = alice.InviteUser(ctx, resp.RoomID, &mautrix.ReqInviteUser{UserID: "@bob:old.test"})
	if code, status := servertest.ErrCode(err); status != 502 || code != "M_UNKNOWN" {
		t.Errorf("invite refused by the invitee's server with 401: %d %s (%v), want 502 M_UNKNOWN", status, code, err)
	}
	var m event.MemberEventContent
	if err := alice.StateEvent(ctx, resp.RoomID, event.StateMember, "@bob:old.test", &m); err == nil {
		t.Errorf("a refused invite is in the room's state: %+v", m)
	}
}
