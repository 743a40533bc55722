package keys

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// MaxKeyValidity caps how long past its fetch a key counts as valid, whatever its
// valid_until_ts says, so a server can revoke a key within a week.
// See https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server
const MaxKeyValidity = 7 * 24 * time.Hour

// checkResponse parses a /_matrix/key/v2/server response claimed to be serverName's and
// checks its self-signature: at least one of its verify_keys must have signed it, and none
// of them may have a wrong signature on it.
func checkResponse(raw []byte, serverName string) (*federation.ServerKeyResponse, error) {
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(raw, &skr); err != nil {
		return nil, fmt.Errorf("parse key response: %w", err)
	}
	if skr.ServerName != serverName {
		return nil, fmt.Errorf("key response is for %q, want %q", skr.ServerName, serverName)
	}
	if len(skr.VerifyKeys) == 0 {
		return nil, fmt.Errorf("key response of %s lists no verify_keys", serverName)
	}
	if skr.ValidUntilTS.UnixMilli() <= 0 {
		return nil, fmt.Errorf("key response of %s has no valid_until_ts", serverName)
	}
	signed := 0
	for keyID, vk := range skr.VerifyKeys {
		if !isEd25519(keyID) {
			continue // an algorithm we do not speak; other keys may still sign
		}
		if _, err := decodeKey(vk.Key); err != nil {
			return nil, fmt.Errorf("verify key %s of %s: %w", keyID, serverName, err)
		}
		if _, ok := skr.Signatures[serverName][keyID]; !ok {
			continue
		}
		if err := signutil.VerifyJSON(serverName, keyID, vk.Key, json.RawMessage(raw)); err != nil {
			return nil, fmt.Errorf("%w: key response of %s, key %s: %v", ErrBadSignature, serverName, keyID, err)
		}
		signed++
	}
	if signed == 0 {
		return nil, fmt.Errorf("%w: key response of %s is not signed by any of its verify_keys", ErrBadSignature, serverName)
	}
	for keyID, ok := range skr.OldVerifyKeys {
		if !isEd25519(keyID) {
			continue
		}
		if _, err := decodeKey(ok.Key); err != nil {
			return nil, fmt.Errorf("old verify key %s of %s: %w", keyID, serverName, err)
		}
	}
	return &skr, nil
}

// checkNotarySignature checks that notary signed raw with pub, the key keyID.
func checkNotarySignature(raw []byte, notary string, keyID id.KeyID, pub ed25519.PublicKey) error {
	if err := signutil.VerifyJSON(notary, keyID, encodeKey(pub), json.RawMessage(raw)); err != nil {
		return fmt.Errorf("%w: notary %s, key %s: %v", ErrBadSignature, notary, keyID, err)
	}
	return nil
}

// toStored turns a checked response, received at fetched, into the rows the cache keeps. A
// verify key is valid until the response's valid_until_ts or MaxKeyValidity past fetched,
// whichever is sooner; an old key until its expired_ts. Old keys without expired_ts, and
// old keys also listed as current, are left out.
func toStored(skr *federation.ServerKeyResponse, js []byte, fetched time.Time) *storage.KeyResponse {
	validUntil := min(skr.ValidUntilTS.UnixMilli(), fetched.Add(MaxKeyValidity).UnixMilli())
	r := &storage.KeyResponse{
		ServerName:   skr.ServerName,
		JSON:         js,
		ValidUntilTS: skr.ValidUntilTS.UnixMilli(),
		FetchedTS:    fetched.UnixMilli(),
	}
	for keyID, vk := range skr.VerifyKeys {
		if !isEd25519(keyID) {
			continue
		}
		pub, _ := decodeKey(vk.Key)
		r.Keys = append(r.Keys, storage.ServerKey{ServerName: skr.ServerName, KeyID: keyID, PublicKey: pub,
			ValidUntilTS: validUntil})
	}
	for keyID, ok := range skr.OldVerifyKeys {
		if _, current := skr.VerifyKeys[keyID]; current || !isEd25519(keyID) || ok.ExpiredTS.UnixMilli() <= 0 {
			continue
		}
		pub, _ := decodeKey(ok.Key)
		ts := ok.ExpiredTS.UnixMilli()
		r.Keys = append(r.Keys, storage.ServerKey{ServerName: skr.ServerName, KeyID: keyID, PublicKey: pub,
			ValidUntilTS: ts, ExpiredTS: ts})
	}
	return r
}

// decodeKey decodes an unpadded base64 ed25519 public key.
func decodeKey(k id.SigningKey) (ed25519.PublicKey, error) {
	b, err := base64.RawStdEncoding.DecodeString(string(k))
	if err != nil {
		return nil, fmt.Errorf("key is not unpadded base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return b, nil
}

// isEd25519 reports whether keyID names an ed25519 key, the only algorithm the spec defines
// for server keys.
func isEd25519(keyID id.KeyID) bool {
	alg, _ := keyID.Parse()
	return alg == id.KeyAlgorithmEd25519
}
