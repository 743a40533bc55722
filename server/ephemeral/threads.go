package ephemeral

import (
	"context"
	"errors"
	"math"

	"fyr/storage"
)

// maxThreadHops is how many relations up an event may be from the one with the m.thread
// relation and still count as in that thread; the spec recommends three.
//
// See https://spec.matrix.org/v1.19/client-server-api/#threaded-read-receipts
const maxThreadHops = 3

// threadOf follows ev's relations up, at most maxThreadHops events and only within its room.
// It returns the thread root's event ID when it meets an m.thread relation; otherwise ""
// (the main timeline) and the topmost event it reached.
func (s *Service) threadOf(ctx context.Context, ev *storage.Event) (root string, top *storage.Event, err error) {
	cur := ev
	for hop := 0; ; hop++ {
		if cur.RelType == "m.thread" && cur.RelatesTo != "" {
			return cur.RelatesTo, cur, nil
		}
		if cur.RelatesTo == "" || hop == maxThreadHops {
			return "", cur, nil
		}
		parent, err := s.db.EventByID(ctx, cur.RelatesTo)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && parent.RoomNID != cur.RoomNID) {
			return "", cur, nil
		} else if err != nil {
			return "", nil, err
		}
		cur = parent
	}
}

// inThread says whether a receipt on ev may name threadID: ThreadMain for events in the main
// timeline, a thread root's ID for the events of that thread, and also for the root itself
// and the events related to it by other relations (reactions, edits), as Synapse allows.
func (s *Service) inThread(ctx context.Context, ev *storage.Event, threadID string) (bool, error) {
	root, top, err := s.threadOf(ctx, ev)
	if err != nil {
		return false, err
	}
	switch {
	case threadID == ThreadMain:
		return root == "", nil
	case root != "":
		return root == threadID, nil
	case top.ID != threadID:
		return false, nil
	}
	replies, err := s.db.Relations(ctx, storage.RelationsQuery{RoomNID: top.RoomNID, EventID: top.ID, RelType: "m.thread",
		From: math.MaxInt64, To: storage.NoBound, Backwards: true, Limit: 1})
	return len(replies) > 0, err
}
