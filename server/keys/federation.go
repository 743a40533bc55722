package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// This file is the engine's federation side: what other servers may ask about this server's
// users' keys, what they tell it about their own users, and the EDUs that tell them when a
// local user's keys change. Transport is not its business: requests arrive decoded, and EDUs
// leave through the Outbox.
//
// See https://spec.matrix.org/v1.19/server-server-api/#end-to-end-encryption

// Timing of the memory of received to-device message IDs.
const (
	// toDeviceIDMemory is how long the ID of an m.direct_to_device EDU is remembered: a
	// sender retries a transaction whose answer it lost for minutes, not days.
	toDeviceIDMemory = 7 * 24 * time.Hour
	// toDeviceIDPruneEvery is how often old IDs are forgotten.
	toDeviceIDPruneEvery = time.Hour
	// MaxMessageIDBytes bounds an m.direct_to_device message_id (the spec says 32
	// codepoints; a little slack costs nothing).
	MaxMessageIDBytes = 255
)

// FederationQuery answers another server's POST /_matrix/federation/v1/user/keys/query:
// the device and cross-signing keys of this server's users among users (others are left
// out), with the signatures each user made themselves. User-signing keys, and signatures
// that only their maker may see, never leave the server.
//
// See https://spec.matrix.org/v1.19/server-server-api/#post_matrixfederationv1userkeysquery
func (e *Engine) FederationQuery(ctx context.Context, users map[id.UserID][]id.DeviceID) (*QueryResult, error) {
	var local []id.UserID
	for u := range users {
		if e.isLocal(u) {
			local = append(local, u)
		}
	}
	res := newQueryResult()
	var mu sync.Mutex
	// No requester: only the owners' own signatures are visible, and no user-signing key.
	if err := e.queryLocal(ctx, "", local, users, res, &mu); err != nil {
		return nil, err
	}
	return res, nil
}

// FederationClaim answers another server's POST /_matrix/federation/v1/user/keys/claim as
// Claim does, for this server's users only; claims for others are left out.
//
// See https://spec.matrix.org/v1.19/server-server-api/#post_matrixfederationv1userkeysclaim
func (e *Engine) FederationClaim(ctx context.Context, claims map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	local := map[id.UserID]map[id.DeviceID]string{}
	for u, devices := range claims {
		if e.isLocal(u) {
			local[u] = devices
		}
	}
	res, err := e.Claim(ctx, local, 0)
	if err != nil {
		return nil, err
	}
	return res.OneTimeKeys, nil
}

// UserDevices is the answer to GET /_matrix/federation/v1/user/devices/{userId}.
type UserDevices struct {
	UserID id.UserID `json:"user_id"`
	// StreamID is the stream_id of the newest m.device_list_update sent about the user: the
	// next one names it in prev_id.
	StreamID       int64           `json:"stream_id"`
	Devices        []UserDevice    `json:"devices"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

// UserDevice is one device in UserDevices.
type UserDevice struct {
	DeviceID id.DeviceID `json:"device_id"`
	// Keys are the device's identity keys with the signatures its owner made.
	Keys        json.RawMessage `json:"keys"`
	DisplayName string          `json:"device_display_name,omitempty"`
}

// UserDevices lists a local user's devices that have identity keys, with their master and
// self-signing keys, for another server. An unknown user has no devices, as Synapse answers;
// a user of another server is ErrInvalidParam.
//
// See https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1userdevicesuserid
func (e *Engine) UserDevices(ctx context.Context, user id.UserID) (*UserDevices, error) {
	if !e.isLocal(user) {
		return nil, fmt.Errorf("%w: %s is not a user of this server", ErrInvalidParam, user)
	}
	// The stream ID is read first: if the list changes meanwhile, the devices are newer than
	// it, and the update that follows is applied once more rather than missed.
	streamID, err := e.db.DeviceListStreamID(ctx, user)
	if err != nil {
		return nil, err
	}
	res, err := e.FederationQuery(ctx, map[id.UserID][]id.DeviceID{user: nil})
	if err != nil {
		return nil, err
	}
	out := &UserDevices{UserID: user, StreamID: streamID, Devices: []UserDevice{},
		MasterKey: res.MasterKeys[user], SelfSigningKey: res.SelfSigningKeys[user]}
	for _, device := range slices.Sorted(maps.Keys(res.DeviceKeys[user])) {
		// The display name has its own field here; the keys are as the device signed them.
		m, err := object(res.DeviceKeys[user][device], "device keys")
		if err != nil {
			return nil, err
		}
		var name string
		if u := m["unsigned"]; u != nil {
			var v struct {
				DisplayName string `json:"device_display_name"`
			}
			json.Unmarshal(u, &v)
			name = v.DisplayName
			delete(m, "unsigned")
		}
		keys, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		out.Devices = append(out.Devices, UserDevice{DeviceID: device, Keys: keys, DisplayName: name})
	}
	return out, nil
}

// ReceiveToDevice delivers an m.direct_to_device EDU from origin to local devices, as
// SendToDevice does for a local sender. The sender must be a user of origin. A message_id
// that origin used before delivers nothing again; messages for other servers' users and
// contents that are not objects are left out.
//
// See https://spec.matrix.org/v1.19/server-server-api/#send-to-device-messaging
func (e *Engine) ReceiveToDevice(ctx context.Context, origin string, sender id.UserID, eventType, messageID string,
	messages map[id.UserID]map[id.DeviceID]json.RawMessage) error {
	if _, server, err := sender.Parse(); err != nil || server != origin || origin == e.opt.ServerName {
		return fmt.Errorf("%w: sender %q is not a user of %s", ErrForbidden, sender, origin)
	}
	if eventType == "" || len(eventType) > MaxEventTypeBytes {
		return fmt.Errorf("%w: the event type must be 1 to %d bytes", ErrInvalidParam, MaxEventTypeBytes)
	}
	if messageID == "" || len(messageID) > MaxMessageIDBytes {
		return fmt.Errorf("%w: message_id must be 1 to %d bytes", ErrInvalidParam, MaxMessageIDBytes)
	}
	local := map[id.UserID]map[id.DeviceID][]byte{}
	for user, byDevice := range messages {
		if !e.isLocal(user) {
			continue
		}
		for device, content := range byDevice {
			if !isObject(content) {
				continue
			}
			ev, err := json.Marshal(toDeviceEvent{Sender: sender, Type: eventType, Content: content})
			if err != nil {
				return fmt.Errorf("%w: %v", ErrBadJSON, err)
			}
			if local[user] == nil {
				local[user] = map[id.DeviceID][]byte{}
			}
			local[user][device] = ev
		}
	}
	now := e.opt.Now()
	var pos, dropped int64
	var recipients []id.UserID
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		if last := e.prunedToDeviceIDs.Load(); now.UnixMilli()-last >= toDeviceIDPruneEvery.Milliseconds() {
			if err := tx.ForgetInboundToDevice(now.Add(-toDeviceIDMemory).UnixMilli()); err != nil {
				return err
			}
			e.prunedToDeviceIDs.Store(now.UnixMilli())
		}
		fresh, err := tx.InboundToDevice(origin, messageID, now.UnixMilli())
		if err != nil || !fresh {
			return err
		}
		pos, recipients, dropped, err = e.queueLocal(tx, local)
		return err
	})
	if err != nil {
		return err
	}
	if dropped > 0 {
		e.log.Warn("e2ee: to-device inboxes full; dropped the oldest messages", "dropped", dropped, "max_inbox", e.opt.MaxInbox)
	}
	e.notify(pos, recipients)
	return nil
}

// RemoteKeysChanged records that the devices or cross-signing keys of user, a user of
// origin, changed (an m.device_list_update or m.signing_key_update EDU), so that the local
// users who share a room with them see it in device_lists.changed and /keys/changes, and ask
// again. Keys of other servers' users are not cached here, so there is nothing to update.
// An update about a user who shares no room with a local user is dropped; one about a user
// of another server than origin is ErrForbidden.
//
// See https://spec.matrix.org/v1.19/server-server-api/#device-management
func (e *Engine) RemoteKeysChanged(ctx context.Context, origin string, user id.UserID) error {
	if _, server, err := user.Parse(); err != nil || server != origin || origin == e.opt.ServerName {
		return fmt.Errorf("%w: %q is not a user of %s", ErrForbidden, user, origin)
	}
	sharing, err := e.db.UsersSharingRoom(ctx, user)
	if err != nil {
		return err
	}
	var local []id.UserID
	for _, u := range sharing {
		if e.isLocal(u) {
			local = append(local, u)
		}
	}
	if len(local) == 0 {
		return nil
	}
	var pos int64
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		pos, err = tx.RecordDeviceListChange(user, "")
		return err
	})
	if err != nil {
		return err
	}
	e.notify(pos, local)
	return nil
}

// DeviceRenamed announces a local device's new display name: it is part of what /keys/query
// and other servers show of a device with keys. A device without keys changes nothing.
func (e *Engine) DeviceRenamed(ctx context.Context, user id.UserID, device id.DeviceID) error {
	outbox := e.getOutbox()
	var pos int64
	var dests []string
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		if _, err := tx.DeviceKeys(user, device); errors.Is(err, storage.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		var err error
		if pos, err = tx.RecordDeviceListChange(user, ""); err != nil {
			return err
		}
		dests, err = e.announce(tx, outbox, user, []deviceChange{{device: device}}, false)
		return err
	})
	if err != nil {
		return err
	}
	e.notifySharing(ctx, pos, user)
	notifyOutbox(outbox, dests)
	return nil
}

func (e *Engine) getOutbox() Outbox {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.outbox
}

func notifyOutbox(o Outbox, dests []string) {
	if o != nil && len(dests) > 0 {
		o.Notify(dests)
	}
}

// deviceChange is a change of one local device for an m.device_list_update EDU.
type deviceChange struct {
	device  id.DeviceID
	deleted bool
}

// announce queues, inside the write that changes a local user's keys, the EDUs that tell the
// other servers sharing a room with the user: an m.device_list_update per changed device
// (taking the next stream_id of the user's sequence), and an m.signing_key_update when the
// master or self-signing key changed. It returns the destinations, to notify after the
// commit. Without an outbox nothing is announced.
func (e *Engine) announce(tx *storage.Tx, outbox Outbox, user id.UserID, devices []deviceChange, crossSigning bool) ([]string, error) {
	if outbox == nil || (len(devices) == 0 && !crossSigning) {
		return nil, nil
	}
	servers, err := tx.ServersSharingRooms(user)
	if err != nil {
		return nil, err
	}
	var dests []string
	for _, s := range servers {
		if s != e.opt.ServerName {
			dests = append(dests, s)
		}
	}
	var edus [][]byte
	for _, d := range devices {
		// Every change takes a stream_id, sent or not, so that a server that comes to share
		// a room later sees a gap and fetches the list afresh.
		streamID, prev, err := tx.NextDeviceListStreamID(user)
		if err != nil {
			return nil, err
		}
		if len(dests) == 0 {
			continue
		}
		edu, err := deviceListUpdate(tx, user, d, streamID, prev)
		if err != nil {
			return nil, err
		}
		edus = append(edus, edu)
	}
	if crossSigning && len(dests) > 0 {
		edu, err := signingKeyUpdate(tx, user)
		if err != nil {
			return nil, err
		}
		edus = append(edus, edu)
	}
	if len(edus) == 0 {
		return nil, nil
	}
	for _, dest := range dests {
		for _, edu := range edus {
			if err := outbox.EnqueueEDU(tx, dest, edu); err != nil {
				return nil, err
			}
		}
	}
	return dests, nil
}

// deviceListUpdate builds the m.device_list_update EDU for one device: its keys (with the
// signatures its owner made, so that a cross-signed device stays verified) and display name,
// or deleted.
//
// See https://spec.matrix.org/v1.19/server-server-api/#m-device_list_update-schema
func deviceListUpdate(tx *storage.Tx, user id.UserID, d deviceChange, streamID, prev int64) ([]byte, error) {
	content := map[string]any{"user_id": user, "device_id": d.device, "stream_id": streamID, "prev_id": []int64{}}
	if prev > 0 {
		content["prev_id"] = []int64{prev}
	}
	if d.deleted {
		content["deleted"] = true
	} else {
		dk, err := tx.DeviceKeys(user, d.device)
		if err != nil {
			return nil, fmt.Errorf("keys of %s %s: %w", user, d.device, err)
		}
		keys, err := withOwnSignatures(tx, user, string(d.device), dk.JSON)
		if err != nil {
			return nil, err
		}
		content["keys"] = keys
		name, err := tx.DeviceDisplayName(user.Localpart(), d.device)
		if err != nil {
			return nil, err
		}
		if name != "" {
			content["device_display_name"] = name
		}
	}
	return json.Marshal(map[string]any{"edu_type": "m.device_list_update", "content": content})
}

// signingKeyUpdate builds the m.signing_key_update EDU with a user's current master and
// self-signing keys. The user-signing key is the user's own business and is never sent.
//
// See https://spec.matrix.org/v1.19/server-server-api/#m-signing_key_update-schema
func signingKeyUpdate(tx *storage.Tx, user id.UserID) ([]byte, error) {
	keys, err := tx.CrossSigningKeys(user)
	if err != nil {
		return nil, err
	}
	content := map[string]any{"user_id": user}
	for usage, field := range map[string]string{storage.UsageMaster: "master_key", storage.UsageSelfSigning: "self_signing_key"} {
		k, ok := keys[usage]
		if !ok {
			continue
		}
		signed, err := withOwnSignatures(tx, user, k.PublicKey, k.JSON)
		if err != nil {
			return nil, err
		}
		content[field] = signed
	}
	return json.Marshal(map[string]any{"edu_type": "m.signing_key_update", "content": content})
}

// withOwnSignatures adds the signatures a user uploaded of one of their keys to it.
func withOwnSignatures(tx *storage.Tx, user id.UserID, key string, raw []byte) (json.RawMessage, error) {
	sigs, err := tx.OwnKeySignatures(user, key)
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		return raw, nil
	}
	return withSignatures(raw, signatures{user: sigs}, nil)
}
