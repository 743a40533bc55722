package stateres

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// resolveV1 runs the original state resolution algorithm of room version 1. Unlike v2, a key
// missing from some states is not a conflict: only different events for one key are. The
// conflicted keys are resolved in passes against the state resolved so far (R): power levels,
// then join rules, then memberships, each pass against R as it stood before the pass, then
// every other key. Where the prose is silent (ties, all candidates failing auth) we do as
// Synapse does.
func (r *Resolver) resolveV1(ctx context.Context, g *graph, states []StateMap) (StateMap, error) {
	unconflicted := StateMap{}
	conflicted := map[StateKey][]id.EventID{}
	for _, st := range states {
		for k, e := range st {
			if es, ok := conflicted[k]; ok {
				if !slices.Contains(es, e) {
					conflicted[k] = append(es, e)
				}
			} else if u, ok := unconflicted[k]; !ok {
				unconflicted[k] = e
			} else if u != e {
				conflicted[k] = []id.EventID{u, e}
				delete(unconflicted, k)
			}
		}
	}
	if len(conflicted) == 0 {
		return unconflicted, nil
	}
	fail := func(err error) (StateMap, error) {
		return nil, fmt.Errorf("stateres: v1: %w", err)
	}

	var all []int32
	for _, es := range conflicted {
		for _, e := range es {
			all = append(all, g.intern(e))
		}
	}
	if err := g.load(ctx, all); err != nil {
		return fail(err)
	}
	groups := map[StateKey][]cand{}
	for k, es := range conflicted {
		var known []cand
		for _, e := range es {
			if ev := g.ev(g.intern(e)); ev != nil && ev.StateKey != nil {
				known = append(known, cand{id: e, ev: ev})
			}
		}
		switch len(known) {
		case 0:
		case 1:
			unconflicted[k] = known[0].id
		default:
			groups[k] = known
		}
	}

	// R starts as the unconflicted events that the conflicted events' auth rules look at.
	resolved := map[StateKey]*pdu.PDU{}
	var need []int32
	for _, cs := range groups {
		for _, c := range cs {
			for _, k := range c.ev.AuthEventSelection(g.version) {
				if e, ok := unconflicted[k]; ok {
					need = append(need, g.intern(e))
				}
			}
		}
	}
	if err := g.load(ctx, need); err != nil {
		return fail(err)
	}
	for _, n := range need {
		if ev := g.ev(n); ev != nil && ev.StateKey != nil {
			resolved[StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev
		}
	}

	v := &v1res{r: r, g: g}
	winners := map[StateKey]cand{}
	pass := func(match func(StateKey) bool, pick func([]cand, map[StateKey]*pdu.PDU) (cand, error)) error {
		found := map[StateKey]cand{}
		for k, cs := range groups {
			if _, done := winners[k]; done || !match(k) {
				continue
			}
			w, err := pick(cs, resolved)
			if err != nil {
				return err
			}
			found[k] = w
		}
		for k, w := range found {
			winners[k] = w
			resolved[k] = w.ev
		}
		return nil
	}
	byType := func(t string) func(StateKey) bool {
		return func(k StateKey) bool { return k.Type == t }
	}
	if err := pass(func(k StateKey) bool { return k == keyPower }, v.authGroup); err != nil {
		return fail(err)
	}
	if err := pass(byType(event.StateJoinRules.Type), v.authGroup); err != nil {
		return fail(err)
	}
	if err := pass(byType(event.StateMember.Type), v.authGroup); err != nil {
		return fail(err)
	}
	if err := pass(func(StateKey) bool { return true }, v.normalGroup); err != nil {
		return fail(err)
	}
	for k, w := range winners {
		unconflicted[k] = w.id
	}
	return unconflicted, nil
}

// cand is a conflicted event and the ID it was loaded by.
type cand struct {
	id id.EventID
	ev *pdu.PDU
}

type v1res struct {
	r *Resolver
	g *graph
}

// authGroup resolves one conflicted key of an auth event type: sorted by ascending depth and
// then descending sha1(event_id), the first event goes into R, and each next one replaces it
// for as long as each is allowed by the auth rules in R.
func (v *v1res) authGroup(cs []cand, resolved map[StateKey]*pdu.PDU) (cand, error) {
	ordered := order(cs, false)
	auth := map[StateKey]*pdu.PDU{}
	for _, c := range ordered {
		for _, k := range c.ev.AuthEventSelection(v.g.version) {
			if a, ok := resolved[k]; ok {
				auth[k] = a
			}
		}
	}
	prev := ordered[0]
	for _, c := range ordered[1:] {
		auth[StateKey{Type: prev.ev.Type, StateKey: *prev.ev.StateKey}] = prev.ev
		ok, err := v.allowed(c.ev, auth)
		if err != nil {
			return cand{}, err
		}
		if !ok {
			return prev, nil
		}
		prev = c
	}
	return prev, nil
}

// normalGroup resolves any other conflicted key: the event with the highest depth, then the
// lowest sha1(event_id), that the auth rules allow in R; if none is allowed, the last in that
// order.
func (v *v1res) normalGroup(cs []cand, resolved map[StateKey]*pdu.PDU) (cand, error) {
	ordered := order(cs, true)
	for _, c := range ordered {
		ok, err := v.allowed(c.ev, resolved)
		if err != nil {
			return cand{}, err
		}
		if ok {
			return c, nil
		}
	}
	return ordered[len(ordered)-1], nil
}

// order sorts events by depth and sha1(event_id): ascending depth and descending hash, or
// with deepestFirst, descending depth and ascending hash.
func order(cs []cand, deepestFirst bool) []cand {
	type item struct {
		c    cand
		hash [sha1.Size]byte
	}
	items := make([]item, len(cs))
	for i, c := range cs {
		items[i] = item{c: c, hash: sha1.Sum([]byte(c.id))}
	}
	slices.SortFunc(items, func(a, b item) int {
		c := 0
		switch {
		case a.c.ev.Depth < b.c.ev.Depth:
			c = -1
		case a.c.ev.Depth > b.c.ev.Depth:
			c = 1
		default:
			c = -bytes.Compare(a.hash[:], b.hash[:])
		}
		if deepestFirst {
			return -c
		}
		return c
	})
	out := make([]cand, len(items))
	for i, it := range items {
		out[i] = it.c
	}
	return out
}

// allowed checks ev against the auth events in auth.
func (v *v1res) allowed(ev *pdu.PDU, auth map[StateKey]*pdu.PDU) (bool, error) {
	list := make([]*pdu.PDU, 0, len(auth))
	for _, a := range auth {
		list = append(list, a)
	}
	getKey := v.r.GetKey
	if getKey == nil {
		getKey = noKeys
	}
	noEvents := func([]id.EventID) ([]*pdu.PDU, error) { return nil, nil }
	err := v.r.authorize(v.g.version, ev, list, noEvents, getKey)
	if isNoKeys(err) {
		return false, ErrNoGetKey
	}
	return err == nil, nil
}
