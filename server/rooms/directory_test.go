package rooms

import (
	"testing"

	"github.com/tidwall/gjson"
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
