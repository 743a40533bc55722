package push

import (
	"encoding/json"
	"slices"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
)

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		words   bool
		value   string
		want    bool
	}{
		// The spec's examples for a whole-value match.
		{"lunc?*", false, "Lunch plans", true},
		{"lunc?*", false, "LUNCH", true},
		{"lunc?*", false, " lunch", false},
		{"lunc?*", false, "lunc", false},
		// Without wildcards the value must match whole, not as a substring.
		{"m.room.message", false, "m.room.message", true},
		{"m.room.message", false, "M.Room.Message", true},
		{"m.room.message", false, "m.room.message.x", false},
		{"", false, "", true},
		{"", false, "x", false},
		{"@bob:hs", false, "@bob:hs.evil", false},
		// Regexp metacharacters are literal.
		{"a.c", false, "abc", false},
		{"a+c*", false, "a+cd", true},
		// The spec's examples for content.body: words anywhere.
		{"ex*ple", true, "An example event.", true},
		{"ex*ple", true, "exple", true},
		{"ex*ple", true, "An exciting triple-whammy", true},
		{"cake", true, "I like cake!", true},
		{"cake", true, "I like CAKE", true},
		{"cake", true, "cakes", false},
		{"cake", true, "pancake", false},
		{"cake", true, "pan_cake", false},
		{"cake", true, "pancake cake", true},
		{"cake", true, "kaka", false},
		{"cake", true, "écake", true}, // a non-ASCII letter is a boundary, as the spec defines it
		{"@room", true, "hey @room, look", true},
		{"@room", true, "hey @roomy", false},
		{"multi\nline", true, "a multi\nline b", true},
		{"a*b", true, "a\nb", true},
	} {
		if got := compileGlob(tc.pattern, tc.words).match(&Event{}, tc.value); got != tc.want {
			t.Errorf("glob %q (words %v) on %q = %v, want %v", tc.pattern, tc.words, tc.value, got, tc.want)
		}
	}
}

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"content.body", []string{"content", "body"}},
		{`content.m\.relates_to.rel_type`, []string{"content", "m.relates_to", "rel_type"}},
		{`content.m\\foo`, []string{"content", `m\foo`}},
		{`content.m\x`, []string{"content", `m\x`}},
		{"type", []string{"type"}},
		{`a\`, []string{`a\`}},
	} {
		if got := splitPath(tc.key); !slices.Equal(got, tc.want) {
			t.Errorf("splitPath(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

// fakeRoom answers RoomInfo from fields.
type fakeRoom struct {
	members   int
	name      string
	canNotify bool
}

func (r fakeRoom) MemberCount() int            { return r.members }
func (r fakeRoom) DisplayName() string         { return r.name }
func (r fakeRoom) SenderCanNotify(string) bool { return r.canNotify }

func testEvent(t *testing.T, typ string, stateKey *string, content string) *Event {
	t.Helper()
	p := &pdu.PDU{Type: typ, Sender: "@alice:hs", StateKey: stateKey, Content: json.RawMessage(content), OriginServerTS: 1}
	return NewEvent("$ev", "!room:hs", p)
}

func cond(t *testing.T, s string) ccond {
	t.Helper()
	var c Condition
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("condition %s: %v", s, err)
	}
	return compileCondition(c)
}

func TestConditions(t *testing.T) {
	empty := ""
	msg := `{"msgtype":"m.text","body":"Hello Bob!","n":3,"f":1.5,"flag":false,"nothing":null,"m.mentions":{"user_ids":["@bob:hs"],"room":true},"m.relates_to":{"rel_type":"m.replace"},"list":[1,"x",true,null,{"a":1}],"obj":{"a":1}}`
	for _, tc := range []struct {
		name  string
		cond  string
		event *Event
		room  fakeRoom
		want  bool
	}{
		{"type matches", `{"kind":"event_match","key":"type","pattern":"m.room.message"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"type is whole", `{"kind":"event_match","key":"type","pattern":"m.room"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"body is words", `{"kind":"event_match","key":"content.body","pattern":"bob"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"non-string never matches *", `{"kind":"event_match","key":"content.n","pattern":"*"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"absent never matches *", `{"kind":"event_match","key":"content.topic","pattern":"*"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"empty state key", `{"kind":"event_match","key":"state_key","pattern":""}`, testEvent(t, "m.room.tombstone", &empty, `{}`), fakeRoom{}, true},
		{"state key absent", `{"kind":"event_match","key":"state_key","pattern":""}`, testEvent(t, "m.room.tombstone", nil, `{}`), fakeRoom{}, false},
		{"escaped dot", `{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"is bool", `{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"is false", `{"kind":"event_property_is","key":"content.flag","value":false}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"is null", `{"kind":"event_property_is","key":"content.nothing","value":null}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"absent is not null", `{"kind":"event_property_is","key":"content.missing","value":null}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"is integer", `{"kind":"event_property_is","key":"content.n","value":3}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"no casting", `{"kind":"event_property_is","key":"content.n","value":"3"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"no floats", `{"kind":"event_property_is","key":"content.f","value":1}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"compound value never matches", `{"kind":"event_property_is","key":"content.obj","value":{"a":1}}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"contains", `{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":"@bob:hs"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"contains not", `{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":"@carol:hs"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"contains null", `{"kind":"event_property_contains","key":"content.list","value":null}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, true},
		{"contains on non-array", `{"kind":"event_property_contains","key":"content.body","value":"Hello Bob!"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"display name", `{"kind":"contains_display_name"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{name: "bob"}, true},
		{"display name whole word", `{"kind":"contains_display_name"}`, testEvent(t, "m.room.message", nil, `{"body":"bobby"}`), fakeRoom{name: "bob"}, false},
		{"no display name", `{"kind":"contains_display_name"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"display name is literal", `{"kind":"contains_display_name"}`, testEvent(t, "m.room.message", nil, `{"body":"bxb"}`), fakeRoom{name: "b?b"}, false},
		{"member count", `{"kind":"room_member_count","is":"2"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{members: 2}, true},
		{"member count ==", `{"kind":"room_member_count","is":"==2"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{members: 3}, false},
		{"member count <=", `{"kind":"room_member_count","is":"<=10"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{members: 10}, true},
		{"member count >", `{"kind":"room_member_count","is":">10"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{members: 10}, false},
		{"member count malformed", `{"kind":"room_member_count","is":"two"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{members: 2}, false},
		{"sender permission", `{"kind":"sender_notification_permission","key":"room"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{canNotify: true}, true},
		{"sender permission refused", `{"kind":"sender_notification_permission","key":"room"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"unknown kind", `{"kind":"org.example.future"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
		{"event_match without pattern", `{"kind":"event_match","key":"type"}`, testEvent(t, "m.room.message", nil, msg), fakeRoom{}, false},
	} {
		c := cond(t, tc.cond)
		if got := c.matches(tc.event, tc.room); got != tc.want {
			t.Errorf("%s: %s = %v, want %v", tc.name, tc.cond, got, tc.want)
		}
	}
}

// matchDefault matches an event against the default rules of @bob:hs.
func matchDefault(t *testing.T, ev *Event, room fakeRoom, change func(*changes)) string {
	t.Helper()
	c := &changes{}
	if change != nil {
		change(c)
	}
	r := compile(c.merge("@bob:hs")).match(ev, room)
	if r == nil {
		return ""
	}
	return r.id
}

func TestDefaultRules(t *testing.T) {
	bob := "@bob:hs"
	group := fakeRoom{members: 5, name: "Bob", canNotify: true}
	for _, tc := range []struct {
		name string
		ev   *Event
		room fakeRoom
		want string
	}{
		{"message", testEvent(t, "m.room.message", nil, `{"msgtype":"m.text","body":"hi"}`), group, ".m.rule.message"},
		{"notice", testEvent(t, "m.room.message", nil, `{"msgtype":"m.notice","body":"hi"}`), group, ".m.rule.suppress_notices"},
		{"one to one", testEvent(t, "m.room.message", nil, `{"msgtype":"m.text","body":"hi"}`), fakeRoom{members: 2}, ".m.rule.room_one_to_one"},
		{"encrypted one to one", testEvent(t, "m.room.encrypted", nil, `{"ciphertext":"x"}`), fakeRoom{members: 2}, ".m.rule.encrypted_room_one_to_one"},
		{"encrypted group", testEvent(t, "m.room.encrypted", nil, `{"ciphertext":"x"}`), group, ".m.rule.encrypted"},
		{"invite for me", testEvent(t, "m.room.member", &bob, `{"membership":"invite"}`), group, ".m.rule.invite_for_me"},
		{"other member event", testEvent(t, "m.room.member", new("@carol:hs"), `{"membership":"invite"}`), group, ".m.rule.member_event"},
		{"user mention", testEvent(t, "m.room.message", nil, `{"body":"hi","m.mentions":{"user_ids":["@bob:hs"]}}`), group, ".m.rule.is_user_mention"},
		{"room mention", testEvent(t, "m.room.message", nil, `{"body":"hi","m.mentions":{"room":true}}`), group, ".m.rule.is_room_mention"},
		{"room mention without power", testEvent(t, "m.room.message", nil, `{"body":"hi","m.mentions":{"room":true}}`), fakeRoom{members: 5}, ".m.rule.message"},
		{"legacy display name", testEvent(t, "m.room.message", nil, `{"body":"hey bob, look"}`), group, ".m.rule.contains_display_name"},
		{"legacy stands aside for m.mentions", testEvent(t, "m.room.message", nil, `{"body":"hey bob, look","m.mentions":{}}`), group, ".m.rule.message"},
		{"legacy @room", testEvent(t, "m.room.message", nil, `{"body":"@room hello"}`), fakeRoom{members: 5, canNotify: true}, ".m.rule.roomnotif"},
		{"legacy user name", testEvent(t, "m.room.message", nil, `{"body":"ping BOB"}`), fakeRoom{members: 5}, ".m.rule.contains_user_name"},
		{"tombstone", testEvent(t, "m.room.tombstone", new(""), `{"body":"gone"}`), group, ".m.rule.tombstone"},
		{"reaction", testEvent(t, "m.reaction", nil, `{}`), group, ".m.rule.reaction"},
		{"server acl", testEvent(t, "m.room.server_acl", new(""), `{}`), group, ".m.rule.room.server_acl"},
		{"edit", testEvent(t, "m.room.message", nil, `{"body":"* hi","m.relates_to":{"rel_type":"m.replace","event_id":"$x"}}`), group, ".m.rule.suppress_edits"},
		{"call", testEvent(t, "m.call.invite", nil, `{}`), group, ".m.rule.call"},
		{"topic", testEvent(t, "m.room.topic", new(""), `{"topic":"x"}`), group, ""},
	} {
		if got := matchDefault(t, tc.ev, tc.room, nil); got != tc.want {
			t.Errorf("%s: matched %q, want %q", tc.name, got, tc.want)
		}
	}

	ev := testEvent(t, "m.room.message", nil, `{"msgtype":"m.text","body":"hi"}`)
	// The master rule, once enabled, comes before the user's own override rules.
	got := matchDefault(t, ev, group, func(c *changes) {
		c.put(Override, "mine", &NewRule{Actions: []json.RawMessage{json.RawMessage(`"notify"`)}, Conditions: []Condition{}}, "", "")
		c.set(Override, masterRule, new(true), nil)
	})
	if got != masterRule {
		t.Errorf("with the master rule enabled, matched %q", got)
	}
	// The user's own rules of a kind come before the defaults of the same kind.
	got = matchDefault(t, ev, group, func(c *changes) {
		c.put(Underride, "mine", &NewRule{Actions: []json.RawMessage{}, Conditions: []Condition{}}, "", "")
	})
	if got != "mine" {
		t.Errorf("with an own underride rule, matched %q", got)
	}
	// Room and sender rules.
	got = matchDefault(t, ev, group, func(c *changes) {
		c.put(Room, "!room:hs", &NewRule{Actions: []json.RawMessage{}}, "", "")
		c.put(Sender, "@alice:hs", &NewRule{Actions: []json.RawMessage{}}, "", "")
	})
	if got != "!room:hs" {
		t.Errorf("with a room rule, matched %q", got)
	}
	got = matchDefault(t, ev, group, func(c *changes) {
		c.put(Room, "!other:hs", &NewRule{Actions: []json.RawMessage{}}, "", "")
		c.put(Sender, "@alice:hs", &NewRule{Actions: []json.RawMessage{}}, "", "")
	})
	if got != "@alice:hs" {
		t.Errorf("with a sender rule, matched %q", got)
	}
	// A disabled rule never matches.
	got = matchDefault(t, ev, group, func(c *changes) { c.set(Underride, ".m.rule.message", new(false), nil) })
	if got != "" {
		t.Errorf("with .m.rule.message disabled, matched %q", got)
	}
}

func TestParseActions(t *testing.T) {
	for _, tc := range []struct {
		actions         string
		notify, highlit bool
		tweaks          int
	}{
		{`["notify"]`, true, false, 0},
		{`["notify",{"set_tweak":"highlight"}]`, true, true, 0},
		{`["notify",{"set_tweak":"highlight","value":false}]`, true, false, 1},
		{`["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight","value":true}]`, true, true, 2},
		{`["dont_notify"]`, false, false, 0},
		{`[]`, false, false, 0},
	} {
		var raw []json.RawMessage
		json.Unmarshal([]byte(tc.actions), &raw)
		a := parseActions(raw)
		if a.Notify != tc.notify || a.Highlight != tc.highlit || len(a.Tweaks) != tc.tweaks {
			t.Errorf("parseActions(%s) = notify %v highlight %v tweaks %v", tc.actions, a.Notify, a.Highlight, a.Tweaks)
		}
	}
}

func TestChangesPlacement(t *testing.T) {
	c := &changes{}
	rule := &NewRule{Actions: []json.RawMessage{json.RawMessage(`"notify"`)}}
	order := func() []string {
		var ids []string
		for _, r := range c.merge("@bob:hs").Room {
			ids = append(ids, r.RuleID)
		}
		return ids
	}
	put := func(ruleID, before, after string) error { return c.put(Room, ruleID, rule, before, after) }
	for _, step := range []struct {
		ruleID, before, after string
		want                  []string
	}{
		{"a", "", "", []string{"a"}},
		{"b", "", "", []string{"b", "a"}},
		{"c", "", "a", []string{"b", "a", "c"}},
		{"d", "b", "", []string{"d", "b", "a", "c"}},
		{"c", "d", "", []string{"c", "d", "b", "a"}},
		{"b", "", "a", []string{"c", "d", "a", "b"}},
		{"a", "", "", []string{"c", "d", "a", "b"}},
		{"e", "c", "b", []string{"e", "c", "d", "a", "b"}},
	} {
		if err := put(step.ruleID, step.before, step.after); err != nil {
			t.Fatalf("put %s before %q after %q: %v", step.ruleID, step.before, step.after, err)
		}
		if got := order(); !slices.Equal(got, step.want) {
			t.Fatalf("after put %s before %q after %q: %v, want %v", step.ruleID, step.before, step.after, got, step.want)
		}
	}
	if err := put("f", "nope", ""); err == nil {
		t.Error("placing before an unknown rule succeeded")
	}
	if err := c.put(Override, "g", &NewRule{Actions: rule.Actions, Conditions: []Condition{}}, ".m.rule.master", ""); err == nil {
		t.Error("placing before a server-default rule succeeded")
	}
	if err := put(".mine", "", ""); err == nil {
		t.Error("a rule ID starting with '.' was taken")
	}
}

// BenchmarkMatch is one member's evaluation of a message against the default rules, the
// work every local member costs each event.
func BenchmarkMatch(b *testing.B) {
	c := &changes{}
	for _, room := range []string{"!a:hs", "!b:hs", "!c:hs"} {
		c.put(Room, room, &NewRule{Actions: []json.RawMessage{}}, "", "")
	}
	c.put(Content, "cake", &NewRule{Actions: []json.RawMessage{json.RawMessage(`"notify"`)}, Pattern: new("cake*lie")}, "", "")
	rules := compile(c.merge("@bob:hs"))
	p := &pdu.PDU{Type: "m.room.message", Sender: "@alice:hs",
		Content: json.RawMessage(`{"msgtype":"m.text","body":"The quick brown fox jumps over the lazy dog, as foxes do","m.mentions":{}}`)}
	room := fakeRoom{members: 12, name: "Bob"}
	b.ReportAllocs()
	for b.Loop() {
		ev := NewEvent("$ev", "!room:hs", p)
		if r := rules.match(ev, room); r == nil || r.id != ".m.rule.message" {
			b.Fatalf("matched %v", r)
		}
	}
}
