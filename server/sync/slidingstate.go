package sync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// Special values in required_state (MSC4186, as Synapse and Element X use them).
const (
	stateWildcard = "*"
	stateLazy     = "$LAZY"
	stateMe       = "$ME"
)

// RequiredState is a room config's required_state, in either of the forms clients send: the
// list of [type, state_key] pairs of the unstable API ("*" matches anything, ["m.room.member",
// "$LAZY"] lazy-loads members, "$ME" is the syncing user), or the MSC's newer object
// {"include": [{"type", "state_key"}], "exclude": […], "lazy_members": bool}, where an
// omitted field matches anything.
type RequiredState struct {
	include, exclude [][2]string
	lazy             bool
}

// UnmarshalJSON reads either form; anything else is an error (the API answers M_BAD_JSON).
func (r *RequiredState) UnmarshalJSON(b []byte) error {
	*r = RequiredState{}
	t := bytes.TrimLeft(b, " \t\r\n")
	switch {
	case bytes.HasPrefix(t, []byte("null")):
		return nil
	case len(t) > 0 && t[0] == '[':
		var pairs [][]string
		if err := json.Unmarshal(b, &pairs); err != nil {
			return fmt.Errorf("required_state must be a list of [type, state_key] pairs of strings")
		}
		for _, p := range pairs {
			if len(p) != 2 {
				return fmt.Errorf("required_state entries must be [type, state_key] pairs, not %d strings", len(p))
			}
			r.include = append(r.include, [2]string{p[0], p[1]})
		}
		return nil
	case len(t) > 0 && t[0] == '{':
		type element struct {
			Type     *string `json:"type"`
			StateKey *string `json:"state_key"`
		}
		var obj struct {
			Include     []element `json:"include"`
			Exclude     []element `json:"exclude"`
			LazyMembers bool      `json:"lazy_members"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return fmt.Errorf("required_state: %v", err)
		}
		pair := func(e element) [2]string {
			p := [2]string{stateWildcard, stateWildcard}
			if e.Type != nil {
				p[0] = *e.Type
			}
			if e.StateKey != nil {
				p[1] = *e.StateKey
			}
			return p
		}
		for _, e := range obj.Include {
			r.include = append(r.include, pair(e))
		}
		for _, e := range obj.Exclude {
			r.exclude = append(r.exclude, pair(e))
		}
		r.lazy = obj.LazyMembers
		return nil
	}
	return fmt.Errorf("required_state must be a list of [type, state_key] pairs or an object")
}

// stateSpec is what a room config's required_state selects, resolved for one user. Configs
// of several lists combine by union: a spec is a list of parts and selects what any part
// selects. It implements rooms.StateSelector. Never modify one after newStateSpec.
type stateSpec struct {
	parts []*statePart
	// lazy: member events are lazy-loaded; a part's "every type" then leaves members out.
	lazy bool
	// canon is a canonical text of the spec, to compare two specs.
	canon string
}

// statePart is one required_state: what it includes minus what it excludes.
type statePart struct {
	all bool
	// types maps a type to its state keys; the key "*" stands for all of them.
	types map[string]map[string]bool
	// anyType are state keys asked for in every type (["*", key]).
	anyType map[string]bool
	exclude [][2]string
}

var _ rooms.StateSelector = (*stateSpec)(nil)

// newStateSpec resolves a required_state for user ($ME becomes their ID).
func newStateSpec(rs RequiredState, user id.UserID) *stateSpec {
	me := func(k string) string {
		if k == stateMe {
			return string(user)
		}
		return k
	}
	p := &statePart{types: map[string]map[string]bool{}, anyType: map[string]bool{}}
	s := &stateSpec{lazy: rs.lazy}
	for _, e := range rs.include {
		typ, key := e[0], me(e[1])
		switch {
		case typ == "m.room.member" && key == stateLazy:
			s.lazy = true
		case typ == stateWildcard && key == stateWildcard:
			p.all = true
		case typ == stateWildcard:
			p.anyType[key] = true
		default:
			if p.types[typ] == nil {
				p.types[typ] = map[string]bool{}
			}
			p.types[typ][key] = true
		}
	}
	for _, e := range rs.exclude {
		p.exclude = append(p.exclude, [2]string{e[0], me(e[1])})
	}
	if p.all || len(p.types) > 0 || len(p.anyType) > 0 {
		s.parts = []*statePart{p}
	}
	s.canon = s.canonical()
	return s
}

// union combines specs: the result selects what any of them selects.
func (s *stateSpec) union(o *stateSpec) *stateSpec {
	if o == nil || s.canon == o.canon {
		return s
	}
	u := &stateSpec{lazy: s.lazy || o.lazy, parts: slices.Clone(s.parts)}
	for _, p := range o.parts {
		if !slices.ContainsFunc(u.parts, func(q *statePart) bool { return q.canonical() == p.canonical() }) {
			u.parts = append(u.parts, p)
		}
	}
	u.canon = u.canonical()
	return u
}

// Match says whether the spec selects a piece of state.
func (s *stateSpec) Match(typ, stateKey string) bool {
	for _, p := range s.parts {
		if p.match(typ, stateKey, s.lazy) {
			return true
		}
	}
	return false
}

func (p *statePart) match(typ, stateKey string, lazy bool) bool {
	for _, e := range p.exclude {
		if (e[0] == stateWildcard || e[0] == typ) && (e[1] == stateWildcard || e[1] == stateKey) {
			return false
		}
	}
	if keys := p.types[typ]; keys[stateWildcard] || keys[stateKey] {
		return true
	}
	if p.anyType[stateKey] {
		return true
	}
	// Lazy loading takes members out of "every type": they go out as the timeline needs.
	return p.all && !(lazy && typ == "m.room.member")
}

// Keys lists the exact keys and whole types the spec selects, unless a part selects across
// types ("*" as the type), which needs every key read.
func (s *stateSpec) Keys() ([]storage.StateKey, []string, bool) {
	var keys []storage.StateKey
	var types []string
	for _, p := range s.parts {
		if p.all || len(p.anyType) > 0 {
			return nil, nil, false
		}
		for typ, ks := range p.types {
			if ks[stateWildcard] {
				types = append(types, typ)
				continue
			}
			for k := range ks {
				keys = append(keys, storage.StateKey{Type: typ, StateKey: k})
			}
		}
	}
	return keys, types, true
}

// within says whether everything s selects is also selected by o (a client that held o's
// state needs nothing new for s). It may answer false for some specs that are within o:
// the room is then sent again, and the extra state found is none.
func (s *stateSpec) within(o *stateSpec) bool {
	if o == nil {
		return false
	}
	if s.canon == o.canon {
		return true
	}
	if s.lazy && !o.lazy {
		return false
	}
	for _, p := range s.parts {
		if !slices.ContainsFunc(o.parts, func(q *statePart) bool { return p.within(q, s.lazy, o.lazy) }) {
			return false
		}
	}
	return true
}

// within is stateSpec.within for one part of each.
func (p *statePart) within(q *statePart, lazyP, lazyQ bool) bool {
	if len(q.exclude) > 0 && p.canonical() != q.canonical() {
		return false
	}
	if p.all {
		// Every type in p; q must have it too, and leave no more members out than p.
		return q.all && (lazyP || !lazyQ)
	}
	if q.all && !lazyQ {
		return true
	}
	for k := range p.anyType {
		if !q.anyType[k] && !(q.all && !lazyQ) {
			return false
		}
	}
	for typ, keys := range p.types {
		qAll := q.all && (typ != "m.room.member" || !lazyQ)
		for k := range keys {
			if !qAll && !q.types[typ][stateWildcard] && !q.types[typ][k] && (k == stateWildcard || !q.anyType[k]) {
				return false
			}
		}
	}
	return true
}

// canonical writes a spec out in a fixed order.
func (s *stateSpec) canonical() string {
	var parts []string
	for _, p := range s.parts {
		parts = append(parts, p.canonical())
	}
	slices.Sort(parts)
	return fmt.Sprintf("lazy=%v|%s", s.lazy, strings.Join(parts, "|"))
}

func (p *statePart) canonical() string {
	var items []string
	if p.all {
		items = append(items, "*\x00*")
	}
	for typ, keys := range p.types {
		for k := range keys {
			items = append(items, typ+"\x00"+k)
		}
	}
	for k := range p.anyType {
		items = append(items, "*\x00"+k)
	}
	slices.Sort(items)
	var ex []string
	for _, e := range p.exclude {
		ex = append(ex, e[0]+"\x00"+e[1])
	}
	slices.Sort(ex)
	return strings.Join(items, "\x01") + "\x02" + strings.Join(ex, "\x01")
}

// freshState selects what spec selects and seen did not: state a client asks for anew.
type freshState struct{ spec, seen *stateSpec }

func (f freshState) Match(typ, stateKey string) bool {
	return f.spec.Match(typ, stateKey) && !f.seen.Match(typ, stateKey)
}

func (f freshState) Keys() ([]storage.StateKey, []string, bool) { return f.spec.Keys() }
