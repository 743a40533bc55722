package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
	"fyr/storage"
)

const remote = "elsewhere.example"

// TestFederationQuery: another server sees this server's users' keys with their owners'
// signatures, never a user-signing key nor a signature only its maker may see.
func TestFederationQuery(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	bob := v.newDevice(t, user("bob"), "BOB1")
	for _, d := range []*device{alice, bob} {
		v.upload(t, d, &e2ee.Upload{DeviceKeys: d.deviceKeys(t)})
	}
	acs, bcs := newCrossSigning(alice.user), newCrossSigning(bob.user)
	for _, cs := range []*crossSigning{acs, bcs} {
		if err := v.e.UploadCrossSigningKeys(ctx, cs.user, cs.upload(t), false); err != nil {
			t.Fatal(err)
		}
	}
	// Alice signs her device with her self-signing key; bob signs alice's master key with
	// his user-signing key.
	ssk, busk := "ed25519:"+pubOf(acs.self), "ed25519:"+pubOf(bcs.userSig)
	must(v.e.UploadSignatures(ctx, alice.user, map[id.UserID]map[string]json.RawMessage{
		alice.user: {string(alice.id): mustJSON(t, sign(t, alice.keysObject(), alice.user, ssk, acs.self))}}))(t)
	must(v.e.UploadSignatures(ctx, bob.user, map[id.UserID]map[string]json.RawMessage{
		alice.user: {pubOf(acs.master): mustJSON(t, sign(t, acs.keyObject("master", acs.master), bob.user, busk, bcs.userSig))}}))(t)

	res := must(v.e.FederationQuery(ctx, map[id.UserID][]id.DeviceID{alice.user: nil, "@carol:" + remote: nil}))(t)
	if len(res.DeviceKeys) != 1 || res.DeviceKeys[alice.user][alice.id] == nil {
		t.Fatalf("device_keys: %s", mustJSON(t, res.DeviceKeys))
	}
	var dk struct {
		Signatures map[id.UserID]map[string]string
	}
	json.Unmarshal(res.DeviceKeys[alice.user][alice.id], &dk)
	if dk.Signatures[alice.user][ssk] == "" {
		t.Errorf("alice's device lacks her self-signing signature: %v", dk.Signatures)
	}
	master := string(res.MasterKeys[alice.user])
	if master == "" || res.SelfSigningKeys[alice.user] == nil {
		t.Errorf("cross-signing keys: %s %s", res.MasterKeys, res.SelfSigningKeys)
	}
	if strings.Contains(master, string(bob.user)) {
		t.Errorf("bob's signature of alice's master key left the server: %s", master)
	}
	if len(res.UserSigningKeys) != 0 {
		t.Errorf("user-signing keys left the server: %s", mustJSON(t, res.UserSigningKeys))
	}
}

func TestFederationClaim(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	v.upload(t, alice, &e2ee.Upload{DeviceKeys: alice.deviceKeys(t),
		OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:A": alice.otk(t, "a", false)}})
	got := must(v.e.FederationClaim(ctx, map[id.UserID]map[id.DeviceID]string{
		alice.user: {alice.id: "signed_curve25519"}, "@carol:" + remote: {"X": "signed_curve25519"}}))(t)
	if len(got) != 1 || got[alice.user][alice.id]["signed_curve25519:A"] == nil {
		t.Errorf("claim: %s", mustJSON(t, got))
	}
}

// TestUserDevices: the device list with its version, which every change of a device with
// keys advances once there is an outbox (federation) to announce it through.
func TestUserDevices(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	v.e.SetOutbox(&outbox{})
	alice := v.newDevice(t, user("alice"), "ALICE1")
	alice2 := v.newDevice(t, user("alice"), "ALICE2")
	v.newDevice(t, user("alice"), "NOKEYS")
	devices := func() *e2ee.UserDevices { t.Helper(); return must(v.e.UserDevices(ctx, alice.user))(t) }
	if d := devices(); d.StreamID != 0 || len(d.Devices) != 0 || d.Devices == nil {
		t.Errorf("before any keys: %+v", d)
	}
	v.upload(t, alice, &e2ee.Upload{DeviceKeys: alice.deviceKeys(t)})
	v.upload(t, alice2, &e2ee.Upload{DeviceKeys: alice2.deviceKeys(t)})
	v.upload(t, alice2, &e2ee.Upload{DeviceKeys: alice2.deviceKeys(t)}) // the same keys again: no change
	d := devices()
	if d.StreamID != 2 || len(d.Devices) != 2 || d.Devices[0].DeviceID != alice.id || d.Devices[1].DeviceID != alice2.id {
		t.Fatalf("after two uploads: %+v", d)
	}
	if d.Devices[0].DisplayName != "phone of alice" || strings.Contains(string(d.Devices[0].Keys), "unsigned") {
		t.Errorf("device entry: name %q, keys %s", d.Devices[0].DisplayName, d.Devices[0].Keys)
	}
	if err := v.e.DeviceRenamed(ctx, alice.user, alice.id); err != nil {
		t.Fatal(err)
	}
	if err := v.e.DeviceRenamed(ctx, alice.user, "NOKEYS"); err != nil {
		t.Fatal(err)
	}
	if err := v.e.DeviceDeleted(ctx, alice.user, alice2.id); err != nil {
		t.Fatal(err)
	}
	if d := devices(); d.StreamID != 4 || len(d.Devices) != 1 {
		t.Errorf("after a rename, a rename of a device without keys and a deletion: %+v", d)
	}
	if d := must(v.e.UserDevices(ctx, user("nobody")))(t); d.StreamID != 0 || len(d.Devices) != 0 {
		t.Errorf("unknown user: %+v", d)
	}
	if _, err := v.e.UserDevices(ctx, "@carol:"+remote); !errors.Is(err, e2ee.ErrInvalidParam) {
		t.Errorf("another server's user: %v, want ErrInvalidParam", err)
	}
}

func TestReceiveToDevice(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	rec := &recorder{}
	v.e.SetListener(rec)
	bob1 := v.newDevice(t, user("bob"), "BOB1")
	bob2 := v.newDevice(t, user("bob"), "BOB2")
	carol := id.UserID("@carol:" + remote)
	receive := func(origin string, sender id.UserID, typ, messageID string, msgs map[id.UserID]map[id.DeviceID]json.RawMessage) error {
		return v.e.ReceiveToDevice(ctx, origin, sender, typ, messageID, msgs)
	}
	if err := receive(remote, carol, "m.test", "m1", map[id.UserID]map[id.DeviceID]json.RawMessage{
		bob1.user: {"*": msg(1), bob2.id: msg(2), "GONE": msg(3)}, "@dave:third.example": {"X": msg(4)}}); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); fmt.Sprint(got) != fmt.Sprint([]id.UserID{bob1.user}) {
		t.Errorf("notified %v, want bob", got)
	}
	// The same message_id from the same server is not delivered again; from another it is.
	if err := receive(remote, carol, "m.test", "m1", map[id.UserID]map[id.DeviceID]json.RawMessage{bob1.user: {bob1.id: msg(5)}}); err != nil {
		t.Fatal(err)
	}
	if err := receive("third.example", "@dave:third.example", "m.test", "m1",
		map[id.UserID]map[id.DeviceID]json.RawMessage{bob1.user: {bob1.id: msg(6), bob2.id: json.RawMessage(`"not an object"`)}}); err != nil {
		t.Fatal(err)
	}
	got1, _ := inbox(t, v, bob1, 0, 0)
	if want := fmt.Sprintf("[{%s m.test {1}} {@dave:third.example m.test {6}}]", carol); fmt.Sprint(got1) != want {
		t.Errorf("bob1's inbox: %v, want %s", got1, want)
	}
	got2, _ := inbox(t, v, bob2, 0, 0)
	if want := fmt.Sprintf("[{%s m.test {2}}]", carol); fmt.Sprint(got2) != want {
		t.Errorf("bob2's inbox: %v, want %s", got2, want)
	}

	for _, tc := range []struct {
		name, origin   string
		sender         id.UserID
		typ, messageID string
		want           error
	}{
		{"sender of another server", remote, "@dave:third.example", "m.test", "x1", e2ee.ErrForbidden},
		{"sender of this server", remote, bob1.user, "m.test", "x2", e2ee.ErrForbidden},
		{"origin is this server", server, bob1.user, "m.test", "x3", e2ee.ErrForbidden},
		{"not a user ID", remote, "carol", "m.test", "x4", e2ee.ErrForbidden},
		{"no type", remote, carol, "", "x5", e2ee.ErrInvalidParam},
		{"no message_id", remote, carol, "m.test", "", e2ee.ErrInvalidParam},
		{"long message_id", remote, carol, "m.test", strings.Repeat("x", e2ee.MaxMessageIDBytes+1), e2ee.ErrInvalidParam},
	} {
		err := receive(tc.origin, tc.sender, tc.typ, tc.messageID, map[id.UserID]map[id.DeviceID]json.RawMessage{bob1.user: {bob1.id: msg(9)}})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got, _ := inbox(t, v, bob1, 0, 0); len(got) != 2 {
		t.Errorf("refused EDUs reached bob1: %v", got)
	}
}

// TestReceiveToDeviceForgetsOldIDs: message IDs are remembered for a week, not forever.
func TestReceiveToDeviceForgetsOldIDs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := storage.Open(ctx, filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Unix(1_800_000_000, 0)
	v := &env{db: db, e: e2ee.New(db, e2ee.Options{ServerName: server, Now: func() time.Time { return now }})}
	bob := v.newDevice(t, user("bob"), "BOB1")
	send := func(n int) {
		t.Helper()
		if err := v.e.ReceiveToDevice(ctx, remote, "@carol:"+remote, "m.test", "m1",
			map[id.UserID]map[id.DeviceID]json.RawMessage{bob.user: {bob.id: msg(n)}}); err != nil {
			t.Fatal(err)
		}
	}
	send(1)
	now = now.Add(6 * 24 * time.Hour)
	send(2)
	now = now.Add(2 * 24 * time.Hour)
	send(3)
	if got, _ := inbox(t, v, bob, 0, 0); len(got) != 2 || got[0].Content.N != 1 || got[1].Content.N != 3 {
		t.Errorf("inbox: %v, want 1 (first) and 3 (after the ID was forgotten)", got)
	}
}

func TestRemoteKeysChanged(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := user("alice")
	v.newDevice(t, alice, "ALICE1")
	mustCreateRoom(t, v, alice)
	for _, tc := range []struct {
		origin string
		user   id.UserID
	}{
		{remote, "@dave:third.example"},
		{remote, alice},
		{server, alice},
		{remote, "carol"},
	} {
		if err := v.e.RemoteKeysChanged(ctx, tc.origin, tc.user); !errors.Is(err, e2ee.ErrForbidden) {
			t.Errorf("%s about %s: %v, want ErrForbidden", tc.origin, tc.user, err)
		}
	}
	// A user who shares no room with a local user is not recorded.
	before := pos(t, v)
	if err := v.e.RemoteKeysChanged(ctx, remote, "@carol:"+remote); err != nil {
		t.Fatal(err)
	}
	if after := pos(t, v); after != before {
		t.Errorf("an update about a stranger took stream position %d", after)
	}
}

// fakeRemote answers queries for users of other servers from a fixed set of master keys.
type fakeRemote struct {
	masters map[id.UserID]json.RawMessage
	down    bool
}

func (f *fakeRemote) QueryKeys(_ context.Context, server string, users map[id.UserID][]id.DeviceID) (*e2ee.QueryResult, error) {
	if f.down {
		return nil, errors.New("unreachable")
	}
	res := &e2ee.QueryResult{DeviceKeys: map[id.UserID]map[id.DeviceID]json.RawMessage{}, MasterKeys: map[id.UserID]json.RawMessage{}}
	for u := range users {
		res.DeviceKeys[u] = map[id.DeviceID]json.RawMessage{}
		if k, ok := f.masters[u]; ok {
			res.MasterKeys[u] = k
		}
	}
	return res, nil
}

func (f *fakeRemote) ClaimKeys(context.Context, string, map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	return nil, errors.New("not in this test")
}

// TestSignRemoteMasterKey: a local user signs the master key of a user on another server;
// the signature is checked against the key that server reports, and only its maker sees it.
func TestSignRemoteMasterKey(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	bob := v.newDevice(t, user("bob"), "BOB1")
	acs := newCrossSigning(alice.user)
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, acs.upload(t), false); err != nil {
		t.Fatal(err)
	}
	carol := id.UserID("@carol:" + remote)
	ccs := newCrossSigning(carol)
	rk := &fakeRemote{masters: map[id.UserID]json.RawMessage{carol: mustJSON(t, ccs.keyObject("master", ccs.master))}}
	v.e.SetRemote(rk)
	usk, cmaster := "ed25519:"+pubOf(acs.userSig), pubOf(ccs.master)
	signed := mustJSON(t, sign(t, ccs.keyObject("master", ccs.master), alice.user, usk, acs.userSig))
	forged := mustJSON(t, sign(t, ccs.keyObject("master", ccs.master), alice.user, usk, acs.master))
	other := newCrossSigning(carol)
	wrongKey := mustJSON(t, sign(t, other.keyObject("master", other.master), alice.user, usk, acs.userSig))
	upload := func(keyID string, raw json.RawMessage) string {
		t.Helper()
		f := must(v.e.UploadSignatures(ctx, alice.user, map[id.UserID]map[string]json.RawMessage{carol: {keyID: raw}}))(t)
		return f[carol][keyID].ErrCode
	}
	if code := upload(cmaster, forged); code != "M_INVALID_SIGNATURE" {
		t.Errorf("forged signature: %q", code)
	}
	if code := upload(pubOf(other.master), wrongKey); code != "M_NOT_FOUND" {
		t.Errorf("signature of a key carol does not have: %q", code)
	}
	rk.down = true
	if code := upload(cmaster, signed); code != "M_NOT_FOUND" {
		t.Errorf("while carol's server is down: %q", code)
	}
	rk.down = false
	if code := upload(cmaster, signed); code != "" {
		t.Fatalf("valid signature: %q", code)
	}
	carolsMaster := func(requester id.UserID) map[id.UserID]map[string]string {
		t.Helper()
		res := must(v.e.Query(ctx, requester, map[id.UserID][]id.DeviceID{carol: nil}, 0))(t)
		var k struct {
			Signatures map[id.UserID]map[string]string
		}
		json.Unmarshal(res.MasterKeys[carol], &k)
		return k.Signatures
	}
	if sigs := carolsMaster(alice.user); sigs[alice.user][usk] == "" {
		t.Errorf("alice's query of carol's master key lacks her signature: %v", sigs)
	}
	if sigs := carolsMaster(bob.user); sigs[alice.user] != nil {
		t.Errorf("bob sees alice's signature of carol's master key: %v", sigs)
	}
	// Once carol has a new master key, the old signature is not attached to it.
	rk.masters[carol] = mustJSON(t, other.keyObject("master", other.master))
	if sigs := carolsMaster(alice.user); sigs[alice.user] != nil {
		t.Errorf("alice's old signature attached to carol's new master key: %v", sigs)
	}
}
