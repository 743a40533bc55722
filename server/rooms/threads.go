package rooms

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"fmt"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// ThreadsRequest is the query of /rooms/{roomId}/threads.
type ThreadsRequest struct {
	// Participated lists only threads the user started or replied in (include=participated).
	Participated bool
	From         string
	Limit        int
	// Ignored users' thread roots are served redacted, as a client aggregating the thread
	// itself would see them.
	Ignored map[id.UserID]bool
}

// ThreadsResponse is /threads' answer.
type ThreadsResponse struct {
	Chunk     []*ClientEvent `json:"chunk"`
	NextBatch string         `json:"next_batch,omitempty"`
}

// Threads lists the roots of a room's threads that the user may see, the thread with the
// most recent activity first, each with its bundled aggregations (the thread summary among
// them). Pagination tokens are stream positions of thread activity.
//
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidthreads
func (e *Engine) Threads(ctx context.Context, v Viewer, roomID id.RoomID, req ThreadsRequest) (*ThreadsResponse, error) {
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, err
	}
	if req.Limit <= 0 {
		return nil, fmt.Errorf("%w: limit must be greater than zero", ErrInvalidParam)
	}
	limit := min(req.Limit, MaxRelationsLimit)
	var from int64
	if req.From != "" {
		if from, err = ParseToken(req.From); err != nil {
			return nil, err
		}
	} else if from, err = e.db.StreamPos(ctx); err != nil {
		return nil, err
	}
	vis, err := e.newVisibility(ctx, v.User, a.room)
	if err != nil {
		return nil, err
	}
	participant := ""
	if req.Participated {
		participant = string(v.User)
	}
	// Roots come in the order of their thread's latest activity, which is also the cursor:
	// the next page holds threads whose latest activity is older.
	page, err := e.pageVisible(ctx, vis, limit, func(cursor int64, n int) ([]pageItem, error) {
		roots, err := e.db.ThreadRoots(ctx, a.room.NID, cursor, participant, n)
		items := make([]pageItem, len(roots))
		for i, r := range roots {
			items[i] = pageItem{ev: r.Root, pos: r.Latest}
		}
		return items, err
	}, from, true, nil)
	if err != nil {
		return nil, err
	}
	resp := &ThreadsResponse{}
	if page.more {
		resp.NextBatch = Token(page.next)
	}
	version := id.RoomVersion(a.room.Version)
	if resp.Chunk, err = e.format(ctx, page.events, roomID, version, v, formatOpts{}); err != nil {
		return nil, err
	}
	resp.Chunk = nonNil(resp.Chunk)
	for _, ce := range resp.Chunk {
		if req.Ignored[ce.Sender] {
			ce.Content = json.RawMessage(pdu.RedactContent(ce.Type, jsontext.Value(ce.Content), version))
		}
	}
	if err := e.aggregate(ctx, v, resp.Chunk); err != nil {
		return nil, err
	}
	return resp, nil
}
