package sync

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

const me = id.UserID("@me:x")

func spec(t *testing.T, raw string) *stateSpec {
	t.Helper()
	var rs RequiredState
	if err := json.Unmarshal([]byte(raw), &rs); err != nil {
		t.Fatalf("required_state %s: %v", raw, err)
	}
	return newStateSpec(rs, me)
}

func TestRequiredStateMatch(t *testing.T) {
	type key struct{ typ, sk string }
	cases := []struct {
		raw  string
		yes  []key
		no   []key
		lazy bool
	}{
		{raw: `[["m.room.name",""],["m.room.member","$ME"]]`,
			yes: []key{{"m.room.name", ""}, {"m.room.member", string(me)}},
			no:  []key{{"m.room.topic", ""}, {"m.room.member", "@you:x"}, {"m.room.name", "x"}}},
		{raw: `[["m.space.child","*"]]`,
			yes: []key{{"m.space.child", "!a:x"}, {"m.space.child", ""}},
			no:  []key{{"m.space.parent", "!a:x"}}},
		{raw: `[["*","*"]]`, yes: []key{{"m.room.member", "@you:x"}, {"anything", "at all"}}},
		{raw: `[["*","*"],["m.room.member","$LAZY"]]`, lazy: true,
			yes: []key{{"m.room.name", ""}},
			no:  []key{{"m.room.member", "@you:x"}, {"m.room.member", string(me)}}},
		{raw: `[["*","*"],["m.room.member","$LAZY"],["m.room.member","$ME"]]`, lazy: true,
			yes: []key{{"m.room.member", string(me)}}, no: []key{{"m.room.member", "@you:x"}}},
		{raw: `[["*","@you:x"]]`, yes: []key{{"m.room.member", "@you:x"}, {"x.custom", "@you:x"}}, no: []key{{"m.room.name", ""}}},
		{raw: `[["m.room.member","$LAZY"]]`, lazy: true, no: []key{{"m.room.member", "@you:x"}}},
		{raw: `{"include":[{}],"exclude":[{"type":"m.room.create","state_key":""}],"lazy_members":true}`, lazy: true,
			yes: []key{{"m.room.name", ""}}, no: []key{{"m.room.create", ""}, {"m.room.member", "@you:x"}}},
		{raw: `{"include":[{"type":"m.room.member"}]}`, yes: []key{{"m.room.member", "@you:x"}}, no: []key{{"m.room.name", ""}}},
		{raw: `null`, no: []key{{"m.room.name", ""}}},
	}
	for _, c := range cases {
		s := spec(t, c.raw)
		if s.lazy != c.lazy {
			t.Errorf("%s: lazy = %v, want %v", c.raw, s.lazy, c.lazy)
		}
		for _, k := range c.yes {
			if !s.Match(k.typ, k.sk) {
				t.Errorf("%s: Match(%q, %q) = false, want true", c.raw, k.typ, k.sk)
			}
		}
		for _, k := range c.no {
			if s.Match(k.typ, k.sk) {
				t.Errorf("%s: Match(%q, %q) = true, want false", c.raw, k.typ, k.sk)
			}
		}
	}
}

func TestRequiredStateRefusals(t *testing.T) {
	for _, raw := range []string{`5`, `"x"`, `[["a"]]`, `[["a","b","c"]]`, `[[1,2]]`, `{"include":5}`, `{"lazy_members":"yes"}`} {
		var rs RequiredState
		if err := json.Unmarshal([]byte(raw), &rs); err == nil {
			t.Errorf("required_state %s was accepted", raw)
		}
	}
}

func TestRequiredStateKeys(t *testing.T) {
	keys, types, ok := spec(t, `[["m.room.name",""],["m.space.child","*"],["m.room.member","$LAZY"]]`).Keys()
	if !ok || len(keys) != 1 || keys[0].Type != "m.room.name" || len(types) != 1 || types[0] != "m.space.child" {
		t.Errorf("Keys() = %v, %v, %v", keys, types, ok)
	}
	if _, _, ok := spec(t, `[["*","@you:x"]]`).Keys(); ok {
		t.Error("a state key of any type was listed as exact keys")
	}
}

func TestRequiredStateWithin(t *testing.T) {
	cases := []struct {
		s, o string
		want bool
	}{
		{`[["m.room.name",""]]`, `[["m.room.name",""],["m.room.topic",""]]`, true},
		{`[["m.room.name",""],["m.room.topic",""]]`, `[["m.room.name",""]]`, false},
		{`[["m.space.child","!a:x"]]`, `[["m.space.child","*"]]`, true},
		{`[["m.space.child","*"]]`, `[["m.space.child","!a:x"]]`, false},
		{`[["m.room.name",""]]`, `[["*","*"]]`, true},
		{`[["m.room.member","@you:x"]]`, `[["*","*"],["m.room.member","$LAZY"]]`, false},
		{`[["m.room.member","$LAZY"]]`, `[]`, false},
		{`[]`, `[["m.room.member","$LAZY"]]`, true},
		{`[["*","*"]]`, `[["*","*"],["m.room.member","$LAZY"]]`, false},
		{`[["*","*"],["m.room.member","$LAZY"]]`, `[["*","*"]]`, false},
		{`[["m.room.name",""],["m.room.topic",""]]`, `[["m.room.topic",""],["m.room.name",""]]`, true},
	}
	for _, c := range cases {
		if got := spec(t, c.s).within(spec(t, c.o)); got != c.want {
			t.Errorf("%s within %s = %v, want %v", c.s, c.o, got, c.want)
		}
	}
	// A union selects what either selects, and both are within it.
	a, b := spec(t, `[["m.room.name",""]]`), spec(t, `[["m.space.child","*"],["m.room.member","$LAZY"]]`)
	u := a.union(b)
	if !u.Match("m.room.name", "") || !u.Match("m.space.child", "!c:x") || !u.lazy || !a.within(u) || !b.within(u) {
		t.Errorf("union of %s and %s = %s", a.canon, b.canon, u.canon)
	}
	if f := (freshState{spec: u, seen: a}); f.Match("m.room.name", "") || !f.Match("m.space.child", "!c:x") {
		t.Error("fresh state selects what was seen, or not what is new")
	}
}

func TestSlidingPos(t *testing.T) {
	for _, s := range []string{"s10_c3", "s10_t5_c3"} {
		p, err := ParseSlidingPos(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseSlidingPos(%q) = %v, %v; String() = %q", s, p, err, p.String())
		}
	}
	for _, s := range []string{"", "s10", "s10_c0", "s10_c", "10_c3", "s10_cx", "s10_d4_c3", "sx_c3", "s10_C3", "s10__c3"} {
		if _, err := ParseSlidingPos(s); !errors.Is(err, ErrInvalidParam) {
			t.Errorf("ParseSlidingPos(%q) = %v, want ErrInvalidParam", s, err)
		}
	}
}

func TestSlidingConnections(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newSlidingConns(func() time.Time { return now })
	c.perDevice, c.max = 2, 3
	k := connKey{user: me, device: "D", conn: "a"}
	st, err := c.begin(k, nil)
	if err != nil || len(st.rooms) != 0 {
		t.Fatal(err)
	}
	st.issued = Token{Pos: 5}
	p1 := SlidingPos{Token: Token{Pos: 5}, Conn: c.commit(k, st)}
	if _, err := c.begin(k, &p1); err != nil {
		t.Fatalf("the pos just given: %v", err)
	}
	forged := p1
	forged.Pos = 6
	if _, err := c.begin(k, &forged); !errors.Is(err, ErrUnknownPos) {
		t.Errorf("a pos with another token: %v", err)
	}
	if _, err := c.begin(connKey{user: me, device: "D", conn: "b"}, &p1); !errors.Is(err, ErrUnknownPos) {
		t.Errorf("the pos on another connection: %v", err)
	}

	// Idle for longer than DefaultSlidingIdle: gone.
	now = now.Add(DefaultSlidingIdle + time.Second)
	if _, err := c.begin(k, &p1); !errors.Is(err, ErrUnknownPos) {
		t.Errorf("an expired connection: %v", err)
	}
	if c.count() != 0 {
		t.Errorf("%d connections kept after expiry", c.count())
	}

	// A device's third connection ends its least recently used; the total is bounded too.
	for i, conn := range []string{"a", "b", "c"} {
		now = now.Add(time.Second)
		st := &connState{issued: Token{Pos: int64(i)}}
		c.commit(connKey{user: me, device: "D", conn: conn}, st)
	}
	if _, ok := c.conns[connKey{user: me, device: "D", conn: "a"}]; ok || c.count() != 2 {
		t.Errorf("after three connections of one device: %d kept, a kept %v", c.count(), ok)
	}
	for _, u := range []id.UserID{"@u1:x", "@u2:x"} {
		now = now.Add(time.Second)
		c.commit(connKey{user: u, device: "D"}, &connState{})
	}
	if c.count() != 3 {
		t.Errorf("%d connections kept, want at most 3", c.count())
	}

	// A connection keeps only a few positions, and a request drops all but its own.
	k = connKey{user: "@u2:x", device: "D"}
	var last SlidingPos
	for i := range maxStatesPerConn + 2 {
		last = SlidingPos{Token: Token{Pos: int64(10 + i)}}
		last.Conn = c.commit(k, &connState{issued: last.Token})
	}
	if n := len(c.conns[k].states); n != maxStatesPerConn {
		t.Errorf("a connection keeps %d positions, want %d", n, maxStatesPerConn)
	}
	if _, err := c.begin(k, &last); err != nil || len(c.conns[k].states) != 1 {
		t.Errorf("begin at the last pos: %v, %d positions kept", err, len(c.conns[k].states))
	}
}

func TestFilterReceipts(t *testing.T) {
	raw := json.RawMessage(`{"type":"m.receipt","content":{
		"$a":{"m.read":{"@you:x":{"ts":1},"@me:x":{"ts":2}}},
		"$b":{"m.read":{"@you:x":{"ts":3}}},
		"$c":{"m.read.private":{"@me:x":{"ts":4}}}}}`)
	got := filterReceipts(raw, map[string]bool{"$b": true}, me)
	var ev struct {
		Content map[string]map[string]map[string]any `json:"content"`
	}
	json.Unmarshal(got, &ev)
	c := ev.Content
	if len(c) != 3 || len(c["$a"]["m.read"]) != 1 || c["$a"]["m.read"][string(me)] == nil || len(c["$b"]["m.read"]) != 1 || c["$c"] == nil {
		t.Errorf("filtered receipts = %s", got)
	}
	if got := filterReceipts(json.RawMessage(`{"type":"m.receipt","content":{"$a":{"m.read":{"@you:x":{}}}}}`), nil, me); got != nil {
		t.Errorf("nothing to keep gave %s", got)
	}
}
