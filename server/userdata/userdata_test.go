package userdata_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/userdata"
	"fyr/storage"
)

var ctx = context.Background()

const (
	alice = id.UserID("@alice:example.org")
	bob   = id.UserID("@bob:example.org")
	room  = id.RoomID("!room:example.org")
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newService returns a Service on a fresh database with local users alice and bob.
func newService(t *testing.T, opts userdata.Options) (*userdata.Service, *storage.DB) {
	t.Helper()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Write(ctx, func(tx *storage.Tx) error {
		return errors.Join(tx.CreateUser(storage.User{Localpart: "alice", CreatedTS: 1}),
			tx.CreateUser(storage.User{Localpart: "bob", CreatedTS: 1}))
	}); err != nil {
		t.Fatal(err)
	}
	return userdata.New(db, "example.org", opts), db
}

func TestAccountData(t *testing.T) {
	s, db := newService(t, userdata.Options{})
	var notified []int64
	s.Notify = func(u id.UserID, pos int64) { notified = append(notified, pos) }

	p1, err := s.SetAccountData(ctx, alice, "", "org.example.config", json.RawMessage(`{ "a" : [1, 2] }`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.AccountData(ctx, alice, "", "org.example.config")
	if err != nil || string(got) != `{"a":[1,2]}` {
		t.Errorf("AccountData = %s, %v; want the content, compacted", got, err)
	}
	p2, err := s.SetAccountData(ctx, alice, room, "org.example.config", json.RawMessage(`{"room":true}`))
	if err != nil || p2 <= p1 {
		t.Fatalf("room SetAccountData = %d, %v; want a position after %d", p2, err, p1)
	}
	if got, _ := s.AccountData(ctx, alice, "", "org.example.config"); string(got) != `{"a":[1,2]}` {
		t.Errorf("room data overwrote global data: %s", got)
	}
	if _, err := s.AccountData(ctx, bob, "", "org.example.config"); !errors.Is(err, userdata.ErrNotFound) {
		t.Errorf("bob reads alice's data: %v, want ErrNotFound", err)
	}
	if _, err := s.AccountData(ctx, alice, "!other:example.org", "org.example.config"); !errors.Is(err, userdata.ErrNotFound) {
		t.Errorf("another room falls back: %v, want ErrNotFound", err)
	}
	if len(notified) != 2 || notified[0] != p1 || notified[1] != p2 {
		t.Errorf("Notify saw %v, want [%d %d]", notified, p1, p2)
	}
	if pos, _ := db.StreamPos(ctx); pos != p2 {
		t.Errorf("StreamPos = %d, want %d", pos, p2)
	}
	global, rooms, err := s.AccountDataSince(ctx, alice, 0, p2)
	if err != nil || len(global) != 1 || len(rooms[room]) != 1 {
		t.Errorf("AccountDataSince = %v, %v, %v", global, rooms, err)
	}

	for _, tc := range []struct {
		name    string
		room    id.RoomID
		typ     string
		content string
		want    error
	}{
		{"fully read", "", "m.fully_read", `{"event_id":"$x"}`, userdata.ErrServerManaged},
		{"push rules", "", "m.push_rules", `{}`, userdata.ErrServerManaged},
		{"fully read in a room", room, "m.fully_read", `{"event_id":"$x"}`, userdata.ErrServerManaged},
		{"array", "", "org.example", `[1]`, userdata.ErrBadJSON},
		{"string", "", "org.example", `"x"`, userdata.ErrBadJSON},
		{"malformed", "", "org.example", `{"a":`, userdata.ErrBadJSON},
		{"too large", "", "org.example", `{"a":"` + strings.Repeat("x", userdata.MaxContentBytes) + `"}`, userdata.ErrTooLarge},
		{"empty type", "", "", `{}`, userdata.ErrInvalidParam},
		{"long type", "", strings.Repeat("t", 256), `{}`, userdata.ErrInvalidParam},
		{"room alias", "#alias:example.org", "org.example", `{}`, userdata.ErrInvalidRoomID},
		{"user ID as room", "@alice:example.org", "org.example", `{}`, userdata.ErrInvalidRoomID},
		{"bad room server", "!abc:bad server", "org.example", `{}`, userdata.ErrInvalidRoomID},
	} {
		if _, err := s.SetAccountData(ctx, alice, tc.room, tc.typ, json.RawMessage(tc.content)); !errors.Is(err, tc.want) {
			t.Errorf("%s: SetAccountData = %v, want %v", tc.name, err, tc.want)
		}
	}
	if pos, _ := db.StreamPos(ctx); pos != p2 {
		t.Errorf("refused writes moved the stream to %d", pos)
	}
	// The server itself may write what clients may not.
	if _, err := s.SetServerAccountData(ctx, alice, room, "m.fully_read", json.RawMessage(`{"event_id":"$x"}`)); err != nil {
		t.Errorf("SetServerAccountData(m.fully_read) = %v", err)
	}
	if got, err := s.AccountData(ctx, alice, room, "m.fully_read"); err != nil || string(got) != `{"event_id":"$x"}` {
		t.Errorf("clients read m.fully_read: %s, %v", got, err)
	}
}

func TestRoomExistsHook(t *testing.T) {
	s, _ := newService(t, userdata.Options{})
	s.RoomExists = func(_ context.Context, r id.RoomID) bool { return r == room }
	if _, err := s.SetAccountData(ctx, alice, room, "org.example", json.RawMessage(`{}`)); err != nil {
		t.Errorf("known room: %v", err)
	}
	if _, err := s.SetAccountData(ctx, alice, "!gone:example.org", "org.example", json.RawMessage(`{}`)); !errors.Is(err, userdata.ErrUnknownRoom) {
		t.Errorf("unknown room: %v, want ErrUnknownRoom", err)
	}
	if _, err := s.SetTag(ctx, alice, "!gone:example.org", "u.work", json.RawMessage(`{}`)); !errors.Is(err, userdata.ErrUnknownRoom) {
		t.Errorf("tag on unknown room: %v, want ErrUnknownRoom", err)
	}
	if _, err := s.SetAccountData(ctx, alice, "", "org.example", json.RawMessage(`{}`)); err != nil {
		t.Errorf("global data asked the room hook: %v", err)
	}
}

func TestValidRoomID(t *testing.T) {
	for _, tc := range []struct {
		id   id.RoomID
		want bool
	}{
		{"!abc:example.org", true},
		{"!abc:example.org:8448", true},
		{"!abc:[::1]:8448", true},
		{"!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", true}, // room version 12
		{"!abc", true},
		{"", false},
		{"!", false},
		{"!:example.org", false},
		{"#alias:example.org", false},
		{"abc:example.org", false},
		{"!abc:", false},
		{"!has space", false},
		{"!abc:exa mple.org", false},
		{id.RoomID("!" + strings.Repeat("a", 255)), false},
	} {
		if err := userdata.ValidRoomID(tc.id); (err == nil) != tc.want {
			t.Errorf("ValidRoomID(%q) = %v, want valid %v", tc.id, err, tc.want)
		}
	}
}

func TestTags(t *testing.T) {
	s, db := newService(t, userdata.Options{})
	tags, err := s.Tags(ctx, alice, room)
	if err != nil || len(tags) != 0 || tags == nil {
		t.Fatalf("Tags of an untagged room = %v, %v; want an empty map", tags, err)
	}
	p1, err := s.SetTag(ctx, alice, room, "m.favourite", json.RawMessage(`{"order":0.25}`))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.SetTag(ctx, alice, room, "u.work", json.RawMessage(`{"org.example.colour":"red"}`))
	if err != nil || p2 <= p1 {
		t.Fatalf("second tag = %d, %v; want a position after %d", p2, err, p1)
	}
	// Both tags live in one m.tag room account data entry, as sync delivers them.
	content, err := s.AccountData(ctx, alice, room, userdata.TagType)
	if err != nil || string(content) != `{"tags":{"m.favourite":{"order":0.25},"u.work":{"org.example.colour":"red"}}}` {
		t.Errorf("m.tag content = %s, %v", content, err)
	}
	if _, rooms, _ := db.AccountDataSince(ctx, alice, p1, p2); len(rooms[room]) != 1 {
		t.Errorf("m.tag change at %d not seen since %d: %v", p2, p1, rooms)
	}
	p3, err := s.SetTag(ctx, alice, room, "m.favourite", json.RawMessage(`{"order":1}`))
	if err != nil || p3 <= p2 {
		t.Fatalf("replace tag = %d, %v", p3, err)
	}
	if p, err := s.DeleteTag(ctx, alice, room, "u.work"); err != nil || p <= p3 {
		t.Fatalf("DeleteTag = %d, %v", p, err)
	}
	tags, _ = s.Tags(ctx, alice, room)
	if len(tags) != 1 || string(tags["m.favourite"]) != `{"order":1}` {
		t.Errorf("tags = %s", tags)
	}
	before, _ := db.StreamPos(ctx)
	if p, err := s.DeleteTag(ctx, alice, room, "u.never"); err != nil || p != 0 {
		t.Errorf("deleting a missing tag = %d, %v; want 0, nil", p, err)
	}
	if after, _ := db.StreamPos(ctx); after != before {
		t.Error("deleting a missing tag took a stream position")
	}

	for _, tc := range []struct {
		name, tag, content string
		want               error
	}{
		{"order above 1", "u.a", `{"order":1.5}`, userdata.ErrInvalidParam},
		{"order below 0", "u.a", `{"order":-0.1}`, userdata.ErrInvalidParam},
		{"order a string", "u.a", `{"order":"0.5"}`, userdata.ErrBadJSON},
		{"order null", "u.a", `{"order":null}`, userdata.ErrBadJSON},
		{"order an object", "u.a", `{"order":{}}`, userdata.ErrBadJSON},
		{"not an object", "u.a", `[0.5]`, userdata.ErrBadJSON},
		{"empty tag", "", `{}`, userdata.ErrInvalidParam},
		{"tag of 256 bytes", strings.Repeat("t", 256), `{}`, userdata.ErrInvalidParam},
	} {
		if _, err := s.SetTag(ctx, alice, room, tc.tag, json.RawMessage(tc.content)); !errors.Is(err, tc.want) {
			t.Errorf("%s: SetTag = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, ok := range []string{`{"order":0}`, `{"order":1e-1}`, `{}`} {
		if _, err := s.SetTag(ctx, alice, room, "u.ok", json.RawMessage(ok)); err != nil {
			t.Errorf("SetTag(%s) = %v", ok, err)
		}
	}
	if _, err := s.SetTag(ctx, alice, room, strings.Repeat("t", 255), json.RawMessage(`{}`)); err != nil {
		t.Errorf("a 255-byte tag: %v", err)
	}
	if _, err := s.Tags(ctx, alice, "#alias:x"); !errors.Is(err, userdata.ErrInvalidRoomID) {
		t.Errorf("Tags of an alias = %v, want ErrInvalidRoomID", err)
	}

	// m.tag written as plain account data in the wrong shape reads as no tags, and tagging
	// repairs it.
	if _, err := s.SetAccountData(ctx, alice, room, userdata.TagType, json.RawMessage(`{"tags":["x"]}`)); err != nil {
		t.Fatal(err)
	}
	if tags, err := s.Tags(ctx, alice, room); err != nil || len(tags) != 0 {
		t.Errorf("malformed m.tag = %v, %v; want no tags", tags, err)
	}
	if _, err := s.SetTag(ctx, alice, room, "u.x", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if tags, _ := s.Tags(ctx, alice, room); len(tags) != 1 {
		t.Errorf("tags after repair = %v", tags)
	}
}

func TestTagsSizeLimit(t *testing.T) {
	s, _ := newService(t, userdata.Options{})
	big := json.RawMessage(`{"note":"` + strings.Repeat("x", 40_000) + `"}`)
	if _, err := s.SetTag(ctx, alice, room, "u.one", big); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetTag(ctx, alice, room, "u.two", big); !errors.Is(err, userdata.ErrTooLarge) {
		t.Errorf("tags past 64 KiB together: %v, want ErrTooLarge", err)
	}
	if tags, _ := s.Tags(ctx, alice, room); len(tags) != 1 {
		t.Errorf("the refused tag was stored: %d tags", len(tags))
	}
}

func TestFilters(t *testing.T) {
	s, _ := newService(t, userdata.Options{})
	id1, err := s.CreateFilter(ctx, alice, json.RawMessage(`{"room": {"timeline": {"limit": 10}}}`))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.CreateFilter(ctx, alice, json.RawMessage(`{"presence":{"types":[]}}`))
	if err != nil || id2 == id1 {
		t.Fatalf("second filter = %q, %v; want an ID other than %q", id2, err, id1)
	}
	if again, _ := s.CreateFilter(ctx, alice, json.RawMessage(`{"room":{"timeline":{"limit":10}}}`)); again != id1 {
		t.Errorf("the same filter again got ID %q, want %q", again, id1)
	}
	for _, fid := range []string{id1, id2} {
		if strings.HasPrefix(fid, "{") || fid == "" {
			t.Errorf("filter ID %q", fid)
		}
	}
	raw, err := s.FilterJSON(ctx, alice, id1)
	if err != nil || string(raw) != `{"room":{"timeline":{"limit":10}}}` {
		t.Errorf("FilterJSON = %s, %v", raw, err)
	}
	f, err := s.Filter(ctx, alice, id1)
	if err != nil || f.Room.Timeline.LimitOr(0) != 10 {
		t.Errorf("Filter = %+v, %v", f, err)
	}
	for _, fid := range []string{"99", "abc", "", "0" + id1, "-1", "{}"} {
		if _, err := s.FilterJSON(ctx, alice, fid); !errors.Is(err, userdata.ErrNotFound) {
			t.Errorf("FilterJSON(%q) = %v, want ErrNotFound", fid, err)
		}
	}
	if _, err := s.FilterJSON(ctx, bob, id1); !errors.Is(err, userdata.ErrNotFound) {
		t.Errorf("bob reads alice's filter: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateFilter(ctx, alice, json.RawMessage(`{"room":{"timeline":{"limit":-1}}}`)); !errors.Is(err, userdata.ErrBadJSON) {
		t.Errorf("invalid filter: %v, want ErrBadJSON", err)
	}
	big := json.RawMessage(`{"event_fields":["` + strings.Repeat("x", userdata.MaxContentBytes) + `"]}`)
	if _, err := s.CreateFilter(ctx, alice, big); !errors.Is(err, userdata.ErrTooLarge) {
		t.Errorf("huge filter: %v, want ErrTooLarge", err)
	}

	for _, tc := range []struct {
		param string
		limit int
	}{
		{"", 7},
		{id1, 10},
		{`{"room":{"timeline":{"limit":3}}}`, 3},
	} {
		f, err := s.ResolveFilter(ctx, alice, tc.param)
		if err != nil || f.Room.Timeline.LimitOr(7) != tc.limit {
			t.Errorf("ResolveFilter(%q) = %+v, %v; want timeline limit %d", tc.param, f, err, tc.limit)
		}
	}
	if _, err := s.ResolveFilter(ctx, alice, "42"); !errors.Is(err, userdata.ErrNotFound) {
		t.Errorf("ResolveFilter(unknown) = %v", err)
	}
	if _, err := s.ResolveFilter(ctx, alice, `{"room":[]}`); !errors.Is(err, userdata.ErrBadJSON) {
		t.Errorf("ResolveFilter(bad inline) = %v", err)
	}
}

func TestIgnoredUsers(t *testing.T) {
	s, _ := newService(t, userdata.Options{})
	m, err := s.IgnoredUsers(ctx, alice)
	if err != nil || len(m) != 0 {
		t.Fatalf("no list: %v, %v", m, err)
	}
	set := func(content string) {
		t.Helper()
		if _, err := s.SetAccountData(ctx, alice, "", userdata.IgnoredUserListType, json.RawMessage(content)); err != nil {
			t.Fatal(err)
		}
	}
	set(`{"ignored_users":{"@bob:example.org":{},"@eve:other.org":{},"not-a-user":{},"@alice:example.org":{}}}`)
	m, err = s.IgnoredUsers(ctx, alice)
	if err != nil || len(m) != 2 || !m[bob] || !m["@eve:other.org"] {
		t.Errorf("IgnoredUsers = %v, %v; want bob and eve (not alice herself, not a non-ID)", m, err)
	}
	// Cached, and the cache follows changes.
	set(`{"ignored_users":{}}`)
	if m, _ := s.IgnoredUsers(ctx, alice); len(m) != 0 {
		t.Errorf("after clearing the list: %v", m)
	}
	set(`{"ignored_users":{"@bob:example.org":{}}}`)
	if m, _ := s.IgnoredUsers(ctx, alice); !m[bob] {
		t.Errorf("after ignoring bob again: %v", m)
	}
	// The same type in a room is not the ignore list.
	if _, err := s.SetAccountData(ctx, alice, room, userdata.IgnoredUserListType, json.RawMessage(`{"ignored_users":{}}`)); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.IgnoredUsers(ctx, alice); !m[bob] {
		t.Errorf("room account data changed the ignore list: %v", m)
	}
	set(`{"ignored_users":"everyone"}`)
	if m, err := s.IgnoredUsers(ctx, alice); err != nil || len(m) != 0 {
		t.Errorf("malformed list = %v, %v; want empty", m, err)
	}
}

func TestPresence(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_000_000_000)}
	s, db := newService(t, userdata.Options{Now: clock.Now})

	st, err := s.Presence(ctx, bob, alice)
	if err != nil || st.Presence != userdata.Offline || st.LastActiveAgo != nil || st.CurrentlyActive != nil {
		t.Errorf("never set = %+v, %v; want offline and nothing else", st, err)
	}
	p1, err := s.SetPresence(ctx, alice, userdata.Online, "at work")
	if err != nil || p1 == 0 {
		t.Fatalf("SetPresence = %d, %v", p1, err)
	}
	clock.Advance(30 * time.Second)
	st, err = s.Presence(ctx, bob, alice)
	if err != nil || st.Presence != userdata.Online || st.StatusMsg != "at work" || st.LastActiveAgo == nil || *st.LastActiveAgo != 30_000 || st.CurrentlyActive == nil || !*st.CurrentlyActive {
		t.Errorf("after going online = %+v, %v; want online, 30 s ago, currently active", st, err)
	}
	// Setting the same again soon after writes nothing.
	if pos, err := s.SetPresence(ctx, alice, userdata.Online, "at work"); err != nil || pos != 0 {
		t.Errorf("repeated SetPresence = %d, %v; want no write", pos, err)
	}
	clock.Advance(3 * time.Minute)
	if st, _ := s.Presence(ctx, bob, alice); st.Presence != userdata.Online || *st.CurrentlyActive {
		t.Errorf("3.5 minutes on = %+v; want online, not currently active", st)
	}
	clock.Advance(2 * time.Minute)
	if st, _ := s.Presence(ctx, bob, alice); st.Presence != userdata.Unavailable || st.CurrentlyActive != nil {
		t.Errorf("past the idle timeout = %+v; want unavailable", st)
	}
	// Activity brings an idle user back.
	p2, err := s.MarkActive(ctx, alice)
	if err != nil || p2 <= p1 {
		t.Fatalf("MarkActive = %d, %v; want a position after %d", p2, err, p1)
	}
	if st, _ := s.Presence(ctx, alice, alice); st.Presence != userdata.Online || *st.LastActiveAgo != 0 {
		t.Errorf("after activity = %+v", st)
	}
	if pos, _ := s.MarkActive(ctx, alice); pos != 0 {
		t.Error("MarkActive right after activity wrote again")
	}
	// Unavailable keeps the last active time; offline with no message clears the message.
	p3, err := s.SetPresence(ctx, alice, userdata.Unavailable, "")
	if err != nil || p3 <= p2 {
		t.Fatal(err)
	}
	p4, err := s.SetPresence(ctx, alice, userdata.Offline, "")
	if err != nil || p4 <= p3 {
		t.Fatal(err)
	}
	if pos, _ := s.MarkActive(ctx, alice); pos != 0 {
		t.Error("MarkActive brought an offline user online")
	}
	st, _ = s.Presence(ctx, bob, alice)
	if st.Presence != userdata.Offline || st.StatusMsg != "" || st.LastActiveAgo == nil {
		t.Errorf("offline = %+v", st)
	}

	got, err := s.PresenceSince(ctx, []id.UserID{alice, bob}, p2, p4)
	if err != nil || len(got) != 1 || got[0].State != userdata.Offline || got[0].StreamPos != p4 {
		t.Errorf("PresenceSince = %+v, %v", got, err)
	}
	if pos, _ := db.StreamPos(ctx); pos != p4 {
		t.Errorf("StreamPos = %d, want %d", pos, p4)
	}

	for _, tc := range []struct {
		name   string
		target id.UserID
		want   error
	}{
		{"unknown local user", "@nobody:example.org", userdata.ErrNotFound},
		{"unknown remote user", "@someone:other.org", userdata.ErrNotFound},
		{"not a user ID", "alice", userdata.ErrInvalidParam},
	} {
		if _, err := s.Presence(ctx, alice, tc.target); !errors.Is(err, tc.want) {
			t.Errorf("%s: Presence = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := s.SetPresence(ctx, alice, "busy", ""); !errors.Is(err, userdata.ErrInvalidParam) {
		t.Errorf("SetPresence(busy) = %v, want ErrInvalidParam", err)
	}
	if _, err := s.SetPresence(ctx, alice, userdata.Online, strings.Repeat("x", userdata.MaxContentBytes+1)); !errors.Is(err, userdata.ErrTooLarge) {
		t.Errorf("huge status message = %v, want ErrTooLarge", err)
	}

	s.CanSeePresence = func(_ context.Context, observer, target id.UserID) bool { return false }
	if _, err := s.Presence(ctx, bob, alice); !errors.Is(err, userdata.ErrPresenceHidden) {
		t.Errorf("hidden presence = %v, want ErrPresenceHidden", err)
	}
	if _, err := s.Presence(ctx, alice, alice); err != nil {
		t.Errorf("own presence asked the visibility hook: %v", err)
	}
}

func TestPresenceDisabled(t *testing.T) {
	s, db := newService(t, userdata.Options{DisablePresence: true})
	if s.PresenceEnabled() {
		t.Fatal("DisablePresence left presence on")
	}
	if pos, err := s.SetPresence(ctx, alice, userdata.Online, "hi"); err != nil || pos != 0 {
		t.Errorf("SetPresence while off = %d, %v; want accepted and dropped", pos, err)
	}
	if _, err := s.SetPresence(ctx, alice, "busy", ""); !errors.Is(err, userdata.ErrInvalidParam) {
		t.Errorf("invalid state while off = %v; still want ErrInvalidParam", err)
	}
	if p, _ := db.Presence(ctx, alice); p != nil {
		t.Errorf("stored %+v while off", p)
	}
	if st, err := s.Presence(ctx, bob, "@nobody:example.org"); err != nil || st.Presence != userdata.Offline {
		t.Errorf("Presence while off = %+v, %v; want offline for anyone", st, err)
	}
	s.SetPresenceEnabled(true)
	if _, err := s.SetPresence(ctx, alice, userdata.Online, "hi"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Presence(ctx, bob, alice); st.Presence != userdata.Online {
		t.Errorf("after enabling = %+v", st)
	}
	s.SetPresenceEnabled(false)
	if got, err := s.PresenceSince(ctx, []id.UserID{alice}, 0, 1<<62); err != nil || got != nil {
		t.Errorf("PresenceSince while off = %+v, %v; want nothing", got, err)
	}
}
