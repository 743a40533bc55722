package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"
)

// object parses a JSON object into its members; anything else is ErrBadJSON.
func object(raw json.RawMessage, what string) (map[string]json.RawMessage, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: %s must be an object", ErrBadJSON, what)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadJSON, what, err)
	}
	return m, nil
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{'
}

// absent reports whether an optional JSON member was left out or null.
func absent(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// canonical re-encodes JSON in the spec's canonical form, so that stored keys compare and
// verify byte for byte.
func canonical(raw []byte) ([]byte, error) {
	out, err := canonicaljson.Marshal(json.RawMessage(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	return out, nil
}

// canonicalObject encodes an object's members canonically.
func canonicalObject(m map[string]json.RawMessage) ([]byte, error) {
	out, err := canonicaljson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	return out, nil
}

// signedContent is a key object without its signatures and unsigned data: what a signature
// covers, so a freshly signed copy can be compared with the stored key.
func signedContent(raw []byte) ([]byte, error) {
	m, err := object(raw, "key")
	if err != nil {
		return nil, err
	}
	delete(m, "signatures")
	delete(m, "unsigned")
	return canonicalObject(m)
}

// sameSignedContent reports whether two key objects differ only in signatures and unsigned.
func sameSignedContent(a, b []byte) bool {
	ca, err := signedContent(a)
	if err != nil {
		return false
	}
	cb, err := signedContent(b)
	return err == nil && bytes.Equal(ca, cb)
}

// signatures is the signatures member of a signed object.
type signatures map[id.UserID]map[id.KeyID]string

// signaturesOf reads a signed object's signatures; a missing member is empty.
func signaturesOf(raw []byte) (signatures, error) {
	var v struct {
		Signatures signatures `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: signatures must map user IDs to key IDs to strings", ErrBadJSON)
	}
	return v.Signatures, nil
}

// verify checks signer's signature with keyID (e.g. ed25519:DEVICEID) on a signed object,
// made with the ed25519 public key pub (unpadded base64).
func verify(raw []byte, signer id.UserID, keyID id.KeyID, pub string) error {
	if err := signutil.VerifyJSON(string(signer), keyID, id.SigningKey(pub), json.RawMessage(raw)); err != nil {
		return fmt.Errorf("%w: %s's signature by %s: %v", ErrInvalidSignature, signer, keyID, err)
	}
	return nil
}

// validEd25519 reports whether s is an unpadded base64 ed25519 public key.
func validEd25519(s string) bool {
	b, err := base64.RawStdEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// withSignatures adds signatures (and, when set, unsigned data) to a stored key object for
// a query's answer.
func withSignatures(raw []byte, extra signatures, unsigned map[string]any) (json.RawMessage, error) {
	if len(extra) == 0 && unsigned == nil {
		return raw, nil
	}
	m, err := object(raw, "stored key")
	if err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		sigs, err := signaturesOf(raw)
		if err != nil {
			return nil, err
		}
		if sigs == nil {
			sigs = signatures{}
		}
		for user, byKey := range extra {
			if sigs[user] == nil {
				sigs[user] = map[id.KeyID]string{}
			}
			for k, s := range byKey {
				sigs[user][k] = s
			}
		}
		if m["signatures"], err = json.Marshal(sigs); err != nil {
			return nil, err
		}
	}
	if unsigned != nil {
		if m["unsigned"], err = json.Marshal(unsigned); err != nil {
			return nil, err
		}
	}
	return json.Marshal(m)
}
