package rooms_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	jsonv2 "encoding/json/v2"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/server/rooms"
	"fyr/storage"
)

// Room versions 1 and 2: events named by their servers, references with hashes, the old
// auth rules. These tests check the events against mautrix's own v1 implementation.

var oldVersions = []id.RoomVersion{id.RoomV1, id.RoomV2}

// namedID is the shape of an event ID in room versions 1 and 2 made by this test's server.
var namedID = regexp.MustCompile(`^\$[A-Za-z0-9]+:` + regexp.QuoteMeta(server) + `$`)

// fakeServer is another server's signing key, for events the tests make in its name.
type fakeServer struct {
	name  string
	keyID id.KeyID
	priv  ed25519.PrivateKey
}

func newFakeServer(name string) *fakeServer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return &fakeServer{name: name, keyID: "ed25519:fake", priv: priv}
}

func (f *fakeServer) publicKey() id.SigningKey {
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(f.priv.Public().(ed25519.PublicKey)))
}

// keyFunc knows the keys of the given servers.
func keyFunc(servers ...*fakeServer) pdu.GetKeyFunc {
	return func(name string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
		for _, s := range servers {
			if s.name == name && s.keyID == keyID {
				return s.publicKey(), time.Now().Add(time.Hour), nil
			}
		}
		return "", time.Time{}, fmt.Errorf("no key %s for %s", keyID, name)
	}
}

// sign signs and marshals an event in the fake server's name.
func (f *fakeServer) sign(t *testing.T, version id.RoomVersion, ev *pdu.RoomV1PDU) json.RawMessage {
	t.Helper()
	if err := ev.Sign(version, f.name, f.keyID, f.priv); err != nil {
		t.Fatal(err)
	}
	raw, err := canonicaljson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return json.RawMessage(raw)
}

func newEngineWithKey(tb testing.TB, opt rooms.Options) (*rooms.Engine, *keys.SigningKey) {
	tb.Helper()
	dir := tb.TempDir()
	db, err := storage.Open(context.Background(), filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	key, _, err := keys.LoadOrCreate(filepath.Join(dir, "signing.key"))
	if err != nil {
		tb.Fatal(err)
	}
	opt.ServerName, opt.Key = server, key
	return rooms.New(db, opt), key
}

func parseV1(t *testing.T, raw []byte) *pdu.RoomV1PDU {
	t.Helper()
	var p pdu.RoomV1PDU
	if err := jsonv2.Unmarshal(raw, &p); err != nil {
		t.Fatalf("not a room version 1 event: %v\n%s", err, raw)
	}
	return &p
}

// ref is how a room version 1 event references another: its ID and reference hash.
func ref(t *testing.T, version id.RoomVersion, p *pdu.RoomV1PDU) pdu.V1EventReference {
	t.Helper()
	h, err := p.GetReferenceHash(version)
	if err != nil {
		t.Fatal(err)
	}
	return pdu.V1EventReference{ID: p.EventID, Hashes: pdu.Hashes{SHA256: h[:]}}
}

func TestOldVersionsLocalEvents(t *testing.T) {
	ctx := context.Background()
	for _, v := range oldVersions {
		t.Run("v"+string(v), func(t *testing.T) {
			e, key := newEngineWithKey(t, rooms.Options{})
			alice, bob := user("alice"), user("bob")
			a := rooms.Sender{User: alice}
			room := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{RoomVersion: v, Preset: "public_chat", Name: new("Old")}))
			if got := must[id.RoomVersion](t)(e.Version(ctx, room)); got != v {
				t.Fatalf("room version %q, want %q", got, v)
			}
			create := must[*rooms.ClientEvent](t)(e.StateEvent(ctx, rooms.Viewer{User: alice}, room, "m.room.create", ""))
			var cc struct {
				Creator     id.UserID `json:"creator"`
				RoomVersion string    `json:"room_version"`
			}
			json.Unmarshal(create.Content, &cc)
			if cc.Creator != alice || cc.RoomVersion != string(v) || !namedID.MatchString(string(create.EventID)) {
				t.Fatalf("create event %s: %s", create.EventID, create.Content)
			}
			must[id.RoomID](t)(e.Join(ctx, bob, room, "", nil))
			msg := must[id.EventID](t)(e.Send(ctx, a, room, "m.room.message", "", text("hello")))
			topic := must[id.EventID](t)(e.SendState(ctx, a, room, "m.room.topic", "", json.RawMessage(`{"topic":"old times"}`)))
			bobMsg := must[id.EventID](t)(e.Send(ctx, rooms.Sender{User: bob}, room, "m.room.message", "", text("hi")))
			for _, x := range []id.EventID{msg, topic, bobMsg} {
				if !namedID.MatchString(string(x)) {
					t.Fatalf("event ID %q is not $opaque:%s", x, server)
				}
			}
			if got := fmt.Sprint(visibleBodies(t, e, bob, room)); got != "[hello hi]" {
				t.Fatalf("bob sees %s", got)
			}
			st := must[*rooms.ClientEvent](t)(e.StateEvent(ctx, rooms.Viewer{User: bob}, room, "m.room.topic", ""))
			if st.EventID != topic || string(st.Content) != `{"topic":"old times"}` {
				t.Fatalf("topic %s %s", st.EventID, st.Content)
			}

			// Bob (power 0) may not redact Alice's event; he may redact his own, Alice anyone's.
			if _, err := e.Redact(ctx, rooms.Sender{User: bob}, room, msg, "", nil); !errors.Is(err, rooms.ErrForbidden) {
				t.Fatalf("bob redacts alice's message: %v", err)
			}
			must[id.EventID](t)(e.Redact(ctx, rooms.Sender{User: bob}, room, bobMsg, "", nil))
			red := must[id.EventID](t)(e.Redact(ctx, a, room, msg, "", json.RawMessage(`{"reason":"typo"}`)))
			got := must[*rooms.ClientEvent](t)(e.Event(ctx, rooms.Viewer{User: bob}, room, msg))
			if string(got.Content) != "{}" || got.Unsigned["redacted_because"] == nil {
				t.Fatalf("redacted message: %s %v", got.Content, got.Unsigned)
			}
			rc := must[*rooms.ClientEvent](t)(e.Event(ctx, rooms.Viewer{User: bob}, room, red))
			if rc.Redacts != msg {
				t.Fatalf("redaction redacts %q, want %q", rc.Redacts, msg)
			}

			// As other servers see them: the ID in the event, references with the
			// referenced events' reference hashes, signed by us.
			pub := id.SigningKey(base64.RawStdEncoding.EncodeToString(key.Public()))
			ourKey := func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
				return pub, time.Now().Add(time.Hour), nil
			}
			for _, x := range []id.EventID{create.EventID, topic, red, msg} {
				raw := must[json.RawMessage](t)(e.RemoteEvent(ctx, server, x))
				p := parseV1(t, raw)
				if p.EventID != x {
					t.Fatalf("served %s as %s", x, p.EventID)
				}
				if err := p.VerifySignature(v, server, ourKey); err != nil {
					t.Fatalf("signature on %s: %v", x, err)
				}
				if x != msg && !p.VerifyContentHash() {
					t.Fatalf("content hash of %s", x)
				}
				if x == msg && string(p.Content) != "{}" {
					t.Fatalf("a redacted event is served with content %s", p.Content)
				}
				for _, r := range append(append([]pdu.V1EventReference{}, p.PrevEvents...), p.AuthEvents...) {
					target := parseV1(t, must[json.RawMessage](t)(e.RemoteEvent(ctx, server, r.ID)))
					if want := ref(t, v, target); base64.RawStdEncoding.EncodeToString(r.Hashes.SHA256) != base64.RawStdEncoding.EncodeToString(want.Hashes.SHA256) {
						t.Fatalf("%s references %s with hash %x, want %x", x, r.ID, r.Hashes.SHA256, want.Hashes.SHA256)
					}
				}
				if x == red && (p.Redacts == nil || *p.Redacts != msg) {
					t.Fatalf("the redaction's top-level redacts is %v", p.Redacts)
				}
			}
		})
	}
}

// oldRoom is a room of room version 1 or 2 on this server that a user of a fake server joined.
type oldRoom struct {
	t       *testing.T
	e       *rooms.Engine
	version id.RoomVersion
	id      id.RoomID
	remote  *fakeServer
	// create, power and last are events the fake server's next events reference.
	create, power, member, last *pdu.RoomV1PDU
	n                           int
}

func joinOldRoom(t *testing.T, v id.RoomVersion, e *rooms.Engine, room id.RoomID, remote *fakeServer, bob id.UserID) *oldRoom {
	t.Helper()
	ctx := context.Background()
	ver, tmpl, err := e.MakeMembership(ctx, remote.name, room, bob, "join", []string{"1", "2", "12"})
	if err != nil || ver != v {
		t.Fatalf("make_join: %s %v", ver, err)
	}
	join := parseV1(t, tmpl)
	if join.EventID != "" {
		t.Fatalf("the make_join template names the event %s; the joining server names it", join.EventID)
	}
	join.EventID = "$join:" + id.EventID(remote.name)
	// An authorising server means nothing before room version 8: no signature is needed.
	join.Content = []byte(`{"membership":"join","join_authorised_via_users_server":"` + string(user("alice")) + `"}`)
	raw := remote.sign(t, v, join)
	res, err := e.SendMembership(ctx, remote.name, room, join.EventID, "join", raw)
	if err != nil {
		t.Fatalf("send_join: %v", err)
	}
	r := &oldRoom{t: t, e: e, version: v, id: room, remote: remote, member: join, last: join}
	for _, s := range append(append([]json.RawMessage{}, res.State...), res.AuthChain...) {
		p := parseV1(t, s)
		if p.EventID == "" {
			t.Fatalf("send_join answered an event without event_id: %s", s)
		}
		switch p.Type {
		case "m.room.create":
			r.create = p
		case "m.room.power_levels":
			r.power = p
		}
	}
	if r.create == nil || r.power == nil {
		t.Fatal("send_join's state lacks the create event or the power levels")
	}
	return r
}

// event makes an event of the fake server's user on top of the last one.
func (r *oldRoom) event(sender id.UserID, evID id.EventID, typ string, stateKey *string, content string) *pdu.RoomV1PDU {
	r.n++
	if evID == "" {
		evID = id.EventID(fmt.Sprintf("$ev%d:%s", r.n, r.remote.name))
	}
	return &pdu.RoomV1PDU{
		EventID: evID, RoomID: r.id, Sender: sender, Type: typ, StateKey: stateKey,
		Content: []byte(content), Depth: r.last.Depth + 1, OriginServerTS: time.Now().UnixMilli(),
		PrevEvents: []pdu.V1EventReference{ref(r.t, r.version, r.last)},
		AuthEvents: []pdu.V1EventReference{ref(r.t, r.version, r.create), ref(r.t, r.version, r.power), ref(r.t, r.version, r.member)},
	}
}

// send delivers events as one transaction and returns the answer per event.
func (r *oldRoom) send(raws ...json.RawMessage) map[id.EventID]string {
	return r.e.HandlePDUs(context.Background(), r.remote.name, raws)
}

func TestOldVersionsFromAnotherServer(t *testing.T) {
	ctx := context.Background()
	remote, third := newFakeServer("remote.test"), newFakeServer("third.test")
	for _, v := range oldVersions {
		t.Run("v"+string(v), func(t *testing.T) {
			e, _ := newEngineWithKey(t, rooms.Options{KeyFunc: keyFunc(remote, third)})
			alice, bob := user("alice"), id.UserID("@bob:remote.test")
			va := rooms.Viewer{User: alice}
			room := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{RoomVersion: v, Preset: "public_chat"}))
			aliceMsg := must[id.EventID](t)(e.Send(ctx, rooms.Sender{User: alice}, room, "m.room.message", "", text("from alice")))
			r := joinOldRoom(t, v, e, room, remote, bob)
			if m, _ := e.Membership(ctx, bob, room); m != "join" {
				t.Fatalf("bob's membership after send_join: %q", m)
			}

			// A message, accepted and seen.
			msg := r.event(bob, "", "m.room.message", nil, `{"msgtype":"m.text","body":"from bob"}`)
			if res := r.send(remote.sign(t, v, msg)); res[msg.EventID] != "" {
				t.Fatalf("bob's message: %v", res)
			}
			r.last = msg
			if got := fmt.Sprint(visibleBodies(t, e, alice, room)); got != "[from alice from bob]" {
				t.Fatalf("alice sees %s", got)
			}
			// The ID names a third server that did not sign it: dropped.
			forged := r.event(bob, "$forged:third.test", "m.room.message", nil, `{"msgtype":"m.text","body":"forged"}`)
			if res := r.send(remote.sign(t, v, forged)); !strings.Contains(res[forged.EventID], "bad signature") {
				t.Fatalf("event named by an unsigning server: %v", res)
			}
			if _, err := e.Event(ctx, va, room, forged.EventID); !errors.Is(err, rooms.ErrNotFound) {
				t.Fatalf("the forged event was kept: %v", err)
			}
			// The same with the third server's signature too: accepted.
			cosigned := r.event(bob, "$cosigned:third.test", "m.room.message", nil, `{"msgtype":"m.text","body":"cosigned"}`)
			remote.sign(t, v, cosigned)
			if res := r.send(third.sign(t, v, cosigned)); res[cosigned.EventID] != "" {
				t.Fatalf("event signed by the server that named it: %v", res)
			}
			r.last = cosigned
			// Content that does not match its hash: kept, redacted.
			tampered := r.event(bob, "", "m.room.message", nil, `{"msgtype":"m.text","body":"original"}`)
			raw := strings.Replace(string(remote.sign(t, v, tampered)), "original", "tampered", 1)
			if res := r.send(json.RawMessage(raw)); res[tampered.EventID] != "" {
				t.Fatalf("event with a wrong content hash: %v", res)
			}
			r.last = tampered
			if got := must[*rooms.ClientEvent](t)(e.Event(ctx, va, room, tampered.EventID)); string(got.Content) != "{}" {
				t.Fatalf("event with a wrong content hash has content %s", got.Content)
			}

			// Rule 11: Bob may not redact Alice's event, named by another server; he may
			// redact his own.
			redAlice := r.event(bob, "", "m.room.redaction", nil, `{}`)
			redAlice.Redacts = &aliceMsg
			if res := r.send(remote.sign(t, v, redAlice)); !strings.Contains(res[redAlice.EventID], "redact") {
				t.Fatalf("bob redacts alice's message: %v", res)
			}
			if got := must[*rooms.ClientEvent](t)(e.Event(ctx, va, room, aliceMsg)); string(got.Content) == "{}" {
				t.Fatal("alice's message was redacted by a rejected redaction")
			}
			redOwn := r.event(bob, "", "m.room.redaction", nil, `{}`)
			redOwn.Redacts = &msg.EventID
			if res := r.send(remote.sign(t, v, redOwn)); res[redOwn.EventID] != "" {
				t.Fatalf("bob redacts his own message: %v", res)
			}
			r.last = redOwn
			if got := fmt.Sprint(visibleBodies(t, e, alice, room)); got != "[from alice cosigned]" {
				t.Fatalf("alice sees %s after the redaction", got)
			}

			// Rule 4: aliases of one's own server need no power; another server's, never.
			own, other := "remote.test", server
			aliases := r.event(bob, "", "m.room.aliases", &own, `{"aliases":["#old:remote.test"]}`)
			if res := r.send(remote.sign(t, v, aliases)); res[aliases.EventID] != "" {
				t.Fatalf("aliases of bob's own server: %v", res)
			}
			r.last = aliases
			theirs := r.event(bob, "", "m.room.aliases", &other, `{"aliases":["#old:test.local"]}`)
			if res := r.send(remote.sign(t, v, theirs)); res[theirs.EventID] == "" {
				t.Fatal("bob set another server's aliases")
			}

			// Served back in the same shape, with the hashes and signatures as sent.
			pdus := must[[]json.RawMessage](t)(e.Backfill(ctx, remote.name, room, []id.EventID{aliases.EventID}, 20))
			seen := map[id.EventID]bool{}
			for _, raw := range pdus {
				p := parseV1(t, raw)
				seen[p.EventID] = true
				if p.Sender == bob && p.Type != "m.room.redaction" && p.EventID != msg.EventID && p.EventID != tampered.EventID && !p.VerifyContentHash() {
					t.Fatalf("served %s with a broken content hash", p.EventID)
				}
				if err := p.VerifySignature(v, p.Sender.Homeserver(), keyFunc(remote, third)); p.Sender == bob && err != nil {
					t.Fatalf("served %s with a broken signature: %v", p.EventID, err)
				}
			}
			for _, x := range []id.EventID{aliases.EventID, redOwn.EventID, tampered.EventID, cosigned.EventID, msg.EventID, r.member.EventID, aliceMsg} {
				if !seen[x] {
					t.Fatalf("backfill from %s misses %s", aliases.EventID, x)
				}
			}
		})
	}
}

func TestOldVersionsInvite(t *testing.T) {
	ctx := context.Background()
	remote := newFakeServer("remote.test")
	for _, v := range oldVersions {
		t.Run("v"+string(v), func(t *testing.T) {
			e, key := newEngineWithKey(t, rooms.Options{KeyFunc: keyFunc(remote)})
			carol := user("carol")
			sk := string(carol)
			inv := &pdu.RoomV1PDU{EventID: "$inv:remote.test", RoomID: "!old:remote.test", Sender: "@dan:remote.test",
				Type: "m.room.member", StateKey: &sk, Content: []byte(`{"membership":"invite"}`), Depth: 5,
				OriginServerTS: time.Now().UnixMilli(), PrevEvents: []pdu.V1EventReference{}, AuthEvents: []pdu.V1EventReference{}}
			raw := remote.sign(t, v, inv)
			exists := func(id.UserID) bool { return true }
			if _, err := e.ReceiveInvite(ctx, remote.name, inv.RoomID, "$other:remote.test", v, raw, nil, exists); !errors.Is(err, rooms.ErrBadJSON) {
				t.Fatalf("invite under another event ID: %v", err)
			}
			signed, err := e.ReceiveInvite(ctx, remote.name, inv.RoomID, inv.EventID, v, raw, nil, exists)
			if err != nil {
				t.Fatal(err)
			}
			p := parseV1(t, signed)
			ours := func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
				return id.SigningKey(base64.RawStdEncoding.EncodeToString(key.Public())), time.Now().Add(time.Hour), nil
			}
			if p.EventID != inv.EventID || p.VerifySignature(v, server, ours) != nil || p.VerifySignature(v, remote.name, keyFunc(remote)) != nil {
				t.Fatalf("countersigned invite: %s", signed)
			}
			if m, _ := e.Membership(ctx, carol, inv.RoomID); m != "invite" {
				t.Fatalf("carol's membership: %q", m)
			}
		})
	}
}

// An invite in a later room version is countersigned the same way, its signatures kept.
func TestInviteCountersigned(t *testing.T) {
	ctx := context.Background()
	remote := newFakeServer("remote.test")
	e, key := newEngineWithKey(t, rooms.Options{KeyFunc: keyFunc(remote)})
	sk := string(user("carol"))
	inv := &pdu.PDU{RoomID: "!new:remote.test", Sender: "@dan:remote.test", Type: "m.room.member", StateKey: &sk,
		Content: []byte(`{"membership":"invite"}`), Depth: 5, OriginServerTS: time.Now().UnixMilli(),
		PrevEvents: []id.EventID{}, AuthEvents: []id.EventID{}}
	if err := inv.Sign(id.RoomV10, remote.name, remote.keyID, remote.priv); err != nil {
		t.Fatal(err)
	}
	evID := must[id.EventID](t)(inv.GetEventID(id.RoomV10))
	raw := must[[]byte](t)(jsonv2.Marshal(inv))
	signed, err := e.ReceiveInvite(ctx, remote.name, inv.RoomID, evID, id.RoomV10, raw, nil, func(id.UserID) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var p pdu.PDU
	if err := jsonv2.Unmarshal(signed, &p); err != nil {
		t.Fatal(err)
	}
	ours := func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
		return id.SigningKey(base64.RawStdEncoding.EncodeToString(key.Public())), time.Now().Add(time.Hour), nil
	}
	if got, _ := p.GetEventID(id.RoomV10); got != evID || p.VerifySignature(id.RoomV10, server, ours) != nil ||
		p.VerifySignature(id.RoomV10, remote.name, keyFunc(remote)) != nil {
		t.Fatalf("countersigned invite: %s", signed)
	}
}
