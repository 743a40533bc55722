package rooms

import (
	"context"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/stateres"
	"fyr/storage"
)

// loadEvents adapts a loader to stateres.Events.
type loadEvents func([]id.EventID) ([]*pdu.PDU, error)

func (l loadEvents) Get(_ context.Context, ids []id.EventID) ([]*pdu.PDU, error) { return l(ids) }

// stateResolver resolves forked state with federation/stateres (v1 for room version 1, v2,
// and v2.1 for room version 12), judging events by the same auth rules as on receipt.
func (e *Engine) stateResolver(ctx context.Context, version id.RoomVersion, roomID id.RoomID, states []StateMap,
	load func([]id.EventID) ([]*pdu.PDU, error)) (StateMap, error) {
	in := make([]stateres.StateMap, len(states))
	for i, st := range states {
		m := make(stateres.StateMap, len(st))
		for k, v := range st {
			m[pdu.StateKey{Type: k.Type, StateKey: k.StateKey}] = v
		}
		in[i] = m
	}
	r := stateres.Resolver{Events: loadEvents(load), GetKey: e.keyFunc, Authorize: authorize}
	out, err := r.Resolve(ctx, version, roomID, in)
	if err != nil {
		return nil, err
	}
	res := make(StateMap, len(out))
	for k, v := range out {
		res[storage.StateKey{Type: k.Type, StateKey: k.StateKey}] = v
	}
	return res, nil
}
