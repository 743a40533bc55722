package push

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"
)

// Ruleset is a user's global push rules as clients see them: the server-default rules merged
// with the user's own, each kind most important first. It is the body of GET
// /pushrules/global/ and, under "global", the content of the m.push_rules account data.
//
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushrulesglobal
type Ruleset struct {
	Override  []*Rule `json:"override"`
	Content   []*Rule `json:"content"`
	Room      []*Rule `json:"room"`
	Sender    []*Rule `json:"sender"`
	Underride []*Rule `json:"underride"`
}

// Kind returns the rules of one kind.
func (rs *Ruleset) Kind(k Kind) []*Rule { return *rs.list(k) }

func (rs *Ruleset) list(k Kind) *[]*Rule {
	switch k {
	case Override:
		return &rs.Override
	case Content:
		return &rs.Content
	case Room:
		return &rs.Room
	case Sender:
		return &rs.Sender
	default:
		return &rs.Underride
	}
}

// Find returns the rule of a kind with an ID, or nil.
func (rs *Ruleset) Find(k Kind, ruleID string) *Rule {
	for _, r := range rs.Kind(k) {
		if r.RuleID == ruleID {
			return r
		}
	}
	return nil
}

// changes is what a user changed of their push rules, stored as one JSON document: their
// own rules, and their settings of the server-default rules. Keeping only the changes lets
// a newer server's defaults reach users who never touched them.
type changes struct {
	// Rules are the user's own rules by kind, most important first.
	Rules map[Kind][]*Rule `json:"rules,omitempty"`
	// Defaults are the user's settings of server-default rules, by kind/rule_id.
	Defaults map[string]*defaultChange `json:"defaults,omitempty"`
}

// defaultChange is what a user set of one server-default rule; nil fields are unchanged.
type defaultChange struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Actions replace the default's actions when not nil (an empty list is a change too).
	Actions []json.RawMessage `json:"actions,omitzero"`
}

func defaultKey(k Kind, ruleID string) string { return string(k) + "/" + ruleID }

// parseChanges reads a stored document; nil or empty is no changes.
func parseChanges(raw json.RawMessage) (*changes, error) {
	c := &changes{}
	if len(raw) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("stored push rules: %w", err)
	}
	return c, nil
}

// merge is the ruleset a user sees: in each kind their own rules before the server's
// defaults, except .m.rule.master, which comes before everything.
func (c *changes) merge(user id.UserID) *Ruleset {
	rs := &Ruleset{}
	for _, k := range Kinds {
		defs := defaultsFor(k, user)
		for _, d := range defs {
			if ch := c.Defaults[defaultKey(k, d.RuleID)]; ch != nil {
				if ch.Enabled != nil {
					d.Enabled = *ch.Enabled
				}
				if ch.Actions != nil {
					d.Actions = ch.Actions
				}
			}
		}
		list := []*Rule{}
		if len(defs) > 0 && defs[0].RuleID == masterRule {
			list = append(list, defs[0])
			defs = defs[1:]
		}
		for _, r := range c.Rules[k] {
			list = append(list, r.clone())
		}
		*rs.list(k) = append(list, defs...)
	}
	return rs
}

// isDefault says whether a server-default rule of a kind has this ID.
func isDefault(k Kind, ruleID string) bool {
	for _, d := range defaultRules[k] {
		if d.id == ruleID {
			return true
		}
	}
	return false
}

func indexRule(rules []*Rule, ruleID string) int {
	return slices.IndexFunc(rules, func(r *Rule) bool { return r.RuleID == ruleID })
}

// put adds or replaces one of the user's own rules. An existing rule keeps its place and
// its enabled state unless before or after moves it; a new rule is enabled and goes first
// unless before or after places it. Both name another of the user's rules of the same kind;
// before wins when both are given.
func (c *changes) put(k Kind, ruleID string, nr *NewRule, before, after string) error {
	if err := checkRuleID(ruleID); err != nil {
		return err
	}
	r := &Rule{RuleID: ruleID, Enabled: true, Actions: nr.Actions}
	if k.hasConditions() {
		r.Conditions = nr.Conditions
		if r.Conditions == nil {
			r.Conditions = []Condition{}
		}
	}
	if k == Content {
		r.Pattern = nr.Pattern
	}
	rules := c.Rules[k]
	cur := indexRule(rules, ruleID)
	if cur >= 0 {
		r.Enabled = rules[cur].Enabled
	}
	anchor, offset := before, 0
	if anchor == "" {
		anchor, offset = after, 1
	}
	switch {
	case anchor == "" && cur >= 0:
		rules[cur] = r
	case anchor == "":
		rules = slices.Insert(rules, 0, r)
	default:
		if cur >= 0 {
			rules = slices.Delete(rules, cur, cur+1)
		}
		at := indexRule(rules, anchor)
		if at < 0 {
			what := "before"
			if offset == 1 {
				what = "after"
			}
			if strings.HasPrefix(anchor, ".") {
				return fmt.Errorf("%w: %s: %s is a server-default rule; rules can only be placed relative to your own", ErrRelativeNotFound, what, anchor)
			}
			return fmt.Errorf("%w: before/after rule not found: %s", ErrRelativeNotFound, anchor)
		}
		rules = slices.Insert(rules, at+offset, r)
	}
	if c.Rules == nil {
		c.Rules = map[Kind][]*Rule{}
	}
	c.Rules[k] = rules
	return nil
}

// remove deletes one of the user's own rules.
func (c *changes) remove(k Kind, ruleID string) error {
	if strings.HasPrefix(ruleID, ".") {
		return fmt.Errorf("%w: server-default rules cannot be deleted; disable them instead", ErrInvalidParam)
	}
	i := indexRule(c.Rules[k], ruleID)
	if i < 0 {
		return fmt.Errorf("%w: no %s rule %s", ErrNotFound, k, ruleID)
	}
	c.Rules[k] = slices.Delete(c.Rules[k], i, i+1)
	if len(c.Rules[k]) == 0 {
		delete(c.Rules, k)
	}
	return nil
}

// set changes a rule's enabled state or actions, the user's own or a server default.
func (c *changes) set(k Kind, ruleID string, enabled *bool, actions []json.RawMessage) error {
	if i := indexRule(c.Rules[k], ruleID); i >= 0 {
		r := c.Rules[k][i]
		if enabled != nil {
			r.Enabled = *enabled
		}
		if actions != nil {
			r.Actions = actions
		}
		return nil
	}
	if !isDefault(k, ruleID) {
		return fmt.Errorf("%w: no %s rule %s", ErrNotFound, k, ruleID)
	}
	if c.Defaults == nil {
		c.Defaults = map[string]*defaultChange{}
	}
	key := defaultKey(k, ruleID)
	ch := c.Defaults[key]
	if ch == nil {
		ch = &defaultChange{}
		c.Defaults[key] = ch
	}
	if enabled != nil {
		ch.Enabled = enabled
	}
	if actions != nil {
		ch.Actions = actions
	}
	return nil
}
