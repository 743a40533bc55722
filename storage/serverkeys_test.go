package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// keyResponse is a stored response of a.test at validUntil listing the given keys as
// current (valid until validUntil) or, with expired set, as old.
func keyResponse(validUntil, fetched int64, keys ...storage.ServerKey) *storage.KeyResponse {
	for i := range keys {
		keys[i].ServerName = "a.test"
		if keys[i].ValidUntilTS == 0 {
			keys[i].ValidUntilTS = validUntil
		}
	}
	return &storage.KeyResponse{ServerName: "a.test", ValidUntilTS: validUntil, FetchedTS: fetched, Keys: keys,
		JSON: fmt.Appendf(nil, `{"server_name":"a.test","valid_until_ts":%d}`, validUntil)}
}

func TestStoreKeyResponseNewestWins(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, storage.Options{})
	k1 := id.KeyID("ed25519:k1")
	pub := make([]byte, 32)

	store := func(r *storage.KeyResponse) {
		t.Helper()
		if err := db.StoreKeyResponse(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, wantValid, wantExpired int64, wantResponses int) {
		t.Helper()
		k, err := db.ServerKey(ctx, "a.test", k1)
		if err != nil {
			t.Fatalf("%s: ServerKey: %v", step, err)
		}
		if k.ValidUntilTS != wantValid || k.ExpiredTS != wantExpired {
			t.Errorf("%s: key valid until %d expired %d, want %d and %d", step, k.ValidUntilTS, k.ExpiredTS, wantValid, wantExpired)
		}
		rs, err := db.KeyResponses(ctx, "a.test")
		if err != nil || len(rs) != wantResponses {
			t.Errorf("%s: KeyResponses = %d, %v; want %d", step, len(rs), err, wantResponses)
		}
	}

	store(keyResponse(2000, 1000, storage.ServerKey{KeyID: k1, PublicKey: pub}))
	check("first", 2000, 0, 1)
	store(keyResponse(1500, 1600, storage.ServerKey{KeyID: k1, PublicKey: pub})) // an older response, e.g. from a notary
	check("older response", 2000, 0, 1)
	store(keyResponse(3000, 2500, storage.ServerKey{KeyID: k1, PublicKey: pub, ValidUntilTS: 2400, ExpiredTS: 2400}))
	check("rotated out", 2400, 2400, 1)
	store(keyResponse(3000, 2600, storage.ServerKey{KeyID: k1, PublicKey: pub, ValidUntilTS: 2400, ExpiredTS: 2400}))
	check("same response again", 2400, 2400, 1)
	rs, _ := db.KeyResponses(ctx, "a.test")
	if got, want := rs[0].FetchedTS, int64(2600); got != want {
		t.Errorf("fetched_ts after the same response again = %d, want %d", got, want)
	}

	// A response that lists another key is kept beside the one that lists k1.
	store(keyResponse(4000, 3500, storage.ServerKey{KeyID: "ed25519:k2", PublicKey: pub}))
	check("new key", 2400, 2400, 2)
	if rs, _ := db.KeyResponses(ctx, "a.test"); rs[0].ValidUntilTS != 4000 {
		t.Errorf("KeyResponses not newest first: %d first", rs[0].ValidUntilTS)
	}
	if _, err := db.ServerKey(ctx, "b.test", k1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ServerKey(b.test) = %v, want ErrNotFound", err)
	}
}
