package sync

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// Response is a /sync answer. Sections with nothing to say are left out, as Synapse does;
// device_one_time_keys_count is always present (clients take its absence for "no keys").
// See https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3sync
type Response struct {
	NextBatch   string       `json:"next_batch"`
	Rooms       *Rooms       `json:"rooms,omitempty"`
	Presence    *Events      `json:"presence,omitempty"`
	AccountData *Events      `json:"account_data,omitempty"`
	ToDevice    *Events      `json:"to_device,omitempty"`
	DeviceLists *DeviceLists `json:"device_lists,omitempty"`
	// DeviceOneTimeKeysCount is empty until an end-to-end key store is wired in.
	DeviceOneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	// DeviceUnusedFallbackKeyTypes is only sent when a key store is wired in: sending it
	// tells clients the server supports fallback keys.
	DeviceUnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types,omitzero"`

	next Token
}

// Rooms are the per-room updates by membership.
type Rooms struct {
	Join   map[id.RoomID]*JoinedRoom  `json:"join,omitempty"`
	Invite map[id.RoomID]*InvitedRoom `json:"invite,omitempty"`
	Knock  map[id.RoomID]*KnockedRoom `json:"knock,omitempty"`
	Leave  map[id.RoomID]*LeftRoom    `json:"leave,omitempty"`
}

// JoinedRoom is a joined room's update.
type JoinedRoom struct {
	Summary *rooms.Summary `json:"summary,omitempty"`
	// State is the state at the start of the timeline; StateAfter, sent instead when the
	// client asks with use_state_after, the state at its end.
	State       *StateBatch `json:"state,omitempty"`
	StateAfter  *StateBatch `json:"state_after,omitempty"`
	Timeline    Timeline    `json:"timeline"`
	Ephemeral   Events      `json:"ephemeral"`
	AccountData Events      `json:"account_data"`
	// UnreadNotifications are the room's unread notification counts (Options.Notifications).
	UnreadNotifications       UnreadCounts                `json:"unread_notifications"`
	UnreadThreadNotifications map[id.EventID]UnreadCounts `json:"unread_thread_notifications,omitempty"`
}

// LeftRoom is the update of a room the user left or was banned from.
type LeftRoom struct {
	// State and StateAfter are as in JoinedRoom.
	State       *StateBatch `json:"state,omitempty"`
	StateAfter  *StateBatch `json:"state_after,omitempty"`
	Timeline    Timeline    `json:"timeline"`
	AccountData Events      `json:"account_data"`
}

// InvitedRoom is an invitation: the room's stripped state and the invite event.
type InvitedRoom struct {
	InviteState AnyEvents `json:"invite_state"`
}

// KnockedRoom is a knock: the room's stripped state and the knock event.
type KnockedRoom struct {
	KnockState AnyEvents `json:"knock_state"`
}

// Timeline is a room's timeline batch.
type Timeline struct {
	Events    []*rooms.ClientEvent `json:"events"`
	Limited   bool                 `json:"limited"`
	PrevBatch string               `json:"prev_batch,omitempty"`
}

// StateBatch is a list of state events.
type StateBatch struct {
	Events []*rooms.ClientEvent `json:"events"`
}

// Events is a list of events other streams supplied.
type Events struct {
	Events []json.RawMessage `json:"events"`
}

// AnyEvents is a list of stripped and client events.
type AnyEvents struct {
	Events []any `json:"events"`
}

// DeviceLists are the users whose device lists a client should fetch again or forget.
type DeviceLists struct {
	Changed []id.UserID `json:"changed,omitempty"`
	Left    []id.UserID `json:"left,omitempty"`
}

// UnreadCounts are notification counts.
type UnreadCounts struct {
	HighlightCount    int `json:"highlight_count"`
	NotificationCount int `json:"notification_count"`
}

// Next is the token the response leads to.
func (r *Response) Next() Token { return r.next }

// empty says whether the response has nothing for the client (a long-poll keeps waiting).
func (r *Response) empty() bool {
	return r.Rooms == nil && r.Presence == nil && r.AccountData == nil && r.ToDevice == nil && r.DeviceLists == nil
}

func (r *Response) rooms() *Rooms {
	if r.Rooms == nil {
		r.Rooms = &Rooms{}
	}
	return r.Rooms
}
