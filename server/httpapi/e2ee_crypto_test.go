//go:build goolm

package httpapi_test

// These tests drive the server with mautrix-go's own end-to-end encryption (its pure-Go Olm
// and Megolm, selected by the goolm build tag; the Makefile sets it): real clients that
// upload keys, claim one-time keys, share room keys over to-device messages, cross-sign and
// back up keys, and decrypt what the others sent.
//
// Each scenario runs twice: over the real GET /sync, and over engineSync, which assembles
// the same sync response straight from the E2EE engine (the calls /sync makes) and the room
// API, so that the E2EE server side is proven against a real client before /sync exists.
// Without /sync the first run skips.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/server/servertest"
)

const cryptoPassword = "correct horse battery"

// syncSource produces one sync response for a device since its last one.
type syncSource interface {
	sync(t *testing.T, c *cryptoClient) *mautrix.RespSync
}

// httpSync is the real GET /sync, long-polling briefly.
type httpSync struct{}

func (httpSync) sync(t *testing.T, c *cryptoClient) *mautrix.RespSync {
	t.Helper()
	resp, err := c.cli.SyncRequest(ctx, 500, c.since, "", false, "")
	if err != nil {
		t.Fatalf("sync as %s %s: %v", c.cli.UserID, c.cli.DeviceID, err)
	}
	return resp
}

// engineSync stands in for /sync: to-device messages, device lists and key counts from the
// E2EE engine exactly as sync asks for them (acknowledging what the previous response
// delivered), and room events from the room API.
type engineSync struct{ s *servertest.Server }

func (e engineSync) sync(t *testing.T, c *cryptoClient) *mautrix.RespSync {
	t.Helper()
	user, device := c.cli.UserID, c.cli.DeviceID
	var since int64
	if c.since != "" {
		var err error
		if since, err = rooms.ParseToken(c.since); err != nil {
			t.Fatal(err)
		}
	}
	upto, err := e.s.DB.StreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.E2EE.AckToDevice(ctx, user, device, since); err != nil {
		t.Fatal(err)
	}
	evs, next, err := e.s.E2EE.ToDevice(ctx, user, device, since, upto, 0)
	if err != nil {
		t.Fatal(err)
	}
	upto = next
	resp := &mautrix.RespSync{NextBatch: rooms.Token(upto)}
	for _, raw := range evs {
		var ev event.Event
		if err := ev.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		resp.ToDevice.Events = append(resp.ToDevice.Events, &ev)
	}
	if since > 0 {
		changed, left, err := e.s.E2EE.DeviceListChanges(ctx, user, since, upto)
		if err != nil {
			t.Fatal(err)
		}
		resp.DeviceLists = mautrix.DeviceLists{Changed: changed, Left: left}
	}
	counts, err := e.s.E2EE.OTKCounts(ctx, user, device)
	if err != nil {
		t.Fatal(err)
	}
	resp.DeviceOTKCount = mautrix.OTKCount{SignedCurve25519: counts[string(id.KeyAlgorithmSignedCurve25519)], Curve25519: counts[string(id.KeyAlgorithmCurve25519)]}
	unused, err := e.s.E2EE.UnusedFallbackKeyTypes(ctx, user, device)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range unused {
		resp.FallbackKeys = append(resp.FallbackKeys, id.KeyAlgorithm(alg))
	}
	joined, err := c.cli.JoinedRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp.Rooms.Join = map[id.RoomID]*mautrix.SyncJoinedRoom{}
	for _, room := range joined.JoinedRooms {
		jr := &mautrix.SyncJoinedRoom{}
		if since == 0 {
			state, err := c.cli.State(ctx, room)
			if err != nil {
				t.Fatal(err)
			}
			for _, byKey := range state {
				for _, ev := range byKey {
					jr.State.Events = append(jr.State.Events, ev)
				}
			}
		}
		msgs, err := c.cli.Messages(ctx, room, rooms.Token(since), rooms.Token(upto), mautrix.DirectionForward, nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		jr.Timeline.Events = msgs.Chunk
		resp.Rooms.Join[room] = jr
	}
	return resp
}

// cryptoClient is one device running mautrix's OlmMachine with in-memory stores.
type cryptoClient struct {
	cli    *mautrix.Client
	mach   *crypto.OlmMachine
	state  *mautrix.MemoryStateStore
	syncer *mautrix.DefaultSyncer
	src    syncSource
	since  string
	// plain holds the bodies of the room messages this device decrypted, by event ID.
	plain map[id.EventID]string
	// pending are encrypted events waiting for their room key.
	pending []*event.Event
}

func newCryptoClient(t *testing.T, cli *mautrix.Client, src syncSource) *cryptoClient {
	t.Helper()
	c := &cryptoClient{cli: cli, src: src, plain: map[id.EventID]string{}}
	c.state = mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)
	cli.StateStore = c.state
	c.mach = crypto.NewOlmMachine(cli, nil, crypto.NewMemoryStore(nil), c.state)
	if err := c.mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.mach.ShareKeys(ctx, 0); err != nil {
		t.Fatalf("upload keys of %s %s: %v", cli.UserID, cli.DeviceID, err)
	}
	c.syncer = mautrix.NewDefaultSyncer()
	c.syncer.OnSync(c.mach.ProcessSyncResponse)
	c.syncer.OnEvent(cli.StateStoreSyncHandler)
	c.syncer.OnEventType(event.StateMember, c.mach.HandleMemberEvent)
	c.syncer.OnEventType(event.EventEncrypted, func(_ context.Context, evt *event.Event) {
		if evt.Mautrix.EventSource&event.SourceTimeline != 0 {
			c.pending = append(c.pending, evt)
		}
	})
	return c
}

// syncOnce runs one sync response through the machine, then decrypts what it can.
func (c *cryptoClient) syncOnce(t *testing.T) {
	t.Helper()
	resp := c.src.sync(t, c)
	if err := c.syncer.ProcessResponse(ctx, resp, c.since); err != nil {
		t.Fatal(err)
	}
	c.since = resp.NextBatch
	var still []*event.Event
	for _, evt := range c.pending {
		if _, done := c.plain[evt.ID]; done {
			continue
		}
		dec, err := c.mach.DecryptMegolmEvent(ctx, evt)
		if errors.Is(err, crypto.ErrNoSessionFound) {
			still = append(still, evt)
			continue
		}
		if err != nil {
			t.Fatalf("%s %s decrypting %s: %v", c.cli.UserID, c.cli.DeviceID, evt.ID, err)
		}
		c.plain[evt.ID] = dec.Content.AsMessage().Body
	}
	c.pending = still
}

// syncUntil syncs until cond holds, for a bounded number of rounds.
func (c *cryptoClient) syncUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 30 {
		c.syncOnce(t)
		if cond() {
			return
		}
	}
	t.Fatalf("%s %s: %s never happened", c.cli.UserID, c.cli.DeviceID, what)
}

// send encrypts a text message into room, sharing a room key with the room's members' devices
// when there is none for it (what mautrix's cryptohelper does).
func (c *cryptoClient) send(t *testing.T, room id.RoomID, body string) id.EventID {
	t.Helper()
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	enc, err := c.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrSessionNotShared) {
		members, err := c.state.GetRoomJoinedOrInvitedMembers(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.mach.ShareGroupSession(ctx, room, members); err != nil {
			t.Fatalf("%s shares a room key: %v", c.cli.UserID, err)
		}
		enc, err = c.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	resp, err := c.cli.SendMessageEvent(ctx, room, event.EventEncrypted, enc)
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

func (c *cryptoClient) read(id id.EventID, body string) func() bool {
	return func() bool { return c.plain[id] == body }
}

// uia answers a user-interactive auth challenge with the password.
func uia(user id.UserID) mautrix.UIACallback {
	return func(r *mautrix.RespUserInteractive) any {
		return map[string]any{"type": "m.login.password", "session": r.Session, "password": cryptoPassword,
			"identifier": map[string]string{"type": "m.id.user", "user": string(user)}}
	}
}

func sources(s *servertest.Server) map[string]syncSource {
	return map[string]syncSource{"sync": httpSync{}, "engine": engineSync{s}}
}

// needSync skips the real-/sync run while the server has no /sync.
func needSync(t *testing.T, s *servertest.Server, name string, c *mautrix.Client) {
	t.Helper()
	if name != "sync" {
		return
	}
	if status, _, _ := s.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0", c.AccessToken, nil); status == 404 {
		t.Skip("needs /sync")
	}
}

// TestEncryptedConversation: two users exchange messages in an encrypted room, each side
// decrypting the other's; a second device joins the conversation and gets keys for new
// messages; cross-signing makes it verified on the other side; a key backup restores an old
// session on a fresh device.
func TestEncryptedConversation(t *testing.T) {
	for _, name := range []string{"sync", "engine"} {
		t.Run(name, func(t *testing.T) {
			s := servertest.Start(t, servertest.OpenRegistration)
			src := sources(s)[name]
			aliceCli := s.Register(t, "alice", cryptoPassword)
			needSync(t, s, name, aliceCli)
			bobCli := s.Register(t, "bob", cryptoPassword)
			alice := newCryptoClient(t, aliceCli, src)
			bob := newCryptoClient(t, bobCli, src)

			room := mustCreate(t, aliceCli, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bobCli.UserID},
				InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{
					Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
			if _, err := bobCli.JoinRoomByID(ctx, room); err != nil {
				t.Fatal(err)
			}
			joined := func(c *cryptoClient, users ...id.UserID) func() bool {
				return func() bool {
					for _, u := range users {
						if !c.state.IsInRoom(ctx, room, u) {
							return false
						}
					}
					enc, _ := c.state.IsEncrypted(ctx, room)
					return enc
				}
			}
			alice.syncUntil(t, "seeing bob join the encrypted room", joined(alice, aliceCli.UserID, bobCli.UserID))
			bob.syncUntil(t, "seeing the encrypted room", joined(bob, aliceCli.UserID, bobCli.UserID))

			// Both ways.
			hello := alice.send(t, room, "hello bob")
			bob.syncUntil(t, "decrypting alice's message", bob.read(hello, "hello bob"))
			reply := bob.send(t, room, "hi alice")
			alice.syncUntil(t, "decrypting bob's reply", alice.read(reply, "hi alice"))
			var raw map[string]any
			if err := aliceCli.StateEvent(ctx, room, event.StateEncryption, "", &raw); err != nil || raw["algorithm"] != string(id.AlgorithmMegolmV1) {
				t.Errorf("room encryption state: %v, %v", raw, err)
			}
			if ev, err := aliceCli.GetEvent(ctx, room, hello); err != nil || ev.Type != event.EventEncrypted || strings.Contains(fmt.Sprint(ev.Content.Raw), "hello bob") {
				t.Errorf("the server holds %v, %v; want only ciphertext", ev, err)
			}

			// Bob's second device: alice's client learns of it from the device list and shares
			// the next room key with it too.
			bob2Cli := s.Login(t, "bob", cryptoPassword)
			bob2 := newCryptoClient(t, bob2Cli, src)
			bob2.syncUntil(t, "seeing the room", joined(bob2, aliceCli.UserID, bobCli.UserID))
			alice.syncUntil(t, "learning of bob's second device", func() bool {
				ds, err := alice.mach.CryptoStore.GetDevices(ctx, bobCli.UserID)
				return err == nil && ds[bob2Cli.DeviceID] != nil
			})
			later := alice.send(t, room, "for both of bob's devices")
			bob2.syncUntil(t, "decrypting on the new device", bob2.read(later, "for both of bob's devices"))
			bob.syncUntil(t, "decrypting on the old device", bob.read(later, "for both of bob's devices"))

			// Cross-signing: both publish keys; alice learns of bob's from the device list and
			// signs his master key with her user-signing key; bob then signs his new device with
			// his self-signing key, and alice, told by the device list again, sees it verified.
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
			if err := alice.mach.SignOwnMasterKey(ctx); err != nil {
				t.Fatalf("alice signs her master key with her device: %v", err)
			}
			alice.syncUntil(t, "learning bob's cross-signing keys", func() bool {
				keys, err := alice.mach.CryptoStore.GetCrossSigningKeys(ctx, bobCli.UserID)
				return err == nil && keys[id.XSUsageMaster].Key == bobKeys.MasterKey.PublicKey()
			})
			if err := alice.mach.SignUser(ctx, bobCli.UserID, bobKeys.MasterKey.PublicKey()); err != nil {
				t.Fatalf("alice signs bob: %v", err)
			}
			alice.syncOnce(t) // past her own signature's device-list change
			bob2Dev, err := bob.mach.GetOrFetchDevice(ctx, bobCli.UserID, bob2Cli.DeviceID)
			if err != nil {
				t.Fatal(err)
			}
			bob2Trust := func() id.TrustState {
				d, err := alice.mach.CryptoStore.GetDevice(ctx, bobCli.UserID, bob2Cli.DeviceID)
				if err != nil || d == nil {
					return id.TrustStateUnset
				}
				trust, _ := alice.mach.ResolveTrustContext(ctx, d)
				return trust
			}
			if trust := bob2Trust(); trust == id.TrustStateCrossSignedVerified {
				t.Fatal("bob's second device is verified before bob signed it")
			}
			if err := bob.mach.SignOwnDevice(ctx, bob2Dev); err != nil {
				t.Fatalf("bob signs his second device: %v", err)
			}
			alice.syncUntil(t, "seeing bob's second device verified", func() bool { return bob2Trust() == id.TrustStateCrossSignedVerified })
			// The server shows alice's signature of bob's master key to alice, not to bob.
			q, err := bobCli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bobCli.UserID: {}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, leaked := q.MasterKeys[bobCli.UserID].Signatures[aliceCli.UserID]; leaked {
				t.Error("bob sees alice's user-signing signature of his master key")
			}

			// Key backup: alice backs up the session of her first message; a fresh device of
			// hers restores it and reads that message.
			backupKey, err := backup.NewMegolmBackupKey()
			if err != nil {
				t.Fatal(err)
			}
			version, err := aliceCli.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
				Algorithm: id.KeyBackupAlgorithmMegolmBackupV1,
				AuthData:  backup.MegolmAuthData{PublicKey: id.Ed25519(base64.RawStdEncoding.EncodeToString(backupKey.PublicKey().Bytes()))},
			})
			if err != nil {
				t.Fatal(err)
			}
			helloEv, err := aliceCli.GetEvent(ctx, room, hello)
			if err != nil {
				t.Fatal(err)
			}
			if err := helloEv.Content.ParseRaw(event.EventEncrypted); err != nil {
				t.Fatal(err)
			}
			enc := helloEv.Content.AsEncrypted()
			igs, err := alice.mach.CryptoStore.GetGroupSession(ctx, room, enc.SessionID)
			if err != nil || igs == nil {
				t.Fatalf("alice's own session for her message: %v, %v", igs, err)
			}
			exported, err := igs.Internal.Export(igs.Internal.FirstKnownIndex())
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := backup.EncryptSessionData(backupKey, backup.MegolmSessionData{
				Algorithm: id.AlgorithmMegolmV1, SenderKey: igs.SenderKey, SessionKey: string(exported),
				SenderClaimedKeys: backup.SenderClaimedKeys{Ed25519: igs.SigningKey}, ForwardingKeyChain: []string{},
			})
			if err != nil {
				t.Fatal(err)
			}
			sealedJSON, err := json.Marshal(sealed)
			if err != nil {
				t.Fatal(err)
			}
			up, err := aliceCli.PutKeysInBackupForRoomAndSession(ctx, version.Version, room, enc.SessionID, &mautrix.ReqKeyBackupData{
				FirstMessageIndex: int(igs.Internal.FirstKnownIndex()), IsVerified: true, SessionData: sealedJSON})
			if err != nil || up.Count != 1 {
				t.Fatalf("backing up the session: %+v, %v", up, err)
			}
			alice2Cli := s.Login(t, "alice", cryptoPassword)
			alice2 := newCryptoClient(t, alice2Cli, src)
			if v, err := alice2.mach.DownloadAndStoreLatestKeyBackup(ctx, backupKey); err != nil || v != version.Version {
				t.Fatalf("restoring the backup: version %s, %v", v, err)
			}
			helloEv.RoomID = room
			dec, err := alice2.mach.DecryptMegolmEvent(ctx, helloEv)
			if err != nil || dec.Content.AsMessage().Body != "hello bob" {
				t.Fatalf("alice's new device decrypts her first message from the backup: %v, %v", dec, err)
			}
		})
	}
}
