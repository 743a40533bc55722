package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	"fyr/server/servertest"
)

// These tests run end-to-end encryption's federation side between two real servers: keys
// queried and claimed across servers through the client API, to-device messages, and
// device-list and signing-key updates that reach the users sharing a room.

const e2eePassword = "correct horse battery"

// b64 is unpadded base64, the spec's encoding of keys and signatures.
func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// signObject signs obj as the spec's Signing JSON says, adding to its signatures.
func signObject(t *testing.T, obj map[string]any, signer id.UserID, keyID string, priv ed25519.PrivateKey) map[string]any {
	t.Helper()
	bare := map[string]any{}
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			bare[k] = v
		}
	}
	msg, err := canonicaljson.Marshal(bare)
	if err != nil {
		t.Fatal(err)
	}
	sigs, _ := obj["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
	}
	mine, _ := sigs[string(signer)].(map[string]any)
	if mine == nil {
		mine = map[string]any{}
	}
	mine[keyID] = b64(ed25519.Sign(priv, msg))
	sigs[string(signer)] = mine
	obj["signatures"] = sigs
	return obj
}

// clientJSON sends a client API request with a JSON body and decodes the answer into out
// (when not nil). It returns the status.
func clientJSON(t *testing.T, s *servertest.Server, c *mautrix.Client, method, path string, body, out any) int {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	status, resp, _ := s.Do(t, method, "/_matrix/client/v3"+path, c.AccessToken, r)
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, status, resp, err)
		}
	}
	return status
}

// e2eeDevice is a client device with its identity key.
type e2eeDevice struct {
	cli  *mautrix.Client
	priv ed25519.PrivateKey
}

func (d *e2eeDevice) keyID() string { return "ed25519:" + string(d.cli.DeviceID) }

func (d *e2eeDevice) deviceKeys(t *testing.T) map[string]any {
	pub := d.priv.Public().(ed25519.PublicKey)
	return signObject(t, map[string]any{
		"user_id":    d.cli.UserID,
		"device_id":  d.cli.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": map[string]any{
			"ed25519:" + string(d.cli.DeviceID):    b64(pub),
			"curve25519:" + string(d.cli.DeviceID): b64(pub),
		},
	}, d.cli.UserID, d.keyID(), d.priv)
}

// publish uploads the device's identity keys, one-time keys named otk0… and a fallback key.
func publish(t *testing.T, s *servertest.Server, cli *mautrix.Client, otks int) *e2eeDevice {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	d := &e2eeDevice{cli: cli, priv: priv}
	one := map[string]any{}
	for i := range otks {
		one[fmt.Sprintf("signed_curve25519:otk%d", i)] = signObject(t, map[string]any{"key": fmt.Sprintf("otk%d", i)}, cli.UserID, d.keyID(), priv)
	}
	body := map[string]any{"device_keys": d.deviceKeys(t), "one_time_keys": one,
		"fallback_keys": map[string]any{"signed_curve25519:fb": signObject(t, map[string]any{"key": "fb", "fallback": true}, cli.UserID, d.keyID(), priv)}}
	if status := clientJSON(t, s, cli, "POST", "/keys/upload", body, nil); status != 200 {
		t.Fatalf("%s %s uploads keys: %d", cli.UserID, cli.DeviceID, status)
	}
	return d
}

// crossSigningKeys are a user's three cross-signing key pairs.
type crossSigningKeys struct{ master, self, userSig ed25519.PrivateKey }

func newCrossSigningKeys() *crossSigningKeys {
	gen := func() ed25519.PrivateKey { _, p, _ := ed25519.GenerateKey(rand.Reader); return p }
	return &crossSigningKeys{master: gen(), self: gen(), userSig: gen()}
}

func pubOf(p ed25519.PrivateKey) string { return b64(p.Public().(ed25519.PublicKey)) }

// publishCrossSigning uploads a user's first cross-signing keys (no auth needed).
func publishCrossSigning(t *testing.T, s *servertest.Server, cli *mautrix.Client, k *crossSigningKeys) {
	t.Helper()
	obj := func(usage string, priv ed25519.PrivateKey) map[string]any {
		pub := pubOf(priv)
		return map[string]any{"user_id": cli.UserID, "usage": []string{usage}, "keys": map[string]any{"ed25519:" + pub: pub}}
	}
	mk := "ed25519:" + pubOf(k.master)
	body := map[string]any{
		"master_key":       obj("master", k.master),
		"self_signing_key": signObject(t, obj("self_signing", k.self), cli.UserID, mk, k.master),
		"user_signing_key": signObject(t, obj("user_signing", k.userSig), cli.UserID, mk, k.master),
	}
	if status := clientJSON(t, s, cli, "POST", "/keys/device_signing/upload", body, nil); status != 200 {
		t.Fatalf("%s uploads cross-signing keys: %d", cli.UserID, status)
	}
}

// keyChanges is GET /keys/changes from a stream position up to now.
func keyChanges(t *testing.T, s *servertest.Server, cli *mautrix.Client, from int64) []id.UserID {
	t.Helper()
	to, err := s.DB.StreamPos(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var resp mautrix.RespKeyChanges
	if status := clientJSON(t, s, cli, "GET", fmt.Sprintf("/keys/changes?from=s%d&to=s%d", from, to), nil, &resp); status != 200 {
		t.Fatalf("keys/changes: %d", status)
	}
	return resp.Changed
}

// eduLog records the EDUs of some types that a server receives, then hands them on.
type eduLog struct {
	mu   sync.Mutex
	edus map[string][]json.RawMessage
}

func recordEDUs(s *servertest.Server, types ...string) *eduLog {
	l := &eduLog{edus: map[string][]json.RawMessage{}}
	for _, typ := range types {
		next := s.Inbound.EDUs[typ]
		s.Inbound.EDUs[typ] = func(ctx context.Context, origin string, content json.RawMessage) {
			l.mu.Lock()
			l.edus[typ] = append(l.edus[typ], content)
			l.mu.Unlock()
			if next != nil {
				next(ctx, origin, content)
			}
		}
	}
	return l
}

func (l *eduLog) of(typ string) []json.RawMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.edus[typ])
}

// sendEDUs sends one transaction of EDUs from one server to another, as the sender's
// outbound queue would.
func sendEDUs(t *testing.T, from *servertest.Server, to, txnID string, edus ...map[string]any) {
	t.Helper()
	body := map[string]any{"origin": from.Config.ServerName, "origin_server_ts": 1, "pdus": []any{}, "edus": edus}
	if err := from.FedClient.Do(context.Background(), to, "PUT", "/_matrix/federation/v1/send/"+txnID, body, nil); err != nil {
		t.Fatalf("transaction %s to %s: %v", txnID, to, err)
	}
}

// inboxOf reads a device's to-device inbox from the engine, as /sync would.
func inboxOf(t *testing.T, s *servertest.Server, cli *mautrix.Client) []map[string]any {
	t.Helper()
	upto, err := s.DB.StreamPos(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := s.E2EE.ToDevice(context.Background(), cli.UserID, cli.DeviceID, 0, upto, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, ev := range evs {
		var m map[string]any
		json.Unmarshal(ev, &m)
		out = append(out, m)
	}
	return out
}

// shareRoom makes bob (on hs2) join a public room alice (on hs1) creates, and waits until
// both servers see both members.
func shareRoom(t *testing.T, alice, bob *mautrix.Client) id.RoomID {
	t.Helper()
	ctx := context.Background()
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, string(resp.RoomID), &mautrix.ReqJoinRoom{Via: []string{alice.UserID.Homeserver()}}); err != nil {
		t.Fatalf("bob joins over federation: %v", err)
	}
	for _, c := range []*mautrix.Client{alice, bob} {
		waitFor(t, "both members on "+c.UserID.Homeserver(), func() bool {
			m, err := c.JoinedMembers(ctx, resp.RoomID)
			return err == nil && len(m.Joined) == 2
		})
	}
	return resp.RoomID
}

func TestE2EEKeysAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", e2eePassword)
	bob := hs2.Register(t, "bob", e2eePassword)
	aliceDev := publish(t, hs1, alice, 2)
	aliceXS := newCrossSigningKeys()
	publishCrossSigning(t, hs1, alice, aliceXS)
	bobDev := publish(t, hs2, bob, 1)
	hs1From, _ := hs1.DB.StreamPos(ctx)
	hs2From, _ := hs2.DB.StreamPos(ctx)
	shareRoom(t, alice, bob)

	t.Run("a new remote member counts as a device-list change", func(t *testing.T) {
		if got := keyChanges(t, hs1, alice, hs1From); !slices.Contains(got, bob.UserID) {
			t.Errorf("alice's keys/changes since before bob joined: %v, want bob in it", got)
		}
		if got := keyChanges(t, hs2, bob, hs2From); !slices.Contains(got, alice.UserID) {
			t.Errorf("bob's keys/changes since before he joined: %v, want alice in it", got)
		}
	})

	t.Run("query", func(t *testing.T) {
		var q mautrix.RespQueryKeys
		clientJSON(t, hs2, bob, "POST", "/keys/query", map[string]any{"device_keys": map[id.UserID][]string{alice.UserID: {}}}, &q)
		if len(q.Failures) != 0 {
			t.Fatalf("failures: %v", q.Failures)
		}
		dk, ok := q.DeviceKeys[alice.UserID][alice.DeviceID]
		if !ok || dk.Keys[id.NewDeviceKeyID(id.KeyAlgorithmEd25519, alice.DeviceID)] != pubOf(aliceDev.priv) {
			t.Fatalf("alice's device keys through hs2: %+v", q.DeviceKeys)
		}
		if q.MasterKeys[alice.UserID].Keys[id.NewKeyID(id.KeyAlgorithmEd25519, pubOf(aliceXS.master))] == "" ||
			q.SelfSigningKeys[alice.UserID].Keys[id.NewKeyID(id.KeyAlgorithmEd25519, pubOf(aliceXS.self))] == "" {
			t.Errorf("alice's master and self-signing keys through hs2: %+v %+v", q.MasterKeys, q.SelfSigningKeys)
		}
		if _, ok := q.UserSigningKeys[alice.UserID]; ok {
			t.Error("hs2 hands out alice's user-signing key")
		}
		// Several servers at once: each answers for its own users.
		clientJSON(t, hs2, bob, "POST", "/keys/query", map[string]any{"device_keys": map[id.UserID][]string{alice.UserID: {}, bob.UserID: {}}}, &q)
		if len(q.DeviceKeys[alice.UserID]) != 1 || len(q.DeviceKeys[bob.UserID]) != 1 || len(q.Failures) != 0 {
			t.Errorf("mixed query: %+v failures %v", q.DeviceKeys, q.Failures)
		}
	})

	t.Run("claim", func(t *testing.T) {
		claim := map[string]any{"one_time_keys": map[id.UserID]map[id.DeviceID]string{alice.UserID: {alice.DeviceID: "signed_curve25519"}}}
		var got []string
		for range 3 {
			var c mautrix.RespClaimKeys
			clientJSON(t, hs2, bob, "POST", "/keys/claim", claim, &c)
			if len(c.Failures) != 0 {
				t.Fatalf("failures: %v", c.Failures)
			}
			for kid, k := range c.OneTimeKeys[alice.UserID][alice.DeviceID] {
				got = append(got, fmt.Sprintf("%s=%s", kid, k.Key))
			}
		}
		// Each one-time key once, oldest first, then the fallback key.
		want := []string{"signed_curve25519:otk0=otk0", "signed_curve25519:otk1=otk1", "signed_curve25519:fb=fb"}
		if !slices.Equal(got, want) {
			t.Errorf("claims through hs2: %v, want %v", got, want)
		}
	})

	t.Run("user devices", func(t *testing.T) {
		var d struct {
			UserID   id.UserID `json:"user_id"`
			StreamID int64     `json:"stream_id"`
			Devices  []struct {
				DeviceID    id.DeviceID                `json:"device_id"`
				Keys        map[string]json.RawMessage `json:"keys"`
				DisplayName string                     `json:"device_display_name"`
			} `json:"devices"`
			MasterKey      json.RawMessage `json:"master_key"`
			SelfSigningKey json.RawMessage `json:"self_signing_key"`
			UserSigningKey json.RawMessage `json:"user_signing_key"`
		}
		var raw json.RawMessage
		path := "/_matrix/federation/v1/user/devices/" + url.PathEscape(string(alice.UserID))
		if err := hs2.FedClient.Do(ctx, "hs1.test", "GET", path, nil, &raw); err != nil {
			t.Fatal(err)
		}
		servertest.CheckShape(t, "../server-server/user_devices.yaml", "GET", "/user/devices/{userId}", 200, raw)
		json.Unmarshal(raw, &d)
		if d.UserID != alice.UserID || d.StreamID < 1 || len(d.Devices) != 1 || d.Devices[0].DeviceID != alice.DeviceID ||
			d.Devices[0].Keys["keys"] == nil || d.Devices[0].Keys["unsigned"] != nil || d.MasterKey == nil || d.SelfSigningKey == nil {
			t.Errorf("GET /user/devices: %+v", d)
		}
		if d.UserSigningKey != nil {
			t.Error("/user/devices hands out the user-signing key")
		}
		err := hs2.FedClient.Do(ctx, "hs1.test", "GET", "/_matrix/federation/v1/user/devices/"+url.PathEscape(string(bob.UserID)), nil, nil)
		if code := fedErrCode(err); code != "M_INVALID_PARAM" {
			t.Errorf("hs1 asked for hs2's user's devices: %v, want M_INVALID_PARAM", err)
		}
	})

	t.Run("federation answers match the spec", func(t *testing.T) {
		var raw json.RawMessage
		body := map[string]any{"device_keys": map[id.UserID][]string{alice.UserID: {}}}
		if err := hs2.FedClient.Do(ctx, "hs1.test", "POST", "/_matrix/federation/v1/user/keys/query", body, &raw); err != nil {
			t.Fatal(err)
		}
		servertest.CheckShape(t, "../server-server/user_keys.yaml", "POST", "/user/keys/query", 200, raw)
		publish(t, hs1, hs1.Login(t, "alice", e2eePassword), 1)
		body = map[string]any{"one_time_keys": map[id.UserID]map[id.DeviceID]string{alice.UserID: {alice.DeviceID: "signed_curve25519"}}}
		if err := hs2.FedClient.Do(ctx, "hs1.test", "POST", "/_matrix/federation/v1/user/keys/claim", body, &raw); err != nil {
			t.Fatal(err)
		}
		servertest.CheckShape(t, "../server-server/user_keys.yaml", "POST", "/user/keys/claim", 200, raw)
	})

	t.Run("servers answer only for their own users", func(t *testing.T) {
		// hs2 asks hs1 to claim and query keys of its own user bob: hs1 neither answers nor
		// passes the request on, so bob's one-time key stays unclaimed.
		var c struct {
			OneTimeKeys map[id.UserID]any `json:"one_time_keys"`
		}
		body := map[string]any{"one_time_keys": map[id.UserID]map[id.DeviceID]string{bob.UserID: {bob.DeviceID: "signed_curve25519"}}}
		if err := hs2.FedClient.Do(ctx, "hs1.test", "POST", "/_matrix/federation/v1/user/keys/claim", body, &c); err != nil {
			t.Fatal(err)
		}
		if len(c.OneTimeKeys) != 0 {
			t.Errorf("hs1 claimed keys of hs2's user: %v", c.OneTimeKeys)
		}
		counts, err := hs2.E2EE.OTKCounts(ctx, bob.UserID, bob.DeviceID)
		if err != nil || counts["signed_curve25519"] != 1 {
			t.Errorf("bob's one-time keys after the refused claim: %v %v", counts, err)
		}
		var q struct {
			DeviceKeys map[id.UserID]any `json:"device_keys"`
		}
		body = map[string]any{"device_keys": map[id.UserID][]string{bob.UserID: {}, alice.UserID: {}}}
		if err := hs2.FedClient.Do(ctx, "hs1.test", "POST", "/_matrix/federation/v1/user/keys/query", body, &q); err != nil {
			t.Fatal(err)
		}
		if _, ok := q.DeviceKeys[bob.UserID]; ok || q.DeviceKeys[alice.UserID] == nil {
			t.Errorf("hs1's answer about bob and alice: %v", q.DeviceKeys)
		}
	})
	_ = bobDev
}

func TestToDeviceAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", e2eePassword)
	bob := hs2.Register(t, "bob", e2eePassword)

	// Through the client API and the outbound queue; no shared room is needed.
	_, err := alice.SendToDevice(ctx, event.Type{Type: "m.test.hello", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
		bob.UserID: {"*": {Raw: map[string]any{"n": 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's to-device message on hs2", func() bool { return len(inboxOf(t, hs2, bob)) == 1 })
	if got := inboxOf(t, hs2, bob)[0]; got["sender"] != string(alice.UserID) || got["type"] != "m.test.hello" ||
		fmt.Sprint(got["content"]) != "map[n:1]" {
		t.Errorf("bob's inbox: %v", got)
	}

	// Transactions made by hand: each EDU is applied when /send answers.
	toDevice := func(sender id.UserID, messageID string, n int) map[string]any {
		return map[string]any{"edu_type": "m.direct_to_device", "content": map[string]any{
			"sender": sender, "type": "m.test.edu", "message_id": messageID,
			"messages": map[id.UserID]map[id.DeviceID]any{bob.UserID: {bob.DeviceID: map[string]any{"n": n}},
				"@carol:hs1.test": {"X": map[string]any{"n": n}}}}}
	}
	sendEDUs(t, hs1, "hs2.test", "t1", toDevice(alice.UserID, "m1", 2))
	// The same message_id in another transaction is not delivered twice.
	sendEDUs(t, hs1, "hs2.test", "t2", toDevice(alice.UserID, "m1", 3))
	// hs1 does not speak for hs2's users, nor for a third server's.
	sendEDUs(t, hs1, "hs2.test", "t3", toDevice("@mallory:hs2.test", "m2", 4), toDevice("@eve:hs3.test", "m3", 5))
	// And a new message_id after the refusals is delivered.
	sendEDUs(t, hs1, "hs2.test", "t4", toDevice(alice.UserID, "m4", 6))
	var ns []string
	for _, ev := range inboxOf(t, hs2, bob) {
		ns = append(ns, fmt.Sprint(ev["sender"], " ", ev["content"]))
	}
	want := []string{"@alice:hs1.test map[n:1]", "@alice:hs1.test map[n:2]", "@alice:hs1.test map[n:6]"}
	if !slices.Equal(ns, want) {
		t.Errorf("bob's inbox: %q, want %q", ns, want)
	}
	// And bob's /sync hands them out.
	resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	ns = nil
	for _, ev := range resp.ToDevice.Events {
		ns = append(ns, fmt.Sprint(ev.Sender, " ", ev.Content.Raw))
	}
	if !slices.Equal(ns, want) {
		t.Errorf("bob's /sync to_device: %q, want %q", ns, want)
	}
}

func TestDeviceListsAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	edus := recordEDUs(hs2, "m.device_list_update", "m.signing_key_update")
	alice := hs1.Register(t, "alice", e2eePassword)
	bob := hs2.Register(t, "bob", e2eePassword)
	aliceDev := publish(t, hs1, alice, 1)
	shareRoom(t, alice, bob)

	query := func() mautrix.RespQueryKeys {
		t.Helper()
		var q mautrix.RespQueryKeys
		clientJSON(t, hs2, bob, "POST", "/keys/query", map[string]any{"device_keys": map[id.UserID][]string{alice.UserID: {}}}, &q)
		if len(q.Failures) != 0 {
			t.Fatalf("failures: %v", q.Failures)
		}
		return q
	}
	// changedAfter runs change on hs1 and waits until bob's keys/changes on hs2 names alice.
	changedAfter := func(what string, change func()) {
		t.Helper()
		from, _ := hs2.DB.StreamPos(ctx)
		change()
		waitFor(t, what+" in bob's keys/changes", func() bool { return slices.Contains(keyChanges(t, hs2, bob, from), alice.UserID) })
	}
	type update struct {
		UserID   id.UserID       `json:"user_id"`
		DeviceID id.DeviceID     `json:"device_id"`
		Name     string          `json:"device_display_name"`
		StreamID int64           `json:"stream_id"`
		PrevID   []int64         `json:"prev_id"`
		Deleted  bool            `json:"deleted"`
		Keys     json.RawMessage `json:"keys"`
	}
	lastUpdate := func() update {
		t.Helper()
		all := edus.of("m.device_list_update")
		if len(all) == 0 {
			t.Fatal("no m.device_list_update arrived")
		}
		var u update
		json.Unmarshal(all[len(all)-1], &u)
		return u
	}

	// A new device with keys, seen in /keys/changes and in bob's /sync.
	before, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	alice2 := hs1.Login(t, "alice", e2eePassword)
	changedAfter("alice's new device", func() { publish(t, hs1, alice2, 1) })
	if after, err := bob.SyncRequest(ctx, 0, before.NextBatch, "", false, ""); err != nil || !slices.Contains(after.DeviceLists.Changed, alice.UserID) {
		t.Errorf("bob's /sync device_lists after alice's new device: %+v, %v", after.DeviceLists, err)
	}
	if _, ok := query().DeviceKeys[alice.UserID][alice2.DeviceID]; !ok {
		t.Error("bob does not see alice's new device")
	}
	first := lastUpdate()
	if first.UserID != alice.UserID || first.DeviceID != alice2.DeviceID || first.Deleted || first.Keys == nil {
		t.Errorf("update for the new device: %+v", first)
	}

	// A new display name.
	changedAfter("alice's renamed device", func() {
		if err := alice.SetDeviceInfo(ctx, alice.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "field laptop"}); err != nil {
			t.Fatal(err)
		}
	})
	renamed := lastUpdate()
	if renamed.DeviceID != alice.DeviceID || renamed.Name != "field laptop" || renamed.StreamID != first.StreamID+1 ||
		!slices.Equal(renamed.PrevID, []int64{first.StreamID}) {
		t.Errorf("update for the renamed device: %+v after %+v", renamed, first)
	}
	var name struct {
		Unsigned struct {
			Name string `json:"device_display_name"`
		} `json:"unsigned"`
	}
	raw, _ := json.Marshal(query().DeviceKeys[alice.UserID][alice.DeviceID])
	if json.Unmarshal(raw, &name); name.Unsigned.Name != "field laptop" {
		t.Errorf("bob sees alice's device named %q", name.Unsigned.Name)
	}

	// Cross-signing keys, then a device signed with them.
	xs := newCrossSigningKeys()
	changedAfter("alice's cross-signing keys", func() { publishCrossSigning(t, hs1, alice, xs) })
	waitFor(t, "m.signing_key_update", func() bool { return len(edus.of("m.signing_key_update")) == 1 })
	var sku struct {
		UserID         id.UserID       `json:"user_id"`
		MasterKey      json.RawMessage `json:"master_key"`
		SelfSigningKey json.RawMessage `json:"self_signing_key"`
		UserSigningKey json.RawMessage `json:"user_signing_key"`
	}
	json.Unmarshal(edus.of("m.signing_key_update")[0], &sku)
	if sku.UserID != alice.UserID || sku.MasterKey == nil || sku.SelfSigningKey == nil || sku.UserSigningKey != nil {
		t.Errorf("m.signing_key_update: %+v", sku)
	}
	if q := query(); q.MasterKeys[alice.UserID].Keys[id.NewKeyID(id.KeyAlgorithmEd25519, pubOf(xs.master))] == "" {
		t.Errorf("bob does not see alice's master key: %+v", q.MasterKeys)
	}
	sskID := "ed25519:" + pubOf(xs.self)
	changedAfter("alice's self-signed device", func() {
		signed := signObject(t, aliceDev.deviceKeys(t), alice.UserID, sskID, xs.self)
		var resp struct {
			Failures map[string]any `json:"failures"`
		}
		clientJSON(t, hs1, alice, "POST", "/keys/signatures/upload", map[id.UserID]map[string]any{alice.UserID: {string(alice.DeviceID): signed}}, &resp)
		if len(resp.Failures) != 0 {
			t.Fatalf("signing the device: %v", resp.Failures)
		}
	})
	if u := lastUpdate(); u.DeviceID != alice.DeviceID || !bytes.Contains(u.Keys, []byte(sskID)) {
		t.Errorf("update for the signed device lacks the self-signing key's signature: %+v", u)
	}
	if sigs := query().DeviceKeys[alice.UserID][alice.DeviceID].Signatures[alice.UserID]; sigs[id.KeyID(sskID)] == "" {
		t.Errorf("bob sees alice's device signed by %v", sigs)
	}

	// A device logged out.
	changedAfter("alice's logged-out device", func() {
		if _, err := alice2.Logout(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if u := lastUpdate(); u.DeviceID != alice2.DeviceID || !u.Deleted || u.Keys != nil {
		t.Errorf("update for the deleted device: %+v", u)
	}
	if _, ok := query().DeviceKeys[alice.UserID][alice2.DeviceID]; ok {
		t.Error("bob still sees alice's logged-out device")
	}
	// The stream_ids form one chain, and /user/devices reports the newest.
	all := edus.of("m.device_list_update")
	for i := 1; i < len(all); i++ {
		var prev, cur update
		json.Unmarshal(all[i-1], &prev)
		json.Unmarshal(all[i], &cur)
		if !slices.Equal(cur.PrevID, []int64{prev.StreamID}) {
			t.Errorf("update %d has prev_id %v, want [%d]", i, cur.PrevID, prev.StreamID)
		}
	}
	var devices struct {
		StreamID int64 `json:"stream_id"`
	}
	if err := hs2.FedClient.Do(ctx, "hs1.test", "GET", "/_matrix/federation/v1/user/devices/"+url.PathEscape(string(alice.UserID)), nil, &devices); err != nil {
		t.Fatal(err)
	}
	if u := lastUpdate(); devices.StreamID != u.StreamID {
		t.Errorf("/user/devices stream_id %d, want the last update's %d", devices.StreamID, u.StreamID)
	}
}

// TestRemoteKeyUpdatesOnlyFromTheirServer: a server tells others about its own users only.
func TestRemoteKeyUpdatesOnlyFromTheirServer(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", e2eePassword)
	bob := hs2.Register(t, "bob", e2eePassword)
	bob2 := hs2.Register(t, "bob2", e2eePassword)
	shareRoom(t, alice, bob)
	if _, err := bob2.JoinRoom(ctx, string(mustJoinedRoom(t, bob)), nil); err != nil {
		t.Fatal(err)
	}
	from, _ := hs2.DB.StreamPos(ctx)
	for i, typ := range []string{"m.device_list_update", "m.signing_key_update"} {
		// hs1 claims that hs2's bob2 changed keys: ignored.
		sendEDUs(t, hs1, "hs2.test", fmt.Sprintf("bad%d", i), map[string]any{"edu_type": typ,
			"content": map[string]any{"user_id": bob2.UserID, "device_id": "X", "stream_id": 1, "prev_id": []int{}}})
	}
	if got := keyChanges(t, hs2, bob, from); slices.Contains(got, bob2.UserID) {
		t.Errorf("hs1's word about hs2's user reached bob: %v", got)
	}
	// The same about hs1's own alice is taken.
	sendEDUs(t, hs1, "hs2.test", "good", map[string]any{"edu_type": "m.device_list_update",
		"content": map[string]any{"user_id": alice.UserID, "device_id": "X", "stream_id": 99, "prev_id": []int{98}}})
	if got := keyChanges(t, hs2, bob, from); !slices.Equal(got, []id.UserID{alice.UserID}) {
		t.Errorf("bob's keys/changes after hs1's update about alice: %v, want only alice", got)
	}
}

// mustJoinedRoom is the one room c is joined to.
func mustJoinedRoom(t *testing.T, c *mautrix.Client) id.RoomID {
	t.Helper()
	rooms, err := c.JoinedRooms(context.Background())
	if err != nil || len(rooms.JoinedRooms) != 1 {
		t.Fatalf("joined rooms of %s: %v %v", c.UserID, rooms, err)
	}
	return rooms.JoinedRooms[0]
}

// fedErrCode is the errcode of a federation request's error.
func fedErrCode(err error) string {
	var re *transport.ResponseError
	if errors.As(err, &re) {
		return re.ErrCode
	}
	return ""
}
