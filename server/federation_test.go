package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
	"fyr/storage"
)

// recorder stands in for the rooms engine on a receiving server: it keeps every PDU it is
// handed, in order.
type recorder struct {
	mu   sync.Mutex
	pdus []string
}

func (r *recorder) HandlePDUs(_ context.Context, _ string, pdus []json.RawMessage) map[id.EventID]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pdus {
		r.pdus = append(r.pdus, string(p))
	}
	return nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.pdus...)
}

func listen(s *servertest.Server) *recorder {
	r := &recorder{}
	s.Inbound.PDUs = r
	return r
}

func enqueue(t testing.TB, s *servertest.Server, from, to int, dests ...string) {
	t.Helper()
	err := s.DB.Write(context.Background(), func(tx *storage.Tx) error {
		for i := from; i < to; i++ {
			for _, d := range dests {
				if err := tx.EnqueueOutbound(d, storage.OutboundPDU, []byte(fmt.Sprintf(`{"n":%d}`, i)), 0, 0); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dests {
		s.Outbound.Notify(d)
	}
}

func waitCount(t testing.TB, what string, r *recorder, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); len(r.got()) < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d PDUs arrived", what, len(r.got()), n)
		}
	}
}

func inOrderOnce(t testing.TB, what string, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: received %d PDUs, want exactly %d", what, len(got), n)
	}
	for i, p := range got {
		if want := fmt.Sprintf(`{"n":%d}`, i); p != want {
			t.Fatalf("%s: PDU %d is %s, want %s", what, i, p, want)
		}
	}
}

// TestFederationOutage runs three servers over real TLS with a test CA and static peers.
// b.test is down while a.test queues events for b.test and c.test: c.test gets its events at
// once; a.test restarts during the outage; when b.test comes back it receives every event
// exactly once and in order.
func TestFederationOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three servers")
	}
	fed := servertest.Federation(t, "a.test", "b.test", "c.test")
	a, b, c := fed["a.test"], fed["b.test"], fed["c.test"]
	recC := listen(c)
	b.Stop(t)

	enqueue(t, a, 0, 120, "b.test", "c.test")
	waitCount(t, "c.test while b.test is down", recC, 120)
	inOrderOnce(t, "c.test", recC.got(), 120)

	a.Restart(t) // the sender restarts mid-outage: the queue is on disk
	enqueue(t, a, 120, 150, "b.test")
	var recB *recorder
	b.Restart(t, func(s *servertest.Server) { recB = listen(s) })
	waitCount(t, "b.test after it returned", recB, 150)
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show
	inOrderOnce(t, "b.test", recB.got(), 150)
}

// TestInboundTransactionChecks: a transaction is answered once per ID, bounded in size, and
// must come from the server that signed it.
func TestInboundTransactionChecks(t *testing.T) {
	fed := servertest.Federation(t, "a.test", "b.test")
	a, b := fed["a.test"], fed["b.test"]
	rec := listen(b)
	ctx := context.Background()
	send := func(txnID string, body any) error {
		return a.FedClient.Do(ctx, "b.test", "PUT", "/_matrix/federation/v1/send/"+txnID, body, nil)
	}
	txn := map[string]any{"origin": "a.test", "origin_server_ts": 1, "pdus": []any{map[string]int{"n": 0}}}
	for range 2 {
		if err := send("t1", txn); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.got(); len(got) != 1 {
		t.Errorf("a transaction sent twice was applied %d times", len(got))
	}
	forged := map[string]any{"origin": "c.test", "origin_server_ts": 1, "pdus": []any{}}
	if err := send("t2", forged); err == nil {
		t.Error("a transaction claiming another origin was accepted")
	}
	big := map[string]any{"origin": "a.test", "origin_server_ts": 1, "pdus": make([]map[string]int, 51)}
	if err := send("t3", big); err == nil {
		t.Error("a transaction of 51 PDUs was accepted")
	}
	// Unsigned requests never reach the handler.
	if err := a.FedClient.DoUnsigned(ctx, "b.test", "PUT", "/_matrix/federation/v1/send/t4", txn, nil); err == nil {
		t.Error("an unsigned transaction was accepted")
	}
	if got := rec.got(); len(got) != 1 {
		t.Errorf("refused transactions reached the handler: %d PDUs", len(got))
	}
}

// BenchmarkFederationCatchUp10k is the time for a returning server to receive 10,000 events
// queued for it, over TLS on loopback.
//
//	go test -run '^$' -bench CatchUp10k -benchtime 1x ./server/
func BenchmarkFederationCatchUp10k(b *testing.B) {
	for range b.N {
		b.StopTimer()
		fed := servertest.Federation(b, "a.test", "b.test")
		a, peer := fed["a.test"], fed["b.test"]
		peer.Stop(b)
		enqueue(b, a, 0, 10_000, "b.test")
		var rec *recorder
		peer.Restart(b, func(s *servertest.Server) { rec = listen(s) })
		b.StartTimer()
		a.Outbound.PeerAlive("b.test")
		waitCount(b, "catch-up", rec, 10_000)
		b.StopTimer()
		inOrderOnce(b, "catch-up", rec.got(), 10_000)
	}
}

// TestFederatedProfile: a client of a.test reads the profile of a b.test user, which a.test
// fetches with a signed federation query; a missing user is 404 on both sides.
func TestFederatedProfile(t *testing.T) {
	fed := servertest.Federation(t, "a.test", "b.test")
	a, b := fed["a.test"], fed["b.test"]
	bob := b.Register(t, "bob", "pw")
	if err := bob.SetDisplayName(context.Background(), "Bob of B"); err != nil {
		t.Fatal(err)
	}
	alice := a.Register(t, "alice", "pw")
	p, err := alice.GetProfile(context.Background(), "@bob:b.test")
	if err != nil || p.DisplayName != "Bob of B" {
		t.Fatalf("remote profile = %+v, %v", p, err)
	}
	status, body, _ := a.Do(t, "GET", "/_matrix/client/v3/profile/@nobody:b.test", alice.AccessToken, nil)
	if status != 404 {
		t.Errorf("profile of a missing remote user = %d %s, want 404", status, body)
	}
	// A field query returns only that field.
	var got map[string]any
	if err := a.FedClient.Do(context.Background(), "b.test", "GET",
		"/_matrix/federation/v1/query/profile?user_id=%40bob%3Ab.test&field=displayname", nil, &got); err != nil || len(got) != 1 || got["displayname"] != "Bob of B" {
		t.Errorf("field query = %v, %v", got, err)
	}
	// b.test answers only for its own users.
	if err := a.FedClient.Do(context.Background(), "b.test", "GET",
		"/_matrix/federation/v1/query/profile?user_id=%40alice%3Aa.test", nil, &got); err == nil {
		t.Error("b.test answered a profile query for a.test's user")
	}
}

// TestOpenID: a user asks their server for an OpenID token; another service (here b.test's
// federation client) exchanges it at the user's server for the user ID, and nothing else.
func TestOpenID(t *testing.T) {
	fed := servertest.Federation(t, "a.test", "b.test")
	a, b := fed["a.test"], fed["b.test"]
	alice := a.Register(t, "alice", "pw")
	ctx := context.Background()
	var tok struct {
		AccessToken      string `json:"access_token"`
		TokenType        string `json:"token_type"`
		MatrixServerName string `json:"matrix_server_name"`
		ExpiresIn        int    `json:"expires_in"`
	}
	if _, err := alice.MakeRequest(ctx, "POST", alice.BuildClientURL("v3", "user", alice.UserID, "openid", "request_token"), struct{}{}, &tok); err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.MatrixServerName != "a.test" || tok.ExpiresIn != 3600 || tok.AccessToken == "" {
		t.Fatalf("token = %+v", tok)
	}
	var info map[string]string
	if err := b.FedClient.DoUnsigned(ctx, "a.test", "GET", "/_matrix/federation/v1/openid/userinfo?access_token="+tok.AccessToken, nil, &info); err != nil || info["sub"] != "@alice:a.test" {
		t.Fatalf("userinfo = %v, %v", info, err)
	}
	if err := b.FedClient.DoUnsigned(ctx, "a.test", "GET", "/_matrix/federation/v1/openid/userinfo?access_token=forged", nil, &info); err == nil {
		t.Error("a forged OpenID token was accepted")
	}
	// The OpenID token is not an access token.
	status, _, _ := a.Do(t, "GET", "/_matrix/client/v3/account/whoami", tok.AccessToken, nil)
	if status != 401 {
		t.Errorf("whoami with an OpenID token = %d, want 401", status)
	}
	// Nor may one user ask for another's.
	status, _, _ = a.Do(t, "POST", "/_matrix/client/v3/user/@bob:a.test/openid/request_token", alice.AccessToken, strings.NewReader("{}"))
	if status != 403 {
		t.Errorf("OpenID token for another user = %d, want 403", status)
	}
}

// TestUnsendableItemDoesNotBlockQueue: an item that cannot be signed (an integer beyond
// canonical JSON's range) is dropped instead of being retried forever in front of the rest.
func TestUnsendableItemDoesNotBlockQueue(t *testing.T) {
	fed := servertest.Federation(t, "a.test", "b.test")
	a, b := fed["a.test"], fed["b.test"]
	rec := listen(b)
	ctx := context.Background()
	if err := a.DB.Write(ctx, func(tx *storage.Tx) error {
		return tx.EnqueueOutbound("b.test", storage.OutboundPDU, []byte(`{"n":9007199254740993}`), 0, 0)
	}); err != nil {
		t.Fatal(err)
	}
	a.Outbound.Notify("b.test")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if left, _ := a.DB.OutboundDestinations(ctx); len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unsendable item is still queued")
		}
	}
	enqueue(t, a, 0, 3, "b.test")
	waitCount(t, "events after the unsendable one", rec, 3)
	inOrderOnce(t, "b.test", rec.got(), 3)
}
