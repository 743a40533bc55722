package rooms

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

func TestDirectoryTokenRoundTrip(t *testing.T) {
	for _, want := range []directoryToken{
		{forwards: true, joined: 12, roomID: "!abc:example.org"},
		{joined: 0, roomID: ""},
		{forwards: true, joined: 1 << 40, roomID: "!with|pipe:example.org"},
	} {
		got, err := parseDirectoryToken(want.String())
		if err != nil || got != want {
			t.Errorf("parseDirectoryToken(%q) = %+v, %v; want %+v", want.String(), got, err, want)
		}
	}
	for _, bad := range []string{"", "!!!", "eDEyfCFh", "ZjEyIWE"} {
		if _, err := parseDirectoryToken(bad); err == nil {
			t.Errorf("parseDirectoryToken(%q) accepted", bad)
		}
	}
}

func TestPlainTopic(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{`{"topic":"Flood"}`, "Flood"},
		{`{"topic":"","m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"},{"body":"x"}]}}`, "x"},
		{`{"m.topic":{"m.text":[{"mimetype":"text/plain","body":"plain"}]}}`, "plain"},
		{`{"m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"}]}}`, ""},
		{`{"topic":5}`, ""},
	} {
		if got := plainTopic(gjson.Parse(c.content)); got != c.want {
			t.Errorf("plainTopic(%s) = %q, want %q", c.content, got, c.want)
		}
	}
}

func TestValidOrder(t *testing.T) {
	for _, c := range []struct {
		order string
		want  bool
	}{{" ", true}, {"aaaa", true}, {"~", true}, {"\x1f", false}, {"é", false}, {string(make([]byte, 51)), false}} {
		if got := validOrder(c.order); got != c.want {
			t.Errorf("validOrder(%q) = %v, want %v", c.order, got, c.want)
		}
	}
}

func TestWithoutAliases(t *testing.T) {
	drop := func(a string) bool { return a == "#gone:here" }
	for _, c := range []struct {
		content, want string
		changed       bool
	}{
		{`{"alias":"#gone:here"}`, `{}`, true},
		{`{"alias":"#kept:here","alt_aliases":["#gone:here","#b:here"]}`, `{"alias":"#kept:here","alt_aliases":["#b:here"]}`, true},
		{`{"alt_aliases":["#gone:here"],"extra":1}`, `{"extra":1}`, true},
		{`{"alias":"#kept:here","alt_aliases":"odd"}`, `{"alias":"#kept:here","alt_aliases":"odd"}`, false},
	} {
		got, changed, err := withoutAliases([]byte(c.content), drop)
		if err != nil || string(got) != c.want || changed != c.changed {
			t.Errorf("withoutAliases(%s) = %s, %v, %v; want %s, %v", c.content, got, changed, err, c.want, c.changed)
		}
	}
}

func TestUpgradedPowerLevels(t *testing.T) {
	alice, bob := id.UserID("@alice:here"), id.UserID("@bob:here")
	old := json.RawMessage(`{"users":{"@alice:here":"60","@bob:here":50},"events":{"m.room.encryption":100},"ban":50,"state_default":50}`)
	initial, restore, err := upgradedPowerLevels(old, alice, id.RoomV10, nil, id.RoomV11, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(initial, `users.@alice:here`).Int(); got != 100 {
		t.Errorf("raised level = %d, want 100 (enough to copy m.room.encryption)", got)
	}
	if got := gjson.GetBytes(restore, `users.@alice:here`).Raw; got != "60" {
		t.Errorf("restored level = %s, want 60 as an integer", got)
	}
	// Upgrading to v12: the creators leave users, nothing to restore.
	initial, restore, err = upgradedPowerLevels(old, alice, id.RoomV10, nil, id.RoomV12, []id.UserID{bob})
	if err != nil || restore != nil || gjson.GetBytes(initial, "users").Raw != "{}" {
		t.Errorf("to v12: %s, %s, %v; want no users and no restore", initial, restore, err)
	}
	// Leaving v12: its creators keep an admin's power.
	initial, restore, err = upgradedPowerLevels(json.RawMessage(`{"users":{}}`), alice, id.RoomV12,
		map[id.UserID]bool{alice: true, bob: true}, id.RoomV11, nil)
	if err != nil || restore != nil || fmt.Sprint(gjson.GetBytes(initial, "users").Value()) != "map[@alice:here:100 @bob:here:100]" {
		t.Errorf("from v12: %s, %s, %v", initial, restore, err)
	}
}

func TestRestrictedPowerLevels(t *testing.T) {
	for _, c := range []struct{ old, want string }{
		{`{}`, `{"events_default":50,"invite":50}`},
		{`{"users_default":60,"events_default":0}`, `{"events_default":61,"invite":61,"users_default":60}`},
		{`{"events_default":70,"invite":"55"}`, ``},
	} {
		got, err := restrictedPowerLevels(json.RawMessage(c.old))
		if err != nil || string(got) != c.want {
			t.Errorf("restrictedPowerLevels(%s) = %s, %v; want %s", c.old, got, err, c.want)
		}
	}
}
