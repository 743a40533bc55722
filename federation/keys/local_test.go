package keys_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
)

// keyResponse is what a test reads back from a key response.
type keyResponse struct {
	ServerName string `json:"server_name"`
	VerifyKeys map[id.KeyID]struct {
		Key id.SigningKey `json:"key"`
	} `json:"verify_keys"`
	OldVerifyKeys map[id.KeyID]struct {
		Key       id.SigningKey `json:"key"`
		ExpiredTS int64         `json:"expired_ts"`
	} `json:"old_verify_keys"`
	Signatures   map[string]map[id.KeyID]string `json:"signatures"`
	ValidUntilTS int64                          `json:"valid_until_ts"`
}

func parseResponse(t *testing.T, raw []byte) keyResponse {
	t.Helper()
	var r keyResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return r
}

func TestLocalResponseIsSelfSigned(t *testing.T) {
	key := mustKey(t)
	oldKey := mustKey(t)
	expired := t0.Add(-time.Hour)
	local := keys.NewLocal("a.test", key, []keys.OldKey{
		{ID: oldKey.ID, Public: oldKey.Public(), ExpiredTS: expired},
		{ID: key.ID, Public: key.Public(), ExpiredTS: expired}, // left by an interrupted Rotate
	})
	raw, err := local.Response(t0)
	if err != nil {
		t.Fatal(err)
	}
	verifySigned(t, raw, "a.test", key.ID, key.Public())
	checkSelfSigned(t, raw)

	r := parseResponse(t, raw)
	if got, want := r.ServerName, "a.test"; got != want {
		t.Errorf("server_name = %q, want %q", got, want)
	}
	if got, want := r.VerifyKeys[key.ID].Key, encode(key.Public()); got != want {
		t.Errorf("verify_keys[%s] = %q, want %q", key.ID, got, want)
	}
	if got, want := len(r.VerifyKeys), 1; got != want {
		t.Errorf("len(verify_keys) = %d, want %d", got, want)
	}
	if got, want := r.ValidUntilTS, t0.Add(keys.DefaultValidity).UnixMilli(); got != want {
		t.Errorf("valid_until_ts = %d, want %d", got, want)
	}
	old, ok := r.OldVerifyKeys[oldKey.ID]
	if !ok || old.Key != encode(oldKey.Public()) || old.ExpiredTS != expired.UnixMilli() {
		t.Errorf("old_verify_keys[%s] = %+v (present %v), want key %s expired_ts %d", oldKey.ID, old, ok, encode(oldKey.Public()), expired.UnixMilli())
	}
	if _, ok := r.OldVerifyKeys[key.ID]; ok {
		t.Errorf("old_verify_keys lists the current key %s", key.ID)
	}
}

func TestLocalResponseRefreshes(t *testing.T) {
	local := keys.NewLocal("a.test", mustKey(t), nil)
	first, _ := local.Response(t0)
	again, _ := local.Response(t0.Add(keys.DefaultResponseRefresh - time.Second))
	if string(again) != string(first) {
		t.Errorf("response changed within DefaultResponseRefresh")
	}
	later, _ := local.Response(t0.Add(keys.DefaultResponseRefresh))
	if got, want := parseResponse(t, later).ValidUntilTS, t0.Add(keys.DefaultResponseRefresh+keys.DefaultValidity).UnixMilli(); got != want {
		t.Errorf("refreshed valid_until_ts = %d, want %d", got, want)
	}
}

func TestLocalSignAddsSignature(t *testing.T) {
	key := mustKey(t)
	local := keys.NewLocal("notary.test", key, nil)
	origin := keys.NewLocal("a.test", mustKey(t), nil)
	raw, _ := origin.Response(t0)
	signed, err := local.Sign(raw)
	if err != nil {
		t.Fatal(err)
	}
	verifySigned(t, signed, "notary.test", key.ID, key.Public())
	for keyID := range parseResponse(t, raw).VerifyKeys {
		pub, _ := base64.RawStdEncoding.DecodeString(string(parseResponse(t, raw).VerifyKeys[keyID].Key))
		verifySigned(t, signed, "a.test", keyID, pub)
	}
	if got := parseResponse(t, signed).Signatures["a.test"]; len(got) != 1 {
		t.Errorf("origin signatures after Sign = %v, want the one there was", got)
	}
}

// TestLocalResponseAlwaysHasOldKeys: old_verify_keys is present even when empty, as the spec's
// response shape has it and Complement checks.
func TestLocalResponseAlwaysHasOldKeys(t *testing.T) {
	key := mustKey(t)
	raw, err := keys.NewLocal("a.test", key, nil).Response(t0)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfSigned(t, raw)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	if got := string(obj["old_verify_keys"]); got != "{}" {
		t.Errorf("old_verify_keys = %q, want {}", got)
	}
}
