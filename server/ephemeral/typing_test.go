package ephemeral

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTypingSerials(t *testing.T) {
	c := &clock{t: time.UnixMilli(5000)}
	var notified []id.RoomID
	ty := newTyping(c.now, func(r id.RoomID) { notified = append(notified, r) })
	if ty.serial != 5000 {
		t.Fatalf("first serial %d, want the clock's milliseconds", ty.serial)
	}
	if users, serial := ty.get("!a:x"); len(users) != 0 || serial != 0 {
		t.Fatalf("untouched room: %v at %d", users, serial)
	}
	ty.set("!a:x", "@u:x", true, 10*time.Second)
	ty.set("!b:x", "@u:x", true, 20*time.Second)
	ty.set("!a:x", "@v:x", true, 30*time.Second)
	ty.set("!a:x", "@u:x", true, 10*time.Second) // a renewal: no change
	ty.set("!c:x", "@u:x", false, 0)             // stopping where nobody typed: no change
	if want := []id.RoomID{"!a:x", "!b:x", "!a:x"}; !slices.Equal(notified, want) {
		t.Fatalf("notified %v, want %v", notified, want)
	}
	users, serial := ty.get("!a:x")
	if !slices.Equal(users, []id.UserID{"@u:x", "@v:x"}) || serial != 5003 {
		t.Fatalf("room a: %v at %d, want both at 5003", users, serial)
	}
	if _, bs := ty.get("!b:x"); bs != 5002 {
		t.Fatalf("room b's serial %d, want 5002", bs)
	}
	if len(ty.rooms) != 2 {
		t.Fatalf("%d rooms held, want 2: stopping in a quiet room holds nothing", len(ty.rooms))
	}
}

// TestTypingRunExpires checks that the background loop announces a timeout running out
// without anyone asking, when the clock passes the deadline.
func TestTypingRunExpires(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	changed := make(chan id.RoomID, 10)
	ty := newTyping(c.now, func(r id.RoomID) { changed <- r })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ty.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	ty.set("!a:x", "@u:x", true, 10*time.Second)
	ty.set("!b:x", "@u:x", true, time.Hour)
	for _, want := range []id.RoomID{"!a:x", "!b:x"} {
		if got := <-changed; got != want {
			t.Fatalf("start: notified %s, want %s", got, want)
		}
	}
	c.advance(11 * time.Second)
	ty.setClock(c.now) // wakes the loop, as a test clock must
	select {
	case got := <-changed:
		if got != "!a:x" {
			t.Fatalf("expiry notified %s, want !a:x", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not expire room a's typing")
	}
	if users, _ := ty.get("!a:x"); len(users) != 0 {
		t.Fatalf("room a still has %v", users)
	}
	if users, _ := ty.get("!b:x"); len(users) != 1 {
		t.Fatalf("room b lost its typist early: %v", users)
	}
}

// TestTypingUserHook checks the per-user changes the federation fan-out hears of: starts,
// renewals and stops, including a timeout running out.
func TestTypingUserHook(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	type change struct {
		room   id.RoomID
		user   id.UserID
		typing bool
	}
	var got []change
	ty := newTyping(c.now, func(id.RoomID) {})
	ty.user = func(r id.RoomID, u id.UserID, typing bool) { got = append(got, change{r, u, typing}) }

	ty.set("!a:x", "@u:x", true, 10*time.Second)
	ty.set("!a:x", "@u:x", true, 10*time.Second) // renewal
	ty.set("!a:x", "@v:x", true, 30*time.Second)
	ty.set("!a:x", "@v:x", false, 0)
	ty.set("!a:x", "@w:x", false, 0) // never typed: nothing to tell
	c.advance(11 * time.Second)
	ty.get("!a:x") // @u:x's timeout ran out
	want := []change{{"!a:x", "@u:x", true}, {"!a:x", "@u:x", true}, {"!a:x", "@v:x", true},
		{"!a:x", "@v:x", false}, {"!a:x", "@u:x", false}}
	if !slices.Equal(got, want) {
		t.Fatalf("user hook heard %v, want %v", got, want)
	}
}
