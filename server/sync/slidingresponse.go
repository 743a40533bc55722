package sync

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// SlidingResponse is a sliding sync answer, in the shape of the unstable API that Synapse
// serves and Element X reads (MSC4186). rooms and extensions are always present, as in
// Synapse; inside a room, what did not change is left out.
type SlidingResponse struct {
	Pos        string                           `json:"pos"`
	TxnID      string                           `json:"txn_id,omitempty"`
	Lists      map[string]SlidingListResult     `json:"lists,omitempty"`
	Rooms      map[id.RoomID]*SlidingRoomResult `json:"rooms"`
	Extensions SlidingExtensionsResult          `json:"extensions"`
}

// SlidingListResult is a list's answer: how many rooms pass its filters. The MSC dropped the
// ops of the original sliding sync; the client sorts the rooms itself (by bump_stamp).
type SlidingListResult struct {
	Count int `json:"count"`
}

// SlidingRoomResult is one room's answer. Without initial, a field left out has not changed.
type SlidingRoomResult struct {
	// Name is the room's name, or null once it is removed.
	Name json.RawMessage `json:"name,omitempty"`
	// Avatar is the room avatar's URL, or null once it is removed.
	Avatar json.RawMessage `json:"avatar,omitempty"`
	// Heroes are members to name a room without a name after.
	Heroes  []Hero `json:"heroes,omitempty"`
	Initial bool   `json:"initial,omitempty"`
	// IsDM is sent when the room is a DM, and when that changes.
	IsDM *bool `json:"is_dm,omitempty"`
	// Membership is the user's membership, sent when it changes (the MSC's newer text).
	Membership string `json:"membership,omitempty"`
	// ExpandedTimeline says the timeline goes back before what was sent of the room, because
	// its timeline_limit grew; Synapse calls it unstable_expanded_timeline, and both go out.
	ExpandedTimeline         bool  `json:"expanded_timeline,omitempty"`
	UnstableExpandedTimeline bool  `json:"unstable_expanded_timeline,omitempty"`
	RequiredState            []any `json:"required_state,omitempty"`
	// Timeline is oldest first.
	Timeline  []*rooms.ClientEvent `json:"timeline,omitempty"`
	PrevBatch string               `json:"prev_batch,omitempty"`
	Limited   *bool                `json:"limited,omitempty"`
	// NumLive is how many of the timeline's last events happened since the client's pos.
	NumLive      *int  `json:"num_live,omitempty"`
	BumpStamp    int64 `json:"bump_stamp"`
	JoinedCount  *int  `json:"joined_count,omitempty"`
	InvitedCount *int  `json:"invited_count,omitempty"`
	// InviteState is an invite's or knock's stripped state, with the membership event.
	InviteState []any `json:"invite_state,omitempty"`
	// NotificationCount and HighlightCount count zero until a notification source (push
	// rules) is wired in, as in Synapse.
	NotificationCount int `json:"notification_count"`
	HighlightCount    int `json:"highlight_count"`
}

// Hero is a member a room may be named after.
type Hero struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"displayname,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

// StateStub stands in required_state for a piece of state that left the room's state.
type StateStub struct {
	Type     string `json:"type"`
	StateKey string `json:"state_key"`
}

// SlidingExtensionsResult are the extensions' answers; an extension not enabled is left out.
type SlidingExtensionsResult struct {
	ToDevice    *ToDeviceResult    `json:"to_device,omitempty"`
	E2EE        *E2EEResult        `json:"e2ee,omitempty"`
	AccountData *AccountDataResult `json:"account_data,omitempty"`
	Receipts    *RoomEventsResult  `json:"receipts,omitempty"`
	Typing      *RoomEventsResult  `json:"typing,omitempty"`
}

// ToDeviceResult is the to-device extension's answer (MSC3885).
type ToDeviceResult struct {
	// NextBatch is the since of the next request.
	NextBatch string            `json:"next_batch"`
	Events    []json.RawMessage `json:"events"`
}

// E2EEResult is the end-to-end encryption extension's answer (MSC3884).
type E2EEResult struct {
	DeviceLists            *DeviceLists   `json:"device_lists,omitempty"`
	DeviceOneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	// DeviceUnusedFallbackKeyTypes is only sent when a key store is wired in.
	DeviceUnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types,omitzero"`
}

// AccountDataResult is the account data extension's answer (MSC3959).
type AccountDataResult struct {
	Global []json.RawMessage               `json:"global"`
	Rooms  map[id.RoomID][]json.RawMessage `json:"rooms"`
}

// RoomEventsResult is the receipts (MSC3960) or typing (MSC3961) extension's answer: one
// m.receipt or m.typing event per room.
type RoomEventsResult struct {
	Rooms map[id.RoomID]json.RawMessage `json:"rooms"`
}

// empty says whether the response has nothing for the client (a long-poll keeps waiting).
// The key counts are always there and do not count, as in Synapse.
func (r *SlidingResponse) empty() bool {
	x := &r.Extensions
	return len(r.Rooms) == 0 &&
		(x.ToDevice == nil || len(x.ToDevice.Events) == 0) &&
		(x.E2EE == nil || x.E2EE.DeviceLists == nil) &&
		(x.AccountData == nil || len(x.AccountData.Global) == 0 && len(x.AccountData.Rooms) == 0) &&
		(x.Receipts == nil || len(x.Receipts.Rooms) == 0) &&
		(x.Typing == nil || len(x.Typing.Rooms) == 0)
}
