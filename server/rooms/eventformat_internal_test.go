package rooms

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	jsonv2 "encoding/json/v2"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/storage"
)

func testEngine(t *testing.T) *Engine {
	t.Helper()
	dir := t.TempDir()
	db, err := storage.Open(context.Background(), filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _, err := keys.LoadOrCreate(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return New(db, Options{ServerName: "a.test", Key: key})
}

// oddV1Event is a well-formed room version 1 event in the shapes a struct does not keep: an
// empty hashes object in a reference, an extra key in another, an unknown top-level field
// and the deprecated origin and prev_state.
const oddV1Event = `{"auth_events":[["$create:a.test",{}]],"content":{"body":"hi","msgtype":"m.text"},` +
	`"depth":3,"event_id":"$m1:a.test","origin":"a.test","origin_server_ts":1700000000000,` +
	`"prev_events":[["$prev:a.test",{"sha256":"AAAA","x":1}]],"prev_state":[],"room_id":"!r:a.test",` +
	`"sender":"@u:a.test","type":"m.room.message","unknown_field":{"b":1,"a":2},"unsigned":{"age":5}}`

func TestV1WireFormIsKeptExactly(t *testing.T) {
	e := testEngine(t)
	p, err := decodePDU(id.RoomV1, []byte(oddV1Event))
	if err != nil {
		t.Fatal(err)
	}
	if p.InternalMeta.EventID != "$m1:a.test" || !slices.Equal(p.PrevEvents, []id.EventID{"$prev:a.test"}) ||
		!slices.Equal(p.AuthEvents, []id.EventID{"$create:a.test"}) {
		t.Fatalf("decoded %s prev %v auth %v", p.InternalMeta.EventID, p.PrevEvents, p.AuthEvents)
	}
	wire, _ := wireJSON(id.RoomV1, p)
	obj, _ := parseObject([]byte(oddV1Event))
	delete(obj, "unsigned")
	want, _ := marshalCanonical(obj)
	if string(wire) != string(want) {
		t.Fatalf("wire form\n%s\nwant\n%s", wire, want)
	}
	// Hash and sign the odd event as its server would, then check it as we receive it.
	sum, _ := contentHashV1(obj)
	obj["hashes"], _ = jsonv2.Marshal(map[string]string{"sha256": b64(sum[:])})
	if err := e.addSignatureV1(obj, id.RoomV1); err != nil {
		t.Fatal(err)
	}
	raw, _ := marshalCanonical(obj)
	p, err = decodePDU(id.RoomV1, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !contentHashOK(id.RoomV1, p) {
		t.Fatal("content hash of the odd event")
	}
	if err := e.verifySignature(id.RoomV1, p, "a.test"); err != nil {
		t.Fatalf("signature of the odd event: %v", err)
	}
	// Tampering with what the signature covers is caught; with the content, only the hash.
	for _, tc := range []struct {
		from, to      string
		sigOK, hashOK bool
	}{
		{`"depth":3`, `"depth":4`, false, false},
		{`"hi"`, `"ho"`, true, false},
		{`"a":2`, `"a":3`, true, false},
		{`{}]]`, `{"sha256":""}]]`, false, false},
	} {
		q, err := decodePDU(id.RoomV1, []byte(replaceOnce(string(raw), tc.from, tc.to)))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.verifySignature(id.RoomV1, q, "a.test") == nil; got != tc.sigOK {
			t.Errorf("%s→%s: signature valid %v, want %v", tc.from, tc.to, got, tc.sigOK)
		}
		if got := contentHashOK(id.RoomV1, q); got != tc.hashOK {
			t.Errorf("%s→%s: content hash valid %v, want %v", tc.from, tc.to, got, tc.hashOK)
		}
	}
}

func replaceOnce(s, from, to string) string {
	for i := 0; i+len(from) <= len(s); i++ {
		if s[i:i+len(from)] == from {
			return s[:i] + to + s[i+len(from):]
		}
	}
	panic(fmt.Sprintf("%q not in %s", from, s))
}

// Our room version 1 code and mautrix's RoomV1PDU agree on well-formed events: the same
// redaction, reference hash and signatures, both ways.
func TestV1AgreesWithMautrix(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t)
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV2} {
		sk := "@u:a.test"
		p := &pdu.PDU{RoomID: "!r:a.test", Sender: "@u:a.test", Type: "m.room.member", StateKey: &sk,
			Content: []byte(`{"membership":"join","displayname":"U"}`), Depth: 1, OriginServerTS: 1,
			PrevEvents: []id.EventID{}, AuthEvents: []id.EventID{}}
		sealed, raw, err := e.seal(ctx, v, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		var m pdu.RoomV1PDU
		if err := jsonv2.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		pub := id.SigningKey(base64.RawStdEncoding.EncodeToString(e.opt.Key.Public()))
		getKey := func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) { return pub, time.Now(), nil }
		if m.EventID != sealed.InternalMeta.EventID || !m.VerifyContentHash() || m.VerifySignature(v, "a.test", getKey) != nil {
			t.Fatalf("v%s: mautrix does not accept our event %s", v, raw)
		}
		// Reference hashes agree.
		obj, _ := parseObject(raw)
		msg, _ := signingInputV1(obj, v)
		ours := sha256.Sum256(msg)
		theirs, _ := m.GetReferenceHash(v)
		if ours != theirs {
			t.Fatalf("v%s: reference hash %x, mautrix %x", v, ours, theirs)
		}
		// Redactions agree.
		red, err := redactPDU(v, sealed)
		if err != nil {
			t.Fatal(err)
		}
		ourRed, _ := wireJSON(v, red)
		theirRed, _ := canonicaljson.Marshal(m.Clone().Redact(v))
		if string(ourRed) != string(theirRed) {
			t.Fatalf("v%s: redacted\n%s\nmautrix\n%s", v, ourRed, theirRed)
		}
		// An event mautrix signs passes our check.
		m.Signatures = nil
		if err := m.Sign(v, "a.test", e.opt.Key.ID, e.opt.Key.Private); err != nil {
			t.Fatal(err)
		}
		signed, _ := canonicaljson.Marshal(&m)
		q, err := decodePDU(v, signed)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.verifySignature(v, q, "a.test"); err != nil {
			t.Fatalf("v%s: mautrix's signature: %v", v, err)
		}
	}
}

func TestRefIDs(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []id.EventID
	}{
		{`{"prev_events":["$a","$b"]}`, []id.EventID{"$a", "$b"}},
		{`{"prev_events":[["$a:x",{"sha256":"h"}],["$b:x",{}]]}`, []id.EventID{"$a:x", "$b:x"}},
		{`{"prev_events":[1,["$a:x"],[2]]}`, []id.EventID{"$a:x"}},
		{`{}`, nil},
	} {
		if got := refIDs([]byte(tc.raw), "prev_events"); !slices.Equal(got, tc.want) {
			t.Errorf("refIDs(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}
