package keys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Validity of this server's published keys.
const (
	// DefaultValidity is how far past the moment it is generated the key response's
	// valid_until_ts lies: the most any server honours (MaxKeyValidity), so that peers
	// keep verifying our events through a long outage.
	DefaultValidity = MaxKeyValidity
	// DefaultResponseRefresh is how long one signed response is served before it is
	// generated afresh with a later valid_until_ts.
	DefaultResponseRefresh = time.Hour
)

// Local is this server's own signing key and the keys it retired: what
// GET /_matrix/key/v2/server publishes, and what it signs notary answers with.
// It is safe for concurrent use.
type Local struct {
	serverName string
	key        *SigningKey
	old        []OldKey

	mu       sync.Mutex
	cached   []byte
	cachedAt time.Time
}

// NewLocal returns the keys of serverName: the current signing key and the old keys to
// list under old_verify_keys. An old key with the current key's ID is ignored (Rotate can
// leave one behind if it is interrupted); of two old keys with one ID the later wins.
func NewLocal(serverName string, key *SigningKey, old []OldKey) *Local {
	l := &Local{serverName: serverName, key: key}
	seen := map[id.KeyID]int{}
	for _, k := range old {
		if k.ID == key.ID {
			continue
		}
		if i, ok := seen[k.ID]; ok {
			l.old[i] = k
			continue
		}
		seen[k.ID] = len(l.old)
		l.old = append(l.old, k)
	}
	return l
}

// ServerName is the name the keys belong to.
func (l *Local) ServerName() string { return l.serverName }

// Response is the signed body of GET /_matrix/key/v2/server at time now, as canonical JSON.
// One response is reused for DefaultResponseRefresh; its valid_until_ts is DefaultValidity
// after it was made.
// See https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server
func (l *Local) Response(now time.Time) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cached != nil && !now.Before(l.cachedAt) && now.Sub(l.cachedAt) < DefaultResponseRefresh {
		return l.cached, nil
	}
	skr := federation.ServerKeyResponse{
		ServerName: l.serverName,
		VerifyKeys: map[id.KeyID]federation.ServerVerifyKey{l.key.ID: {Key: encodeKey(l.key.Public())}},
	}
	skr.ValidUntilTS.Time = now.Add(DefaultValidity)
	if len(l.old) > 0 {
		skr.OldVerifyKeys = map[id.KeyID]federation.OldVerifyKey{}
		for _, k := range l.old {
			ovk := federation.OldVerifyKey{Key: encodeKey(k.Public)}
			ovk.ExpiredTS.Time = k.ExpiredTS
			skr.OldVerifyKeys[k.ID] = ovk
		}
	}
	raw, err := json.Marshal(&skr)
	if err != nil {
		return nil, fmt.Errorf("encode key response: %w", err)
	}
	if len(skr.OldVerifyKeys) == 0 {
		// The spec's response always has old_verify_keys (Complement checks); mautrix's type
		// omits an empty map.
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("encode key response: %w", err)
		}
		obj["old_verify_keys"] = json.RawMessage(`{}`)
		if raw, err = json.Marshal(obj); err != nil {
			return nil, fmt.Errorf("encode key response: %w", err)
		}
	}
	signed, err := addSignature(raw, l.serverName, l.key)
	if err != nil {
		return nil, fmt.Errorf("sign key response: %w", err)
	}
	l.cached, l.cachedAt = signed, now
	return signed, nil
}

// Sign returns the JSON object raw with this server's signature added, as canonical JSON.
func (l *Local) Sign(raw []byte) ([]byte, error) {
	return addSignature(raw, l.serverName, l.key)
}

// lookup returns one of this server's own keys as a cache row would hold it: the current key
// is valid for DefaultValidity past now, an old key until it expired.
func (l *Local) lookup(keyID id.KeyID, now time.Time) (*storage.ServerKey, bool) {
	if keyID == l.key.ID {
		return &storage.ServerKey{ServerName: l.serverName, KeyID: keyID, PublicKey: l.key.Public(),
			ValidUntilTS: now.Add(DefaultValidity).UnixMilli()}, true
	}
	for _, k := range l.old {
		if k.ID == keyID {
			ts := k.ExpiredTS.UnixMilli()
			return &storage.ServerKey{ServerName: l.serverName, KeyID: keyID, PublicKey: k.Public,
				ValidUntilTS: ts, ExpiredTS: ts}, true
		}
	}
	return nil, false
}

// encodeKey is a public key in unpadded base64, as key responses carry it.
func encodeKey(pub []byte) id.SigningKey {
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(pub))
}
