package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"maunium.net/go/mautrix/id"
)

// Getter does one GET on a remote server's federation API: it resolves serverName as the
// spec's server discovery says, requests path (which may carry a query string) over TLS and
// decodes a 200 response's JSON body into into. Any other outcome is an error. Key requests
// need no X-Matrix signature. federation/transport's client implements it; tests fake it.
type Getter interface {
	GetJSON(ctx context.Context, serverName, path string, into any) error
}

// GetterFunc adapts a function to Getter, for instance federation/transport's client:
//
//	keys.GetterFunc(func(ctx context.Context, serverName, path string, into any) error {
//		return client.DoUnsigned(ctx, serverName, http.MethodGet, path, nil, into)
//	})
type GetterFunc func(ctx context.Context, serverName, path string, into any) error

// GetJSON calls f.
func (f GetterFunc) GetJSON(ctx context.Context, serverName, path string, into any) error {
	return f(ctx, serverName, path, into)
}

// Paths of the key API. See https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys
const (
	serverKeysPath = "/_matrix/key/v2/server"
	queryKeysPath  = "/_matrix/key/v2/query"
)

// fetch1 is one fetch of serverName's keys: from the server itself and, unless that yields
// keyID valid at at, from each notary in turn (if viaNotaries). Every response that checks
// out is cached. It succeeds if any source answered, even without keyID; the caller
// re-reads the cache.
func (r *Ring) fetch1(ctx context.Context, serverName string, keyID id.KeyID, at time.Time, viaNotaries bool) error {
	err := r.fetchDirect(ctx, serverName)
	if err == nil && (!viaNotaries || r.cachedValid(ctx, serverName, keyID, at)) {
		return nil
	}
	answered := err == nil
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("direct: %w", err))
	}
	if viaNotaries {
		for _, notary := range r.notaryList() {
			if notary == serverName || notary == r.local.ServerName() {
				continue
			}
			if err := r.fetchFromNotary(ctx, notary, serverName, at); err != nil {
				errs = append(errs, fmt.Errorf("notary %s: %w", notary, err))
				continue
			}
			answered = true
			if r.cachedValid(ctx, serverName, keyID, at) {
				return nil
			}
		}
	}
	if answered {
		return nil
	}
	return errors.Join(errs...)
}

// cachedValid reports whether the cache holds keyID of serverName valid at at.
func (r *Ring) cachedValid(ctx context.Context, serverName string, keyID id.KeyID, at time.Time) bool {
	k, err := r.db.ServerKey(ctx, serverName, keyID)
	return err == nil && validAt(k, at)
}

// fetchDirect asks serverName for its own keys and caches them if they are self-signed.
func (r *Ring) fetchDirect(ctx context.Context, serverName string) error {
	var raw json.RawMessage
	if err := r.get(ctx, serverName, serverKeysPath, &raw); err != nil {
		return err
	}
	return r.store(ctx, raw, serverName)
}

// fetchFromNotary asks notary for serverName's keys and caches every response that carries
// both serverName's self-signature and a valid signature of the notary.
func (r *Ring) fetchFromNotary(ctx context.Context, notary, serverName string, at time.Time) error {
	path := queryKeysPath + "/" + url.PathEscape(serverName) + "?minimum_valid_until_ts=" + strconv.FormatInt(at.UnixMilli(), 10)
	var body struct {
		ServerKeys []json.RawMessage `json:"server_keys"`
	}
	if err := r.get(ctx, notary, path, &body); err != nil {
		return err
	}
	var errs []error
	stored := 0
	for _, raw := range body.ServerKeys {
		if err := r.checkNotarised(ctx, raw, notary); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.store(ctx, raw, serverName); err != nil {
			errs = append(errs, err)
			continue
		}
		stored++
	}
	if stored == 0 {
		errs = append(errs, fmt.Errorf("no usable keys of %s in %d responses", serverName, len(body.ServerKeys)))
		return errors.Join(errs...)
	}
	return nil
}

// checkNotarised checks that notary signed raw with a key of its own that is valid now. The
// notary's keys are fetched from the notary alone.
func (r *Ring) checkNotarised(ctx context.Context, raw []byte, notary string) error {
	var signed struct {
		Signatures signatures `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &signed); err != nil {
		return fmt.Errorf("parse key response: %w", err)
	}
	now := r.now()
	var errs []error
	for keyID := range signed.Signatures[notary] {
		if !isEd25519(keyID) {
			continue
		}
		k, err := r.lookup(ctx, notary, keyID, now, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !validAt(k, now) {
			errs = append(errs, fmt.Errorf("%w: %s of notary %s", ErrKeyExpired, keyID, notary))
			continue
		}
		return checkNotarySignature(raw, notary, keyID, k.PublicKey)
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: response carries no signature of notary %s", ErrBadSignature, notary)
	}
	return fmt.Errorf("%w: response not signed by notary %s with a known key: %w", ErrBadSignature, notary, errors.Join(errs...))
}

// store checks raw's self-signature and caches it, as serverName signed it.
func (r *Ring) store(ctx context.Context, raw []byte, serverName string) error {
	skr, err := checkResponse(raw, serverName)
	if err != nil {
		return err
	}
	js, err := onlySignedBy(raw, serverName)
	if err != nil {
		return err
	}
	if err := r.db.StoreKeyResponse(ctx, toStored(skr, js, r.now())); err != nil {
		return fmt.Errorf("cache keys of %s: %w", serverName, err)
	}
	return nil
}

// get does one request through the Getter, holding one of MaxFetches slots.
func (r *Ring) get(ctx context.Context, serverName, path string, into any) error {
	if r.opts.Getter == nil {
		return ErrNoTransport
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()
	if err := r.opts.Getter.GetJSON(ctx, serverName, path, into); err != nil {
		return fmt.Errorf("get %s from %s: %w", path, serverName, err)
	}
	return nil
}
