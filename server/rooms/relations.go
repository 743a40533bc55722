package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Errors of event relationships.
var (
	// ErrDuplicateAnnotation is M_DUPLICATE_ANNOTATION: the sender already annotated the
	// event with this type and key.
	ErrDuplicateAnnotation = errors.New("rooms: duplicate annotation")
	// ErrBadRelation is a relation the spec tells servers to refuse (400 M_UNKNOWN, for
	// which the spec has no code), such as a thread started from an event with a relation.
	ErrBadRelation = errors.New("rooms: invalid relation")
)

// Relation types the server knows.
const (
	relThread     = "m.thread"
	relReplace    = "m.replace"
	relReference  = "m.reference"
	relAnnotation = "m.annotation"
)

// RelationDepth is how many levels of relations /relations follows with recurse=true (the
// spec asks for at least 3).
const RelationDepth = 3

// Defaults and caps of the relations and threads endpoints.
const (
	DefaultRelationsLimit = 5
	MaxRelationsLimit     = 1000
)

// withRelations gives an engine its bundled aggregations.
func withRelations(e *Engine) *Engine {
	e.aggregator = e.bundle
	return e
}

// RelationsRequest is the query of /relations/{eventId}[/{relType}[/{eventType}]].
type RelationsRequest struct {
	RelType, EventType string
	From, To           string
	// Forwards is dir=f; the default is backwards, newest first.
	Forwards bool
	Limit    int
	// Recurse (non-nil) is the recurse parameter: true follows relations of relations
	// RelationDepth levels deep. Whether it was given decides recursion_depth's presence.
	Recurse *bool
	// Ignored users' events are left out.
	Ignored map[id.UserID]bool
}

// RelationsResponse is /relations' answer.
type RelationsResponse struct {
	Chunk          []*ClientEvent `json:"chunk"`
	NextBatch      string         `json:"next_batch,omitempty"`
	PrevBatch      string         `json:"prev_batch,omitempty"`
	RecursionDepth *int           `json:"recursion_depth,omitempty"`
}

// Relations pages through the events relating to a parent event the user may see, with
// history visibility applied to each. A parent the user may not see, or one in a room they
// may not read at all, is ErrNotFound, as the spec asks.
//
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventid
func (e *Engine) Relations(ctx context.Context, v Viewer, roomID id.RoomID, parent id.EventID, req RelationsRequest) (*RelationsResponse, error) {
	a, vis, _, err := e.visibleEvent(ctx, v, roomID, parent)
	if errors.Is(err, ErrForbidden) {
		return nil, fmt.Errorf("%w: event %s not found", ErrNotFound, parent)
	} else if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultRelationsLimit
	}
	limit = min(limit, MaxRelationsLimit)
	q := storage.RelationsQuery{RoomNID: a.room.NID, EventID: string(parent), RelType: req.RelType,
		EventType: req.EventType, Depth: 1, Backwards: !req.Forwards}
	resp := &RelationsResponse{Chunk: []*ClientEvent{}, PrevBatch: req.From}
	if req.Recurse != nil {
		depth := 1
		if *req.Recurse {
			depth = RelationDepth
		}
		q.Depth, resp.RecursionDepth = depth, &depth
	}
	if req.From != "" {
		if q.From, err = ParseToken(req.From); err != nil {
			return nil, err
		}
	} else if q.Backwards {
		if q.From, err = e.db.StreamPos(ctx); err != nil {
			return nil, err
		}
	}
	if req.To != "" {
		if q.To, err = ParseToken(req.To); err != nil {
			return nil, err
		}
	}
	page, err := e.pageVisible(ctx, vis, limit, func(cursor int64, n int) ([]pageItem, error) {
		q.From, q.Limit = cursor, n
		return streamItems(e.db.Relations(ctx, q))
	}, q.From, q.Backwards, req.Ignored)
	if err != nil {
		return nil, err
	}
	if page.more {
		resp.NextBatch = Token(page.next)
	}
	if resp.Chunk, err = e.format(ctx, page.events, roomID, id.RoomVersion(a.room.Version), v, formatOpts{}); err != nil {
		return nil, err
	}
	resp.Chunk = nonNil(resp.Chunk)
	if err := e.aggregate(ctx, v, resp.Chunk); err != nil {
		return nil, err
	}
	return resp, nil
}

// visibleEvent loads an event of a room that the user may see, with the user's access to the
// room and their visibility: ErrNotFound when the event is unknown, elsewhere, or hidden.
func (e *Engine) visibleEvent(ctx context.Context, v Viewer, roomID id.RoomID, eventID id.EventID) (*access, *visibility, *storage.Event, error) {
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, nil, nil, err
	}
	ev, err := e.db.EventByID(ctx, string(eventID))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomNID != a.room.NID || ev.StreamPos == 0)) {
		return nil, nil, nil, fmt.Errorf("%w: no event %s in this room", ErrNotFound, eventID)
	} else if err != nil {
		return nil, nil, nil, err
	}
	vis, err := e.newVisibility(ctx, v.User, a.room)
	if err != nil {
		return nil, nil, nil, err
	}
	if ok, err := vis.canSee(ctx, ev); err != nil {
		return nil, nil, nil, err
	} else if !ok {
		return nil, nil, nil, fmt.Errorf("%w: event %s not found", ErrNotFound, eventID)
	}
	return a, vis, ev, nil
}

// visiblePage is one page of events the user may see.
type visiblePage struct {
	events []*storage.Event
	// more says further events may follow from next, the cursor to resume from.
	more bool
	next int64
}

// pageItem is an event and its place in a listing: its stream position for timelines and
// relations, its thread's latest activity for thread roots.
type pageItem struct {
	ev  *storage.Event
	pos int64
}

// pageVisible fills a page of up to limit events the user may see from fetch, which returns
// up to n items past cursor in the listing's order. Going backwards the cursor after an item
// is its position minus one (tokens are inclusive upper bounds), forwards its position. It
// examines a bounded number of items, so a user who may see little of a long history cannot
// make one request walk all of it: the page then ends early with a token to go on from.
func (e *Engine) pageVisible(ctx context.Context, vis *visibility, limit int, fetch func(cursor int64, n int) ([]pageItem, error),
	cursor int64, backwards bool, ignored map[id.UserID]bool) (*visiblePage, error) {
	page := &visiblePage{}
	after := func(it pageItem) int64 {
		if backwards {
			return it.pos - 1
		}
		return it.pos
	}
	budget := limit*maxScanFactor + 100
	for scanned := 0; scanned < budget; {
		// One more than the page needs, to learn whether anything visible follows it.
		n := limit + 1 - len(page.events) + 10
		items, err := fetch(cursor, n)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			scanned++
			ok := !ignored[id.UserID(it.ev.Sender)]
			if ok {
				if ok, err = vis.canSee(ctx, it.ev); err != nil {
					return nil, err
				}
			}
			if ok && len(page.events) == limit {
				page.more = true
				return page, nil
			}
			cursor = after(it)
			if ok {
				page.events = append(page.events, it.ev)
				page.next = cursor
			}
		}
		if len(items) < n {
			return page, nil
		}
	}
	// Out of budget: the client goes on where the scan stopped.
	page.more, page.next = true, cursor
	return page, nil
}

// streamItems places events by their stream positions.
func streamItems(evs []*storage.Event, err error) ([]pageItem, error) {
	items := make([]pageItem, len(evs))
	for i, ev := range evs {
		items[i] = pageItem{ev: ev, pos: ev.StreamPos}
	}
	return items, err
}

// relationCheck returns the checks a new message event's relation must pass, run under the
// room's lock: no second annotation with the same type and key by one sender, and no thread
// started from an event that itself has a relation.
//
// See https://spec.matrix.org/v1.19/client-server-api/#avoiding-duplicate-annotations and
// https://spec.matrix.org/v1.19/client-server-api/#validation-of-mthread-relationships
func (e *Engine) relationCheck(ctx context.Context) func(rs *roomState, d *draft) error {
	return func(rs *roomState, d *draft) error {
		rel := gjson.GetBytes(d.content, `m\.relates_to`)
		parent := rel.Get("event_id").Str
		if !rel.IsObject() || parent == "" {
			return nil
		}
		switch rel.Get("rel_type").Str {
		case relAnnotation:
			key := rel.Get("key")
			if key.Type != gjson.String {
				return nil
			}
			mine, err := e.db.Relations(ctx, storage.RelationsQuery{RoomNID: rs.nid, EventID: parent, RelType: relAnnotation,
				EventType: d.typ, Sender: string(d.sender), Backwards: true, From: 1 << 62, Limit: 10000})
			if err != nil {
				return err
			}
			for _, ev := range mine {
				if gjson.GetBytes(ev.JSON, `content.m\.relates_to.key`).Str == key.Str {
					return fmt.Errorf("%w: you already sent this annotation", ErrDuplicateAnnotation)
				}
			}
		case relThread:
			p, err := e.db.EventByID(ctx, parent)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if p.RoomNID == rs.nid && p.RelType != "" {
				return fmt.Errorf("%w: cannot start a thread from an event with a relation", ErrBadRelation)
			}
		}
		return nil
	}
}
