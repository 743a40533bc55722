package keys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"
)

// signatures is the "signatures" member of a signed JSON object: server name, then key ID.
type signatures = map[string]map[id.KeyID]string

// splitSigned parses a JSON object into its members and its signatures, removing
// "signatures" from the members. See https://spec.matrix.org/v1.19/appendices/#signing-json
func splitSigned(raw []byte) (map[string]json.RawMessage, signatures, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, nil, fmt.Errorf("parse signed JSON: %w", err)
	}
	if obj == nil {
		return nil, nil, fmt.Errorf("parse signed JSON: not an object")
	}
	sigs := signatures{}
	if s, ok := obj["signatures"]; ok {
		if err := json.Unmarshal(s, &sigs); err != nil {
			return nil, nil, fmt.Errorf("parse signatures: %w", err)
		}
		delete(obj, "signatures")
	}
	return obj, sigs, nil
}

// joinSigned is the inverse of splitSigned: canonical JSON of obj with sigs as its signatures.
func joinSigned(obj map[string]json.RawMessage, sigs signatures) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(obj)+1)
	for k, v := range obj {
		out[k] = v
	}
	if len(sigs) > 0 {
		s, err := json.Marshal(sigs)
		if err != nil {
			return nil, err
		}
		out["signatures"] = s
	}
	js, err := canonicaljson.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	return js, nil
}

// addSignature returns raw, a JSON object, as canonical JSON with key's signature under
// serverName added to the signatures already there. As the spec's signing algorithm says,
// "signatures" and "unsigned" are not covered by the signature.
func addSignature(raw []byte, serverName string, key *SigningKey) ([]byte, error) {
	obj, sigs, err := splitSigned(raw)
	if err != nil {
		return nil, err
	}
	signed := make(map[string]json.RawMessage, len(obj))
	for k, v := range obj {
		if k != "unsigned" {
			signed[k] = v
		}
	}
	msg, err := canonicaljson.Marshal(signed)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	if sigs[serverName] == nil {
		sigs[serverName] = map[id.KeyID]string{}
	}
	sigs[serverName][key.ID] = base64.RawStdEncoding.EncodeToString(key.Sign(msg))
	return joinSigned(obj, sigs)
}

// onlySignedBy returns raw as canonical JSON keeping only serverName's signatures, so a
// response relayed by a notary is stored as its origin signed it.
func onlySignedBy(raw []byte, serverName string) ([]byte, error) {
	obj, sigs, err := splitSigned(raw)
	if err != nil {
		return nil, err
	}
	return joinSigned(obj, signatures{serverName: sigs[serverName]})
}
