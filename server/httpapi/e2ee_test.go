package httpapi_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// e2eeCall sends a JSON request as c and decodes the JSON answer.
func e2eeCall(t *testing.T, s *servertest.Server, c *mautrix.Client, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r *bytes.Reader
	switch b := body.(type) {
	case nil:
		r = bytes.NewReader(nil)
	case string:
		r = bytes.NewReader([]byte(b))
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	status, resp, _ := s.Do(t, method, "/_matrix/client/v3"+path, c.AccessToken, r, "Content-Type", "application/json")
	var out map[string]any
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatalf("%s %s: %d %q is not a JSON object", method, path, status, resp)
	}
	return status, out
}

// e2eeSign adds signer's ed25519 signature with keyID to obj.
func e2eeSign(t *testing.T, obj map[string]any, signer id.UserID, keyID string, priv ed25519.PrivateKey) map[string]any {
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
	mine[keyID] = base64.RawStdEncoding.EncodeToString(ed25519.Sign(priv, msg))
	sigs[string(signer)] = mine
	obj["signatures"] = sigs
	return obj
}

// e2eeCurve25519 is a fresh curve25519 public key, unpadded base64.
func e2eeCurve25519(t *testing.T) string {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(k.PublicKey().Bytes())
}

func e2eeKeyPair() (string, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return base64.RawStdEncoding.EncodeToString(pub), priv
}

// e2eeDeviceKeys is a device_keys object for c's device signed with priv.
func e2eeDeviceKeys(t *testing.T, c *mautrix.Client, pub string, priv ed25519.PrivateKey) map[string]any {
	kid := "ed25519:" + string(c.DeviceID)
	return e2eeSign(t, map[string]any{
		"user_id": c.UserID, "device_id": c.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{kid: pub, "curve25519:" + string(c.DeviceID): pub},
	}, c.UserID, kid, priv)
}

func e2eeWant(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || (wantCode != "" && body["errcode"] != wantCode) {
		t.Errorf("%s: %d %v, want %d %s", what, status, body, wantStatus, wantCode)
	}
}

func TestKeysEndpoints(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	pub, priv := e2eeKeyPair()
	_, otherPriv := e2eeKeyPair()

	// Refusals of /keys/upload.
	st, body := e2eeCall(t, s, bob, "POST", "/keys/upload", map[string]any{"device_keys": e2eeDeviceKeys(t, alice, pub, priv)})
	e2eeWant(t, "bob uploads alice's keys", st, body, 400, "M_BAD_JSON")
	st, body = e2eeCall(t, s, alice, "POST", "/keys/upload", map[string]any{"device_keys": map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID}})
	e2eeWant(t, "device keys without keys", st, body, 400, "M_BAD_JSON")
	st, body = e2eeCall(t, s, alice, "POST", "/keys/upload", map[string]any{"device_keys": e2eeDeviceKeys(t, alice, pub, otherPriv)})
	e2eeWant(t, "badly signed device keys", st, body, 400, "M_INVALID_SIGNATURE")

	otk := e2eeSign(t, map[string]any{"key": "AAAA"}, alice.UserID, "ed25519:"+string(alice.DeviceID), priv)
	st, body = e2eeCall(t, s, alice, "POST", "/keys/upload", map[string]any{
		"device_keys":   e2eeDeviceKeys(t, alice, pub, priv),
		"one_time_keys": map[string]any{"signed_curve25519:1": otk},
		"fallback_keys": map[string]any{"signed_curve25519:F": otk},
	})
	if st != 200 || fmt.Sprint(body["one_time_key_counts"]) != "map[signed_curve25519:1]" {
		t.Fatalf("upload: %d %v", st, body)
	}
	newPub, newPriv := e2eeKeyPair()
	st, body = e2eeCall(t, s, alice, "POST", "/keys/upload", map[string]any{"device_keys": e2eeDeviceKeys(t, alice, newPub, newPriv)})
	e2eeWant(t, "changed device keys", st, body, 400, "M_INVALID_PARAM")
	st, body = e2eeCall(t, s, alice, "POST", "/keys/upload", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:1": map[string]any{"key": "BBBB"}}})
	e2eeWant(t, "reused one-time key ID", st, body, 400, "M_INVALID_PARAM")

	// Query through mautrix's client: the wire shapes it expects.
	q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}, "@x:elsewhere.invalid": {}}})
	if err != nil {
		t.Fatal(err)
	}
	dk := q.DeviceKeys[alice.UserID][alice.DeviceID]
	if dk.Keys.GetEd25519(alice.DeviceID).String() != pub {
		t.Errorf("queried device keys: %+v", dk)
	}
	if _, ok := q.Failures["elsewhere.invalid"]; !ok {
		t.Errorf("failures = %v, want the remote server", q.Failures)
	}
	st, body = e2eeCall(t, s, bob, "POST", "/keys/query", map[string]any{})
	e2eeWant(t, "query without device_keys", st, body, 400, "M_MISSING_PARAM")
	st, body = e2eeCall(t, s, bob, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{"not-a-user": []string{}}})
	e2eeWant(t, "query for a malformed user ID", st, body, 400, "M_INVALID_PARAM")

	// Claim: the one-time key once, then the fallback key.
	for i, want := range []id.KeyID{"signed_curve25519:1", "signed_curve25519:F"} {
		c, err := bob.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{alice.UserID: {alice.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.OneTimeKeys[alice.UserID][alice.DeviceID][want]; !ok {
			t.Errorf("claim %d: %v, want %s", i, c.OneTimeKeys, want)
		}
	}
	st, body = e2eeCall(t, s, bob, "POST", "/keys/claim", map[string]any{})
	e2eeWant(t, "claim without one_time_keys", st, body, 400, "M_MISSING_PARAM")

	// Changes since the beginning: bob shares no room with alice yet. (mautrix's
	// GetKeyChanges POSTs; the spec and Synapse have GET.)
	st, body = e2eeCall(t, s, bob, "GET", "/keys/changes?from=s0", nil)
	if st != 200 || fmt.Sprint(body) != "map[changed:[] left:[]]" {
		t.Errorf("bob's key changes before sharing a room: %d %v", st, body)
	}
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	st, body = e2eeCall(t, s, bob, "GET", "/keys/changes?from=s0&to=s1000000", nil)
	if st != 200 || fmt.Sprint(body["changed"]) != fmt.Sprintf("[%s]", alice.UserID) {
		t.Errorf("bob's key changes after sharing a room: %d %v", st, body)
	}
	st, body = e2eeCall(t, s, bob, "GET", "/keys/changes", nil)
	e2eeWant(t, "changes without from", st, body, 400, "M_MISSING_PARAM")
	st, body = e2eeCall(t, s, bob, "GET", "/keys/changes?from=t123", nil)
	e2eeWant(t, "changes from a foreign token", st, body, 400, "M_INVALID_PARAM")
}

func TestCrossSigningNeedsAuthToReplace(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	keys := func() map[string]any {
		mpub, mpriv := e2eeKeyPair()
		spub, _ := e2eeKeyPair()
		return map[string]any{
			"master_key": map[string]any{"user_id": alice.UserID, "usage": []string{"master"}, "keys": map[string]any{"ed25519:" + mpub: mpub}},
			"self_signing_key": e2eeSign(t, map[string]any{"user_id": alice.UserID, "usage": []string{"self_signing"},
				"keys": map[string]any{"ed25519:" + spub: spub}}, alice.UserID, "ed25519:"+mpub, mpriv),
		}
	}
	first, second := keys(), keys()
	st, body := e2eeCall(t, s, alice, "POST", "/keys/device_signing/upload", first)
	e2eeWant(t, "first upload without auth", st, body, 200, "")
	st, body = e2eeCall(t, s, alice, "POST", "/keys/device_signing/upload", first)
	e2eeWant(t, "the same keys again without auth", st, body, 200, "")
	st, body = e2eeCall(t, s, alice, "POST", "/keys/device_signing/upload", second)
	if st != 401 || body["session"] == nil || body["flows"] == nil {
		t.Fatalf("replacing without auth: %d %v, want a 401 challenge", st, body)
	}
	second["auth"] = passwordAuth(string(alice.UserID), "wrong", body["session"].(string))
	st, body = e2eeCall(t, s, alice, "POST", "/keys/device_signing/upload", second)
	e2eeWant(t, "replacing with a wrong password", st, body, 401, "M_FORBIDDEN")
	second["auth"] = passwordAuth(string(alice.UserID), "correct horse battery", body["session"].(string))
	st, body = e2eeCall(t, s, alice, "POST", "/keys/device_signing/upload", second)
	e2eeWant(t, "replacing with the password", st, body, 200, "")

	unsigned := keys()
	delete(unsigned["self_signing_key"].(map[string]any), "signatures")
	unsigned["auth"] = passwordAuth(string(alice.UserID), "correct horse battery", "")
	st, body = e2eeCall(t, s, alice, "POST", "/keys/device_signing/upload", unsigned)
	e2eeWant(t, "self-signing key without the master's signature", st, body, 400, "M_INVALID_SIGNATURE")

	st, body = e2eeCall(t, s, alice, "POST", "/keys/signatures/upload", map[string]any{string(alice.UserID): map[string]any{"NODEVICE": map[string]any{}}})
	if st != 200 || body["failures"] == nil {
		t.Fatalf("signature upload: %d %v", st, body)
	}
	failure := body["failures"].(map[string]any)[string(alice.UserID)].(map[string]any)["NODEVICE"].(map[string]any)
	if failure["errcode"] != "M_NOT_FOUND" {
		t.Errorf("failure for an unknown device: %v", failure)
	}
}

func TestSendToDeviceEndpoint(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	msgs := map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{"*": map[string]any{"n": 1}}}}
	for range 2 {
		st, body := e2eeCall(t, s, alice, "PUT", "/sendToDevice/m.test/txn1", msgs)
		e2eeWant(t, "send to device", st, body, 200, "")
	}
	evs, _, err := s.E2EE.ToDevice(ctx, bob.UserID, bob.DeviceID, 0, 1<<62, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("bob's inbox after the same transaction twice: %s, %v", evs, err)
	}
	var ev struct {
		Sender  id.UserID
		Type    string
		Content map[string]int
	}
	json.Unmarshal(evs[0], &ev)
	if ev.Sender != alice.UserID || ev.Type != "m.test" || ev.Content["n"] != 1 {
		t.Errorf("bob's message: %s", evs[0])
	}
	st, body := e2eeCall(t, s, alice, "PUT", "/sendToDevice/m.test/txn2", map[string]any{})
	e2eeWant(t, "send without messages", st, body, 400, "M_MISSING_PARAM")
	st, body = e2eeCall(t, s, alice, "PUT", "/sendToDevice/m.test/txn3", map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{"*": "hi"}}})
	e2eeWant(t, "a message that is not an object", st, body, 400, "M_BAD_JSON")
}

func TestKeyBackupEndpoints(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	const alg = "m.megolm_backup.v1.curve25519-aes-sha2"

	st, body := e2eeCall(t, s, alice, "GET", "/room_keys/version", nil)
	e2eeWant(t, "current backup before any", st, body, 404, "M_NOT_FOUND")
	st, body = e2eeCall(t, s, alice, "POST", "/room_keys/version", map[string]any{"algorithm": alg})
	e2eeWant(t, "create without auth_data", st, body, 400, "M_MISSING_PARAM")
	_, body = e2eeCall(t, s, alice, "POST", "/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "old"}})
	old := body["version"].(string)
	_, body = e2eeCall(t, s, alice, "POST", "/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "new"}})
	cur := body["version"].(string)

	st, body = e2eeCall(t, s, alice, "GET", "/room_keys/version", nil)
	if st != 200 || body["version"] != cur || body["count"] != 0.0 || body["etag"] == nil || body["algorithm"] != alg {
		t.Errorf("current backup: %d %v", st, body)
	}
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/version/"+cur, map[string]any{"algorithm": "m.other", "auth_data": map[string]any{}})
	e2eeWant(t, "update with another algorithm", st, body, 400, "M_INVALID_PARAM")
	st, body = e2eeCall(t, s, alice, "GET", "/room_keys/version/999", nil)
	e2eeWant(t, "unknown version", st, body, 404, "M_NOT_FOUND")

	key := map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false,
		"session_data": map[string]any{"ephemeral": e2eeCurve25519(t), "ciphertext": "Y2lwaGVy", "mac": "bWFj"}}
	room := "!room:localhost"
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys/"+room+"/S1?version="+old, key)
	if st != 403 || body["errcode"] != "M_WRONG_ROOM_KEYS_VERSION" || body["current_version"] != cur {
		t.Errorf("put to an old version: %d %v", st, body)
	}
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys/"+room+"/S1?version=999", key)
	e2eeWant(t, "put to a version that never was", st, body, 404, "M_NOT_FOUND")
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys/"+room+"/S1", key)
	e2eeWant(t, "put without version", st, body, 400, "M_MISSING_PARAM")
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys/"+room+"/S1?version="+cur, map[string]any{"session_data": map[string]any{}})
	e2eeWant(t, "put without first_message_index", st, body, 400, "M_BAD_JSON")

	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys/"+room+"/S1?version="+cur, key)
	if st != 200 || body["count"] != 1.0 || body["etag"] == nil {
		t.Errorf("put one session: %d %v", st, body)
	}
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys/"+room+"?version="+cur, map[string]any{"sessions": map[string]any{"S2": key}})
	if st != 200 || body["count"] != 2.0 {
		t.Errorf("put a room's sessions: %d %v", st, body)
	}
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys?version="+cur, map[string]any{"rooms": map[string]any{"!other:localhost": map[string]any{"sessions": map[string]any{"S3": key}}}})
	if st != 200 || body["count"] != 3.0 {
		t.Errorf("put all rooms: %d %v", st, body)
	}

	// The three read levels, through mautrix's client.
	all, err := alice.GetKeyBackup(ctx, id.KeyBackupVersion(cur))
	if err != nil || len(all.Rooms) != 2 || len(all.Rooms[id.RoomID(room)].Sessions) != 2 {
		t.Errorf("all keys: %+v, %v", all, err)
	}
	forRoom, err := alice.GetKeyBackupForRoom(ctx, id.KeyBackupVersion(cur), id.RoomID(room))
	if err != nil || len(forRoom.Sessions) != 2 {
		t.Errorf("a room's keys: %+v, %v", forRoom, err)
	}
	one, err := alice.GetKeyBackupForRoomAndSession(ctx, id.KeyBackupVersion(cur), id.RoomID(room), "S1")
	if err != nil || one.ForwardedCount != 0 || one.SessionData.Ciphertext == nil {
		t.Errorf("one session: %+v, %v", one, err)
	}
	// Session IDs are base64 and may hold a slash, escaped in the path.
	st, body = e2eeCall(t, s, alice, "PUT", "/room_keys/keys/"+room+"/a%2Fb+c?version="+cur, key)
	if st != 200 || body["count"] != 4.0 {
		t.Errorf("put a session whose ID has a slash: %d %v", st, body)
	}
	if keys, err := s.E2EE.BackupKeys(ctx, alice.UserID, cur, id.RoomID(room), "a/b+c"); err != nil || len(keys[id.RoomID(room)]) != 1 {
		t.Errorf("the session with a slash was stored as %v, %v", keys, err)
	}
	st, body = e2eeCall(t, s, alice, "GET", "/room_keys/keys/!empty:localhost?version="+cur, nil)
	if st != 200 || fmt.Sprint(body) != "map[sessions:map[]]" {
		t.Errorf("a room without keys: %d %v", st, body)
	}
	st, body = e2eeCall(t, s, alice, "GET", "/room_keys/keys/"+room+"/NOPE?version="+cur, nil)
	e2eeWant(t, "a session without a key", st, body, 404, "M_NOT_FOUND")

	st, body = e2eeCall(t, s, alice, "DELETE", "/room_keys/keys/"+room+"?version="+cur, nil)
	if st != 200 || body["count"] != 1.0 {
		t.Errorf("delete a room's keys: %d %v", st, body)
	}
	st, body = e2eeCall(t, s, alice, "DELETE", "/room_keys/version/"+cur, nil)
	e2eeWant(t, "delete the backup", st, body, 200, "")
	st, body = e2eeCall(t, s, alice, "DELETE", "/room_keys/version/"+cur, nil)
	e2eeWant(t, "delete it again", st, body, 200, "")
	st, body = e2eeCall(t, s, alice, "GET", "/room_keys/version", nil)
	if st != 200 || body["version"] != old {
		t.Errorf("current after deleting the newest: %d %v", st, body)
	}
}
