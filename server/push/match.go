package push

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Matching follows the spec's conditions, not mautrix-go's pushrules package: that package
// matches an event_match pattern without wildcards as a substring of any value (so "type
// m.room.message" also matches "m.room.message.x", and "state_key ''" every state key),
// matches display names case-sensitively, and drops a condition's value when it is false or
// null. The rule shapes and defaults are the spec's own, kept as JSON.
//
// See https://spec.matrix.org/v1.19/client-server-api/#conditions-1

// Event is an event as push rules see it: its client-format fields, content decoded.
type Event struct {
	fields   map[string]any
	roomID   id.RoomID
	sender   id.UserID
	body     string
	hasBody  bool
	mentions bool
	// lowerBody is body in lower case, made on first use.
	lowerBody *string
}

// lower returns s in lower case, from a cache when s is the body.
func (ev *Event) lower(s string) string {
	if s != ev.body {
		return strings.ToLower(s)
	}
	if ev.lowerBody == nil {
		l := strings.ToLower(s)
		ev.lowerBody = &l
	}
	return *ev.lowerBody
}

// NewEvent prepares a PDU for matching.
func NewEvent(eventID id.EventID, roomID id.RoomID, p *pdu.PDU) *Event {
	ev := &Event{roomID: roomID, sender: p.Sender, fields: map[string]any{
		"event_id": string(eventID), "room_id": string(roomID), "sender": string(p.Sender),
		"type": p.Type, "origin_server_ts": json.Number(strconv.FormatInt(p.OriginServerTS, 10)),
	}}
	if p.StateKey != nil {
		ev.fields["state_key"] = *p.StateKey
	}
	if p.Redacts != nil {
		ev.fields["redacts"] = string(*p.Redacts)
	}
	dec := json.NewDecoder(bytes.NewReader(p.Content))
	dec.UseNumber()
	var content any
	if dec.Decode(&content) == nil {
		ev.fields["content"] = content
		if m, ok := content.(map[string]any); ok {
			ev.body, ev.hasBody = m["body"].(string)
			_, ev.mentions = m["m.mentions"]
		}
	}
	return ev
}

// RoomInfo is what matching needs to know of the room and the user the rules belong to, as
// the room stands before the event.
type RoomInfo interface {
	// MemberCount is how many users are joined.
	MemberCount() int
	// DisplayName is the rules' owner's display name in the room; "" for none.
	DisplayName() string
	// SenderCanNotify says whether the event's sender has the power level the room asks
	// for notifications of a kind (notifications.<key>).
	SenderCanNotify(key string) bool
}

// Actions are a rule's actions as delivery needs them.
type Actions struct {
	Notify    bool
	Highlight bool
	// Tweaks are the set_tweak actions that carry a value, for push gateways.
	Tweaks map[string]json.RawMessage
	// Raw is the rule's actions array.
	Raw json.RawMessage
}

// parseActions reads checked actions. Highlight is set by a highlight tweak without a value
// or with the value true.
func parseActions(actions []json.RawMessage) Actions {
	var a Actions
	a.Raw, _ = json.Marshal(actions)
	for _, x := range actions {
		var s string
		if json.Unmarshal(x, &s) == nil {
			a.Notify = a.Notify || s == "notify"
			continue
		}
		var t struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(x, &t) != nil {
			continue
		}
		if t.SetTweak == "highlight" {
			a.Highlight = t.Value == nil || string(t.Value) == "true"
		}
		if t.Value != nil {
			if a.Tweaks == nil {
				a.Tweaks = map[string]json.RawMessage{}
			}
			a.Tweaks[t.SetTweak] = t.Value
		}
	}
	return a
}

// compiled is a ruleset ready to match events.
type compiled struct {
	override, content, underride []*crule
	room, sender                 map[string]*crule
}

// crule is one rule ready to match.
type crule struct {
	id      string
	kind    Kind
	enabled bool
	// legacy rules stand aside for events with m.mentions.
	legacy  bool
	conds   []ccond
	pattern *glob
	actions Actions
}

// compile prepares a ruleset for matching.
func compile(rs *Ruleset) *compiled {
	c := &compiled{room: map[string]*crule{}, sender: map[string]*crule{}}
	for _, k := range Kinds {
		for _, r := range rs.Kind(k) {
			cr := &crule{id: r.RuleID, kind: k, enabled: r.Enabled, legacy: r.Default && legacyMentionRules[r.RuleID],
				actions: parseActions(r.Actions)}
			for _, cond := range r.Conditions {
				cr.conds = append(cr.conds, compileCondition(cond))
			}
			if k == Content && r.Pattern != nil {
				cr.pattern = compileGlob(*r.Pattern, true)
			}
			switch k {
			case Override:
				c.override = append(c.override, cr)
			case Content:
				c.content = append(c.content, cr)
			case Room:
				c.room[r.RuleID] = cr
			case Sender:
				c.sender[r.RuleID] = cr
			case Underride:
				c.underride = append(c.underride, cr)
			}
		}
	}
	return c
}

// match returns the rule that decides what an event does for the rules' owner, or nil when
// no rule matches.
func (c *compiled) match(ev *Event, room RoomInfo) *crule {
	for _, r := range c.override {
		if r.matches(ev, room) {
			return r
		}
	}
	for _, r := range c.content {
		if r.matches(ev, room) {
			return r
		}
	}
	if r := c.room[string(ev.roomID)]; r != nil && r.matches(ev, room) {
		return r
	}
	if r := c.sender[string(ev.sender)]; r != nil && r.matches(ev, room) {
		return r
	}
	for _, r := range c.underride {
		if r.matches(ev, room) {
			return r
		}
	}
	return nil
}

func (r *crule) matches(ev *Event, room RoomInfo) bool {
	if !r.enabled || (r.legacy && ev.mentions) {
		return false
	}
	switch r.kind {
	case Override, Underride:
		for i := range r.conds {
			if !r.conds[i].matches(ev, room) {
				return false
			}
		}
		return true
	case Content:
		return r.pattern != nil && ev.hasBody && r.pattern.match(ev, ev.body)
	case Room:
		return r.id == string(ev.roomID)
	case Sender:
		return r.id == string(ev.sender)
	}
	return false
}

// ccond is one condition ready to match; a condition that is not understood never matches.
type ccond struct {
	kind  string
	valid bool
	path  []string
	glob  *glob
	value any
	// op and n are room_member_count's comparison.
	op string
	n  int
	// key is sender_notification_permission's power level key.
	key string
}

var memberCountRE = regexp.MustCompile(`^(==|<|>|>=|<=)?([0-9]+)$`)

func compileCondition(c Condition) ccond {
	cc := ccond{kind: c.Kind}
	switch c.Kind {
	case condEventMatch:
		if c.Key == "" || c.Pattern == nil {
			return cc
		}
		cc.path = splitPath(c.Key)
		// content.body matches whole words anywhere in the body; everything else whole.
		cc.glob = compileGlob(*c.Pattern, c.Key == "content.body")
	case condEventPropertyIs, condEventPropertyContains:
		v, ok := scalar(c.Value)
		if c.Key == "" || !ok {
			return cc
		}
		cc.path, cc.value = splitPath(c.Key), v
	case condContainsDisplayName:
	case condRoomMemberCount:
		m := memberCountRE.FindStringSubmatch(c.Is)
		if m == nil {
			return cc
		}
		n, err := strconv.Atoi(m[2])
		if err != nil {
			return cc
		}
		cc.op, cc.n = m[1], n
	case condSenderPermission:
		if c.Key == "" {
			return cc
		}
		cc.key = c.Key
	default:
		return cc
	}
	cc.valid = true
	return cc
}

func (c *ccond) matches(ev *Event, room RoomInfo) bool {
	if !c.valid {
		return false
	}
	switch c.kind {
	case condEventMatch:
		v, ok := lookup(ev.fields, c.path)
		s, isString := v.(string)
		return ok && isString && c.glob.match(ev, s)
	case condEventPropertyIs:
		v, ok := lookup(ev.fields, c.path)
		return ok && scalarEqual(v, c.value)
	case condEventPropertyContains:
		v, ok := lookup(ev.fields, c.path)
		arr, isArray := v.([]any)
		if !ok || !isArray {
			return false
		}
		for _, x := range arr {
			if scalarEqual(x, c.value) {
				return true
			}
		}
		return false
	case condContainsDisplayName:
		name := room.DisplayName()
		if name == "" || !ev.hasBody {
			return false
		}
		return (&glob{literal: strings.ToLower(name), words: true}).match(ev, ev.body)
	case condRoomMemberCount:
		n := room.MemberCount()
		switch c.op {
		case "", "==":
			return n == c.n
		case "<":
			return n < c.n
		case ">":
			return n > c.n
		case "<=":
			return n <= c.n
		case ">=":
			return n >= c.n
		}
	case condSenderPermission:
		return room.SenderCanNotify(c.key)
	}
	return false
}

// splitPath splits a dot-separated property path; a backslash escapes a dot or a backslash
// and any other escape stays as it is.
//
// See https://spec.matrix.org/v1.19/appendices/#dot-separated-property-paths
func splitPath(key string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			cur.WriteByte(key[i+1])
			i++
		case c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

// lookup follows a path into decoded JSON.
func lookup(fields map[string]any, path []string) (any, bool) {
	var cur any = fields
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalar decodes a condition's value: a string, an integer, a boolean or null.
func scalar(raw json.RawMessage) (any, bool) {
	if raw == nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	switch x := v.(type) {
	case nil, string, bool:
		return v, true
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return v, true
		}
	}
	return nil, false
}

// scalarEqual compares an event's value with a condition's exactly: same type and value,
// integers by value.
func scalarEqual(v, want any) bool {
	switch w := want.(type) {
	case nil:
		return v == nil
	case string:
		s, ok := v.(string)
		return ok && s == w
	case bool:
		b, ok := v.(bool)
		return ok && b == w
	case json.Number:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		a, err1 := n.Int64()
		b, err2 := w.Int64()
		return err1 == nil && err2 == nil && a == b
	}
	return false
}

// glob is a glob-style pattern ('*' any run of characters, '?' one), matched
// case-insensitively against a whole value, or, with words, against any part of a value
// that starts and ends at a word boundary: the ends of the value or a character other than
// A-Z, a-z, 0-9 and '_'.
//
// See https://spec.matrix.org/v1.19/appendices/#glob-style-matching
type glob struct {
	// literal is the lowercased pattern when it has no wildcards.
	literal string
	re      *regexp.Regexp
	// need is the longest run of the pattern without wildcards, lowercased: a value that
	// does not contain it cannot match, which spares most values the regexp.
	need  string
	words bool
}

func compileGlob(pattern string, words bool) *glob {
	if !strings.ContainsAny(pattern, "*?") {
		return &glob{literal: strings.ToLower(pattern), words: words}
	}
	var b strings.Builder
	b.WriteString(`(?is)`)
	if words {
		b.WriteString(`(?:^|[^A-Za-z0-9_])(?:`)
	} else {
		b.WriteString(`^(?:`)
	}
	lit := 0
	for i := 0; i < len(pattern); i++ {
		if c := pattern[i]; c == '*' || c == '?' {
			b.WriteString(regexp.QuoteMeta(pattern[lit:i]))
			if c == '*' {
				b.WriteString(`.*`)
			} else {
				b.WriteString(`.`)
			}
			lit = i + 1
		}
	}
	b.WriteString(regexp.QuoteMeta(pattern[lit:]))
	if words {
		b.WriteString(`)(?:[^A-Za-z0-9_]|$)`)
	} else {
		b.WriteString(`)$`)
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return &glob{} // too large for the regexp engine: it matches only the empty value
	}
	need := ""
	for _, run := range strings.FieldsFunc(pattern, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(run) > len(need) {
			need = run
		}
	}
	return &glob{re: re, words: words, need: strings.ToLower(need)}
}

// match matches s, a value of ev.
func (g *glob) match(ev *Event, s string) bool {
	if g.re != nil {
		return (g.need == "" || strings.Contains(ev.lower(s), g.need)) && g.re.MatchString(s)
	}
	if !g.words {
		return strings.EqualFold(s, g.literal)
	}
	s = ev.lower(s)
	for from := 0; from <= len(s); {
		i := strings.Index(s[from:], g.literal)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(g.literal)
		if (start == 0 || !wordByte(s[start-1])) && (end == len(s) || !wordByte(s[end])) {
			return true
		}
		from = start + 1
	}
	return false
}

// wordByte says whether a byte is in A-Z, a-z, 0-9 or '_'; the bytes of a multi-byte
// character are not, as the spec's word boundary has it.
func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
