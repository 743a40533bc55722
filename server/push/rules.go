package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Kind is a kind of push rule. Rules are checked kind by kind in the order of Kinds.
type Kind string

// The kinds of push rule.
const (
	Override  Kind = "override"
	Content   Kind = "content"
	Room      Kind = "room"
	Sender    Kind = "sender"
	Underride Kind = "underride"
)

// Kinds are the kinds of push rule in the order they are checked.
var Kinds = []Kind{Override, Content, Room, Sender, Underride}

// ParseKind checks a kind named in a request path.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: unknown push rule kind %q; it must be override, content, room, sender or underride", ErrInvalidParam, s)
}

// hasConditions says whether rules of a kind carry conditions (override and underride).
func (k Kind) hasConditions() bool { return k == Override || k == Underride }

// Rule is one push rule as clients see it.
//
// See https://spec.matrix.org/v1.19/client-server-api/#push-rules
type Rule struct {
	RuleID  string `json:"rule_id"`
	Default bool   `json:"default"`
	Enabled bool   `json:"enabled"`
	// Actions are kept as the client sent them, so tweaks this server does not know pass
	// through unchanged; never nil.
	Actions []json.RawMessage `json:"actions"`
	// Conditions are those of override and underride rules (nil for other kinds, which
	// leaves the field out; empty for a rule that always matches).
	Conditions []Condition `json:"conditions,omitzero"`
	// Pattern is a content rule's glob pattern.
	Pattern *string `json:"pattern,omitempty"`
}

// clone copies a rule deeply enough that changing the copy's fields leaves r alone.
func (r *Rule) clone() *Rule {
	c := *r
	c.Actions = append([]json.RawMessage{}, r.Actions...)
	if r.Conditions != nil {
		c.Conditions = append([]Condition{}, r.Conditions...)
	}
	return &c
}

// Condition is one condition of an override or underride rule. It keeps the JSON it was
// made from, so fields this server does not know survive a round trip.
type Condition struct {
	raw     json.RawMessage
	Kind    string
	Key     string
	Pattern *string
	Is      string
	// Value is event_property_is and event_property_contains' value, as JSON; nil when
	// absent.
	Value json.RawMessage
}

// MarshalJSON writes the condition as it was given.
func (c Condition) MarshalJSON() ([]byte, error) { return c.raw, nil }

// UnmarshalJSON reads a condition: a JSON object with a string kind. The other fields are
// read when they have the right type; a known kind with missing or mistyped parameters is
// kept but never matches, as the spec asks of conditions it cannot evaluate.
func (c *Condition) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return fmt.Errorf("%w: a condition must be a JSON object", ErrBadJSON)
	}
	if err := json.Unmarshal(m["kind"], &c.Kind); err != nil || c.Kind == "" {
		return fmt.Errorf("%w: a condition needs a kind", ErrBadJSON)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	c.raw = buf.Bytes()
	json.Unmarshal(m["key"], &c.Key)
	json.Unmarshal(m["is"], &c.Is)
	if p, ok := m["pattern"]; ok {
		var s string
		if json.Unmarshal(p, &s) == nil {
			c.Pattern = &s
		}
	}
	if v, ok := m["value"]; ok {
		c.Value = v
	}
	return nil
}

// Condition kinds this server evaluates. Others never match.
const (
	condEventMatch            = "event_match"
	condEventPropertyIs       = "event_property_is"
	condEventPropertyContains = "event_property_contains"
	condContainsDisplayName   = "contains_display_name"
	condRoomMemberCount       = "room_member_count"
	condSenderPermission      = "sender_notification_permission"
)

// checkActions validates a rule's actions: "notify", the historical "dont_notify" and
// "coalesce" (kept, and ignored when evaluating), or a set_tweak object.
func checkActions(actions []json.RawMessage) error {
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			switch s {
			case "notify", "dont_notify", "coalesce":
				continue
			}
			return fmt.Errorf("%w: unknown action %q", ErrBadJSON, s)
		}
		var obj struct {
			SetTweak *string `json:"set_tweak"`
		}
		if json.Unmarshal(a, &obj) != nil || obj.SetTweak == nil {
			return fmt.Errorf("%w: an action is a string or an object with set_tweak, not %s", ErrBadJSON, a)
		}
	}
	return nil
}

// compactActions returns actions compacted, so stored rules and m.push_rules stay small.
func compactActions(actions []json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(actions))
	for i, a := range actions {
		var buf bytes.Buffer
		if json.Compact(&buf, a) == nil {
			out[i] = buf.Bytes()
		} else {
			out[i] = a
		}
	}
	return out
}

// checkRuleID refuses rule IDs a client may not create: empty, starting with '.' (the
// server-default namespace) or containing a slash or backslash.
func checkRuleID(ruleID string) error {
	switch {
	case ruleID == "":
		return fmt.Errorf("%w: the rule ID is empty", ErrInvalidParam)
	case strings.HasPrefix(ruleID, "."):
		return fmt.Errorf("%w: rule IDs starting with '.' are reserved for server-default rules", ErrInvalidParam)
	case strings.ContainsAny(ruleID, `/\`):
		return fmt.Errorf("%w: rule IDs may not contain slashes or backslashes", ErrInvalidParam)
	}
	return nil
}

// NewRule is the body of PUT /pushrules/global/{kind}/{ruleId}.
type NewRule struct {
	Actions    []json.RawMessage `json:"actions"`
	Conditions []Condition       `json:"conditions"`
	Pattern    *string           `json:"pattern"`
}

// ParseNewRule reads and checks the body of a rule PUT for a kind: actions are required;
// override and underride rules need conditions (possibly empty), content rules a pattern;
// room and sender rules take neither.
func ParseNewRule(kind Kind, body []byte) (*NewRule, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%w: the rule must be a JSON object", ErrBadJSON)
	}
	var nr NewRule
	a, ok := raw["actions"]
	if !ok {
		return nil, fmt.Errorf("%w: actions", ErrMissingParam)
	}
	if json.Unmarshal(a, &nr.Actions) != nil || nr.Actions == nil {
		return nil, fmt.Errorf("%w: actions must be an array", ErrBadJSON)
	}
	if err := checkActions(nr.Actions); err != nil {
		return nil, err
	}
	nr.Actions = compactActions(nr.Actions)
	switch kind {
	case Override, Underride:
		c, ok := raw["conditions"]
		if !ok {
			return nil, fmt.Errorf("%w: conditions (%s rules need them; an empty list always matches)", ErrMissingParam, kind)
		}
		var items []json.RawMessage
		if json.Unmarshal(c, &items) != nil || items == nil {
			return nil, fmt.Errorf("%w: conditions must be an array", ErrBadJSON)
		}
		nr.Conditions = make([]Condition, len(items))
		for i, item := range items {
			if err := nr.Conditions[i].UnmarshalJSON(item); err != nil {
				return nil, err
			}
		}
	case Content:
		var p string
		v, ok := raw["pattern"]
		if !ok {
			return nil, fmt.Errorf("%w: pattern (content rules need one)", ErrMissingParam)
		}
		if json.Unmarshal(v, &p) != nil {
			return nil, fmt.Errorf("%w: pattern must be a string", ErrBadJSON)
		}
		nr.Pattern = &p
	}
	return &nr, nil
}

// ParseActions reads the body of PUT .../actions.
func ParseActions(body []byte) ([]json.RawMessage, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		return nil, fmt.Errorf("%w: the body must be a JSON object", ErrBadJSON)
	}
	raw, ok := req["actions"]
	if !ok {
		return nil, fmt.Errorf("%w: actions", ErrMissingParam)
	}
	var actions []json.RawMessage
	if json.Unmarshal(raw, &actions) != nil || actions == nil {
		return nil, fmt.Errorf("%w: actions must be an array", ErrBadJSON)
	}
	if err := checkActions(actions); err != nil {
		return nil, err
	}
	return compactActions(actions), nil
}
