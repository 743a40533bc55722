package server

import (
	"context"
	"encoding/json"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/inbound"
	"fyr/federation/outbound"
	"fyr/storage"
)

// presenceEDUTTL is how long a queued presence update stays worth sending: after an outage
// the peer gets the current presence from the next change, not a backlog of old ones.
const presenceEDUTTL = 5 * time.Minute

// presenceEDU is the m.presence EDU's content entry.
type presenceEDU struct {
	UserID          id.UserID `json:"user_id"`
	Presence        string    `json:"presence"`
	StatusMsg       string    `json:"status_msg,omitempty"`
	LastActiveAgo   int64     `json:"last_active_ago"`
	CurrentlyActive bool      `json:"currently_active"`
}

// sendPresence tells the servers sharing a room with a local user about their presence.
func (s *Server) sendPresence(ctx context.Context, user id.UserID) {
	if user.Homeserver() != s.cfg.ServerName {
		return
	}
	st, err := s.UserData.Presence(ctx, user, user)
	if err != nil {
		return
	}
	servers, err := s.DB.ServersSharingRooms(ctx, string(user))
	if err != nil {
		s.log.Warn("presence fan-out", "err", err)
		return
	}
	var dests []string
	for _, d := range servers {
		if d != s.cfg.ServerName {
			dests = append(dests, d)
		}
	}
	if len(dests) == 0 {
		return
	}
	entry := presenceEDU{UserID: user, Presence: st.Presence, StatusMsg: st.StatusMsg}
	if st.CurrentlyActive != nil {
		entry.CurrentlyActive = *st.CurrentlyActive
	}
	if st.LastActiveAgo != nil {
		entry.LastActiveAgo = *st.LastActiveAgo
	}
	body, _ := json.Marshal(map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []presenceEDU{entry}}})
	if err := s.Outbound.Enqueue(ctx, dests, outbound.Item{Kind: storage.OutboundEDU, Body: body, Expires: time.Now().Add(presenceEDUTTL)}); err != nil {
		s.log.Warn("presence fan-out", "err", err)
	}
}

// receivePresence stores the presence of another server's users.
func (s *Server) receivePresence(ctx context.Context, origin string, content json.RawMessage) {
	var c struct {
		Push []presenceEDU `json:"push"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return
	}
	for _, p := range c.Push {
		if p.UserID.Homeserver() != origin {
			continue // a server speaks only for its own users
		}
		if err := s.UserData.SetRemotePresence(ctx, p.UserID, p.Presence, p.StatusMsg, p.LastActiveAgo); err != nil {
			s.log.Info("presence EDU ignored", "origin", origin, "user_id", p.UserID, "err", err)
		}
	}
}

// eduHandlers are the EDU types this server understands.
func (s *Server) eduHandlers() map[string]inbound.EDUHandler {
	return map[string]inbound.EDUHandler{
		"m.presence":           s.receivePresence,
		"m.direct_to_device":   s.receiveToDevice,
		"m.device_list_update": s.receiveKeysChanged("m.device_list_update"),
		"m.signing_key_update": s.receiveKeysChanged("m.signing_key_update"),
		"m.typing":             s.receiveTyping,
		"m.receipt":            s.receiveReceipts,
	}
}
