package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
)

func TestCrossSigningUpload(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	cs := newCrossSigning(alice.user)
	mk := "ed25519:" + pubOf(cs.master)

	// Refusals before any key exists.
	noMaster := cs.upload(t)
	noMaster.MasterKey = nil
	wrongUser := cs.upload(t)
	wrongUser.MasterKey = mustJSON(t, newCrossSigning(user("bob")).keyObject("master", cs.master))
	wrongUsage := cs.upload(t)
	wrongUsage.MasterKey = mustJSON(t, cs.keyObject("self_signing", cs.master))
	twoKeys := cs.upload(t)
	two := cs.keyObject("master", cs.master)
	two["keys"].(map[string]any)["ed25519:"+pubOf(cs.self)] = pubOf(cs.self)
	twoKeys.MasterKey = mustJSON(t, two)
	misnamed := cs.upload(t)
	mis := cs.keyObject("master", cs.master)
	mis["keys"] = map[string]any{"ed25519:somethingelse": pubOf(cs.master)}
	misnamed.MasterKey = mustJSON(t, mis)
	unsignedSSK := cs.upload(t)
	unsignedSSK.SelfSigningKey = mustJSON(t, cs.keyObject("self_signing", cs.self))
	selfSignedUSK := cs.upload(t)
	selfSignedUSK.UserSigningKey = mustJSON(t, sign(t, cs.keyObject("user_signing", cs.userSig), alice.user, mk, cs.userSig))
	// A master key whose public key is one of alice's device IDs.
	clash := newCrossSigning(alice.user)
	v.newDevice(t, alice.user, id.DeviceID(pubOf(clash.master)))

	for _, tc := range []struct {
		name string
		up   *e2ee.CrossSigningUpload
		want error
	}{
		{"no master key anywhere", noMaster, e2ee.ErrMissingParam},
		{"another user's key", wrongUser, e2ee.ErrInvalidParam},
		{"wrong usage", wrongUsage, e2ee.ErrInvalidParam},
		{"two keys in one", twoKeys, e2ee.ErrInvalidParam},
		{"key ID not the public key", misnamed, e2ee.ErrInvalidParam},
		{"self-signing key not signed by the master key", unsignedSSK, e2ee.ErrInvalidSignature},
		{"user-signing key signed by itself", selfSignedUSK, e2ee.ErrInvalidSignature},
		{"master key named like a device", clash.upload(t), e2ee.ErrForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.e.UploadCrossSigningKeys(ctx, alice.user, tc.up, false); !errors.Is(err, tc.want) {
				t.Fatalf("UploadCrossSigningKeys = %v, want %v", err, tc.want)
			}
		})
	}
	if res := must(v.e.Query(ctx, alice.user, map[id.UserID][]id.DeviceID{alice.user: nil}, 0))(t); len(res.MasterKeys) != 0 {
		t.Fatalf("a refused upload stored keys: %s", res.MasterKeys)
	}

	// The first upload needs no auth; uploading the same keys again neither.
	start := pos(t, v)
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, cs.upload(t), false); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	afterFirst := pos(t, v)
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, cs.upload(t), false); err != nil {
		t.Fatalf("same keys again: %v", err)
	}
	if pos(t, v) != afterFirst {
		t.Error("uploading the same keys recorded a change")
	}
	if changed, _ := must2(v.e.DeviceListChanges(ctx, alice.user, start, afterFirst))(t); len(changed) != 1 || changed[0] != alice.user {
		t.Errorf("alice's changes = %v, want [alice]", changed)
	}
	// Replacing keys needs auth.
	next := newCrossSigning(alice.user)
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, next.upload(t), false); !errors.Is(err, e2ee.ErrAuthRequired) {
		t.Fatalf("replacing keys without auth: %v, want ErrAuthRequired", err)
	}
	// A new self-signing key alone is checked against the stored master key.
	sskOnly := &e2ee.CrossSigningUpload{SelfSigningKey: mustJSON(t, sign(t, cs.keyObject("self_signing", next.self), alice.user, mk, cs.master))}
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, sskOnly, true); err != nil {
		t.Fatalf("new self-signing key signed by the stored master: %v", err)
	}
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, next.upload(t), true); err != nil {
		t.Fatalf("replacing keys with auth: %v", err)
	}
	res := must(v.e.Query(ctx, alice.user, map[id.UserID][]id.DeviceID{alice.user: nil}, 0))(t)
	if !json.Valid(res.MasterKeys[alice.user]) || !bytes.Contains(res.MasterKeys[alice.user], []byte(pubOf(next.master))) {
		t.Errorf("master key after replacement: %s", res.MasterKeys[alice.user])
	}
}

// signedSignatures reads the signatures of a queried key object.
func signedSignatures(t *testing.T, raw json.RawMessage) map[id.UserID]map[string]string {
	t.Helper()
	var v struct {
		Signatures map[id.UserID]map[string]string
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.Signatures
}

func TestSignaturesUpload(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	alice2 := v.newDevice(t, user("alice"), "ALICE2")
	bob := v.newDevice(t, user("bob"), "BOB1")
	carol := v.newDevice(t, user("carol"), "CAROL1")
	for _, d := range []*device{alice, alice2, bob, carol} {
		v.upload(t, d, &e2ee.Upload{DeviceKeys: d.deviceKeys(t)})
	}
	acs, bcs := newCrossSigning(alice.user), newCrossSigning(bob.user)
	for _, cs := range []*crossSigning{acs, bcs} {
		if err := v.e.UploadCrossSigningKeys(ctx, cs.user, cs.upload(t), false); err != nil {
			t.Fatal(err)
		}
	}
	ssk := "ed25519:" + pubOf(acs.self)
	usk := "ed25519:" + pubOf(acs.userSig)
	amaster, bmaster := pubOf(acs.master), pubOf(bcs.master)

	signedDevice := sign(t, alice2.keysObject(), alice.user, ssk, acs.self)
	sign(t, signedDevice, alice2.user, alice2.keyID(), alice2.priv)
	forged := sign(t, alice2.keysObject(), alice.user, ssk, acs.userSig)
	notStored := alice2.keysObject()
	notStored["algorithms"] = []string{"m.megolm.v1.aes-sha2"}
	sign(t, notStored, alice.user, ssk, acs.self)
	masterByDevice := sign(t, acs.keyObject("master", acs.master), alice.user, alice.keyID(), alice.priv)
	bobMaster := sign(t, bcs.keyObject("master", bcs.master), alice.user, usk, acs.userSig)
	bobSSK := sign(t, bcs.keyObject("self_signing", bcs.self), alice.user, usk, acs.userSig)

	failures := must(v.e.UploadSignatures(ctx, alice.user, map[id.UserID]map[string]json.RawMessage{
		alice.user: {
			string(alice2.id): mustJSON(t, signedDevice),
			string(alice.id):  mustJSON(t, forged),
			"NOSUCHDEVICE":    mustJSON(t, signedDevice),
			amaster:           mustJSON(t, masterByDevice),
		},
		bob.user: {
			bmaster:         mustJSON(t, bobMaster),
			pubOf(bcs.self): mustJSON(t, bobSSK),
		},
		carol.user:                 {"whatever": mustJSON(t, bobMaster)},
		"@dave:elsewhere.example":  {"key": mustJSON(t, bobMaster)},
		user("alice") + "-nothing": {},
	}))(t)
	wantFail := map[id.UserID]map[string]string{
		alice.user:                {string(alice.id): "M_INVALID_PARAM", "NOSUCHDEVICE": "M_NOT_FOUND"},
		bob.user:                  {pubOf(bcs.self): "M_NOT_FOUND"},
		carol.user:                {"whatever": "M_NOT_FOUND"},
		"@dave:elsewhere.example": {"key": "M_NOT_FOUND"},
	}
	for u, byKey := range wantFail {
		for k, code := range byKey {
			if got := failures[u][k].ErrCode; got != code {
				t.Errorf("failure for %s %s = %q, want %s", u, k, got, code)
			}
		}
	}
	if failures[alice.user][string(alice2.id)].ErrCode != "" || failures[alice.user][amaster].ErrCode != "" || failures[bob.user][bmaster].ErrCode != "" {
		t.Errorf("valid signatures failed: %+v", failures)
	}

	// A forged signature over the stored key is M_INVALID_SIGNATURE.
	forgedStored := sign(t, alice.keysObject(), alice.user, alice.keyID(), alice.priv)
	sign(t, forgedStored, alice.user, ssk, acs.userSig)
	failures = must(v.e.UploadSignatures(ctx, alice.user, map[id.UserID]map[string]json.RawMessage{alice.user: {string(alice.id): mustJSON(t, forgedStored)}}))(t)
	if got := failures[alice.user][string(alice.id)].ErrCode; got != "M_INVALID_SIGNATURE" {
		t.Errorf("forged signature: %q, want M_INVALID_SIGNATURE", got)
	}

	// Bob sees alice's device signed by her self-signing key and her master key signed by her
	// device, but not alice's signature of his own master key.
	res := must(v.e.Query(ctx, bob.user, map[id.UserID][]id.DeviceID{alice.user: nil, bob.user: nil}, 0))(t)
	if signedSignatures(t, res.DeviceKeys[alice.user][alice2.id])[alice.user][ssk] == "" {
		t.Errorf("alice2 as bob sees it lacks the self-signing signature: %s", res.DeviceKeys[alice.user][alice2.id])
	}
	if signedSignatures(t, res.MasterKeys[alice.user])[alice.user][alice.keyID()] == "" {
		t.Errorf("alice's master key lacks her device's signature: %s", res.MasterKeys[alice.user])
	}
	if _, ok := signedSignatures(t, res.MasterKeys[bob.user])[alice.user]; ok {
		t.Errorf("bob sees alice's user-signing signature of his master key: %s", res.MasterKeys[bob.user])
	}
	res = must(v.e.Query(ctx, alice.user, map[id.UserID][]id.DeviceID{bob.user: nil}, 0))(t)
	if signedSignatures(t, res.MasterKeys[bob.user])[alice.user][usk] == "" {
		t.Errorf("alice does not see her own signature of bob's master key: %s", res.MasterKeys[bob.user])
	}
	// Carol sees neither.
	res = must(v.e.Query(ctx, carol.user, map[id.UserID][]id.DeviceID{bob.user: nil}, 0))(t)
	if _, ok := signedSignatures(t, res.MasterKeys[bob.user])[alice.user]; ok {
		t.Errorf("carol sees alice's signature of bob's master key")
	}

	// Replacing the self-signing key takes its signatures with it.
	next := newCrossSigning(alice.user)
	up := &e2ee.CrossSigningUpload{SelfSigningKey: mustJSON(t, sign(t, acs.keyObject("self_signing", next.self), alice.user, "ed25519:"+amaster, acs.master))}
	if err := v.e.UploadCrossSigningKeys(ctx, alice.user, up, true); err != nil {
		t.Fatal(err)
	}
	res = must(v.e.Query(ctx, bob.user, map[id.UserID][]id.DeviceID{alice.user: nil}, 0))(t)
	if signedSignatures(t, res.DeviceKeys[alice.user][alice2.id])[alice.user][ssk] != "" {
		t.Errorf("the old self-signing key's signature outlived it")
	}
}

func TestSignaturesUploadRefusesMalformed(t *testing.T) {
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	_, err := v.e.UploadSignatures(context.Background(), alice.user, map[id.UserID]map[string]json.RawMessage{alice.user: {"ALICE1": json.RawMessage(`"x"`)}})
	if !errors.Is(err, e2ee.ErrInvalidParam) {
		t.Fatalf("a string instead of a key object: %v, want ErrInvalidParam", err)
	}
}
