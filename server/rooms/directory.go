package rooms

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// The published room directory: which rooms are listed, and the list itself.
// See https://spec.matrix.org/v1.19/client-server-api/#published-room-directory

// RoomVisibility is a room's visibility in the directory: "public" or "private".
func (e *Engine) RoomVisibility(ctx context.Context, roomID id.RoomID) (string, error) {
	room, err := e.room(ctx, roomID)
	if err != nil {
		return "", err
	}
	if room.Published {
		return "public", nil
	}
	return "private", nil
}

// SetRoomVisibility lists ("public") or unlists ("private") a room in the directory. A server
// admin may, and a joined member with the power to send m.room.canonical_alias (Synapse's rule).
func (e *Engine) SetRoomVisibility(ctx context.Context, user id.UserID, admin bool, roomID id.RoomID, visibility string) error {
	if visibility != "public" && visibility != "private" {
		return fmt.Errorf("%w: visibility must be public or private", ErrInvalidParam)
	}
	room, err := e.room(ctx, roomID)
	if err != nil {
		return err
	}
	if !admin {
		ok, err := e.canEditDirectory(ctx, user, roomID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: you must be in the room with the power to set its canonical alias to change its directory entry", ErrForbidden)
		}
	}
	return e.db.Write(ctx, func(tx *storage.Tx) error { return tx.SetPublished(room.NID, visibility == "public") })
}

// PublicRoomsRequest is a query of the published room directory.
type PublicRoomsRequest struct {
	// Limit caps the rooms returned; 0 means no limit.
	Limit int
	// Since is a next_batch or prev_batch token of an earlier answer.
	Since string
	// Server is the directory's server; "" or this server's name, or another server, which
	// is asked over federation.
	Server string
	// SearchTerm matches the name, topic or canonical alias, case-insensitively.
	SearchTerm string
	// RoomTypes, when not nil, keeps only rooms of these types; a nil entry stands for
	// rooms without a type.
	RoomTypes []*string
	// ThirdPartyInstanceID asks for a bridged network's list: none exist on this server.
	ThirdPartyInstanceID string
}

// PublicRoomsResponse is the spec's answer to /publicRooms.
type PublicRoomsResponse struct {
	Chunk     []*RoomSummary `json:"chunk"`
	NextBatch string         `json:"next_batch,omitempty"`
	PrevBatch string         `json:"prev_batch,omitempty"`
	Total     int            `json:"total_room_count_estimate"`
}

// PublicRooms lists the published rooms largest first (joined members), then by room ID. As
// Synapse does, it lists only rooms with joined members that are public, knockable or world
// readable: publishing an invite-only room advertises nothing anyone could use.
// Tokens are positions in that order, so pages stay consistent while rooms come and go.
// With another server in req.Server, it asks that server over federation instead, for at
// most RemoteDirectoryTimeout (ErrRemote when the server does not answer).
func (e *Engine) PublicRooms(ctx context.Context, req PublicRoomsRequest) (*PublicRoomsResponse, error) {
	if req.Limit < 0 {
		return nil, fmt.Errorf("%w: limit must not be negative", ErrInvalidParam)
	}
	if req.Server != "" && req.Server != e.opt.ServerName {
		return e.remotePublicRooms(ctx, req)
	}
	var cursor *directoryToken
	if req.Since != "" {
		t, err := parseDirectoryToken(req.Since)
		if err != nil {
			return nil, err
		}
		cursor = &t
	}
	resp := &PublicRoomsResponse{Chunk: []*RoomSummary{}}
	if req.ThirdPartyInstanceID != "" {
		return resp, nil
	}
	published, err := e.db.PublishedRooms(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := e.roomInfos(ctx, published)
	if err != nil {
		return nil, err
	}
	term := strings.ToLower(req.SearchTerm)
	var list []*RoomSummary
	for _, ri := range infos {
		s := &ri.summary
		listable := s.JoinRule == "public" || s.WorldReadable ||
			(s.JoinRule == "knock" && ri.version.Knocks()) || (s.JoinRule == "knock_restricted" && ri.version.KnockRestricted())
		if !listable || s.NumJoinedMembers == 0 || !matchesTerm(s, term) || !matchesType(s, req.RoomTypes) {
			continue
		}
		list = append(list, s)
	}
	slices.SortFunc(list, compareDirectory)
	resp.Total = len(list)

	// The page is list[start:end].
	start, end := 0, len(list)
	if cursor != nil {
		// The first entry after the cursor's position.
		at, _ := slices.BinarySearchFunc(list, cursor, func(s *RoomSummary, t *directoryToken) int {
			return compareDirectory(s, &RoomSummary{NumJoinedMembers: t.joined, RoomID: t.roomID})
		})
		if cursor.forwards {
			for at < len(list) && list[at].NumJoinedMembers == cursor.joined && list[at].RoomID == cursor.roomID {
				at++
			}
			start = at
		} else {
			end = at
		}
	}
	if req.Limit > 0 {
		if cursor != nil && !cursor.forwards {
			start = max(0, end-req.Limit)
		} else {
			end = min(len(list), start+req.Limit)
		}
	}
	for _, s := range list[start:end] {
		entry := *s
		entry.AllowedRoomIDs, entry.Encryption, entry.RoomVersion = nil, "", ""
		resp.Chunk = append(resp.Chunk, &entry)
	}
	if end < len(list) {
		// Forwards from the page's last room; before every room when the page is empty.
		t := directoryToken{forwards: true, joined: math.MaxInt}
		if end > 0 {
			t.joined, t.roomID = list[end-1].NumJoinedMembers, list[end-1].RoomID
		}
		resp.NextBatch = t.String()
	}
	if start > 0 {
		// Backwards from the page's first room; after every room (no room has 0 members)
		// when the page is empty.
		t := directoryToken{}
		if start < len(list) {
			t.joined, t.roomID = list[start].NumJoinedMembers, list[start].RoomID
		}
		resp.PrevBatch = t.String()
	}
	return resp, nil
}

// compareDirectory orders the directory: most joined members first, then by room ID.
func compareDirectory(a, b *RoomSummary) int {
	if c := cmp.Compare(b.NumJoinedMembers, a.NumJoinedMembers); c != 0 {
		return c
	}
	return strings.Compare(string(a.RoomID), string(b.RoomID))
}

func matchesTerm(s *RoomSummary, term string) bool {
	if term == "" {
		return true
	}
	for _, f := range []string{s.Name, s.Topic, s.CanonicalAlias} {
		if strings.Contains(strings.ToLower(f), term) {
			return true
		}
	}
	return false
}

func matchesType(s *RoomSummary, types []*string) bool {
	if types == nil {
		return true
	}
	for _, t := range types {
		if (t == nil && s.RoomType == "") || (t != nil && *t == s.RoomType) {
			return true
		}
	}
	return false
}

// directoryToken is a position in the directory's order and the direction to page from it.
type directoryToken struct {
	forwards bool
	joined   int
	roomID   id.RoomID
}

// String encodes the token opaquely: direction, joined count and room ID, base64url.
func (t directoryToken) String() string {
	dir := "b"
	if t.forwards {
		dir = "f"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + strconv.Itoa(t.joined) + "|" + string(t.roomID)))
}

func parseDirectoryToken(s string) (directoryToken, error) {
	bad := fmt.Errorf("%w: %q is not a room directory token from this server", ErrInvalidParam, s)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 3 || (raw[0] != 'f' && raw[0] != 'b') {
		return directoryToken{}, bad
	}
	n, roomID, ok := strings.Cut(string(raw[1:]), "|")
	joined, err := strconv.Atoi(n)
	if !ok || err != nil || joined < 0 {
		return directoryToken{}, bad
	}
	return directoryToken{forwards: raw[0] == 'f', joined: joined, roomID: id.RoomID(roomID)}, nil
}
