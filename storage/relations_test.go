package storage_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"fyr/storage"
)

// relRoom builds rooms of plain events for the relation queries.
type relRoom struct {
	tb  testing.TB
	db  *storage.DB
	nid int64
	n   int
}

func newRelRoom(tb testing.TB, db *storage.DB, roomID string) *relRoom {
	tb.Helper()
	r := &relRoom{tb: tb, db: db}
	err := db.Write(context.Background(), func(tx *storage.Tx) error {
		var err error
		r.nid, err = tx.InsertRoom(roomID, "12", 0)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// add persists events (with relations when parent is set) and returns their IDs.
func (r *relRoom) add(count int, typ, sender, relType, parent string, ts int64) []string {
	r.tb.Helper()
	var ids []string
	err := r.db.Write(context.Background(), func(tx *storage.Tx) error {
		for range count {
			r.n++
			x := fmt.Sprintf("$%d-%d", r.nid, r.n)
			_, err := tx.PersistEvent(&storage.NewEvent{ID: x, RoomNID: r.nid, Type: typ, Sender: sender, Depth: int64(r.n),
				OriginTS: ts, JSON: []byte(`{}`), RelatesTo: parent, RelType: relType, Timeline: true})
			if err != nil {
				return err
			}
			ids = append(ids, x)
		}
		return nil
	})
	if err != nil {
		r.tb.Fatal(err)
	}
	return ids
}

func eventIDs(evs []*storage.Event) []string {
	out := []string{}
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

func TestRelationsQuery(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, storage.Options{})
	r := newRelRoom(t, db, "!a:x")
	other := newRelRoom(t, db, "!b:x")
	root := r.add(1, "m.room.message", "@a:x", "", "", 1)[0]
	threads := r.add(3, "m.room.message", "@a:x", "m.thread", root, 2)
	reacts := r.add(2, "m.reaction", "@b:x", "m.annotation", root, 3)
	nested := r.add(1, "m.reaction", "@b:x", "m.annotation", threads[0], 4)
	deeper := r.add(1, "m.room.message", "@b:x", "m.reference", nested[0], 5)
	deepest := r.add(1, "m.room.message", "@b:x", "m.reference", deeper[0], 6)
	r.add(1, "m.room.message", "@b:x", "", root, 7) // a reply: no rel_type
	other.add(2, "m.room.message", "@a:x", "m.thread", root, 8)
	top, err := db.StreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := slices.Concat(threads, reacts)
	for _, c := range []struct {
		name string
		q    storage.RelationsQuery
		want []string
	}{
		{"direct, backwards", storage.RelationsQuery{Backwards: true, From: top}, reversedS(all)},
		{"direct, forwards", storage.RelationsQuery{}, all},
		{"rel type", storage.RelationsQuery{RelType: "m.thread"}, threads},
		{"event type", storage.RelationsQuery{EventType: "m.reaction"}, reacts},
		{"both", storage.RelationsQuery{RelType: "m.thread", EventType: "m.reaction"}, []string{}},
		{"sender", storage.RelationsQuery{Sender: "@b:x"}, reacts},
		{"depth 2", storage.RelationsQuery{Depth: 2}, slices.Concat(all, nested)},
		{"depth 3", storage.RelationsQuery{Depth: 3}, slices.Concat(all, nested, deeper)},
		{"depth 3 filtered", storage.RelationsQuery{Depth: 3, RelType: "m.annotation"}, reacts},
		{"depth 9", storage.RelationsQuery{Depth: 9}, slices.Concat(all, nested, deeper, deepest)},
		{"limit", storage.RelationsQuery{Backwards: true, From: top, Limit: 2}, []string{reacts[1], reacts[0]}},
	} {
		q := c.q
		q.RoomNID, q.EventID = r.nid, root
		if q.Limit == 0 {
			q.Limit = 100
		}
		got, err := db.Relations(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(eventIDs(got), c.want) {
			t.Errorf("%s: Relations = %v, want %v", c.name, eventIDs(got), c.want)
		}
	}
	// Bounds: forwards from a child's position excludes it; backwards includes it.
	mid, err := db.EventByID(ctx, threads[1])
	if err != nil {
		t.Fatal(err)
	}
	fw, _ := db.Relations(ctx, storage.RelationsQuery{RoomNID: r.nid, EventID: root, From: mid.StreamPos, Limit: 100})
	bw, _ := db.Relations(ctx, storage.RelationsQuery{RoomNID: r.nid, EventID: root, Backwards: true, From: mid.StreamPos, Limit: 100})
	if !slices.Equal(eventIDs(fw), all[2:]) || !slices.Equal(eventIDs(bw), reversedS(all[:2])) {
		t.Errorf("from %d: forwards %v, backwards %v", mid.StreamPos, eventIDs(fw), eventIDs(bw))
	}

	sums, err := db.ThreadSummaries(ctx, r.nid, []string{root, threads[0], "$unknown"}, "@a:x")
	if err != nil {
		t.Fatal(err)
	}
	last, _ := db.EventByID(ctx, threads[2])
	if len(sums) != 1 || sums[root] != (storage.ThreadSummary{Count: 3, LatestNID: last.NID, Participated: true}) {
		t.Errorf("ThreadSummaries = %+v", sums)
	}
	if sums, _ := db.ThreadSummaries(ctx, r.nid, []string{root}, "@b:x"); sums[root].Participated {
		t.Error("@b:x participated in a thread it never posted in")
	}
}

func reversedS(xs []string) []string {
	out := slices.Clone(xs)
	slices.Reverse(out)
	return out
}

func TestThreadRootsByLatestActivity(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, storage.Options{})
	r := newRelRoom(t, db, "!a:x")
	roots := r.add(3, "m.room.message", "@a:x", "", "", 1)
	r.add(1, "m.room.message", "@b:x", "m.thread", roots[0], 2)
	r.add(1, "m.room.message", "@a:x", "m.thread", roots[2], 2)
	r.add(1, "m.room.message", "@a:x", "m.thread", roots[1], 2)
	// A thread hanging off a thread event is not a thread.
	nested := r.add(1, "m.room.message", "@b:x", "m.thread", roots[1], 2)
	r.add(1, "m.room.message", "@b:x", "m.thread", nested[0], 2)
	top, _ := db.StreamPos(ctx)
	list := func(from int64, who string, limit int) ([]string, []int64) {
		trs, err := db.ThreadRoots(ctx, r.nid, from, who, limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		var latest []int64
		for _, tr := range trs {
			ids = append(ids, tr.Root.ID)
			latest = append(latest, tr.Latest)
		}
		return ids, latest
	}
	ids, latest := list(top, "", 10)
	if want := []string{roots[1], roots[2], roots[0]}; !slices.Equal(ids, want) {
		t.Fatalf("ThreadRoots = %v, want %v", ids, want)
	}
	if ids, _ := list(latest[0]-1, "", 10); !slices.Equal(ids, []string{roots[2], roots[0]}) {
		t.Errorf("after the first: %v", ids)
	}
	if ids, _ := list(top, "", 1); !slices.Equal(ids, []string{roots[1]}) {
		t.Errorf("limit 1: %v", ids)
	}
	if ids, _ := list(top, "@b:x", 10); !slices.Equal(ids, []string{roots[1], roots[0]}) {
		t.Errorf("@b:x's threads: %v", ids)
	}
}

func TestEventsNear(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, storage.Options{})
	r := newRelRoom(t, db, "!a:x")
	a := r.add(2, "m.room.message", "@a:x", "", "", 10)
	b := r.add(2, "m.room.message", "@a:x", "", "", 20)
	near := func(ts int64, backwards bool, after string, limit int) []string {
		var ev *storage.Event
		if after != "" {
			var err error
			if ev, err = db.EventByID(ctx, after); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := db.EventsNear(ctx, r.nid, ts, backwards, ev, limit)
		if err != nil {
			t.Fatal(err)
		}
		return eventIDs(evs)
	}
	for _, c := range []struct {
		ts        int64
		backwards bool
		after     string
		want      []string
	}{
		{15, false, "", b},
		{10, false, "", slices.Concat(a, b)},
		{10, false, a[0], slices.Concat(a[1:], b)},
		{15, true, "", reversedS(a)},
		{25, true, b[1], []string{b[0], a[1], a[0]}},
		{5, true, "", []string{}},
		{21, false, "", []string{}},
	} {
		if got := near(c.ts, c.backwards, c.after, 10); !slices.Equal(got, c.want) {
			t.Errorf("EventsNear(%d, backwards %v, after %q) = %v, want %v", c.ts, c.backwards, c.after, got, c.want)
		}
	}
}

// BenchmarkThreadRoots lists the threads of a room with 20,000 events, 400 of them in 40
// threads.
func BenchmarkThreadRoots(b *testing.B) {
	ctx := context.Background()
	db := MustOpen(b, storage.Options{})
	r := newRelRoom(b, db, "!a:x")
	var roots []string
	for i := range 40 {
		r.add(490, "m.room.message", "@a:x", "", "", int64(i))
		roots = append(roots, r.add(1, "m.room.message", "@a:x", "", "", int64(i))...)
	}
	for i := range 400 {
		r.add(1, "m.room.message", fmt.Sprintf("@u%d:x", i%7), "m.thread", roots[i%40], 1000)
	}
	top, _ := db.StreamPos(ctx)
	b.ResetTimer()
	for b.Loop() {
		trs, err := db.ThreadRoots(ctx, r.nid, top, "@u3:x", 20)
		if err != nil || len(trs) != 20 {
			b.Fatalf("ThreadRoots: %d, %v", len(trs), err)
		}
	}
}
