package userdata_test

import (
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/server/userdata"
)

func TestMatchType(t *testing.T) {
	for _, tc := range []struct {
		pattern, typ string
		want         bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
		{"m.room", "m.room.message", false},
		{"m.room.*", "m.room.message", true},
		{"m.room.*", "m.room.", true},
		{"m.room.*", "m.room", false},
		{"m.room.*", "m.roomy.message", false},
		{"*", "anything.at.all", true},
		{"*", "", true},
		{"", "", true},
		{"", "m.room.message", false},
		{"*.member", "m.room.member", true},
		{"*.member", "m.room.members", false},
		{"m.*.message", "m.room.message", true},
		{"m.*.message", "m.a.b.message", true},
		{"m.*.message", "m.message", false},
		{"m.*e*", "m.room.message", true},
		{"**", "x", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"m.room.?", "m.room.x", false},
	} {
		if got := userdata.MatchType(tc.pattern, tc.typ); got != tc.want {
			t.Errorf("MatchType(%q, %q) = %v, want %v", tc.pattern, tc.typ, got, tc.want)
		}
	}
}

func TestEventFilterMatch(t *testing.T) {
	f, err := userdata.ParseFilter([]byte(`{
		"presence": {"not_senders": ["@spam:x"]},
		"room": {
			"rooms": ["!a:x", "!b:x"], "not_rooms": ["!b:x"],
			"timeline": {"types": ["m.room.*", "org.example.*"], "not_types": ["m.room.member"],
				"senders": ["@alice:x", "@spam:x"], "not_senders": ["@spam:x"], "not_rooms": ["!c:x"]},
			"state": {"types": []},
			"ephemeral": {"contains_url": true},
			"account_data": {"contains_url": false}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	tl := &f.Room.Timeline
	for _, tc := range []struct {
		name   string
		typ    string
		sender id.UserID
		room   id.RoomID
		want   bool
	}{
		{"included type and sender", "m.room.message", "@alice:x", "!a:x", true},
		{"wildcard type", "org.example.thing", "@alice:x", "!a:x", true},
		{"type not listed", "m.reaction", "@alice:x", "!a:x", false},
		{"excluded type beats wildcard", "m.room.member", "@alice:x", "!a:x", false},
		{"sender not listed", "m.room.message", "@bob:x", "!a:x", false},
		{"excluded sender beats listed", "m.room.message", "@spam:x", "!a:x", false},
		{"excluded room", "m.room.message", "@alice:x", "!c:x", false},
	} {
		if got := tl.Match(tc.typ, tc.sender, tc.room, false); got != tc.want {
			t.Errorf("timeline %s: Match(%s, %s, %s) = %v, want %v", tc.name, tc.typ, tc.sender, tc.room, got, tc.want)
		}
	}
	if f.Room.State.Match("m.room.name", "@alice:x", "!a:x", false) {
		t.Error("an empty types list let an event through; it must exclude everything")
	}
	if f.Room.Ephemeral.Match("m.typing", "@alice:x", "!a:x", false) || !f.Room.Ephemeral.Match("m.typing", "@alice:x", "!a:x", true) {
		t.Error("contains_url true must keep only events with a url")
	}
	if f.Room.AccountData.Match("m.tag", "", "!a:x", true) || !f.Room.AccountData.Match("m.tag", "", "!a:x", false) {
		t.Error("contains_url false must drop events with a url")
	}
	for room, want := range map[id.RoomID]bool{"!a:x": true, "!b:x": false, "!z:x": false} {
		if got := f.Room.MatchRoom(room); got != want {
			t.Errorf("MatchRoom(%s) = %v, want %v (not_rooms wins over rooms)", room, got, want)
		}
	}
	if f.Presence.Match("m.presence", "@spam:x") || !f.Presence.Match("m.presence", "@alice:x") {
		t.Error("presence not_senders not applied")
	}
	// The zero filter and nil filters let everything through.
	var zero userdata.Filter
	if !zero.Room.Timeline.Match("x", "@a:x", "!r:x", true) || !zero.Room.MatchRoom("!r:x") || !zero.AccountData.Match("x", "") {
		t.Error("the zero filter filtered something")
	}
	var nilRoom *userdata.RoomEventFilter
	var nilEvent *userdata.EventFilter
	var nilRooms *userdata.RoomFilter
	if !nilRoom.Match("x", "@a:x", "!r:x", false) || !nilEvent.Match("x", "@a:x") || !nilRooms.MatchRoom("!r:x") {
		t.Error("a nil filter filtered something")
	}
	if got := nilEvent.LimitOr(10); got != 10 {
		t.Errorf("nil LimitOr(10) = %d", got)
	}
}

func TestParseFilter(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		ok         bool
	}{
		{"empty", `{}`, true},
		{"spec example", `{"room":{"state":{"types":["m.room.*"],"not_rooms":["!726s6s6q:example.com"]},"timeline":{"limit":10,"types":["m.room.message"],"not_rooms":["!726s6s6q:example.com"],"not_senders":["@spam:example.com"]},"ephemeral":{"types":["m.receipt","m.typing"],"not_rooms":["!726s6s6q:example.com"],"not_senders":["@spam:example.com"]}},"presence":{"types":["m.presence"],"not_senders":["@alice:example.com"]},"event_format":"client","event_fields":["type","content","sender"]}`, true},
		{"unknown fields ignored", `{"org.example":1,"room":{"timeline":{"org.example":[1],"lazy_load_members":true}}}`, true},
		{"federation format", `{"event_format":"federation"}`, true},
		{"lazy loading flags", `{"room":{"state":{"lazy_load_members":true,"include_redundant_members":true,"unread_thread_notifications":true}}}`, true},
		{"null fields", `{"room":null,"presence":null,"event_fields":null}`, true},
		{"not an object", `[]`, false},
		{"a string", `"{}"`, false},
		{"bad event_format", `{"event_format":"xml"}`, false},
		{"event_format not a string", `{"event_format":1}`, false},
		{"limit zero", `{"room":{"timeline":{"limit":0}}}`, true},
		{"limit negative", `{"room":{"timeline":{"limit":-1}}}`, false},
		{"limit negative", `{"presence":{"limit":-1}}`, false},
		{"limit fractional", `{"room":{"timeline":{"limit":1.5}}}`, false},
		{"limit a string", `{"room":{"timeline":{"limit":"10"}}}`, false},
		{"types not a list", `{"room":{"timeline":{"types":"m.room.message"}}}`, false},
		{"types of numbers", `{"account_data":{"types":[1]}}`, false},
		{"room not an object", `{"room":[]}`, false},
		{"sender not a user ID", `{"room":{"timeline":{"senders":["alice"]}}}`, false},
		{"not_senders not a user ID", `{"presence":{"not_senders":["#a:x"]}}`, false},
		{"rooms not room IDs", `{"room":{"rooms":["#alias:x"]}}`, false},
		{"sub-filter rooms not room IDs", `{"room":{"state":{"not_rooms":["x"]}}}`, false},
		{"contains_url not a bool", `{"room":{"timeline":{"contains_url":"yes"}}}`, false},
		{"include_leave not a bool", `{"room":{"include_leave":1}}`, false},
		{"event_fields not strings", `{"event_fields":[1]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := userdata.ParseFilter([]byte(tc.json))
			if tc.ok && err != nil {
				t.Errorf("ParseFilter(%s) = %v, want ok", tc.json, err)
			}
			if !tc.ok && !errors.Is(err, userdata.ErrBadJSON) {
				t.Errorf("ParseFilter(%s) = %v, want ErrBadJSON", tc.json, err)
			}
		})
	}
	f, err := userdata.ParseFilter([]byte(`{"room":{"timeline":{"limit":20,"lazy_load_members":true}},"presence":{"types":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Room.Timeline.LimitOr(10); got != 20 {
		t.Errorf("timeline LimitOr(10) = %d, want 20", got)
	}
	if got := f.Room.State.LimitOr(10); got != 10 {
		t.Errorf("state LimitOr(10) = %d, want the default 10", got)
	}
	if !f.Room.Timeline.LazyLoadMembers || f.Presence.Types == nil {
		t.Errorf("parsed %+v: lost lazy_load_members or an empty types list", f)
	}
	if _, err := userdata.ParseRoomEventFilter([]byte(`{"types":["m.room.message"],"contains_url":true,"limit":5}`)); err != nil {
		t.Errorf("ParseRoomEventFilter: %v", err)
	}
	if _, err := userdata.ParseRoomEventFilter([]byte(`{"limit":-1}`)); !errors.Is(err, userdata.ErrBadJSON) {
		t.Errorf("ParseRoomEventFilter limit -1: %v, want ErrBadJSON", err)
	}
}
