package transport_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
)

func TestParseXMatrix(t *testing.T) {
	full := federation.XMatrixAuth{Origin: "a.test", Destination: "b.test", KeyID: "ed25519:k1", Signature: "c2ln"}
	noDest := federation.XMatrixAuth{Origin: "a.test", KeyID: "ed25519:k1", Signature: "c2ln"}
	tests := []struct {
		header  string
		want    federation.XMatrixAuth
		wantErr string
	}{
		{`X-Matrix origin="a.test",destination="b.test",key="ed25519:k1",sig="c2ln"`, full, ""},
		{`x-matrix   ORIGIN="a.test" , Destination="b.test",	key="ed25519:k1", sig="c2ln"`, full, ""},
		{`X-Matrix sig=c2ln,key=ed25519:k1,origin=a.test,destination=b.test`, full, ""},
		{`X-Matrix origin="a.test",key="ed25519:k1",sig="c2ln"`, noDest, ""},
		{`X-Matrix origin="a\.test",key="ed25519:k1",sig="c2ln",future="x, \"y\""`, noDest, ""},
		{`X-Matrix origin=a.test:8448,key=ed25519:k1,sig=c2ln`, federation.XMatrixAuth{Origin: "a.test:8448", KeyID: "ed25519:k1", Signature: "c2ln"}, ""},
		{`Bearer abc`, federation.XMatrixAuth{}, "not an X-Matrix"},
		{`X-Matrix origin="a.test",key="ed25519:k1"`, federation.XMatrixAuth{}, "required"},
		{`X-Matrix origin="a.test,key="ed25519:k1",sig="c2ln"`, federation.XMatrixAuth{}, "expected ','"},
		{`X-Matrix origin="a.test",key="ed25519:k1",sig="c2ln`, federation.XMatrixAuth{}, "unterminated"},
		{`X-Matrix origin="a.test",origin="c.test",key="ed25519:k1",sig="c2ln"`, federation.XMatrixAuth{}, "twice"},
		{`X-Matrix origin`, federation.XMatrixAuth{}, "malformed"},
	}
	for _, tt := range tests {
		got, err := transport.ParseXMatrix(tt.header)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseXMatrix(%q) error = %v, want %q", tt.header, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseXMatrix(%q) = %+v, %v; want %+v", tt.header, got, err, tt.want)
		}
	}
}

func TestSignRequestRoundTrip(t *testing.T) {
	a := newServerKey("a.test")
	content := json.RawMessage(`{"pdus": [], "origin": "a.test"}`)
	auth, err := transport.SignRequest(a.priv, a.keyID, "a.test", "b.test", "PUT", "/_matrix/federation/v1/send/t1?x=%21y", content)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := transport.ParseXMatrix(auth.String())
	if err != nil || parsed != auth {
		t.Fatalf("ParseXMatrix(%q) = %+v, %v; want %+v", auth.String(), parsed, err, auth)
	}
	if err := transport.VerifyRequest(a.public(), parsed, "b.test", "PUT", "/_matrix/federation/v1/send/t1?x=%21y", content); err != nil {
		t.Fatalf("VerifyRequest of an untouched request: %v", err)
	}
	// Key order and whitespace in the body do not matter: the signature is over canonical JSON.
	if err := transport.VerifyRequest(a.public(), parsed, "b.test", "PUT", "/_matrix/federation/v1/send/t1?x=%21y", json.RawMessage(`{"origin":"a.test","pdus":[]}`)); err != nil {
		t.Errorf("VerifyRequest of the same body re-encoded: %v", err)
	}
	tampered := []struct {
		name                    string
		dest, method, uri, body string
	}{
		{"destination", "c.test", "PUT", "/_matrix/federation/v1/send/t1?x=%21y", `{"pdus":[],"origin":"a.test"}`},
		{"method", "b.test", "POST", "/_matrix/federation/v1/send/t1?x=%21y", `{"pdus":[],"origin":"a.test"}`},
		{"uri", "b.test", "PUT", "/_matrix/federation/v1/send/t2?x=%21y", `{"pdus":[],"origin":"a.test"}`},
		{"query", "b.test", "PUT", "/_matrix/federation/v1/send/t1", `{"pdus":[],"origin":"a.test"}`},
		{"body", "b.test", "PUT", "/_matrix/federation/v1/send/t1?x=%21y", `{"pdus":[{}],"origin":"a.test"}`},
	}
	for _, tt := range tampered {
		err := transport.VerifyRequest(a.public(), parsed, tt.dest, tt.method, tt.uri, json.RawMessage(tt.body))
		if !errors.Is(err, transport.ErrBadSignature) {
			t.Errorf("VerifyRequest with changed %s = %v, want ErrBadSignature", tt.name, err)
		}
	}
	other := newServerKey("a.test")
	if err := transport.VerifyRequest(other.public(), parsed, "b.test", "PUT", "/_matrix/federation/v1/send/t1?x=%21y", content); !errors.Is(err, transport.ErrBadSignature) {
		t.Errorf("VerifyRequest with another key = %v, want ErrBadSignature", err)
	}
}

// TestSignRequestMatchesSpec checks our signature against mautrix's independent JSON signing
// check, over the object the spec defines, including an empty-object body.
func TestSignRequestMatchesSpec(t *testing.T) {
	a := newServerKey("a.test")
	pub := id.SigningKey(base64.RawStdEncoding.EncodeToString(a.public()))
	for _, tc := range []struct {
		method  string
		content json.RawMessage
	}{
		{"GET", nil},
		{"PUT", json.RawMessage(`{}`)},
		{"POST", json.RawMessage(`{"b": [1, 25, "\u00e9"], "a": {"z": true, "y": null}}`)},
	} {
		auth, err := transport.SignRequest(a.priv, a.keyID, "a.test", "b.test", tc.method, "/_matrix/federation/v1/x", tc.content)
		if err != nil {
			t.Fatal(err)
		}
		obj := map[string]any{
			"method":      tc.method,
			"uri":         "/_matrix/federation/v1/x",
			"origin":      "a.test",
			"destination": "b.test",
			"signatures":  map[string]any{"a.test": map[string]string{string(a.keyID): auth.Signature}},
		}
		if tc.content != nil {
			obj["content"] = tc.content
		}
		raw, _ := json.Marshal(obj)
		if err := signutil.VerifyJSON("a.test", a.keyID, pub, json.RawMessage(raw)); err != nil {
			t.Errorf("%s with content %s: mautrix does not verify our signature: %v", tc.method, tc.content, err)
		}
	}
}
