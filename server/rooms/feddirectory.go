package rooms

import (
	"context"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// DirectoryRemote asks other servers about their rooms: their published room directory and
// their spaces.
type DirectoryRemote interface {
	// PublicRooms lists server's published rooms (GET or POST /publicRooms); req.Server is
	// ignored.
	PublicRooms(ctx context.Context, server string, req PublicRoomsRequest) (*PublicRoomsResponse, error)
	// Hierarchy asks server for a space and its children (GET /hierarchy/{roomId}).
	Hierarchy(ctx context.Context, server string, roomID id.RoomID, suggestedOnly bool) (*SpaceHierarchy, error)
}

// RemoteDirectoryTimeout bounds how long a client's /publicRooms?server= waits for the other
// server: a directory that does not answer in this time is reported as unreachable.
const RemoteDirectoryTimeout = 15 * time.Second

// directoryRemote is the federation client for directories, or nil without federation.
func (e *Engine) directoryRemote() DirectoryRemote {
	e.mu.RLock()
	defer e.mu.RUnlock()
	dr, _ := e.remote.(DirectoryRemote)
	return dr
}

// remotePublicRooms asks req.Server for its published rooms. Its pagination tokens are passed
// through as they are: they are the other server's.
// See https://spec.matrix.org/v1.19/server-server-api/#published-room-directory
func (e *Engine) remotePublicRooms(ctx context.Context, req PublicRoomsRequest) (*PublicRoomsResponse, error) {
	dr := e.directoryRemote()
	if dr == nil {
		return nil, fmt.Errorf("%w: this server cannot reach %s", ErrRemote, req.Server)
	}
	ctx, cancel := context.WithTimeout(ctx, RemoteDirectoryTimeout)
	defer cancel()
	got, err := dr.PublicRooms(ctx, req.Server, req)
	if err != nil {
		return nil, fmt.Errorf("%w: could not list the public rooms of %s: %v", ErrRemote, req.Server, err)
	}
	resp := &PublicRoomsResponse{Chunk: []*RoomSummary{}, NextBatch: got.NextBatch, PrevBatch: got.PrevBatch, Total: got.Total}
	for _, s := range got.Chunk {
		if s == nil || !strings.HasPrefix(string(s.RoomID), "!") {
			continue
		}
		entry := *s
		entry.AllowedRoomIDs, entry.Encryption, entry.RoomVersion, entry.Membership = nil, "", "", ""
		resp.Chunk = append(resp.Chunk, &entry)
	}
	return resp, nil
}
