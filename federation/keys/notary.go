package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Query answers a notary query for serverName's keys: the responses serverName signed,
// newest first, each with this server's signature added. Asked about itself, this server
// answers with its own response.
//
// serverName is asked directly first when the cache has no response valid until
// minValidUntil, when the newest is past half its lifetime (as the spec advises notaries),
// or when a key in keyIDs is missing. If it does not answer, the cached responses are served
// even if expired, so that old events can still be checked. Nothing known is an empty
// result, not an error. See https://spec.matrix.org/v1.19/server-server-api/#querying-keys-through-another-server
func (r *Ring) Query(ctx context.Context, serverName string, keyIDs []id.KeyID, minValidUntil time.Time) ([]json.RawMessage, error) {
	now := r.now()
	if serverName == r.local.ServerName() {
		js, err := r.local.Response(now)
		if err != nil {
			return nil, err
		}
		return []json.RawMessage{js}, nil
	}
	cached, err := r.db.KeyResponses(ctx, serverName)
	if err != nil {
		return nil, fmt.Errorf("read key responses of %s: %w", serverName, err)
	}
	if stale(cached, keyIDs, minValidUntil, now) {
		if err := r.fetch(ctx, serverName, "", minValidUntil, false); err != nil {
			r.opts.Log.Debug("notary: fetching server keys failed; serving the cache", "server", serverName, "err", err)
		} else if cached, err = r.db.KeyResponses(ctx, serverName); err != nil {
			return nil, fmt.Errorf("read key responses of %s: %w", serverName, err)
		}
	}
	out := make([]json.RawMessage, 0, len(cached))
	for _, c := range cached {
		signed, err := r.local.Sign(c.JSON)
		if err != nil {
			return nil, fmt.Errorf("sign key response of %s: %w", serverName, err)
		}
		out = append(out, signed)
	}
	return out, nil
}

// stale reports whether cached responses (newest first) leave a notary wanting a fresh one.
func stale(cached []storage.KeyResponse, keyIDs []id.KeyID, minValidUntil, now time.Time) bool {
	if len(cached) == 0 {
		return true
	}
	newest := cached[0]
	if newest.ValidUntilTS < minValidUntil.UnixMilli() {
		return true
	}
	if halfLife := newest.FetchedTS + (newest.ValidUntilTS-newest.FetchedTS)/2; now.UnixMilli() > halfLife {
		return true
	}
	for _, want := range keyIDs {
		if !anyLists(cached, want) {
			return true
		}
	}
	return false
}

// anyLists reports whether one of the responses lists keyID, as current or old.
func anyLists(responses []storage.KeyResponse, keyID id.KeyID) bool {
	for _, c := range responses {
		var skr federation.ServerKeyResponse
		if json.Unmarshal(c.JSON, &skr) != nil {
			continue
		}
		if _, ok := skr.VerifyKeys[keyID]; ok {
			return true
		}
		if _, ok := skr.OldVerifyKeys[keyID]; ok {
			return true
		}
	}
	return false
}
