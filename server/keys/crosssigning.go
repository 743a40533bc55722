package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// CrossSigningUpload is the body of POST /keys/device_signing/upload, without auth.
type CrossSigningUpload struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
}

// crossSigningKeyObject is what is checked in an uploaded cross-signing key.
type crossSigningKeyObject struct {
	UserID id.UserID         `json:"user_id"`
	Usage  []string          `json:"usage"`
	Keys   map[string]string `json:"keys"`
}

// checkCrossSigningKey validates one uploaded cross-signing key of a usage: it names the
// user, lists the usage and holds exactly one ed25519 key named by its public key.
func checkCrossSigningKey(raw json.RawMessage, user id.UserID, usage string) (*storage.CrossSigningKey, error) {
	field := usage + "_key"
	m, err := object(raw, field)
	if err != nil {
		return nil, err
	}
	var k crossSigningKeyObject
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadJSON, field, err)
	}
	if k.UserID != user {
		return nil, fmt.Errorf("%w: %s.user_id %q is not the authenticated user %s", ErrInvalidParam, field, k.UserID, user)
	}
	if !slices.Contains(k.Usage, usage) {
		return nil, fmt.Errorf("%w: %s.usage must contain %q", ErrInvalidParam, field, usage)
	}
	if len(k.Keys) != 1 {
		return nil, fmt.Errorf("%w: %s.keys must hold exactly one key", ErrInvalidParam, field)
	}
	var pub string
	for name, value := range k.Keys {
		alg, p, _ := strings.Cut(name, ":")
		if alg != string(id.KeyAlgorithmEd25519) || p != value || !validEd25519(p) {
			return nil, fmt.Errorf("%w: %s.keys must be {\"ed25519:<public key>\": \"<public key>\"}", ErrInvalidParam, field)
		}
		pub = p
	}
	delete(m, "unsigned")
	stored, err := canonicalObject(m)
	if err != nil {
		return nil, err
	}
	return &storage.CrossSigningKey{UserID: user, Usage: usage, PublicKey: pub, JSON: stored}, nil
}

// UploadCrossSigningKeys stores a user's cross-signing keys (POST
// /keys/device_signing/upload). The self-signing and user-signing keys must be signed by the
// master key uploaded with them or, failing that, the stored one. A public key may not equal
// one of the user's device IDs.
//
// Uploading the keys the server already has succeeds without changing anything. Otherwise,
// once the user has a master key, a new upload needs user-interactive auth: without
// authenticated set it returns ErrAuthRequired, decided inside the write so that two
// concurrent first uploads cannot both skip it.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysdevice_signingupload
func (e *Engine) UploadCrossSigningKeys(ctx context.Context, user id.UserID, u *CrossSigningUpload, authenticated bool) error {
	var uploaded []*storage.CrossSigningKey
	for _, f := range []struct {
		raw   json.RawMessage
		usage string
	}{{u.MasterKey, storage.UsageMaster}, {u.SelfSigningKey, storage.UsageSelfSigning}, {u.UserSigningKey, storage.UsageUserSigning}} {
		if absent(f.raw) {
			continue
		}
		k, err := checkCrossSigningKey(f.raw, user, f.usage)
		if err != nil {
			return err
		}
		uploaded = append(uploaded, k)
	}
	outbox := e.getOutbox()
	var pos, privatePos int64
	var dests []string
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		stored, err := tx.CrossSigningKeys(user)
		if err != nil {
			return err
		}
		var changed []*storage.CrossSigningKey
		for _, k := range uploaded {
			if have, ok := stored[k.Usage]; !ok || !bytes.Equal(have.JSON, k.JSON) {
				changed = append(changed, k)
			}
		}
		if len(changed) == 0 {
			return nil
		}
		if _, ok := stored[storage.UsageMaster]; ok && !authenticated {
			return ErrAuthRequired
		}
		master, ok := stored[storage.UsageMaster]
		for _, k := range uploaded {
			if k.Usage == storage.UsageMaster {
				master, ok = *k, true
			}
		}
		if !ok {
			return fmt.Errorf("%w: no master key available; upload master_key first or with the other keys", ErrMissingParam)
		}
		for _, k := range changed {
			if k.Usage != storage.UsageMaster {
				if err := verify(k.JSON, user, id.NewKeyID(id.KeyAlgorithmEd25519, master.PublicKey), master.PublicKey); err != nil {
					return fmt.Errorf("%w (%s key must be signed by the master key)", err, k.Usage)
				}
			}
			clash, err := tx.DeviceExists(user.Localpart(), id.DeviceID(k.PublicKey))
			if err != nil {
				return err
			}
			if clash {
				return fmt.Errorf("%w: the %s key's public key is one of your device IDs", ErrForbidden, k.Usage)
			}
		}
		for _, k := range changed {
			// Master and self-signing keys concern everyone who shares a room with the user;
			// the user-signing key only the user.
			p := &pos
			viewer := id.UserID("")
			if k.Usage == storage.UsageUserSigning {
				p, viewer = &privatePos, user
			}
			if *p == 0 {
				if *p, err = tx.RecordDeviceListChange(user, viewer); err != nil {
					return err
				}
			}
			if err := tx.SetCrossSigningKey(*k, *p); err != nil {
				return err
			}
		}
		// Other servers hear of the master and self-signing keys, never the user-signing key.
		if pos != 0 {
			dests, err = e.announce(tx, outbox, user, nil, true)
		}
		return err
	})
	if err != nil {
		return err
	}
	e.notifySharing(ctx, pos, user)
	e.notify(privatePos, []id.UserID{user})
	notifyOutbox(outbox, dests)
	return nil
}

// UploadSignatures stores signatures of keys (POST /keys/signatures/upload) and returns the
// failures by user and key ID. uploads maps users to key IDs (device IDs or master public
// keys) to the signed key objects, which must equal the stored keys but for signatures.
// Accepted are:
//
//   - the uploader's devices signed by their self-signing key,
//   - the uploader's master key signed by their devices,
//   - other users' master keys signed by the uploader's user-signing key. The master key of
//     a user on another server is fetched from it first; the signature stays on this server,
//     where only the uploader sees it.
//
// Each signature is verified; those that fail are reported with M_INVALID_SIGNATURE (or
// M_NOT_FOUND for a key the server does not know) and the rest are stored. Signatures of
// the uploader's own keys count as a device-list change for everyone sharing a room with
// them; a signature of another user's master key only for the uploader.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keyssignaturesupload
func (e *Engine) UploadSignatures(ctx context.Context, user id.UserID, uploads map[id.UserID]map[string]json.RawMessage) (map[id.UserID]map[string]Failure, error) {
	for target, byKey := range uploads {
		for keyID, raw := range byKey {
			if !isObject(raw) {
				return nil, fmt.Errorf("%w: %s %s must be a signed key object", ErrInvalidParam, target, keyID)
			}
		}
	}
	remoteMasters := e.remoteMasterKeys(ctx, user, uploads)
	outbox := e.getOutbox()
	var failures map[id.UserID]map[string]Failure
	var pos int64
	var privatePos []int64
	var signed []id.UserID
	var dests []string
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		s := &signer{tx: tx, user: user, remoteMasters: remoteMasters, failures: map[id.UserID]map[string]Failure{}}
		var err error
		if s.own, err = tx.CrossSigningKeys(user); err != nil {
			return err
		}
		// Signatures of the uploader's own keys travel to other servers with the keys: a
		// device's in an m.device_list_update, the master key's in an m.signing_key_update.
		var ownDevices []deviceChange
		ownMaster := false
		for target, byKey := range uploads {
			for _, keyID := range slices.Sorted(maps.Keys(byKey)) {
				raw := byKey[keyID]
				var stored bool
				if target == user {
					stored, err = s.signOwn(keyID, raw)
				} else {
					stored, err = s.signOther(target, keyID, raw, e.isLocal(target))
				}
				if err != nil {
					return err
				}
				switch {
				case stored && target == user && keyID == s.own[storage.UsageMaster].PublicKey:
					ownMaster = true
				case stored && target == user:
					ownDevices = append(ownDevices, deviceChange{device: id.DeviceID(keyID)})
				case stored:
					signed = append(signed, target)
				}
			}
		}
		if ownMaster || len(ownDevices) > 0 {
			if pos, err = tx.RecordDeviceListChange(user, ""); err != nil {
				return err
			}
			if dests, err = e.announce(tx, outbox, user, ownDevices, ownMaster); err != nil {
				return err
			}
		}
		for _, target := range signed {
			p, err := tx.RecordDeviceListChange(target, user)
			if err != nil {
				return err
			}
			privatePos = append(privatePos, p)
		}
		failures = s.failures
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.notifySharing(ctx, pos, user)
	for _, p := range privatePos {
		e.notify(p, []id.UserID{user})
	}
	notifyOutbox(outbox, dests)
	return failures, nil
}

// signer checks and stores the signatures of one upload inside its write.
type signer struct {
	tx      *storage.Tx
	user    id.UserID
	own     map[string]storage.CrossSigningKey
	devices map[id.DeviceID]storage.DeviceKeys
	// remoteMasters are the master keys of the users on other servers being signed, as their
	// servers answered.
	remoteMasters map[id.UserID]storage.CrossSigningKey
	failures      map[id.UserID]map[string]Failure
}

func (s *signer) fail(target id.UserID, keyID, errcode, format string, args ...any) {
	if s.failures[target] == nil {
		s.failures[target] = map[string]Failure{}
	}
	s.failures[target][keyID] = Failure{ErrCode: errcode, Error: fmt.Sprintf(format, args...)}
}

// signOwn handles a signature of one of the uploader's own keys: a device signed by the
// self-signing key, or the master key signed by devices.
func (s *signer) signOwn(keyID string, raw json.RawMessage) (bool, error) {
	if s.devices == nil {
		var err error
		if s.devices, err = s.tx.AllDeviceKeys(s.user); err != nil {
			return false, err
		}
	}
	sigs, err := signaturesOf(raw)
	if err != nil {
		s.fail(s.user, keyID, "M_BAD_JSON", "signatures must map user IDs to key IDs to strings")
		return false, nil
	}
	if master, ok := s.own[storage.UsageMaster]; ok && keyID == master.PublicKey {
		return s.signMasterByDevices(master, raw, sigs[s.user])
	}
	device, ok := s.devices[id.DeviceID(keyID)]
	if !ok {
		s.fail(s.user, keyID, "M_NOT_FOUND", "no device or master key %s", keyID)
		return false, nil
	}
	ssk, ok := s.own[storage.UsageSelfSigning]
	if !ok {
		s.fail(s.user, keyID, "M_NOT_FOUND", "you have no self-signing key to sign devices with")
		return false, nil
	}
	sskID := id.NewKeyID(id.KeyAlgorithmEd25519, ssk.PublicKey)
	sig, ok := sigs[s.user][sskID]
	if !ok {
		s.fail(s.user, keyID, "M_INVALID_SIGNATURE", "no signature by your self-signing key %s", sskID)
		return false, nil
	}
	if !sameSignedContent(raw, device.JSON) {
		s.fail(s.user, keyID, "M_INVALID_PARAM", "the signed object is not device %s's stored keys", keyID)
		return false, nil
	}
	if err := verify(raw, s.user, sskID, ssk.PublicKey); err != nil {
		s.fail(s.user, keyID, "M_INVALID_SIGNATURE", "invalid signature by your self-signing key")
		return false, nil
	}
	return s.add(storage.KeySignature{TargetUser: s.user, TargetKey: keyID, SignerUser: s.user, SignerKey: sskID, Signature: sig})
}

// add stores a verified signature and reports whether it is new: uploading a stored
// signature again changes nothing.
func (s *signer) add(ks storage.KeySignature) (bool, error) {
	have, err := s.tx.StoredKeySignature(ks.TargetUser, ks.TargetKey, ks.SignerUser, ks.SignerKey)
	if err != nil || have == ks.Signature {
		return false, err
	}
	return true, s.tx.AddKeySignature(ks)
}

// signMasterByDevices stores the uploader's devices' signatures of their master key.
// Signatures the stored key already carries are left as they are.
func (s *signer) signMasterByDevices(master storage.CrossSigningKey, raw json.RawMessage, sigs map[id.KeyID]string) (bool, error) {
	keyID := master.PublicKey
	if !sameSignedContent(raw, master.JSON) {
		s.fail(s.user, keyID, "M_INVALID_PARAM", "the signed object is not your stored master key")
		return false, nil
	}
	have, err := signaturesOf(master.JSON)
	if err != nil {
		return false, err
	}
	var add []storage.KeySignature
	for signing, sig := range sigs {
		if have[s.user][signing] == sig {
			continue
		}
		alg, deviceID := signing.Parse()
		device, ok := s.devices[id.DeviceID(deviceID)]
		if alg != id.KeyAlgorithmEd25519 || !ok {
			s.fail(s.user, keyID, "M_INVALID_SIGNATURE", "signature by %s, which is none of your devices", signing)
			return false, nil
		}
		if err := verify(raw, s.user, signing, device.Ed25519); err != nil {
			s.fail(s.user, keyID, "M_INVALID_SIGNATURE", "invalid signature by device %s", deviceID)
			return false, nil
		}
		add = append(add, storage.KeySignature{TargetUser: s.user, TargetKey: keyID, SignerUser: s.user, SignerKey: signing, Signature: sig})
	}
	if len(sigs) == 0 {
		s.fail(s.user, keyID, "M_INVALID_SIGNATURE", "no signature by one of your devices")
		return false, nil
	}
	stored := false
	for _, ks := range add {
		added, err := s.add(ks)
		if err != nil {
			return false, err
		}
		stored = stored || added
	}
	return stored, nil
}

// signOther handles a signature of another user's master key by the uploader's
// user-signing key.
func (s *signer) signOther(target id.UserID, keyID string, raw json.RawMessage, local bool) (bool, error) {
	usk, ok := s.own[storage.UsageUserSigning]
	if !ok {
		s.fail(target, keyID, "M_NOT_FOUND", "you have no user-signing key to sign other users with")
		return false, nil
	}
	var master storage.CrossSigningKey
	if local {
		theirs, err := s.tx.CrossSigningKeys(target)
		if err != nil {
			return false, err
		}
		master, ok = theirs[storage.UsageMaster]
	} else {
		master, ok = s.remoteMasters[target]
	}
	if !ok || keyID != master.PublicKey {
		s.fail(target, keyID, "M_NOT_FOUND", "%s is not the master key of %s; only master keys of other users can be signed", keyID, target)
		return false, nil
	}
	uskID := id.NewKeyID(id.KeyAlgorithmEd25519, usk.PublicKey)
	sigs, err := signaturesOf(raw)
	if err != nil {
		s.fail(target, keyID, "M_BAD_JSON", "signatures must map user IDs to key IDs to strings")
		return false, nil
	}
	sig, ok := sigs[s.user][uskID]
	if !ok {
		s.fail(target, keyID, "M_INVALID_SIGNATURE", "no signature by your user-signing key %s", uskID)
		return false, nil
	}
	if !sameSignedContent(raw, master.JSON) {
		s.fail(target, keyID, "M_INVALID_PARAM", "the signed object is not %s's stored master key", target)
		return false, nil
	}
	if err := verify(raw, s.user, uskID, usk.PublicKey); err != nil {
		s.fail(target, keyID, "M_INVALID_SIGNATURE", "invalid signature by your user-signing key")
		return false, nil
	}
	return s.add(storage.KeySignature{TargetUser: target, TargetKey: keyID, SignerUser: s.user, SignerKey: uskID, Signature: sig})
}

// remoteMasterKeys fetches the master keys of the users on other servers whose keys are
// being signed, so that a signature can be checked against the key it claims to sign. A
// server that cannot be asked leaves its users out, and their signatures fail as unknown.
func (e *Engine) remoteMasterKeys(ctx context.Context, signer id.UserID, uploads map[id.UserID]map[string]json.RawMessage) map[id.UserID]storage.CrossSigningKey {
	byServer := map[string]map[id.UserID][]id.DeviceID{}
	for target, byKey := range uploads {
		if target == signer || e.isLocal(target) || len(byKey) == 0 || target.Homeserver() == "" {
			continue
		}
		if byServer[target.Homeserver()] == nil {
			byServer[target.Homeserver()] = map[id.UserID][]id.DeviceID{}
		}
		byServer[target.Homeserver()][target] = []id.DeviceID{}
	}
	out := map[id.UserID]storage.CrossSigningKey{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, users := range byServer {
		wg.Go(func() {
			res, err := e.queryRemote(ctx, server, users, 0)
			if err != nil {
				e.log.Info("e2ee: fetching master keys to check signatures of them", "server", server, "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for u := range users {
				if raw, ok := res.MasterKeys[u]; ok {
					if k, err := checkCrossSigningKey(raw, u, storage.UsageMaster); err == nil {
						out[u] = *k
					}
				}
			}
		})
	}
	wg.Wait()
	return out
}
