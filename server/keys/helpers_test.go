package keys_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"

	fedkeys "fyr/federation/keys"
	e2ee "fyr/server/keys"
	"fyr/server/rooms"
	"fyr/storage"
)

const server = "test.local"

// env is an engine over a fresh database, with the room engine beside it for memberships.
type env struct {
	e     *e2ee.Engine
	db    *storage.DB
	rooms *rooms.Engine
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	dir := tb.TempDir()
	db, err := storage.Open(context.Background(), filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	key, _, err := fedkeys.LoadOrCreate(filepath.Join(dir, "signing.key"))
	if err != nil {
		tb.Fatal(err)
	}
	return &env{
		e:     e2ee.New(db, e2ee.Options{ServerName: server}),
		db:    db,
		rooms: rooms.New(db, rooms.Options{ServerName: server, Key: key}),
	}
}

func user(name string) id.UserID { return id.UserID("@" + name + ":" + server) }

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// device is a test client's device with its own ed25519 key.
type device struct {
	user id.UserID
	id   id.DeviceID
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

// newDevice registers a device (and its user, the first time) in storage.
func (v *env) newDevice(tb testing.TB, u id.UserID, deviceID id.DeviceID) *device {
	tb.Helper()
	err := v.db.Write(context.Background(), func(tx *storage.Tx) error {
		if err := tx.CreateUser(storage.User{Localpart: u.Localpart(), CreatedTS: 1}); err != nil && !errors.Is(err, storage.ErrExists) {
			return err
		}
		return tx.CreateDevice(u.Localpart(), storage.Device{ID: deviceID, DisplayName: "phone of " + u.Localpart(), CreatedTS: 1})
	})
	if err != nil {
		tb.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return &device{user: u, id: deviceID, pub: pub, priv: priv}
}

func (d *device) keyID() string { return "ed25519:" + string(d.id) }

// sign adds signer's signature with keyID to obj, as the spec's Signing JSON describes.
func sign(tb testing.TB, obj map[string]any, signer id.UserID, keyID string, priv ed25519.PrivateKey) map[string]any {
	tb.Helper()
	bare := map[string]any{}
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			bare[k] = v
		}
	}
	msg, err := canonicaljson.Marshal(bare)
	if err != nil {
		tb.Fatal(err)
	}
	sigs, _ := obj["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
	}
	mine, _ := sigs[string(signer)].(map[string]any)
	if mine == nil {
		mine = map[string]any{}
	}
	mine[keyID] = b64(ed25519.Sign(priv, msg))
	sigs[string(signer)] = mine
	obj["signatures"] = sigs
	return obj
}

// keysObject is the device's unsigned device_keys object.
func (d *device) keysObject() map[string]any {
	curve := make([]byte, 32)
	copy(curve, d.pub) // any 32 bytes will do for the server
	return map[string]any{
		"user_id":    d.user,
		"device_id":  d.id,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": map[string]any{
			"ed25519:" + string(d.id):    b64(d.pub),
			"curve25519:" + string(d.id): b64(curve),
		},
	}
}

// deviceKeys is the device's signed device_keys object.
func (d *device) deviceKeys(tb testing.TB) json.RawMessage {
	return mustJSON(tb, sign(tb, d.keysObject(), d.user, d.keyID(), d.priv))
}

// otk is a signed one-time (or fallback) key object.
func (d *device) otk(tb testing.TB, key string, fallback bool) json.RawMessage {
	obj := map[string]any{"key": key}
	if fallback {
		obj["fallback"] = true
	}
	return mustJSON(tb, sign(tb, obj, d.user, d.keyID(), d.priv))
}

func mustJSON(tb testing.TB, v any) json.RawMessage {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// upload publishes the device's keys and fails the test on error.
func (v *env) upload(tb testing.TB, d *device, u *e2ee.Upload) map[string]int {
	tb.Helper()
	counts, err := v.e.Upload(context.Background(), d.user, d.id, u)
	if err != nil {
		tb.Fatalf("upload for %s %s: %v", d.user, d.id, err)
	}
	return counts
}

// crossSigning is a user's three cross-signing key pairs.
type crossSigning struct {
	user                  id.UserID
	master, self, userSig ed25519.PrivateKey
}

func newCrossSigning(u id.UserID) *crossSigning {
	gen := func() ed25519.PrivateKey { _, p, _ := ed25519.GenerateKey(rand.Reader); return p }
	return &crossSigning{user: u, master: gen(), self: gen(), userSig: gen()}
}

func pubOf(p ed25519.PrivateKey) string { return b64(p.Public().(ed25519.PublicKey)) }

// keyObject is an unsigned cross-signing key object for a usage.
func (c *crossSigning) keyObject(usage string, priv ed25519.PrivateKey) map[string]any {
	pub := pubOf(priv)
	return map[string]any{"user_id": c.user, "usage": []string{usage}, "keys": map[string]any{"ed25519:" + pub: pub}}
}

// upload is the device_signing/upload body: SSK and USK signed by the master key.
func (c *crossSigning) upload(tb testing.TB) *e2ee.CrossSigningUpload {
	mk := "ed25519:" + pubOf(c.master)
	return &e2ee.CrossSigningUpload{
		MasterKey:      mustJSON(tb, c.keyObject("master", c.master)),
		SelfSigningKey: mustJSON(tb, sign(tb, c.keyObject("self_signing", c.self), c.user, mk, c.master)),
		UserSigningKey: mustJSON(tb, sign(tb, c.keyObject("user_signing", c.userSig), c.user, mk, c.master)),
	}
}

func mustCreateRoom(tb testing.TB, v *env, creator id.UserID, invite ...id.UserID) id.RoomID {
	tb.Helper()
	room, err := v.rooms.CreateRoom(context.Background(), creator, &rooms.CreateRequest{Preset: "private_chat", Invite: invite})
	if err != nil {
		tb.Fatal(err)
	}
	return room
}

func mustJoin(tb testing.TB, v *env, u id.UserID, room id.RoomID) {
	tb.Helper()
	if _, err := v.rooms.Join(context.Background(), u, room, "", nil); err != nil {
		tb.Fatalf("%s joins %s: %v", u, room, err)
	}
}

func pos(tb testing.TB, v *env) int64 {
	tb.Helper()
	p, err := v.db.StreamPos(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
