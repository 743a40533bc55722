package sync_test

import (
	"errors"
	"testing"

	"fyr/server/rooms"
	"fyr/server/sync"
)

func TestTokenRoundTrip(t *testing.T) {
	for _, tok := range []sync.Token{{Pos: 0}, {Pos: 4711}, {Pos: 4711, Typing: 12}, {Pos: 4711, Typing: 12, ToDevice: 4690}, {Pos: 9, ToDevice: 3}} {
		s := tok.String()
		got, err := sync.ParseToken(s)
		if err != nil || got != tok {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v", s, got, err, tok)
		}
		// /messages reads the same position out of it.
		if pos, err := rooms.ParseToken(s); err != nil || pos != tok.Pos {
			t.Errorf("rooms.ParseToken(%q) = %d, %v; want %d", s, pos, err, tok.Pos)
		}
	}
}

func TestTokenString(t *testing.T) {
	cases := []struct {
		tok  sync.Token
		want string
	}{
		{sync.Token{Pos: 5}, "s5"},
		{sync.Token{Pos: 5, Typing: 2}, "s5_t2"},
		{sync.Token{Pos: 5, ToDevice: 3}, "s5_d3"},
		// delivery that reached the position needs no part of its own
		{sync.Token{Pos: 5, ToDevice: 5}, "s5"},
	}
	for _, c := range cases {
		if got := c.tok.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.tok, got, c.want)
		}
	}
}

func TestParseToken(t *testing.T) {
	cases := []struct {
		in   string
		want sync.Token
		ok   bool
	}{
		{"s0", sync.Token{}, true},
		{"s42", sync.Token{Pos: 42}, true},
		{"s42_t7", sync.Token{Pos: 42, Typing: 7}, true},
		{"s42_d40_t7", sync.Token{Pos: 42, Typing: 7, ToDevice: 40}, true},
		{"s42_x9", sync.Token{Pos: 42}, true}, // a stream this version does not know
		{"", sync.Token{}, false},
		{"s", sync.Token{}, false},
		{"42", sync.Token{}, false},
		{"S42", sync.Token{}, false},
		{"s+42", sync.Token{}, false},
		{"s-1", sync.Token{}, false},
		{"s 42", sync.Token{}, false},
		{"s42_", sync.Token{}, false},
		{"s42__t1", sync.Token{}, false},
		{"s42_t", sync.Token{}, false},
		{"s42_7", sync.Token{}, false},
		{"s42_T7", sync.Token{}, false},
		{"s42_t-7", sync.Token{}, false},
		{"s42_d43", sync.Token{}, false},
		{"t3-42", sync.Token{}, false},
		{"s99999999999999999999", sync.Token{}, false},
	}
	for _, c := range cases {
		got, err := sync.ParseToken(c.in)
		if c.ok && (err != nil || got != c.want) {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if !c.ok && !errors.Is(err, sync.ErrInvalidParam) {
			t.Errorf("ParseToken(%q) = %+v, %v; want ErrInvalidParam", c.in, got, err)
		}
	}
}
