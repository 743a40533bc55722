package sync

import (
	"errors"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
		{"m.room.*", "m.room.message", true},
		{"m.room.*", "m.room.", true},
		{"m.room.*", "m.roo", false},
		{"*", "", true},
		{"*.member", "m.room.member", true},
		{"m.*.member", "m.room.member", true},
		{"m.*.member", "m.room.members", false},
		{"*a*b", "xaxxb", true},
		{"*a*b", "xaxxbc", false},
		{"**", "anything", true},
		{"", "", true},
		{"", "x", false},
	}
	for _, c := range cases {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
	// A hostile pattern against a long type stays linear-ish instead of exploding.
	long := strings.Repeat("a", 255)
	if globMatch(strings.Repeat("*a", 40)+"b", long) {
		t.Error("pattern ending in b matched a string of a's")
	}
}

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter([]byte(`{"room":{"timeline":{"limit":5000,"types":["m.room.*"],"not_senders":["@eve:x"]},
		"state":{"lazy_load_members":true},"rooms":["!a:x"],"include_leave":true},"presence":{"types":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.timelineLimit() != MaxTimelineLimit {
		t.Errorf("timeline limit = %d, want the cap %d", f.timelineLimit(), MaxTimelineLimit)
	}
	if !f.Room.State.LazyLoadMembers || !f.Room.IncludeLeave {
		t.Errorf("filter = %+v", f)
	}
	if m := f.Room.Timeline.matcher("!a:x"); m == nil {
		t.Error("a filter with types has no matcher")
	}
	if !f.Room.Timeline.match("m.room.message", "@bob:x") || f.Room.Timeline.match("m.room.message", "@eve:x") ||
		f.Room.Timeline.match("org.example", "@bob:x") {
		t.Error("timeline filter matches wrongly")
	}
	// An empty types list matches nothing; an absent one everything.
	if f.Presence.match("m.presence", "@bob:x") || !f.AccountData.match("m.direct", "@bob:x") {
		t.Error("empty versus absent types")
	}
	if !allowsRoom(f.Room.Rooms, f.Room.NotRooms, "!a:x") || allowsRoom(f.Room.Rooms, f.Room.NotRooms, "!b:x") {
		t.Error("rooms filter")
	}
	if allowsRoom(nil, []id.RoomID{"!a:x"}, "!a:x") {
		t.Error("not_rooms filter")
	}
	if (&Filter{}).timelineLimit() != DefaultTimelineLimit {
		t.Error("default timeline limit")
	}

	bad := []struct {
		in   string
		want error
	}{
		{`{"room":`, ErrNotJSON},
		{`[]`, ErrBadFilter},
		{`"x"`, ErrBadFilter},
		{`{"room":{"timeline":{"limit":-1}}}`, ErrBadFilter},
		{`{"room":{"timeline":{"limit":1.5}}}`, ErrBadFilter},
		{`{"room":{"timeline":{"types":"m.room.message"}}}`, ErrBadFilter},
		{`{"room":{"not_rooms":["a"]}}`, ErrBadFilter},
		{`{"presence":{"senders":["bob"]}}`, ErrBadFilter},
		{`{"event_format":"federation"}`, ErrBadFilter},
		{`{"event_format":"xml"}`, ErrBadFilter},
	}
	for _, c := range bad {
		if _, err := ParseFilter([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("ParseFilter(%s) = %v, want %v", c.in, err, c.want)
		}
	}
}
