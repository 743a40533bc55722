package keys_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
	"fyr/storage"
)

// recorder is a Listener that remembers whom it was told about.
type recorder struct {
	mu    sync.Mutex
	users map[id.UserID]int64
}

func (r *recorder) E2EEUpdate(pos int64, users []id.UserID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == nil {
		r.users = map[id.UserID]int64{}
	}
	for _, u := range users {
		r.users[u] = pos
	}
}

func (r *recorder) take() []id.UserID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []id.UserID
	for u := range r.users {
		out = append(out, u)
	}
	slices.Sort(out)
	r.users = nil
	return out
}

func TestDeviceListChanges(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	rec := &recorder{}
	v.e.SetListener(rec)
	alice, bob, carol, dave := user("alice"), user("bob"), user("carol"), user("dave")
	bob1 := v.newDevice(t, bob, "BOB1")
	carol1 := v.newDevice(t, carol, "CAROL1")
	dave1 := v.newDevice(t, dave, "DAVE1")
	v.newDevice(t, alice, "ALICE1")

	room := mustCreateRoom(t, v, alice, bob, carol)
	mustJoin(t, v, bob, room)
	since := pos(t, v)
	changes := func() (changed, left string) {
		t.Helper()
		now := pos(t, v)
		c, l := must2(v.e.DeviceListChanges(ctx, alice, since, now))(t)
		since = now
		return fmt.Sprint(c), fmt.Sprint(l)
	}

	// Bob shares a room with alice; dave does not.
	v.upload(t, bob1, &e2ee.Upload{DeviceKeys: bob1.deviceKeys(t)})
	v.upload(t, dave1, &e2ee.Upload{DeviceKeys: dave1.deviceKeys(t)})
	if c, l := changes(); c != fmt.Sprint([]id.UserID{bob}) || l != "[]" {
		t.Errorf("after bob and dave upload keys: changed %s left %s, want [bob] []", c, l)
	}
	if got := rec.take(); fmt.Sprint(got) != fmt.Sprint([]id.UserID{alice, bob, dave}) {
		t.Errorf("notified %v, want alice and bob (for bob's keys) and dave (his own)", got)
	}
	// Carol joins: she is new to alice, keys or not.
	mustJoin(t, v, carol, room)
	if c, _ := changes(); c != fmt.Sprint([]id.UserID{carol}) {
		t.Errorf("after carol joins: changed %s, want [carol]", c)
	}
	// Alice joins dave's room: dave is new to her.
	droom := mustCreateRoom(t, v, dave, alice)
	mustJoin(t, v, alice, droom)
	if c, _ := changes(); c != fmt.Sprint([]id.UserID{dave}) {
		t.Errorf("after alice joins dave's room: changed %s, want [dave]", c)
	}
	// Carol leaves: she shares nothing with alice any more.
	if err := v.rooms.Leave(ctx, carol, room, ""); err != nil {
		t.Fatal(err)
	}
	v.upload(t, carol1, &e2ee.Upload{DeviceKeys: carol1.deviceKeys(t)})
	if c, l := changes(); c != "[]" || l != fmt.Sprint([]id.UserID{carol}) {
		t.Errorf("after carol leaves: changed %s left %s, want [] [carol]", c, l)
	}
	// Alice leaves dave's room: dave is gone for her, but bob, in another room, is not.
	if err := v.rooms.Leave(ctx, alice, droom, ""); err != nil {
		t.Fatal(err)
	}
	if c, l := changes(); c != "[]" || l != fmt.Sprint([]id.UserID{dave}) {
		t.Errorf("after alice leaves dave's room: changed %s left %s, want [] [dave]", c, l)
	}
	// Bob's device goes: a change for alice. A device that never had keys changes nothing.
	if err := v.e.DeviceDeleted(ctx, bob, bob1.id); err != nil {
		t.Fatal(err)
	}
	if c, _ := changes(); c != fmt.Sprint([]id.UserID{bob}) {
		t.Errorf("after bob's device is deleted: changed %s, want [bob]", c)
	}
	before := pos(t, v)
	if err := v.e.DeviceDeleted(ctx, bob, "NEVERHADKEYS"); err != nil {
		t.Fatal(err)
	}
	if pos(t, v) != before {
		t.Error("deleting a device without keys recorded a change")
	}
	res := must(v.e.Query(ctx, alice, map[id.UserID][]id.DeviceID{bob: nil}, 0))(t)
	if len(res.DeviceKeys[bob]) != 0 {
		t.Errorf("a deleted device's keys are still served: %v", res.DeviceKeys[bob])
	}
	// Keys changes between the same positions answer the same.
	c, l := must2(v.e.KeyChanges(ctx, alice, 0, 0))(t)
	if !slices.Contains(c, bob) || slices.Contains(c, dave) || !slices.Contains(l, dave) {
		t.Errorf("keys/changes from 0: changed %v left %v", c, l)
	}
}

func TestDevicesDeletedForgetsEveryGoneDevice(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	d1 := v.newDevice(t, user("bob"), "BOB1")
	d2 := v.newDevice(t, user("bob"), "BOB2")
	for _, d := range []*device{d1, d2} {
		v.upload(t, d, &e2ee.Upload{DeviceKeys: d.deviceKeys(t),
			OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:A": d.otk(t, "a", false)}})
	}
	// Accounts deletes a device behind the engine's back (logout/all).
	if err := v.db.Write(ctx, func(tx *storage.Tx) error { return tx.DeleteDevices("bob", []id.DeviceID{d1.id}) }); err != nil {
		t.Fatal(err)
	}
	before := pos(t, v)
	if err := v.e.DevicesDeleted(ctx, d1.user); err != nil {
		t.Fatal(err)
	}
	if pos(t, v) == before {
		t.Error("forgetting a device with keys recorded no change")
	}
	if n := must(v.e.OTKCounts(ctx, d1.user, d1.id))(t)["signed_curve25519"]; n != 0 {
		t.Errorf("the gone device still has %d one-time keys", n)
	}
	if n := must(v.e.OTKCounts(ctx, d2.user, d2.id))(t)["signed_curve25519"]; n != 1 {
		t.Errorf("the remaining device has %d one-time keys, want 1", n)
	}
}
