package storage

import (
	"context"
	"crypto/sha256"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// ServerKey is one remote server's verify key as this server last learned it.
type ServerKey struct {
	ServerName string
	KeyID      id.KeyID
	PublicKey  []byte // 32-byte ed25519 public key
	// ValidUntilTS is when the key stops verifying signatures, in Unix milliseconds: the
	// response's valid_until_ts capped as the spec asks, or ExpiredTS for an old key.
	ValidUntilTS int64
	// ExpiredTS is non-zero when the server lists the key under old_verify_keys.
	ExpiredTS int64
}

// KeyResponse is one signed /_matrix/key/v2/server response of a remote server.
type KeyResponse struct {
	ServerName   string
	JSON         []byte // canonical JSON carrying the origin's signature
	ValidUntilTS int64  // the response's own valid_until_ts
	FetchedTS    int64  // when this server last received it
	// Keys are the keys the response lists. StoreKeyResponse reads them; KeyResponses
	// leaves them empty.
	Keys []ServerKey
}

// StoreKeyResponse records a verified key response and the keys it lists. For each key, the
// row from the newest response wins (by the response's valid_until_ts, then by arrival), so
// an old response re-served by a notary never overrides a fresher one. Responses no key
// points at any more are deleted.
func (db *DB) StoreKeyResponse(ctx context.Context, r *KeyResponse) error {
	sum := sha256.Sum256(r.JSON)
	return db.Write(ctx, func(tx *Tx) error {
		var respID int64
		err := tx.QueryRow(`INSERT INTO server_key_responses (server_name, sha256, json, valid_until_ts, fetched_ts)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (sha256) DO UPDATE SET fetched_ts = max(fetched_ts, excluded.fetched_ts)
			RETURNING response_id`,
			r.ServerName, sum[:], string(r.JSON), r.ValidUntilTS, r.FetchedTS).Scan(&respID)
		if err != nil {
			return fmt.Errorf("store key response of %s: %w", r.ServerName, err)
		}
		for _, k := range r.Keys {
			var expired any
			if k.ExpiredTS != 0 {
				expired = k.ExpiredTS
			}
			_, err := tx.Exec(`INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, response_id)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (server_name, key_id) DO UPDATE SET
					public_key = excluded.public_key, valid_until_ts = excluded.valid_until_ts,
					expired_ts = excluded.expired_ts, response_id = excluded.response_id
				WHERE ? >= (SELECT valid_until_ts FROM server_key_responses WHERE response_id = server_keys.response_id)`,
				r.ServerName, string(k.KeyID), k.PublicKey, k.ValidUntilTS, expired, respID, r.ValidUntilTS)
			if err != nil {
				return fmt.Errorf("store key %s of %s: %w", k.KeyID, r.ServerName, err)
			}
		}
		_, err = tx.Exec(`DELETE FROM server_key_responses WHERE server_name = ?
			AND response_id NOT IN (SELECT response_id FROM server_keys WHERE server_name = ?)`, r.ServerName, r.ServerName)
		if err != nil {
			return fmt.Errorf("prune key responses of %s: %w", r.ServerName, err)
		}
		return nil
	})
}

// ServerKey returns what this server knows of one remote key, expired or not, or ErrNotFound.
func (db *DB) ServerKey(ctx context.Context, serverName string, keyID id.KeyID) (*ServerKey, error) {
	k := ServerKey{ServerName: serverName, KeyID: keyID}
	err := db.queryRow(ctx, `SELECT public_key, valid_until_ts, coalesce(expired_ts, 0)
		FROM server_keys WHERE server_name = ? AND key_id = ?`, serverName, string(keyID)).
		Scan(&k.PublicKey, &k.ValidUntilTS, &k.ExpiredTS)
	if err != nil {
		return nil, notFound(err)
	}
	return &k, nil
}

// KeyResponses returns the stored responses of a server, newest (by valid_until_ts) first,
// expired or not; none is not an error. Their Keys are left empty.
func (db *DB) KeyResponses(ctx context.Context, serverName string) ([]KeyResponse, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT json, valid_until_ts, fetched_ts FROM server_key_responses
		WHERE server_name = ? ORDER BY valid_until_ts DESC, fetched_ts DESC`, serverName)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []KeyResponse
	for rows.Next() {
		r := KeyResponse{ServerName: serverName}
		var js string
		if err := rows.Scan(&js, &r.ValidUntilTS, &r.FetchedTS); err != nil {
			return nil, err
		}
		r.JSON = []byte(js)
		out = append(out, r)
	}
	return out, rows.Err()
}
