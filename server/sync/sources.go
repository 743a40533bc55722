package sync

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// The streams below are owned by other engines. Each is optional: a nil source means the
// server does not offer that stream yet, and its part of the response is left out (or, where
// the spec requires the field, sent empty) rather than invented.
//
// Every stream that is persisted takes its positions from the storage stream (tx.NextPos in
// the same write as the change), so one token position covers them all; a source answers
// "what changed in (since, to]" with since 0 meaning "everything current" (an initial sync),
// and calls the Notifier after its commit so that waiting long-polls wake.

// FilterSource loads the filters clients store with POST /user/{userId}/filter.
type FilterSource interface {
	// Filter returns the JSON of a user's filter; ok is false when the user has no filter
	// with that ID.
	Filter(ctx context.Context, user id.UserID, filterID string) (filter json.RawMessage, ok bool, err error)
}

// PresenceSource is the presence stream.
type PresenceSource interface {
	// Syncing says that a device of user is syncing with set_presence state ("online",
	// "unavailable" or "offline"); it is called at the start of every /sync.
	Syncing(ctx context.Context, user id.UserID, device id.DeviceID, state string)
	// Presence returns the m.presence events of users who share a room with user and whose
	// presence changed in (since, to].
	Presence(ctx context.Context, user id.UserID, since, to int64) ([]json.RawMessage, error)
}

// AccountDataSource is the account data stream (global and per room).
type AccountDataSource interface {
	// AccountData returns the account data events of user that changed in (since, to]:
	// global ones, and per room.
	AccountData(ctx context.Context, user id.UserID, since, to int64) (global []json.RawMessage, rooms map[id.RoomID][]json.RawMessage, err error)
}

// ReceiptSource is the read receipt stream.
type ReceiptSource interface {
	// Receipts returns, per room, the m.receipt event with the receipts that changed in
	// (since, to] in rooms user is joined to. Rooms the user is not joined to at to are
	// dropped by sync.
	Receipts(ctx context.Context, user id.UserID, since, to int64) (map[id.RoomID]json.RawMessage, error)
}

// TypingSource is the typing stream. Typing notices are not persisted, so the stream keeps
// its own serial, carried in Token.Typing; it must only grow, also across restarts (seed it
// from the clock), and a since above the current serial is taken as 0.
type TypingSource interface {
	// TypingPos is the current serial.
	TypingPos() int64
	// Typing returns, per room, the m.typing event of each room whose typing users changed
	// in (since, to]; with since 0, of every room where someone types. Rooms the user is not
	// joined to are dropped by sync.
	Typing(ctx context.Context, user id.UserID, since, to int64) (map[id.RoomID]json.RawMessage, error)
}

// ToDeviceSource is the send-to-device stream.
type ToDeviceSource interface {
	// ToDevice returns up to limit messages for a device with positions in (since, to],
	// oldest first, and the position delivery reached: to, or the position of the last
	// message returned when limit cut the list short. Messages at or before since have been
	// received and may be deleted.
	ToDevice(ctx context.Context, user id.UserID, device id.DeviceID, since, to int64, limit int) (events []json.RawMessage, reached int64, err error)
}

// DeviceListSource is the device list stream (end-to-end encryption).
type DeviceListSource interface {
	// DeviceLists returns the users whose devices or cross-signing keys changed in
	// (since, to], or who now share an encrypted room with user, and those who no longer do.
	// It is only asked on incremental syncs.
	DeviceLists(ctx context.Context, user id.UserID, since, to int64) (changed, left []id.UserID, err error)
}

// KeyCountSource is the one-time key store (end-to-end encryption).
type KeyCountSource interface {
	// KeyCounts returns a device's unclaimed one-time keys per algorithm and the algorithms
	// of its fallback keys that were not used yet.
	KeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (oneTime map[string]int, unusedFallback []string, err error)
}

// NotificationSource counts unread notifications (push rules).
type NotificationSource interface {
	// UnreadCounts returns the counts of user in each of rooms; rooms left out count zero.
	UnreadCounts(ctx context.Context, user id.UserID, rooms []id.RoomID) (map[id.RoomID]RoomCounts, error)
}

// RoomCounts are a room's unread notification counts, overall and per thread.
type RoomCounts struct {
	Main UnreadCounts
	// Threads are keyed by thread root; Main counts the main timeline only. Threads are
	// sent when the filter asks for unread_thread_notifications; otherwise they are added
	// into the room's counts.
	Threads map[id.EventID]UnreadCounts
}
