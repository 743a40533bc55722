// Package stateres resolves the state of a Matrix room where its event graph has forked: given
// the states after each of an event's prev_events, it works out the one state before the event.
//
// Which algorithm runs depends on the room version, as the room versions specify:
//
//   - room version 1: the original algorithm (v1.go),
//     https://spec.matrix.org/v1.19/rooms/v1/#state-resolution
//   - room versions 2–11: state resolution v2 (v2.go),
//     https://spec.matrix.org/v1.19/rooms/v2/#state-resolution
//   - room version 12: state resolution v2.1 (v2.go), which adds the conflicted state subgraph to
//     the full conflicted set and starts the iterative auth checks from the empty state,
//     https://spec.matrix.org/v1.19/rooms/v12/#state-resolution
//
// Events are authorised with mautrix's eventauth against auth events picked from the partially
// resolved state, as the iterative auth checks require. The package never writes anything.
// Within a call every event is loaded once and every auth-chain walk is linear in the events
// it reaches, so a large room costs one pass over its auth graph rather than one per state
// or per event. A Room keeps that graph between calls, so that resolving again in the same
// room walks integers instead of loading events and hashing event IDs.
//
// Where the spec's prose leaves room and Synapse and ruma (conduwuit) agree, we do what they
// do, because the point of state resolution is that every server reaches the same state:
//
//   - The auth chain of a state includes the state's own events (an unconflicted event is
//     therefore never in the auth difference).
//   - Step 1 enlarges the power events by their auth chain as far as it stays inside the full
//     conflicted set, and counts the create event as a power event.
//   - An event that was rejected (InternalMeta.Rejected) is never admitted by the iterative
//     auth checks, and a rejected event is never used as an auth event. The spec would re-check
//     events that were rejected against the state before them, but a PDU does not say why it
//     was rejected, and admitting it would make us disagree with Synapse.
//
// Room versions 1 and 2 name events freely, and eventauth reads the create event's ID (rule
// 5.3.1) through pdu.PDU.GetEventID, which only knows such IDs when the process has set
// pdu.UseInternalMetaForGetEventID; without it every join in those rooms fails the checks.
//
// It is not for checking a single event on receipt (that is eventauth with the event's own
// auth events), nor for fetching missing events from other servers: Events only reads what
// this server has.
package stateres

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Errors callers test for with errors.Is.
var (
	// ErrUnknownVersion: the room version is not one we know, so its algorithm is unknown.
	ErrUnknownVersion = errors.New("stateres: unknown room version")
	// ErrWrongRoom: an event reached through the states or their auth chains belongs to
	// another room. The states are corrupt; nothing is resolved.
	ErrWrongRoom = errors.New("stateres: event belongs to another room")
	// ErrNoGetKey: an event in conflict carries join_authorised_via_users_server, whose
	// signature the auth rules check, and the Resolver has no GetKey.
	ErrNoGetKey = errors.New("stateres: no GetKey to verify join_authorised_via_users_server")
	// ErrBadEvents: the Events implementation broke its contract.
	ErrBadEvents = errors.New("stateres: Events returned the wrong number of events")
)

// StateKey is the (event type, state key) pair that identifies one piece of room state.
type StateKey = pdu.StateKey

// StateMap is a room state: the ID of the event that holds each piece of state.
type StateMap map[StateKey]id.EventID

// Events loads events by ID. Implementations should cache, since resolution in a busy room
// asks for the same auth events again and again.
type Events interface {
	// Get returns the events with the given IDs, index for index: nil where the event is
	// unknown. A returned PDU must not be changed afterwards; rejected events must be
	// returned with InternalMeta.Rejected set. An error aborts the resolution.
	Get(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error)
}

// MapEvents is an Events backed by a map, for events already in memory.
type MapEvents map[id.EventID]*pdu.PDU

// Get implements Events.
func (m MapEvents) Get(_ context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
	out := make([]*pdu.PDU, len(ids))
	for i, x := range ids {
		out[i] = m[x]
	}
	return out, nil
}

// Resolver resolves room states. Its fields may be changed until the first call; after that
// it is safe for concurrent use if Events is.
type Resolver struct {
	// Events loads the events named by the states and their auth chains. Required.
	// Events it does not know are left out: a conflicted event that cannot be loaded takes
	// no part, and an auth chain stops where an event is missing.
	Events Events
	// GetKey fetches server signing keys. The auth rules verify the signature of the server
	// named by join_authorised_via_users_server on restricted joins (rule 5.2.1), so
	// resolving such a join in conflict needs it; when nil, that resolution fails with
	// ErrNoGetKey.
	GetKey pdu.GetKeyFunc
	// Authorize runs the auth rules on one event, as eventauth.Authorize does; nil means
	// eventauth.Authorize. A host that adds rules eventauth leaves out (m.room.aliases in
	// room versions 1 to 5) sets it so that resolution judges events as receipt does.
	Authorize func(version id.RoomVersion, ev *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error
}

// Resolve resolves states with a Resolver that loads events from ev.
func Resolve(ctx context.Context, version id.RoomVersion, roomID id.RoomID, states []StateMap, ev Events) (StateMap, error) {
	r := Resolver{Events: ev}
	return r.Resolve(ctx, version, roomID, states)
}

// Resolve returns the resolution of states, the states after each prev_event of an event in
// roomID, by the algorithm of the room version. The result is a new map; the states are not
// changed. The result does not depend on the order of states.
func (r *Resolver) Resolve(ctx context.Context, version id.RoomVersion, roomID id.RoomID, states []StateMap) (StateMap, error) {
	if !version.IsKnown() {
		return nil, fmt.Errorf("%w %q", ErrUnknownVersion, version)
	}
	hint := 0
	if len(states) > 0 {
		hint = 2 * len(states[0])
	}
	return r.resolve(ctx, newGraph(r.Events, version, roomID, hint), states)
}

func (r *Resolver) resolve(ctx context.Context, g *graph, states []StateMap) (StateMap, error) {
	switch len(states) {
	case 0:
		return StateMap{}, nil
	case 1:
		return clone(states[0]), nil
	}
	g.begin()
	switch g.version.StateResVersion() {
	case id.StateResV1:
		return r.resolveV1(ctx, g, states)
	case id.StateResV2:
		return r.resolveV2(ctx, g, states, false)
	default:
		return r.resolveV2(ctx, g, states, true)
	}
}

func clone(s StateMap) StateMap {
	out := make(StateMap, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}
