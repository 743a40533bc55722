package keys_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
)

// BenchmarkDeviceListChanges measures what every incremental sync pays for device_lists:
// a viewer in a room of 50 members, each of whom uploaded keys once.
func BenchmarkDeviceListChanges(b *testing.B) {
	ctx := context.Background()
	v := newEnv(b)
	alice := user("alice")
	v.newDevice(b, alice, "ALICE")
	var members []id.UserID
	for i := range 50 {
		members = append(members, user(fmt.Sprintf("m%02d", i)))
	}
	room := mustCreateRoom(b, v, alice, members...)
	since := pos(b, v)
	for _, m := range members {
		mustJoin(b, v, m, room)
		d := v.newDevice(b, m, "D")
		v.upload(b, d, &e2ee.Upload{DeviceKeys: d.deviceKeys(b)})
	}
	upto := pos(b, v)
	b.ResetTimer()
	for b.Loop() {
		changed, _, err := v.e.DeviceListChanges(ctx, alice, since, upto)
		if err != nil || len(changed) != len(members) {
			b.Fatalf("changed %d users, %v", len(changed), err)
		}
	}
}

// BenchmarkClaim measures one claim of one one-time key (one write).
func BenchmarkClaim(b *testing.B) {
	ctx := context.Background()
	v := newEnv(b)
	bob := v.newDevice(b, user("bob"), "BOB")
	otks := map[string]json.RawMessage{}
	for i := range 2000 {
		otks[fmt.Sprintf("signed_curve25519:%d", i)] = bob.otk(b, fmt.Sprint(i), false)
	}
	v.upload(b, bob, &e2ee.Upload{OneTimeKeys: otks,
		FallbackKeys: map[string]json.RawMessage{"signed_curve25519:F": bob.otk(b, "f", true)}})
	claim := map[id.UserID]map[id.DeviceID]string{bob.user: {bob.id: "signed_curve25519"}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.e.Claim(ctx, claim, 0); err != nil {
			b.Fatal(err)
		}
	}
}
