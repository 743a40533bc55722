//go:build goolm

package httpapi_test

import (
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// syncWait syncs until cond holds. Federation delivers in the background, so rounds are
// bounded by a deadline rather than a count; the deadline only guards against a hang.
func (c *cryptoClient) syncWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.syncOnce(t)
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: %s never happened", c.cli.UserID, c.cli.DeviceID, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEncryptedConversationAcrossServers: mautrix's crypto clients on two servers talk in an
// encrypted room. Every key they need crosses federation: device keys queried and one-time
// keys claimed through their own server, room keys sent as to-device messages, a new device
// and cross-signing keys announced by device-list and signing-key updates, and a signature
// of the other user's master key kept by the signer's server.
func TestEncryptedConversationAcrossServers(t *testing.T) {
	for _, name := range []string{"sync", "engine"} {
		t.Run(name, func(t *testing.T) { encryptedConversationAcrossServers(t, name) })
	}
}

func encryptedConversationAcrossServers(t *testing.T, name string) {
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	aliceCli := hs1.Register(t, "alice", cryptoPassword)
	needSync(t, hs1, name, aliceCli)
	bobCli := hs2.Register(t, "bob", cryptoPassword)
	alice := newCryptoClient(t, aliceCli, sources(hs1)[name])
	bob := newCryptoClient(t, bobCli, sources(hs2)[name])

	room := mustCreate(t, aliceCli, &mautrix.ReqCreateRoom{Preset: "private_chat",
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{
			Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if _, err := aliceCli.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bobCli.UserID}); err != nil {
		t.Fatalf("alice invites bob over federation: %v", err)
	}
	if _, err := bobCli.JoinRoom(ctx, string(room), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatalf("bob joins over federation: %v", err)
	}
	joined := func(c *cryptoClient) func() bool {
		return func() bool {
			enc, _ := c.state.IsEncrypted(ctx, room)
			return enc && c.state.IsInRoom(ctx, room, aliceCli.UserID) && c.state.IsInRoom(ctx, room, bobCli.UserID)
		}
	}
	alice.syncWait(t, "seeing bob join", joined(alice))
	bob.syncWait(t, "seeing the encrypted room", joined(bob))

	hello := alice.send(t, room, "hello bob")
	bob.syncWait(t, "decrypting alice's message", bob.read(hello, "hello bob"))
	reply := bob.send(t, room, "hi alice")
	alice.syncWait(t, "decrypting bob's reply", alice.read(reply, "hi alice"))

	// Bob's second device reaches alice's client through an m.device_list_update.
	bob2Cli := hs2.Login(t, "bob", cryptoPassword)
	bob2 := newCryptoClient(t, bob2Cli, sources(hs2)[name])
	bob2.syncWait(t, "seeing the room", joined(bob2))
	alice.syncWait(t, "learning of bob's second device", func() bool {
		ds, err := alice.mach.CryptoStore.GetDevices(ctx, bobCli.UserID)
		return err == nil && ds[bob2Cli.DeviceID] != nil
	})
	later := alice.send(t, room, "for both of bob's devices")
	bob2.syncWait(t, "decrypting on the new device", bob2.read(later, "for both of bob's devices"))
	bob.syncWait(t, "decrypting on the old device", bob.read(later, "for both of bob's devices"))

	// Cross-signing: bob's keys reach alice through an m.signing_key_update; alice signs
	// bob's master key (hs1 keeps that signature, for her eyes only); bob signs his second
	// device, and alice, told by another device-list update, sees it verified.
	bobKeys, err := bob.mach.GenerateCrossSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.mach.PublishCrossSigningKeys(ctx, bobKeys, uia(bobCli.UserID)); err != nil {
		t.Fatalf("bob publishes cross-signing keys: %v", err)
	}
	aliceKeys, err := alice.mach.GenerateCrossSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.mach.PublishCrossSigningKeys(ctx, aliceKeys, uia(aliceCli.UserID)); err != nil {
		t.Fatalf("alice publishes cross-signing keys: %v", err)
	}
	alice.syncWait(t, "learning bob's cross-signing keys", func() bool {
		keys, err := alice.mach.CryptoStore.GetCrossSigningKeys(ctx, bobCli.UserID)
		return err == nil && keys[id.XSUsageMaster].Key == bobKeys.MasterKey.PublicKey()
	})
	if err := alice.mach.SignUser(ctx, bobCli.UserID, bobKeys.MasterKey.PublicKey()); err != nil {
		t.Fatalf("alice signs bob's master key: %v", err)
	}
	alice.syncOnce(t)
	bob2Dev, err := bob.mach.GetOrFetchDevice(ctx, bobCli.UserID, bob2Cli.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.mach.SignOwnDevice(ctx, bob2Dev); err != nil {
		t.Fatalf("bob signs his second device: %v", err)
	}
	bob2Trust := func() id.TrustState {
		d, err := alice.mach.CryptoStore.GetDevice(ctx, bobCli.UserID, bob2Cli.DeviceID)
		if err != nil || d == nil {
			return id.TrustStateUnset
		}
		trust, _ := alice.mach.ResolveTrustContext(ctx, d)
		return trust
	}
	alice.syncWait(t, "seeing bob's second device verified", func() bool { return bob2Trust() == id.TrustStateCrossSignedVerified })
	// A fresh device of alice's fetches bob's keys anew: her signature of his master key
	// comes from hs1, and hs2 never shows it to bob.
	q, err := aliceCli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bobCli.UserID: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.MasterKeys[bobCli.UserID].Signatures[aliceCli.UserID]; !ok {
		t.Errorf("alice's /keys/query lacks her signature of bob's master key: %+v", q.MasterKeys[bobCli.UserID])
	}
	q, err = bobCli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bobCli.UserID: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, leaked := q.MasterKeys[bobCli.UserID].Signatures[aliceCli.UserID]; leaked {
		t.Error("bob sees alice's user-signing signature of his master key")
	}
}
