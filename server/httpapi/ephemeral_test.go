package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

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

// wantErr checks a mautrix error's errcode and status.
func wantErr(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	if gotCode, gotStatus := servertest.ErrCode(err); gotCode != code || gotStatus != status {
		t.Errorf("%s: got %s %d (%v), want %s %d", what, gotCode, gotStatus, err, code, status)
	}
}

// wantStatus checks a raw response's status and errcode.
func wantStatus(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Errcode string `json:"errcode"`
	}
	json.Unmarshal(body, &e)
	if status != wantStatus || e.Errcode != wantCode {
		t.Errorf("%s: got %d %s (%s), want %d %s", what, status, e.Errcode, body, wantStatus, wantCode)
	}
}

func TestTyping(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	clock := newFakeClock()
	s.Ephemeral.SetClock(clock.Now)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	charlie := s.Register(t, "charlie", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}

	typing := func(want ...id.UserID) int64 {
		t.Helper()
		users, serial := s.Ephemeral.Typing(room)
		if want == nil {
			want = []id.UserID{}
		}
		if !slices.Equal(users, want) {
			t.Fatalf("typing in the room: %v, want %v", users, want)
		}
		return serial
	}
	start := typing()
	if _, err := alice.UserTyping(ctx, room, true, 10*time.Second); err != nil {
		t.Fatalf("alice starts typing: %v", err)
	}
	s1 := typing(alice.UserID)
	if s1 <= start {
		t.Fatalf("serial %d after alice started, was %d", s1, start)
	}
	if _, err := bob.UserTyping(ctx, room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	s2 := typing(alice.UserID, bob.UserID)
	// Renewing a timeout changes nothing clients see.
	clock.Advance(5 * time.Second)
	if _, err := alice.UserTyping(ctx, room, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := typing(alice.UserID, bob.UserID); s != s2 {
		t.Fatalf("renewal moved the serial from %d to %d", s2, s)
	}
	if s.Ephemeral.TypingSerial() < s2 {
		t.Fatalf("TypingSerial %d is behind the room's %d", s.Ephemeral.TypingSerial(), s2)
	}
	// Alice stops; Bob's 20 s run out 20 s after he started.
	if _, err := alice.UserTyping(ctx, room, false, 0); err != nil {
		t.Fatal(err)
	}
	s3 := typing(bob.UserID)
	clock.Advance(14 * time.Second)
	if s := typing(bob.UserID); s != s3 {
		t.Fatalf("serial moved without a change: %d → %d", s3, s)
	}
	clock.Advance(time.Second)
	if s4 := typing(); s4 <= s3 {
		t.Fatalf("serial %d after bob's timeout, was %d", s4, s3)
	}

	// Without a timeout a user types for 30 s; a longer timeout is cut to 120 s.
	status, body, _ := s.Do(t, "PUT", "/_matrix/client/v3/rooms/"+string(room)+"/typing/"+string(alice.UserID), alice.AccessToken,
		strings.NewReader(`{"typing":true}`))
	if status != 200 || string(body) != "{}" {
		t.Fatalf("typing without timeout: %d %s", status, body)
	}
	if _, err := bob.UserTyping(ctx, room, true, time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Advance(29 * time.Second)
	typing(alice.UserID, bob.UserID)
	clock.Advance(time.Second)
	typing(bob.UserID)
	clock.Advance(90*time.Second - time.Millisecond)
	typing(bob.UserID)
	clock.Advance(time.Millisecond)
	typing()
	// A zero timeout is as good as stopping (mautrix leaves a zero timeout out).
	status, body, _ = s.Do(t, "PUT", "/_matrix/client/v3/rooms/"+string(room)+"/typing/"+string(alice.UserID), alice.AccessToken,
		strings.NewReader(`{"typing":true,"timeout":0}`))
	if status != 200 {
		t.Fatalf("typing with timeout 0: %d %s", status, body)
	}
	typing()

	path := func(r id.RoomID, u id.UserID) string {
		return "/_matrix/client/v3/rooms/" + string(r) + "/typing/" + string(u)
	}
	for _, c := range []struct {
		name       string
		path       string
		token      string
		body       string
		status     int
		code       string
		afterwards []id.UserID
	}{
		{"someone else's typing", path(room, bob.UserID), alice.AccessToken, `{"typing":true,"timeout":1000}`, 403, "M_FORBIDDEN", nil},
		{"not a member", path(room, charlie.UserID), charlie.AccessToken, `{"typing":true,"timeout":1000}`, 403, "M_FORBIDDEN", nil},
		{"unknown room", path("!nope:localhost", alice.UserID), alice.AccessToken, `{"typing":true}`, 404, "M_NOT_FOUND", nil},
		{"no typing field", path(room, alice.UserID), alice.AccessToken, `{"timeout":1000}`, 400, "M_MISSING_PARAM", nil},
		{"typing not a boolean", path(room, alice.UserID), alice.AccessToken, `{"typing":"yes"}`, 400, "M_BAD_JSON", nil},
		{"negative timeout", path(room, alice.UserID), alice.AccessToken, `{"typing":true,"timeout":-5}`, 400, "M_INVALID_PARAM", nil},
		{"not a user ID", path(room, "alice"), alice.AccessToken, `{"typing":true}`, 400, "M_INVALID_PARAM", nil},
		{"not JSON", path(room, alice.UserID), alice.AccessToken, `typing`, 400, "M_NOT_JSON", nil},
		{"no token", path(room, alice.UserID), "", `{"typing":true}`, 401, "M_MISSING_TOKEN", nil},
	} {
		status, body, _ := s.Do(t, "PUT", c.path, c.token, strings.NewReader(c.body))
		wantStatus(t, c.name, status, body, c.status, c.code)
		typing(c.afterwards...)
	}
	// Leaving ends the right to type.
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	_, err := bob.UserTyping(ctx, room, true, time.Second)
	wantErr(t, "typing after leaving", err, "M_FORBIDDEN", 403)
}

// receiptsFor returns the m.receipt content viewer gets for room since a position.
func receiptsFor(t *testing.T, s *servertest.Server, room id.RoomID, since int64, viewer id.UserID) event.ReceiptEventContent {
	t.Helper()
	got, err := s.Ephemeral.ReceiptsSince(context.Background(), []id.RoomID{room}, since, 0, viewer)
	if err != nil {
		t.Fatal(err)
	}
	return got[room]
}

// receiptAt says which event user's receipt of type typ in thread is on ("" for none).
func receiptAt(c event.ReceiptEventContent, user id.UserID, typ event.ReceiptType, thread string) id.EventID {
	for evID, rs := range c {
		if r, ok := rs[typ][user]; ok && string(r.ThreadID) == thread {
			return evID
		}
	}
	return ""
}

func sendText(t *testing.T, c *mautrix.Client, room id.RoomID, content map[string]any) id.EventID {
	t.Helper()
	if content["msgtype"] == nil {
		content["msgtype"] = "m.text"
	}
	resp, err := c.SendMessageEvent(context.Background(), room, event.EventMessage, content)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return resp.EventID
}

// accountDataRecorder stands in for the account data engine behind m.fully_read.
type accountDataRecorder struct {
	mu   sync.Mutex
	sets []string
	fail error
}

func (r *accountDataRecorder) set(_ context.Context, user id.UserID, room id.RoomID, typ string, content json.RawMessage) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.sets = append(r.sets, fmt.Sprintf("%s %s %s %s", user, room, typ, content))
	return int64(len(r.sets)), nil
}

func (r *accountDataRecorder) taken() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sets
	r.sets = nil
	return out
}

func TestReceipts(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	clock := newFakeClock()
	s.Ephemeral.SetClock(clock.Now)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	charlie := s.Register(t, "charlie", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	other := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	root := sendText(t, alice, room, map[string]any{"body": "thread root"})
	m2 := sendText(t, alice, room, map[string]any{"body": "two"})
	reply := sendText(t, alice, room, map[string]any{"body": "in thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
	react, err := alice.SendMessageEvent(ctx, room, event.EventReaction, map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": reply, "key": "👍"}})
	if err != nil {
		t.Fatal(err)
	}
	m3 := sendText(t, alice, room, map[string]any{"body": "three"})
	elsewhere := sendText(t, alice, other, map[string]any{"body": "other room"})
	start, err := s.DB.StreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A public receipt is seen by everyone, with the time it was received.
	if err := bob.MarkRead(ctx, room, m2); err != nil {
		t.Fatalf("bob reads m2: %v", err)
	}
	got := receiptsFor(t, s, room, start, alice.UserID)
	if receiptAt(got, bob.UserID, event.ReceiptTypeRead, "") != m2 {
		t.Fatalf("alice sees %v, want bob's m.read on m2", got)
	}
	if ts := got[m2][event.ReceiptTypeRead][bob.UserID].Timestamp; !ts.Equal(clock.Now()) {
		t.Errorf("receipt ts = %v, want %v", ts, clock.Now())
	}
	raw, _ := json.Marshal(got)
	if want := fmt.Sprintf(`{%q:{"m.read":{%q:{"ts":%d}}}}`, m2, bob.UserID, clock.Now().UnixMilli()); string(raw) != want {
		t.Errorf("m.receipt content = %s, want %s", raw, want)
	}
	afterRead, _ := s.DB.StreamPos(ctx)

	// An older event does not move the receipt back, nor does the same one again.
	if err := bob.MarkRead(ctx, room, root); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, room, m2); err != nil {
		t.Fatal(err)
	}
	if c := receiptsFor(t, s, room, afterRead, alice.UserID); len(c) != 0 {
		t.Fatalf("a receipt moved backwards or repeated: %v", c)
	}
	if at := receiptAt(receiptsFor(t, s, room, 0, alice.UserID), bob.UserID, event.ReceiptTypeRead, ""); at != m2 {
		t.Fatalf("bob's receipt is on %s, want m2", at)
	}

	// A private receipt is for its owner's eyes only.
	if err := bob.SendReceipt(ctx, room, m3, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	if at := receiptAt(receiptsFor(t, s, room, start, bob.UserID), bob.UserID, event.ReceiptTypeReadPrivate, ""); at != m3 {
		t.Fatalf("bob's own private receipt is on %q, want m3", at)
	}
	if c := receiptsFor(t, s, room, afterRead, alice.UserID); len(c) != 0 {
		t.Fatalf("alice sees bob's private receipt: %v", c)
	}

	// Threaded receipts: the main timeline and a thread are separate from the unthreaded one.
	threaded := []struct {
		name   string
		event  id.EventID
		thread string
	}{
		{"main timeline", m3, "main"},
		{"thread root as main", root, "main"},
		{"thread reply", reply, string(root)},
		{"reaction to a thread reply", react.EventID, string(root)},
		{"the thread root itself", root, string(root)},
	}
	for _, c := range threaded {
		before, _ := s.DB.StreamPos(ctx)
		if err := bob.SendReceipt(ctx, room, c.event, event.ReceiptTypeRead, &mautrix.ReqSendReceipt{ThreadID: c.thread}); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		moved := receiptsFor(t, s, room, before, alice.UserID)
		if c.name == "the thread root itself" {
			// The thread already has a receipt on a later event.
			if len(moved) != 0 {
				t.Errorf("%s: the thread's receipt moved back: %v", c.name, moved)
			}
			continue
		}
		if c.name == "thread root as main" {
			continue
		}
		if at := receiptAt(moved, bob.UserID, event.ReceiptTypeRead, c.thread); at != c.event {
			t.Errorf("%s: receipt in thread %q on %q, want %s (%v)", c.name, c.thread, at, c.event, moved)
		}
	}
	all := receiptsFor(t, s, room, 0, alice.UserID)
	if receiptAt(all, bob.UserID, event.ReceiptTypeRead, "") != m2 || receiptAt(all, bob.UserID, event.ReceiptTypeRead, "main") != m3 ||
		receiptAt(all, bob.UserID, event.ReceiptTypeRead, string(root)) != react.EventID {
		t.Errorf("bob's receipts: %v; want unthreaded on m2, main on m3, thread on the reaction", all)
	}
	// An unthreaded and a threaded receipt on the same event: the unthreaded one is what
	// the content carries, whichever came last (MSC4102).
	mark, _ := s.DB.StreamPos(ctx)
	if err := bob.SendReceipt(ctx, room, react.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendReceipt(ctx, room, react.EventID, event.ReceiptTypeRead, &mautrix.ReqSendReceipt{ThreadID: string(root)}); err != nil {
		t.Fatal(err)
	}
	if got := receiptsFor(t, s, room, mark, alice.UserID); receiptAt(got, bob.UserID, event.ReceiptTypeRead, "") != react.EventID {
		t.Errorf("unthreaded and threaded receipts on one event: %v; want the unthreaded one", got)
	}
	// Bob has read up to m3, privately.
	ev3, err := s.DB.EventByID(ctx, string(m3))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.DB.ReadUpTo(ctx, roomNID(t, s, room), string(bob.UserID), ""); err != nil || n != ev3.StreamPos {
		t.Errorf("ReadUpTo = %d, %v; want %d", n, err, ev3.StreamPos)
	}

	// Refusals.
	postReceipt := func(c *mautrix.Client, r id.RoomID, typ string, ev id.EventID, body string) (int, []byte) {
		status, b, _ := s.Do(t, "POST", "/_matrix/client/v3/rooms/"+string(r)+"/receipt/"+typ+"/"+string(ev), c.AccessToken, strings.NewReader(body))
		return status, b
	}
	before, _ := s.DB.StreamPos(ctx)
	for _, c := range []struct {
		name   string
		client *mautrix.Client
		room   id.RoomID
		typ    string
		event  id.EventID
		body   string
		status int
		code   string
	}{
		{"unknown receipt type", bob, room, "m.seen", m3, `{}`, 400, "M_INVALID_PARAM"},
		{"not an event ID", bob, room, "m.read", "m3", `{}`, 400, "M_INVALID_PARAM"},
		{"unknown event", bob, room, "m.read", "$nope", `{}`, 404, "M_NOT_FOUND"},
		{"event of another room", bob, room, "m.read", elsewhere, `{}`, 404, "M_NOT_FOUND"},
		{"unknown room", bob, "!nope:localhost", "m.read", m3, `{}`, 404, "M_NOT_FOUND"},
		{"not a member", charlie, room, "m.read", m3, `{}`, 403, "M_FORBIDDEN"},
		{"empty thread_id", bob, room, "m.read", m3, `{"thread_id":""}`, 400, "M_INVALID_PARAM"},
		{"thread_id not a string", bob, room, "m.read", m3, `{"thread_id":5}`, 400, "M_INVALID_PARAM"},
		{"thread_id neither main nor an event", bob, room, "m.read", m3, `{"thread_id":"side"}`, 400, "M_INVALID_PARAM"},
		{"thread reply as main", bob, room, "m.read", reply, `{"thread_id":"main"}`, 400, "M_INVALID_PARAM"},
		{"main event in a thread", bob, room, "m.read", m2, `{"thread_id":"` + string(root) + `"}`, 400, "M_INVALID_PARAM"},
		{"thread that is no thread", bob, room, "m.read", m2, `{"thread_id":"` + string(m2) + `"}`, 400, "M_INVALID_PARAM"},
		{"thread_id with m.fully_read", bob, room, "m.fully_read", m3, `{"thread_id":"main"}`, 400, "M_INVALID_PARAM"},
		{"body not an object", bob, room, "m.read", m3, `[]`, 400, "M_BAD_JSON"},
	} {
		status, body := postReceipt(c.client, c.room, c.typ, c.event, c.body)
		wantStatus(t, c.name, status, body, c.status, c.code)
	}
	if c := receiptsFor(t, s, room, before, bob.UserID); len(c) != 0 {
		t.Errorf("a refused receipt was stored: %v", c)
	}
	// The shape of success: an empty object, also for an empty body.
	if status, body := postReceipt(bob, room, "m.read", m3, ""); status != 200 || string(body) != "{}" {
		t.Errorf("receipt with an empty body: %d %s", status, body)
	}
}

// roomNID finds a room's NID for storage-level checks.
func roomNID(t *testing.T, s *servertest.Server, room id.RoomID) int64 {
	t.Helper()
	r, err := s.DB.RoomByID(context.Background(), string(room))
	if err != nil {
		t.Fatal(err)
	}
	return r.NID
}

func TestReadMarkers(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	m1 := sendText(t, alice, room, map[string]any{"body": "one"})
	m2 := sendText(t, alice, room, map[string]any{"body": "two"})
	m3 := sendText(t, alice, room, map[string]any{"body": "three"})

	// The server stores m.fully_read as account data; the recorder stands in to observe it.
	rec := &accountDataRecorder{}
	s.Ephemeral.SetRoomAccountData(rec.set)
	fullyRead := func(ev id.EventID) string {
		return fmt.Sprintf(`%s %s m.fully_read {"event_id":%q}`, bob.UserID, room, ev)
	}
	if err := bob.SendReceipt(ctx, room, m2, "m.fully_read", nil); err != nil {
		t.Fatalf("m.fully_read receipt: %v", err)
	}
	if got := rec.taken(); !slices.Equal(got, []string{fullyRead(m2)}) {
		t.Fatalf("account data set: %q, want %q", got, fullyRead(m2))
	}
	// The marker never moves back, and m.fully_read is no receipt.
	if err := bob.SendReceipt(ctx, room, m1, "m.fully_read", nil); err != nil {
		t.Fatal(err)
	}
	if got := rec.taken(); len(got) != 0 {
		t.Fatalf("the marker moved back: %q", got)
	}
	if c := receiptsFor(t, s, room, 0, bob.UserID); len(c) != 0 {
		t.Fatalf("m.fully_read appeared among receipts: %v", c)
	}

	start, _ := s.DB.StreamPos(ctx)
	if err := bob.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{FullyRead: m3, Read: m2, ReadPrivate: m3}); err != nil {
		t.Fatalf("read_markers: %v", err)
	}
	if got := rec.taken(); !slices.Equal(got, []string{fullyRead(m3)}) {
		t.Fatalf("account data set: %q, want %q", got, fullyRead(m3))
	}
	mine := receiptsFor(t, s, room, start, bob.UserID)
	if receiptAt(mine, bob.UserID, event.ReceiptTypeRead, "") != m2 || receiptAt(mine, bob.UserID, event.ReceiptTypeReadPrivate, "") != m3 {
		t.Fatalf("bob's receipts after read_markers: %v", mine)
	}
	if theirs := receiptsFor(t, s, room, start, alice.UserID); receiptAt(theirs, bob.UserID, event.ReceiptTypeReadPrivate, "") != "" {
		t.Fatalf("alice sees bob's private receipt: %v", theirs)
	}
	// A read marker alone is fine too.
	status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/rooms/"+string(room)+"/read_markers", bob.AccessToken, strings.NewReader(`{}`))
	if status != 200 || string(body) != "{}" {
		t.Fatalf("empty read_markers: %d %s", status, body)
	}

	// Nothing moves when any part is refused.
	before, _ := s.DB.StreamPos(ctx)
	m4 := sendText(t, alice, room, map[string]any{"body": "four"})
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown event", `{"m.fully_read":"` + string(m4) + `","m.read":"$nope"}`, 404, "M_NOT_FOUND"},
		{"not a string", `{"m.fully_read":"` + string(m4) + `","m.read.private":5}`, 400, "M_INVALID_PARAM"},
		{"not an event ID", `{"m.fully_read":"m4"}`, 400, "M_INVALID_PARAM"},
		{"no body", ``, 400, "M_NOT_JSON"},
	} {
		status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/rooms/"+string(room)+"/read_markers", bob.AccessToken, strings.NewReader(c.body))
		wantStatus(t, c.name, status, body, c.status, c.code)
	}
	if got := rec.taken(); len(got) != 0 {
		t.Errorf("a refused read_markers moved the marker: %q", got)
	}
	if c := receiptsFor(t, s, room, before, bob.UserID); len(c) != 0 {
		t.Errorf("a refused read_markers stored receipts: %v", c)
	}
	// When account data fails, the marker does not count as moved.
	rec.mu.Lock()
	rec.fail = errors.New("disk full")
	rec.mu.Unlock()
	err := bob.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{FullyRead: m4})
	wantErr(t, "account data failing", err, "M_UNKNOWN", 500)
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if err := bob.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{FullyRead: m4}); err != nil {
		t.Fatal(err)
	}
	if got := rec.taken(); !slices.Equal(got, []string{fullyRead(m4)}) {
		t.Fatalf("after the failure: %q, want %q", got, fullyRead(m4))
	}
	// A stranger may not set markers.
	charlie := s.Register(t, "charlie", "correct horse battery")
	err = charlie.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{Read: m4})
	wantErr(t, "stranger's read_markers", err, "M_FORBIDDEN", 403)
}
