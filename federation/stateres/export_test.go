package stateres

import (
	"context"
	"slices"

	"maunium.net/go/mautrix/id"
)

// FullConflictedSet exposes the full conflicted set of a v2 or v2.1 resolution to tests.
func FullConflictedSet(ctx context.Context, version id.RoomVersion, roomID id.RoomID, states []StateMap, ev Events) ([]id.EventID, error) {
	g := newGraph(ev, version, roomID, 64)
	g.begin()
	v21 := version.StateResVersion() == id.StateResV2_1
	s := &v2res{r: &Resolver{Events: ev}, ctx: ctx, g: g, name: "v2",
		createByRoomID: version.RoomIDIsCreateEventID(), privileged: version.PrivilegedRoomCreators()}
	unconflicted, conflictedKeys := split(states)
	full, err := s.fullConflictedSet(states, unconflicted, conflictedKeys, v21)
	if err != nil {
		return nil, err
	}
	out := make([]id.EventID, len(full))
	for i, n := range full {
		out[i] = g.nodes[n].id
	}
	slices.Sort(out)
	return out, nil
}
