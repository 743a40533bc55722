package server

import (
	"context"
	"encoding/json"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	e2ee "fyr/server/keys"
	"fyr/storage"
)

// This file carries end-to-end encryption between servers: the E2EE engine's queries and
// claims for other servers' users, its m.direct_to_device and device-list EDUs on the durable
// queue, and the EDUs other servers send about their users.
//
// See https://spec.matrix.org/v1.19/server-server-api/#end-to-end-encryption

// fedKeys asks other servers about their users' keys for the E2EE engine.
type fedKeys struct{ c *transport.Client }

var _ e2ee.RemoteKeys = fedKeys{}

// QueryKeys is POST /_matrix/federation/v1/user/keys/query. Only what concerns the users
// asked about is kept: a server does not speak for another's users, and no user-signing key
// of a remote user is ever passed on.
func (f fedKeys) QueryKeys(ctx context.Context, server string, users map[id.UserID][]id.DeviceID) (*e2ee.QueryResult, error) {
	var resp struct {
		DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
		MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys"`
		SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys"`
	}
	if err := f.c.Do(ctx, server, "POST", "/_matrix/federation/v1/user/keys/query", map[string]any{"device_keys": users}, &resp); err != nil {
		return nil, err
	}
	res := &e2ee.QueryResult{DeviceKeys: map[id.UserID]map[id.DeviceID]json.RawMessage{},
		MasterKeys: map[id.UserID]json.RawMessage{}, SelfSigningKeys: map[id.UserID]json.RawMessage{}}
	for u := range users {
		if ds, ok := resp.DeviceKeys[u]; ok && ds != nil {
			res.DeviceKeys[u] = ds
		}
		if k, ok := resp.MasterKeys[u]; ok {
			res.MasterKeys[u] = k
		}
		if k, ok := resp.SelfSigningKeys[u]; ok {
			res.SelfSigningKeys[u] = k
		}
	}
	return res, nil
}

// ClaimKeys is POST /_matrix/federation/v1/user/keys/claim. Keys for devices not asked for
// are dropped.
func (f fedKeys) ClaimKeys(ctx context.Context, server string, claims map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	var resp struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]json.RawMessage `json:"one_time_keys"`
	}
	if err := f.c.Do(ctx, server, "POST", "/_matrix/federation/v1/user/keys/claim", map[string]any{"one_time_keys": claims}, &resp); err != nil {
		return nil, err
	}
	out := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
	for u, devices := range claims {
		for d := range devices {
			if k := resp.OneTimeKeys[u][d]; len(k) > 0 {
				if out[u] == nil {
					out[u] = map[id.DeviceID]map[string]json.RawMessage{}
				}
				out[u][d] = k
			}
		}
	}
	return out, nil
}

// EnqueueEDU queues an EDU of the E2EE engine (to-device messages, device-list and
// signing-key updates) for a destination, in the engine's write. They never expire: a
// device list or a room key that arrives late is still needed.
func (o outbox) EnqueueEDU(tx *storage.Tx, destination string, edu []byte) error {
	return tx.EnqueueOutbound(destination, storage.OutboundEDU, edu, time.Now().UnixMilli(), 0)
}

var _ e2ee.Outbox = outbox{}

// receiveToDevice delivers an m.direct_to_device EDU to local devices.
func (s *Server) receiveToDevice(ctx context.Context, origin string, content json.RawMessage) {
	var c struct {
		Sender    id.UserID                                     `json:"sender"`
		Type      string                                        `json:"type"`
		MessageID string                                        `json:"message_id"`
		Messages  map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		s.log.Info("m.direct_to_device EDU ignored", "origin", origin, "err", err)
		return
	}
	if err := s.E2EE.ReceiveToDevice(ctx, origin, c.Sender, c.Type, c.MessageID, c.Messages); err != nil {
		s.log.Info("m.direct_to_device EDU ignored", "origin", origin, "sender", c.Sender, "err", err)
	}
}

// receiveKeysChanged handles m.device_list_update and m.signing_key_update: another
// server's user changed their devices or cross-signing keys. This server keeps no copy of
// remote keys, so it only tells the local users who share a room with them to ask again.
func (s *Server) receiveKeysChanged(eduType string) func(ctx context.Context, origin string, content json.RawMessage) {
	return func(ctx context.Context, origin string, content json.RawMessage) {
		var c struct {
			UserID id.UserID `json:"user_id"`
		}
		if err := json.Unmarshal(content, &c); err != nil {
			s.log.Info(eduType+" EDU ignored", "origin", origin, "err", err)
			return
		}
		if err := s.E2EE.RemoteKeysChanged(ctx, origin, c.UserID); err != nil {
			s.log.Info(eduType+" EDU ignored", "origin", origin, "user_id", c.UserID, "err", err)
		}
	}
}
