package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
)

func TestUploadRefusals(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	other := v.newDevice(t, user("alice"), "ALICE2")
	bob := v.newDevice(t, user("bob"), "BOB1")
	v.upload(t, other, &e2ee.Upload{DeviceKeys: other.deviceKeys(t)})

	without := func(field string) json.RawMessage {
		obj := alice.keysObject()
		delete(obj, field)
		return mustJSON(t, sign(t, obj, alice.user, alice.keyID(), alice.priv))
	}
	wrongSigner := sign(t, alice.keysObject(), alice.user, alice.keyID(), bob.priv)
	noEd := alice.keysObject()
	delete(noEd["keys"].(map[string]any), alice.keyID())
	tampered := sign(t, alice.keysObject(), alice.user, alice.keyID(), alice.priv)
	tampered["algorithms"] = []string{"m.megolm.v1.aes-sha2"}
	changed := other.keysObject()
	otherNew := *other
	otherNew.pub = bob.pub
	otherNew.priv = bob.priv
	changed = sign(t, otherNew.keysObject(), other.user, other.keyID(), bob.priv)

	for _, tc := range []struct {
		name   string
		device *device
		up     e2ee.Upload
		want   error
	}{
		{"keys of another user", bob, e2ee.Upload{DeviceKeys: alice.deviceKeys(t)}, e2ee.ErrBadJSON},
		{"keys of another device", other, e2ee.Upload{DeviceKeys: alice.deviceKeys(t)}, e2ee.ErrBadJSON},
		{"device_keys not an object", alice, e2ee.Upload{DeviceKeys: json.RawMessage(`[1]`)}, e2ee.ErrBadJSON},
		{"no algorithms", alice, e2ee.Upload{DeviceKeys: without("algorithms")}, e2ee.ErrBadJSON},
		{"no keys", alice, e2ee.Upload{DeviceKeys: without("keys")}, e2ee.ErrBadJSON},
		{"no signatures", alice, e2ee.Upload{DeviceKeys: mustJSON(t, alice.keysObject())}, e2ee.ErrBadJSON},
		{"no ed25519 key", alice, e2ee.Upload{DeviceKeys: mustJSON(t, sign(t, noEd, alice.user, alice.keyID(), alice.priv))}, e2ee.ErrInvalidParam},
		{"signed by another key", alice, e2ee.Upload{DeviceKeys: mustJSON(t, wrongSigner)}, e2ee.ErrInvalidSignature},
		{"changed after signing", alice, e2ee.Upload{DeviceKeys: mustJSON(t, tampered)}, e2ee.ErrInvalidSignature},
		{"changed identity key", other, e2ee.Upload{DeviceKeys: mustJSON(t, changed)}, e2ee.ErrInvalidParam},
		{"one-time key name without algorithm", alice, e2ee.Upload{OneTimeKeys: map[string]json.RawMessage{"AAAA": alice.otk(t, "k", false)}}, e2ee.ErrInvalidParam},
		{"null one-time key", alice, e2ee.Upload{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:A": json.RawMessage(`null`)}}, e2ee.ErrBadJSON},
		{"two fallback keys of one algorithm", alice, e2ee.Upload{FallbackKeys: map[string]json.RawMessage{
			"signed_curve25519:F1": alice.otk(t, "f1", true), "signed_curve25519:F2": alice.otk(t, "f2", true)}}, e2ee.ErrInvalidParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.e.Upload(ctx, tc.device.user, tc.device.id, &tc.up); !errors.Is(err, tc.want) {
				t.Fatalf("Upload = %v, want %v", err, tc.want)
			}
		})
	}

	// A one-time key ID reused for a different key is refused, and the refusal writes nothing
	// of the request: not its device keys, not its other one-time keys.
	v.upload(t, alice, &e2ee.Upload{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:A": alice.otk(t, "first", false)}})
	_, err := v.e.Upload(ctx, alice.user, alice.id, &e2ee.Upload{
		DeviceKeys: alice.deviceKeys(t),
		OneTimeKeys: map[string]json.RawMessage{
			"signed_curve25519:A": alice.otk(t, "second", false),
			"signed_curve25519:B": alice.otk(t, "b", false),
		},
	})
	if !errors.Is(err, e2ee.ErrInvalidParam) {
		t.Fatalf("reused one-time key ID: %v, want ErrInvalidParam", err)
	}
	counts := must(v.e.OTKCounts(ctx, alice.user, alice.id))(t)
	if counts["signed_curve25519"] != 1 {
		t.Errorf("after a refused upload: %v one-time keys, want 1", counts)
	}
	res := must(v.e.Query(ctx, bob.user, map[id.UserID][]id.DeviceID{alice.user: {alice.id}}, 0))(t)
	if len(res.DeviceKeys[alice.user]) != 0 {
		t.Errorf("a refused upload stored device keys: %s", res.DeviceKeys[alice.user])
	}
}

// must returns v, failing the test passed to its result on err: must(f())(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

func TestUploadIsIdempotent(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	otks := map[string]json.RawMessage{}
	for i := range 4 {
		otks[fmt.Sprintf("signed_curve25519:%d", i)] = alice.otk(t, fmt.Sprintf("key%d", i), false)
	}
	start := pos(t, v)
	first := v.upload(t, alice, &e2ee.Upload{DeviceKeys: alice.deviceKeys(t), OneTimeKeys: otks})
	afterFirst := pos(t, v)
	if afterFirst == start {
		t.Fatal("new device keys took no stream position")
	}
	// The same keys again, one-time keys re-signed: accepted, nothing changes.
	resigned := map[string]json.RawMessage{}
	for name := range otks {
		var obj map[string]any
		json.Unmarshal(otks[name], &obj)
		delete(obj, "signatures")
		obj["signatures"] = map[string]any{string(alice.user): map[string]any{alice.keyID(): "another"}}
		resigned[name] = mustJSON(t, obj)
	}
	again := v.upload(t, alice, &e2ee.Upload{DeviceKeys: alice.deviceKeys(t), OneTimeKeys: resigned})
	if first["signed_curve25519"] != 4 || again["signed_curve25519"] != 4 {
		t.Errorf("counts %v then %v, want 4 both times", first, again)
	}
	if pos(t, v) != afterFirst {
		t.Error("re-uploading identical device keys recorded a device-list change")
	}
	changed, _ := must2(v.e.DeviceListChanges(ctx, alice.user, start, pos(t, v)))(t)
	if fmt.Sprint(changed) != fmt.Sprint([]id.UserID{alice.user}) {
		t.Errorf("own device-list changes = %v, want [%s]", changed, alice.user)
	}
}

// must2 is must for two results: must2(f())(t).
func must2[A, B any](a A, b B, err error) func(testing.TB) (A, B) {
	return func(tb testing.TB) (A, B) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return a, b
	}
}

// TestClaimHandsOutEachKeyOnce races 50 claims for 20 one-time keys: each key goes to
// exactly one claimer, the rest get the fallback key.
func TestClaimHandsOutEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	bob := v.newDevice(t, user("bob"), "BOB1")
	const keys, claimers = 20, 50
	otks := map[string]json.RawMessage{}
	for i := range keys {
		otks[fmt.Sprintf("signed_curve25519:K%02d", i)] = bob.otk(t, fmt.Sprintf("otk%02d", i), false)
	}
	v.upload(t, bob, &e2ee.Upload{DeviceKeys: bob.deviceKeys(t), OneTimeKeys: otks,
		FallbackKeys: map[string]json.RawMessage{"signed_curve25519:FB": bob.otk(t, "fallback", true)}})

	var wg sync.WaitGroup
	got := make(chan string, claimers)
	errs := make(chan error, claimers)
	for range claimers {
		wg.Go(func() {
			res, err := v.e.Claim(ctx, map[id.UserID]map[id.DeviceID]string{bob.user: {bob.id: "signed_curve25519"}}, 0)
			if err != nil {
				errs <- err
				return
			}
			for name := range res.OneTimeKeys[bob.user][bob.id] {
				got <- name
			}
		})
	}
	wg.Wait()
	close(got)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for name := range got {
		seen[name]++
	}
	for name, n := range seen {
		if name != "signed_curve25519:FB" && n != 1 {
			t.Errorf("one-time key %s handed out %d times", name, n)
		}
	}
	if len(seen) != keys+1 || seen["signed_curve25519:FB"] != claimers-keys {
		t.Errorf("claims got %d distinct keys and the fallback %d times; want %d and %d", len(seen), seen["signed_curve25519:FB"], keys+1, claimers-keys)
	}
	if n := must(v.e.OTKCounts(ctx, bob.user, bob.id))(t)["signed_curve25519"]; n != 0 {
		t.Errorf("%d one-time keys left, want 0", n)
	}
	if unused := must(v.e.UnusedFallbackKeyTypes(ctx, bob.user, bob.id))(t); len(unused) != 0 {
		t.Errorf("unused fallback key types after use = %v, want none", unused)
	}
}

func TestClaimOrderAndFallback(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	bob := v.newDevice(t, user("bob"), "BOB1")
	claim := func() map[string]json.RawMessage {
		t.Helper()
		res := must(v.e.Claim(ctx, map[id.UserID]map[id.DeviceID]string{bob.user: {bob.id: "signed_curve25519"}}, 0))(t)
		return res.OneTimeKeys[bob.user][bob.id]
	}
	// Keys come out in upload order (MSC4225), not in key ID order.
	v.upload(t, bob, &e2ee.Upload{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:1": bob.otk(t, "one", false)}})
	v.upload(t, bob, &e2ee.Upload{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:0": bob.otk(t, "zero", false)}})
	for _, want := range []string{"signed_curve25519:1", "signed_curve25519:0"} {
		if got := claim(); got[want] == nil {
			t.Fatalf("claimed %v, want %s", got, want)
		}
	}
	if got := claim(); got != nil {
		t.Fatalf("claimed %v from a device without keys", got)
	}
	res := must(v.e.Claim(ctx, map[id.UserID]map[id.DeviceID]string{bob.user: {bob.id: "signed_curve25519"}}, 0))(t)
	if _, ok := res.OneTimeKeys[bob.user]; ok {
		t.Fatalf("a user with nothing to claim is in the answer: %v", res.OneTimeKeys)
	}

	fb := bob.otk(t, "fallback", true)
	v.upload(t, bob, &e2ee.Upload{FallbackKeys: map[string]json.RawMessage{"signed_curve25519:F": fb}})
	if got := must(v.e.UnusedFallbackKeyTypes(ctx, bob.user, bob.id))(t); fmt.Sprint(got) != "[signed_curve25519]" {
		t.Fatalf("unused fallback types = %v", got)
	}
	for range 2 {
		if got := claim(); got["signed_curve25519:F"] == nil {
			t.Fatalf("claimed %v, want the fallback key (it is not consumed)", got)
		}
	}
	// Uploading the same fallback key keeps it marked used; a new one is unused.
	v.upload(t, bob, &e2ee.Upload{FallbackKeys: map[string]json.RawMessage{"signed_curve25519:F": fb}})
	if got := must(v.e.UnusedFallbackKeyTypes(ctx, bob.user, bob.id))(t); len(got) != 0 {
		t.Fatalf("re-uploading a used fallback key made it unused: %v", got)
	}
	v.upload(t, bob, &e2ee.Upload{FallbackKeys: map[string]json.RawMessage{"signed_curve25519:G": bob.otk(t, "fresh", true)}})
	if got := must(v.e.UnusedFallbackKeyTypes(ctx, bob.user, bob.id))(t); fmt.Sprint(got) != "[signed_curve25519]" {
		t.Fatalf("a new fallback key is not unused: %v", got)
	}
	if got := claim(); got["signed_curve25519:G"] == nil {
		t.Fatalf("claimed %v, want the new fallback key", got)
	}
}

func TestQuery(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	bob := v.newDevice(t, user("bob"), "BOB1")
	v.upload(t, alice, &e2ee.Upload{DeviceKeys: alice.deviceKeys(t)})
	v.upload(t, bob, &e2ee.Upload{DeviceKeys: bob.deviceKeys(t)})
	acs := newCrossSigning(alice.user)
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, acs.upload(t), false); err != nil {
		t.Fatal(err)
	}

	res := must(v.e.Query(ctx, bob.user, map[id.UserID][]id.DeviceID{
		alice.user: nil, user("nobody"): nil, "@carol:elsewhere.example": nil}, 0))(t)
	var dk struct {
		Keys     map[string]string
		Unsigned struct {
			DeviceDisplayName string `json:"device_display_name"`
		}
	}
	if err := json.Unmarshal(res.DeviceKeys[alice.user][alice.id], &dk); err != nil {
		t.Fatal(err)
	}
	if dk.Keys[alice.keyID()] != b64(alice.pub) || dk.Unsigned.DeviceDisplayName != "phone of alice" {
		t.Errorf("alice's device as bob sees it: %s", res.DeviceKeys[alice.user][alice.id])
	}
	if got, ok := res.DeviceKeys[user("nobody")]; !ok || len(got) != 0 {
		t.Errorf("a local user without keys: %v, %v; want an empty entry", got, ok)
	}
	if res.MasterKeys[alice.user] == nil || res.SelfSigningKeys[alice.user] == nil {
		t.Errorf("alice's cross-signing keys are missing: %+v", res)
	}
	if res.UserSigningKeys[alice.user] != nil {
		t.Error("bob sees alice's user-signing key")
	}
	if f, ok := res.Failures["elsewhere.example"]; !ok || f.Status != 503 || f.Message == "" {
		t.Errorf("the remote server is not in failures: %v", res.Failures)
	}
	// Only a user's own query shows their user-signing key; asking for a device that does not
	// exist gives an empty entry.
	res = must(v.e.Query(ctx, alice.user, map[id.UserID][]id.DeviceID{alice.user: {"NOPE"}}, 0))(t)
	if res.UserSigningKeys[alice.user] == nil || len(res.DeviceKeys[alice.user]) != 0 {
		t.Errorf("alice's own query: usk %s, devices %v", res.UserSigningKeys[alice.user], res.DeviceKeys[alice.user])
	}
}
