package keys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Outbox carries to-device messages for users on other servers as m.direct_to_device EDUs.
// EnqueueEDU runs inside the write that accepts the messages, so they are queued durably
// together; Notify runs after the commit.
type Outbox interface {
	EnqueueEDU(tx *storage.Tx, destination string, edu []byte) error
	Notify(destinations []string)
}

// MaxEventTypeBytes bounds a to-device event type, as for room events.
const MaxEventTypeBytes = 255

// allDevices is the device ID that addresses every device of a user.
const allDevices = "*"

// toDeviceEvent is a message as a device's sync receives it.
type toDeviceEvent struct {
	Sender  id.UserID       `json:"sender"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// SendToDevice delivers messages of one event type from sender's device (PUT
// /sendToDevice/{eventType}/{txnId}). messages maps users to device IDs, or "*" for all of a
// user's devices, to message contents. A transaction ID the device used before changes
// nothing. Local devices that do not exist are skipped; each message to a local device takes
// the same new stream position and waits in the device's inbox (bounded by MaxInbox,
// dropping the oldest) until its sync acknowledges it. Messages to users on other servers go
// to the Outbox, or are dropped and logged while there is none.
//
// See https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3sendtodeviceeventtypetxnid
func (e *Engine) SendToDevice(ctx context.Context, sender id.UserID, senderDevice id.DeviceID, eventType, txnID string,
	messages map[id.UserID]map[id.DeviceID]json.RawMessage) error {
	if eventType == "" || len(eventType) > MaxEventTypeBytes {
		return fmt.Errorf("%w: the event type must be 1 to %d bytes", ErrInvalidParam, MaxEventTypeBytes)
	}
	local := map[id.UserID]map[id.DeviceID][]byte{}
	remote := map[string]map[id.UserID]map[id.DeviceID]json.RawMessage{}
	for user, byDevice := range messages {
		for device, content := range byDevice {
			if !isObject(content) {
				return fmt.Errorf("%w: the message to %s %s must be an object", ErrBadJSON, user, device)
			}
		}
		server := user.Homeserver()
		switch {
		case e.isLocal(user):
			local[user] = map[id.DeviceID][]byte{}
			for device, content := range byDevice {
				ev, err := json.Marshal(toDeviceEvent{Sender: sender, Type: eventType, Content: content})
				if err != nil {
					return fmt.Errorf("%w: %v", ErrBadJSON, err)
				}
				local[user][device] = ev
			}
		case server != "":
			if remote[server] == nil {
				remote[server] = map[id.UserID]map[id.DeviceID]json.RawMessage{}
			}
			remote[server][user] = byDevice
		}
	}
	e.mu.RLock()
	outbox := e.outbox
	e.mu.RUnlock()
	var pos, dropped int64
	var recipients []id.UserID
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		fresh, err := tx.ToDeviceTxn(sender, senderDevice, txnID, e.nowMS())
		if err != nil || !fresh {
			return err
		}
		if pos, recipients, dropped, err = e.queueLocal(tx, local); err != nil {
			return err
		}
		if outbox == nil {
			return nil
		}
		for _, server := range slices.Sorted(maps.Keys(remote)) {
			edu, err := directToDevice(sender, eventType, remote[server])
			if err != nil {
				return err
			}
			if err := outbox.EnqueueEDU(tx, server, edu); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if dropped > 0 {
		e.log.Warn("e2ee: to-device inboxes full; dropped the oldest messages", "dropped", dropped, "max_inbox", e.opt.MaxInbox)
	}
	if len(remote) > 0 {
		servers := slices.Sorted(maps.Keys(remote))
		if outbox == nil {
			e.log.Info("e2ee: to-device messages for other servers dropped: federation is not wired in", "sender", sender, "type", eventType, "servers", servers)
		} else {
			outbox.Notify(servers)
		}
	}
	e.notify(pos, recipients)
	return nil
}

// queueLocal puts messages in the inboxes of local devices, all at one new stream position
// (none when no device gets a message). It returns the position, the users whose devices got
// a message and how many old messages full inboxes dropped.
func (e *Engine) queueLocal(tx *storage.Tx, local map[id.UserID]map[id.DeviceID][]byte) (pos int64, recipients []id.UserID, dropped int64, err error) {
	for _, user := range slices.Sorted(maps.Keys(local)) {
		targets, err := resolveDevices(tx, user, local[user])
		if err != nil {
			return 0, nil, 0, err
		}
		if len(targets) > 0 {
			recipients = append(recipients, user)
		}
		for _, device := range slices.Sorted(maps.Keys(targets)) {
			if pos == 0 {
				if pos, err = tx.NextPos(); err != nil {
					return 0, nil, 0, err
				}
			}
			n, err := tx.QueueToDevice(user, device, pos, targets[device], e.opt.MaxInbox)
			if err != nil {
				return 0, nil, 0, err
			}
			dropped += n
		}
	}
	return pos, recipients, dropped, nil
}

// resolveDevices turns one user's messages into the devices that get them: "*" is every
// device, and a message to a named device overrides "*" for it. Unknown devices are skipped.
func resolveDevices(tx *storage.Tx, user id.UserID, byDevice map[id.DeviceID][]byte) (map[id.DeviceID][]byte, error) {
	out := map[id.DeviceID][]byte{}
	if msg, ok := byDevice[allDevices]; ok {
		all, err := tx.DeviceIDs(user.Localpart())
		if err != nil {
			return nil, err
		}
		for _, d := range all {
			out[d] = msg
		}
	}
	for device, msg := range byDevice {
		if device == allDevices {
			continue
		}
		ok, err := tx.DeviceExists(user.Localpart(), device)
		if err != nil {
			return nil, err
		}
		if ok {
			out[device] = msg
		}
	}
	return out, nil
}

// directToDevice builds the m.direct_to_device EDU for one server.
//
// See https://spec.matrix.org/v1.19/server-server-api/#send-to-device-messaging
func directToDevice(sender id.UserID, eventType string, messages map[id.UserID]map[id.DeviceID]json.RawMessage) ([]byte, error) {
	var mid [16]byte
	rand.Read(mid[:])
	return json.Marshal(map[string]any{
		"edu_type": "m.direct_to_device",
		"content": map[string]any{
			"sender":     sender,
			"type":       eventType,
			"message_id": hex.EncodeToString(mid[:]),
			"messages":   messages,
		},
	})
}

// ToDevice returns a device's to-device messages with since < pos <= upto, oldest first,
// at most limit of them (0: DefaultToDeviceLimit), for sync's to_device.events. next is the
// position up to which the device has now been served: upto when everything was returned,
// else the position of the last message returned. Sync puts next in its token and, on the
// request that presents it, calls AckToDevice with it.
func (e *Engine) ToDevice(ctx context.Context, user id.UserID, device id.DeviceID, since, upto int64, limit int) (events []json.RawMessage, next int64, err error) {
	if limit <= 0 {
		limit = DefaultToDeviceLimit
	}
	msgs, err := e.db.ToDevice(ctx, user, device, since, upto, limit)
	if err != nil {
		return nil, since, err
	}
	events = make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		events[i] = m.Message
	}
	if len(msgs) == limit {
		return events, msgs[len(msgs)-1].Pos, nil
	}
	return events, upto, nil
}

// AckToDevice deletes a device's to-device messages up to and including upto: the client
// has them, since it presents a token past them. An empty inbox costs no write.
func (e *Engine) AckToDevice(ctx context.Context, user id.UserID, device id.DeviceID, upto int64) error {
	waiting, err := e.db.HasToDevice(ctx, user, device, upto)
	if err != nil || !waiting {
		return err
	}
	return e.db.Write(ctx, func(tx *storage.Tx) error {
		_, err := tx.AckToDevice(user, device, upto)
		return err
	})
}
