package stateres

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// DefaultMaxEvents is how many events a Room remembers unless told otherwise.
const DefaultMaxEvents = 200_000

// Room remembers the auth graph of one room between resolutions: every event loaded, with its
// auth events as small integers. Resolving again in the same room then walks the room's
// history without asking Events again or hashing event IDs, which is most of the work in a
// large room. Events unknown in one call are asked for again in the next.
//
// A Room holds the PDUs Events returned. If an event changes afterwards (it is redacted, or
// its rejection is decided anew), call Forget with its ID.
//
// A Room is not safe for concurrent use: keep one per room and use it under the room's lock.
type Room struct {
	// MaxEvents bounds the events remembered: a resolution that starts with more begins
	// from nothing. Zero means DefaultMaxEvents. It may be changed between calls.
	MaxEvents int

	r *Resolver
	g *graph
}

// Room returns a Room that resolves state in roomID, loading events through r.
func (r *Resolver) Room(version id.RoomVersion, roomID id.RoomID) (*Room, error) {
	if !version.IsKnown() {
		return nil, fmt.Errorf("%w %q", ErrUnknownVersion, version)
	}
	return &Room{r: r, g: newGraph(r.Events, version, roomID, 1024)}, nil
}

// Resolve resolves states as Resolver.Resolve does, in the Room's room and room version.
func (rm *Room) Resolve(ctx context.Context, states []StateMap) (StateMap, error) {
	limit := rm.MaxEvents
	if limit <= 0 {
		limit = DefaultMaxEvents
	}
	if len(rm.g.nodes) > limit {
		rm.Reset()
	}
	return rm.r.resolve(ctx, rm.g, states)
}

// AuthChain returns the auth chain of the given events as the package's AuthChain does, from
// the Room's memory where it can; it also refuses events of other rooms (ErrWrongRoom).
func (rm *Room) AuthChain(ctx context.Context, ids []id.EventID) (chain, missing []id.EventID, err error) {
	rm.g.begin()
	return rm.g.authChain(ctx, ids)
}

// Forget makes the Room load the given events again when next it needs them.
func (rm *Room) Forget(ids ...id.EventID) {
	for _, e := range ids {
		if n, ok := rm.g.index[e]; ok {
			nd := &rm.g.nodes[n]
			nd.ev, nd.auth, nd.missed = nil, nil, 0
		}
	}
}

// Reset forgets everything.
func (rm *Room) Reset() {
	g := rm.g
	rm.g = newGraph(g.src, g.version, g.room, 1024)
}

// Len is the number of events the Room remembers, known or not.
func (rm *Room) Len() int {
	return len(rm.g.nodes)
}
