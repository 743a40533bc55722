package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// RemoteKeys asks other servers about their users' keys: federation's /user/keys/query and
// /user/keys/claim. An error for a server lands in the client's failures for it.
type RemoteKeys interface {
	QueryKeys(ctx context.Context, server string, users map[id.UserID][]id.DeviceID) (*QueryResult, error)
	ClaimKeys(ctx context.Context, server string, claims map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error)
}

// QueryResult is the answer to POST /keys/query, and what a server answers about its users.
type QueryResult struct {
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
	MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys"`
	SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys"`
	UserSigningKeys map[id.UserID]json.RawMessage                 `json:"user_signing_keys"`
	// Failures maps servers that could not be asked to why.
	Failures map[string]Failure `json:"failures"`
}

// Failure says why a key in a signature upload failed (errcode and error, as the spec
// shows), or why a server could not be asked (status and message, as Synapse reports it).
type Failure struct {
	ErrCode string `json:"errcode,omitempty"`
	Error   string `json:"error,omitempty"`
	Status  int    `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

func newQueryResult() *QueryResult {
	return &QueryResult{
		DeviceKeys:      map[id.UserID]map[id.DeviceID]json.RawMessage{},
		MasterKeys:      map[id.UserID]json.RawMessage{},
		SelfSigningKeys: map[id.UserID]json.RawMessage{},
		UserSigningKeys: map[id.UserID]json.RawMessage{},
		Failures:        map[string]Failure{},
	}
}

// Query answers POST /keys/query for requester: the device keys of the named users (all
// devices for an empty list) with each device's display name, and their master and
// self-signing keys; the user-signing key only of the requester. Signatures uploaded later
// are merged in where requester may see them. Local users always get an entry, empty when
// they have no keys; users on other servers are asked through RemoteKeys, and a server that
// cannot be asked within timeout (0: DefaultRemoteTimeout) is listed in failures. Their
// master keys carry the signatures requester made of them here.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysquery
func (e *Engine) Query(ctx context.Context, requester id.UserID, users map[id.UserID][]id.DeviceID, timeout time.Duration) (*QueryResult, error) {
	res := newQueryResult()
	var local []id.UserID
	remote := map[string]map[id.UserID][]id.DeviceID{}
	for u, devices := range users {
		if e.isLocal(u) {
			local = append(local, u)
			continue
		}
		server := u.Homeserver()
		if server == "" {
			continue
		}
		if remote[server] == nil {
			remote[server] = map[id.UserID][]id.DeviceID{}
		}
		remote[server][u] = devices
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for server, q := range remote {
		wg.Go(func() {
			r, err := e.queryRemote(ctx, server, q, timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failures[server] = remoteFailure(err)
				return
			}
			merge(res, r)
		})
	}
	err := e.queryLocal(ctx, requester, local, users, res, &mu)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if len(remote) > 0 {
		err = e.addOwnSignaturesOfRemote(ctx, requester, res)
	}
	return res, err
}

// addOwnSignaturesOfRemote adds to the master keys of users on other servers the
// signatures requester's user-signing key made of them, which only this server holds.
func (e *Engine) addOwnSignaturesOfRemote(ctx context.Context, requester id.UserID, res *QueryResult) error {
	var remote []id.UserID
	for u := range res.MasterKeys {
		if !e.isLocal(u) {
			remote = append(remote, u)
		}
	}
	if len(remote) == 0 {
		return nil
	}
	sigs, err := e.db.KeySignaturesOf(ctx, remote)
	if err != nil {
		return err
	}
	for _, s := range sigs {
		if s.SignerUser != requester {
			continue
		}
		raw := res.MasterKeys[s.TargetUser]
		var k crossSigningKeyObject
		if json.Unmarshal(raw, &k) != nil || k.Keys["ed25519:"+s.TargetKey] != s.TargetKey {
			continue // a signature of a key the user has since replaced
		}
		signed, err := withSignatures(raw, signatures{requester: {s.SignerKey: s.Signature}}, nil)
		if err != nil {
			return err
		}
		res.MasterKeys[s.TargetUser] = signed
	}
	return nil
}

func (e *Engine) queryRemote(ctx context.Context, server string, q map[id.UserID][]id.DeviceID, timeout time.Duration) (*QueryResult, error) {
	e.mu.RLock()
	r := e.remote
	e.mu.RUnlock()
	if r == nil {
		return nil, ErrNoFederation
	}
	if timeout <= 0 {
		timeout = DefaultRemoteTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return r.QueryKeys(ctx, server, q)
}

func remoteFailure(err error) Failure {
	return Failure{Status: 503, Message: err.Error()}
}

// merge adds a remote server's answer to the result. User-signing keys of other users are
// never passed on.
func merge(res, r *QueryResult) {
	for u, ds := range r.DeviceKeys {
		res.DeviceKeys[u] = ds
	}
	for u, k := range r.MasterKeys {
		res.MasterKeys[u] = k
	}
	for u, k := range r.SelfSigningKeys {
		res.SelfSigningKeys[u] = k
	}
}

// queryLocal fills in the local users' keys; mu guards res against the remote queries.
func (e *Engine) queryLocal(ctx context.Context, requester id.UserID, local []id.UserID, wanted map[id.UserID][]id.DeviceID,
	res *QueryResult, mu *sync.Mutex) error {
	if len(local) == 0 {
		return nil
	}
	sigs, err := e.db.KeySignaturesOf(ctx, local)
	if err != nil {
		return err
	}
	// visible[target user][target key] are the signatures requester may see: those made by
	// the key's owner and by requester, never another user's user-signing key's.
	visible := map[id.UserID]map[string]signatures{}
	for _, s := range sigs {
		if s.SignerUser != s.TargetUser && s.SignerUser != requester {
			continue
		}
		if visible[s.TargetUser] == nil {
			visible[s.TargetUser] = map[string]signatures{}
		}
		byKey := visible[s.TargetUser][s.TargetKey]
		if byKey == nil {
			byKey = signatures{}
			visible[s.TargetUser][s.TargetKey] = byKey
		}
		if byKey[s.SignerUser] == nil {
			byKey[s.SignerUser] = map[id.KeyID]string{}
		}
		byKey[s.SignerUser][s.SignerKey] = s.Signature
	}
	devices := map[id.UserID]map[id.DeviceID]json.RawMessage{}
	for _, u := range local {
		dks, err := e.db.DeviceKeysOf(ctx, u, wanted[u])
		if err != nil {
			return err
		}
		devices[u] = map[id.DeviceID]json.RawMessage{}
		for _, dk := range dks {
			var unsigned map[string]any
			if dk.DisplayName != "" {
				unsigned = map[string]any{"device_display_name": dk.DisplayName}
			}
			out, err := withSignatures(dk.JSON, visible[u][string(dk.DeviceID)], unsigned)
			if err != nil {
				return fmt.Errorf("device keys of %s %s: %w", u, dk.DeviceID, err)
			}
			devices[u][dk.DeviceID] = out
		}
	}
	csks, err := e.db.CrossSigningKeysOf(ctx, local)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	for u, ds := range devices {
		res.DeviceKeys[u] = ds
	}
	for _, k := range csks {
		out, err := withSignatures(k.JSON, visible[k.UserID][k.PublicKey], nil)
		if err != nil {
			return fmt.Errorf("%s key of %s: %w", k.Usage, k.UserID, err)
		}
		switch k.Usage {
		case storage.UsageMaster:
			res.MasterKeys[k.UserID] = out
		case storage.UsageSelfSigning:
			res.SelfSigningKeys[k.UserID] = out
		case storage.UsageUserSigning:
			if k.UserID == requester {
				res.UserSigningKeys[k.UserID] = out
			}
		}
	}
	return nil
}

// ClaimResult is the answer to POST /keys/claim.
type ClaimResult struct {
	OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]json.RawMessage `json:"one_time_keys"`
	Failures    map[string]Failure                                       `json:"failures"`
}

// Claim answers POST /keys/claim: for each device, its oldest unclaimed one-time key of the
// algorithm, or else its fallback key, which is then marked used. All local claims run in
// one write, so a one-time key is handed out exactly once however many claims race for it.
// Devices with no key are left out; users on other servers go through RemoteKeys.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysclaim
func (e *Engine) Claim(ctx context.Context, claims map[id.UserID]map[id.DeviceID]string, timeout time.Duration) (*ClaimResult, error) {
	res := &ClaimResult{OneTimeKeys: map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}, Failures: map[string]Failure{}}
	local := map[id.UserID]map[id.DeviceID]string{}
	remote := map[string]map[id.UserID]map[id.DeviceID]string{}
	for u, devices := range claims {
		switch {
		case e.isLocal(u):
			local[u] = devices
		case u.Homeserver() != "":
			if remote[u.Homeserver()] == nil {
				remote[u.Homeserver()] = map[id.UserID]map[id.DeviceID]string{}
			}
			remote[u.Homeserver()][u] = devices
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for server, c := range remote {
		wg.Go(func() {
			keys, err := e.claimRemote(ctx, server, c, timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failures[server] = remoteFailure(err)
				return
			}
			for u, ds := range keys {
				if len(ds) > 0 {
					res.OneTimeKeys[u] = ds
				}
			}
		})
	}
	claimed := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		for u, devices := range local {
			for d, alg := range devices {
				kid, key, err := tx.ClaimOneTimeKey(u, d, alg)
				if errors.Is(err, storage.ErrNotFound) {
					kid, key, err = tx.ClaimFallbackKey(u, d, alg)
				}
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if claimed[u] == nil {
					claimed[u] = map[id.DeviceID]map[string]json.RawMessage{}
				}
				claimed[u][d] = map[string]json.RawMessage{alg + ":" + kid: key}
			}
		}
		return nil
	})
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for u, ds := range claimed {
		res.OneTimeKeys[u] = ds
	}
	return res, nil
}

func (e *Engine) claimRemote(ctx context.Context, server string, c map[id.UserID]map[id.DeviceID]string, timeout time.Duration) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	e.mu.RLock()
	r := e.remote
	e.mu.RUnlock()
	if r == nil {
		return nil, ErrNoFederation
	}
	if timeout <= 0 {
		timeout = DefaultRemoteTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return r.ClaimKeys(ctx, server, c)
}
