package rooms

import (
	"cmp"
	"context"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Bundle adds the bundled aggregations (unsigned["m.relations"]) to events a user is about to
// receive: the latest edit (m.replace), the thread summary (m.thread) and references
// (m.reference), each built from the child events the user may see. Annotations are not
// aggregated, as the spec says. Events may come from several rooms; each kind of relation
// costs one query per room for the whole batch. /sync and /search call it for their events;
// the engine's own reads (event, messages, context, relations, threads) already do.
//
// See https://spec.matrix.org/v1.19/client-server-api/#aggregations-of-child-events
func (e *Engine) Bundle(ctx context.Context, v Viewer, ces []*ClientEvent) error {
	return e.aggregate(ctx, v, ces)
}

// bundle is the engine's aggregator.
func (e *Engine) bundle(ctx context.Context, v Viewer, ces []*ClientEvent) error {
	return e.bundleEvents(ctx, v, ces, true)
}

// bundleEvents aggregates ces; threads false leaves the thread summary out (for the latest
// events of threads, which cannot be thread roots themselves).
func (e *Engine) bundleEvents(ctx context.Context, v Viewer, ces []*ClientEvent, threads bool) error {
	byRoom := map[int64][]*ClientEvent{}
	var order []int64
	for _, ce := range ces {
		if ce == nil || ce.Stored == nil || ce.StateKey != nil {
			// State events do not receive bundled aggregations.
			continue
		}
		// An edit or annotation may not have events related to it.
		if rt := ce.Stored.RelType; rt == relReplace || rt == relAnnotation {
			continue
		}
		if _, ok := byRoom[ce.Stored.RoomNID]; !ok {
			order = append(order, ce.Stored.RoomNID)
		}
		byRoom[ce.Stored.RoomNID] = append(byRoom[ce.Stored.RoomNID], ce)
	}
	for _, nid := range order {
		b, err := e.newBundler(ctx, v, nid)
		if err != nil {
			return err
		}
		if err := b.run(ctx, byRoom[nid], threads); err != nil {
			return err
		}
	}
	return nil
}

// bundler aggregates the events of one room for one viewer.
type bundler struct {
	e       *Engine
	v       Viewer
	room    *storage.Room
	version id.RoomVersion
	vis     *visibility
	// parents maps each event ID to its client events (an event may appear twice).
	parents map[string][]*ClientEvent
	ids     []string
}

func (e *Engine) newBundler(ctx context.Context, v Viewer, roomNID int64) (*bundler, error) {
	room, err := e.db.RoomByNID(ctx, roomNID)
	if err != nil {
		return nil, err
	}
	vis, err := e.newVisibility(ctx, v.User, room)
	if err != nil {
		return nil, err
	}
	return &bundler{e: e, v: v, room: room, version: id.RoomVersion(room.Version), vis: vis, parents: map[string][]*ClientEvent{}}, nil
}

func (b *bundler) run(ctx context.Context, ces []*ClientEvent, threads bool) error {
	for _, ce := range ces {
		if _, ok := b.parents[string(ce.EventID)]; !ok {
			b.ids = append(b.ids, string(ce.EventID))
		}
		b.parents[string(ce.EventID)] = append(b.parents[string(ce.EventID)], ce)
	}
	if err := b.edits(ctx); err != nil {
		return err
	}
	if threads {
		if err := b.threads(ctx); err != nil {
			return err
		}
	}
	return b.references(ctx)
}

// set puts one aggregation into every copy of a parent.
func (b *bundler) set(parent, relType string, value any) {
	for _, ce := range b.parents[parent] {
		if ce.Unsigned == nil {
			ce.Unsigned = map[string]any{}
		}
		rels, _ := ce.Unsigned["m.relations"].(map[string]any)
		if rels == nil {
			rels = map[string]any{}
			ce.Unsigned["m.relations"] = rels
		}
		rels[relType] = value
	}
}

// first returns one copy of a parent.
func (b *bundler) first(parent string) *ClientEvent { return b.parents[parent][0] }

// client formats child events the way their parent was formatted.
func (b *bundler) client(ctx context.Context, parent *ClientEvent, evs []*storage.Event) ([]*ClientEvent, error) {
	return b.e.format(ctx, evs, id.RoomID(b.room.ID), b.version, b.v, formatOpts{noRoomID: parent.RoomID == ""})
}

// edits bundles each event's most recent valid edit the user may see. An edit is valid when
// it comes from the original's sender, has the original's type, neither is a state event,
// and (unless encrypted, when the server cannot tell) it carries m.new_content. Redacted
// originals get no edit.
//
// See https://spec.matrix.org/v1.19/client-server-api/#server-side-aggregation-of-mreplace-relationships
func (b *bundler) edits(ctx context.Context) error {
	var ids []string
	for _, x := range b.ids {
		if b.first(x).Stored.RedactedBy == "" {
			ids = append(ids, x)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	edits, err := b.e.db.RelationsOf(ctx, b.room.NID, ids, relReplace)
	if err != nil {
		return err
	}
	byParent := map[string][]*storage.Event{}
	for _, ed := range edits {
		orig := b.first(ed.RelatesTo)
		if id.UserID(ed.Sender) != orig.Sender || ed.Type != orig.Type || ed.StateKey != nil {
			continue
		}
		if ed.Type != "m.room.encrypted" && !gjson.GetBytes(ed.JSON, `content.m\.new_content`).IsObject() {
			continue
		}
		byParent[ed.RelatesTo] = append(byParent[ed.RelatesTo], ed)
	}
	for _, parent := range ids {
		cands := byParent[parent]
		// Most recent first: by origin_server_ts, then the larger event ID.
		slices.SortFunc(cands, func(x, y *storage.Event) int {
			return cmp.Or(cmp.Compare(y.OriginTS, x.OriginTS), cmp.Compare(y.ID, x.ID))
		})
		for _, ed := range cands {
			ok, err := b.vis.canSee(ctx, ed)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			ces, err := b.client(ctx, b.first(parent), []*storage.Event{ed})
			if err != nil {
				return err
			}
			if len(ces) > 0 {
				b.set(parent, relReplace, ces[0])
			}
			break
		}
	}
	return nil
}

// threadAggregation is the m.thread bundle.
type threadAggregation struct {
	LatestEvent             *ClientEvent `json:"latest_event"`
	Count                   int          `json:"count"`
	CurrentUserParticipated bool         `json:"current_user_participated"`
}

// maxThreadWalk bounds how far back a thread is searched for a latest event the user may
// see when its newest event is hidden from them.
const maxThreadWalk = 200

// threads bundles the summary of each thread rooted at one of the events: the count of the
// thread's events, the newest one the user may see (itself with its edits and references
// bundled), and whether the user sent the root or a thread event. Events with a relation of
// their own cannot be thread roots.
//
// See https://spec.matrix.org/v1.19/client-server-api/#server-side-aggregation-of-mthread-relationships
func (b *bundler) threads(ctx context.Context) error {
	var roots []string
	for _, x := range b.ids {
		if b.first(x).Stored.RelType == "" {
			roots = append(roots, x)
		}
	}
	if len(roots) == 0 {
		return nil
	}
	sums, err := b.e.db.ThreadSummaries(ctx, b.room.NID, roots, string(b.v.User))
	if err != nil || len(sums) == 0 {
		return err
	}
	var nids []int64
	for _, s := range sums {
		nids = append(nids, s.LatestNID)
	}
	latest, err := b.e.db.EventsByNID(ctx, nids)
	if err != nil {
		return err
	}
	latestByRoot := map[string]*storage.Event{}
	for _, ev := range latest {
		latestByRoot[ev.RelatesTo] = ev
	}
	var (
		latestCEs []*ClientEvent
		aggs      = map[string]*threadAggregation{}
	)
	for _, root := range roots {
		s, ok := sums[root]
		if !ok {
			continue
		}
		ev, err := b.latestVisible(ctx, root, latestByRoot[root])
		if err != nil {
			return err
		}
		if ev == nil {
			continue
		}
		ces, err := b.client(ctx, b.first(root), []*storage.Event{ev})
		if err != nil {
			return err
		}
		if len(ces) == 0 {
			continue
		}
		rootCE := b.first(root)
		aggs[root] = &threadAggregation{LatestEvent: ces[0], Count: s.Count,
			CurrentUserParticipated: s.Participated || rootCE.Sender == b.v.User}
		latestCEs = append(latestCEs, ces[0])
	}
	// The latest events carry their own aggregations; they cannot root threads, so this
	// recursion ends after one level.
	if err := b.e.bundleEvents(ctx, b.v, latestCEs, false); err != nil {
		return err
	}
	for root, agg := range aggs {
		b.set(root, relThread, agg)
	}
	return nil
}

// latestVisible returns ev if the user may see it, or else the newest earlier event of the
// thread they may see (nil if none within maxThreadWalk events).
func (b *bundler) latestVisible(ctx context.Context, root string, ev *storage.Event) (*storage.Event, error) {
	if ev == nil {
		return nil, nil
	}
	if ok, err := b.vis.canSee(ctx, ev); err != nil || ok {
		return ev, err
	}
	older, err := b.e.db.Relations(ctx, storage.RelationsQuery{RoomNID: b.room.NID, EventID: root, RelType: relThread,
		Backwards: true, From: ev.StreamPos - 1, Limit: maxThreadWalk})
	if err != nil {
		return nil, err
	}
	for _, o := range older {
		if ok, err := b.vis.canSee(ctx, o); err != nil || ok {
			return o, err
		}
	}
	return nil, nil
}

// referenceItem is one entry of the m.reference bundle.
type referenceItem struct {
	EventID id.EventID `json:"event_id"`
}

// references bundles the events referencing each event that the user may see.
//
// See https://spec.matrix.org/v1.19/client-server-api/#server-side-aggregation-of-mreference
func (b *bundler) references(ctx context.Context) error {
	refs, err := b.e.db.RelationsOf(ctx, b.room.NID, b.ids, relReference)
	if err != nil {
		return err
	}
	chunks := map[string][]referenceItem{}
	for _, r := range refs {
		ok, err := b.vis.canSee(ctx, r)
		if err != nil {
			return err
		}
		if ok {
			chunks[r.RelatesTo] = append(chunks[r.RelatesTo], referenceItem{EventID: id.EventID(r.ID)})
		}
	}
	for parent, chunk := range chunks {
		b.set(parent, relReference, map[string]any{"chunk": chunk})
	}
	return nil
}
