package rooms

import (
	"strings"

	"maunium.net/go/mautrix/id"
)

// Behaviour of room versions that mautrix's id.RoomVersion has no predicate for. Each names
// the behaviour, not the versions, and links the spec.

// namedEventIDs says whether events in the room version carry their own IDs, $opaque:server,
// chosen by the server that made them, and reference other events as [event ID, hashes]
// pairs (room versions 1 and 2). From version 3 an event's ID is its reference hash.
// See https://spec.matrix.org/v1.19/rooms/v1/#event-ids
func namedEventIDs(rv id.RoomVersion) bool {
	return rv.EventIDFormat() == id.EventIDFormatCustom
}

// redactionsInAuthRules says whether the auth rules themselves decide who may redact (rule
// 11 of room versions 1 and 2): the redact power level, or an event ID of the same server
// as the redaction's. From version 3 redactions always pass auth and are checked when
// applied. See https://spec.matrix.org/v1.19/rooms/v1/#authorization-rules and
// https://spec.matrix.org/v1.19/rooms/v3/#handling-redactions
func redactionsInAuthRules(rv id.RoomVersion) bool {
	return namedEventIDs(rv)
}

// eventIDServer is the server named by an event ID of room versions 1 and 2 (everything
// after the first colon, as Synapse reads it); "" when there is none.
func eventIDServer(evID id.EventID) string {
	_, server, ok := strings.Cut(string(evID), ":")
	if !ok {
		return ""
	}
	return server
}

// validNamedEventID checks the grammar of a room version 1 or 2 event ID: the sigil, an
// opaque part and the server that made it, at most 255 bytes.
func validNamedEventID(evID id.EventID) bool {
	s := string(evID)
	if len(s) > 255 || !strings.HasPrefix(s, "$") {
		return false
	}
	opaque, server, ok := strings.Cut(s[1:], ":")
	return ok && opaque != "" && server != ""
}
