package stateres

import (
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// partialState is the partially resolved state: the keys set by the iterative auth checks
// over a base (the unconflicted state in v2, nothing in v2.1).
type partialState struct {
	g    *graph
	base StateMap
	over map[StateKey]int32
}

func (p *partialState) get(k StateKey) (int32, bool) {
	if n, ok := p.over[k]; ok {
		return n, true
	}
	if e, ok := p.base[k]; ok {
		return p.g.intern(e), true
	}
	return -1, false
}

// iterate runs the iterative auth checks over events in order: each event is authorised
// against the partial state's events for the keys the auth rules need, or, where the state has
// none (or a rejected one), the event's own non-rejected auth event for that key, and is put
// into the state if allowed. Rejected events are skipped.
func (s *v2res) iterate(partial *partialState, events []int32) error {
	g := s.g
	if err := s.loadAuth(events); err != nil {
		return err
	}
	getKey := s.r.GetKey
	if getKey == nil {
		getKey = noKeys
	}
	authEvents := make([]*pdu.PDU, 0, 8)
	for i, n := range events {
		if i%64 == 63 {
			if err := s.ctx.Err(); err != nil {
				return err
			}
		}
		ev := g.ev(n)
		if ev.InternalMeta.Rejected {
			continue
		}
		authEvents = authEvents[:0]
		for _, k := range ev.AuthEventSelection(g.version) {
			var use *pdu.PDU
			if sn, ok := partial.get(k); ok {
				if err := g.load(s.ctx, []int32{sn}); err != nil {
					return err
				}
				if sev := g.ev(sn); sev != nil && !sev.InternalMeta.Rejected {
					use = sev
				}
			}
			if use == nil {
				if a := g.authOf(n, k, true); a != -1 {
					use = g.ev(a)
				}
			}
			if use != nil {
				authEvents = append(authEvents, use)
			}
		}
		err := s.r.authorize(g.version, ev, authEvents, s.getEvents, getKey)
		if s.loadErr != nil {
			return s.loadErr
		}
		if err == nil {
			partial.over[StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = n
		} else if isNoKeys(err) {
			return fmt.Errorf("%w (event %s)", ErrNoGetKey, g.nodes[n].id)
		}
	}
	return nil
}

// getEvents serves eventauth, which asks for the room version 12 create event by ID.
func (s *v2res) getEvents(ids []id.EventID) ([]*pdu.PDU, error) {
	if len(ids) == 1 && ids[0] == s.createID && s.create != nil {
		return s.createList, nil
	}
	out := make([]*pdu.PDU, 0, len(ids))
	for _, e := range ids {
		n := s.g.intern(e)
		if err := s.g.load(s.ctx, []int32{n}); err != nil {
			s.loadErr = err
			return nil, err
		}
		if ev := s.g.ev(n); ev != nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// authorize runs the room version's auth rules (Resolver.Authorize, else eventauth) on ev
// against authEvents, the events picked for its auth event selection. A panic inside the
// rules, which only malformed events from other servers could cause, counts as a refusal
// rather than taking the server down.
func (r *Resolver) authorize(version id.RoomVersion, ev *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("auth rules panicked: %v", p)
		}
	}()
	if r.Authorize != nil {
		return r.Authorize(version, ev, authEvents, getEvents, getKey)
	}
	return eventauth.Authorize(version, ev, authEvents, getEvents, getKey)
}

// noKeys stands in for a missing Resolver.GetKey.
func noKeys(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
	return "", time.Time{}, ErrNoGetKey
}

func isNoKeys(err error) bool {
	return errors.Is(err, ErrNoGetKey)
}
