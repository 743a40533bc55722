package rooms

import (
	"context"
	"encoding/json"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// serverVisibility decides which events of a room another server may read in full, by the
// spec's history visibility rules applied to that server's users (as Synapse does): events
// under world_readable or shared are visible; under invited, those at which one of its users
// was invited or joined; under joined, those at which one was joined. Events it may not see
// are served redacted, so the room's graph stays whole for it.
type serverVisibility struct {
	e      *Engine
	origin string
	// keys are the member state keys of the server's users who ever appear in the room.
	keys  []storage.StateKey
	snaps map[int64]bool
}

func (e *Engine) newServerVisibility(ctx context.Context, origin string, room *storage.Room) (*serverVisibility, error) {
	members, err := e.db.Members(ctx, room.NID)
	if err != nil {
		return nil, err
	}
	sv := &serverVisibility{e: e, origin: origin, snaps: map[int64]bool{}}
	sv.keys = append(sv.keys, storage.StateKey{Type: "m.room.history_visibility"})
	for _, m := range members {
		if id.UserID(m.UserID).Homeserver() == origin {
			sv.keys = append(sv.keys, storage.StateKey{Type: "m.room.member", StateKey: m.UserID})
		}
	}
	return sv, nil
}

// canSee says whether the server may see the event unredacted.
func (sv *serverVisibility) canSee(ctx context.Context, ev *storage.Event) (bool, error) {
	if ev.Type == "m.room.member" && ev.StateKey != nil && id.UserID(*ev.StateKey).Homeserver() == sv.origin {
		return true, nil // a server always sees its own users' membership changes
	}
	if ok, cached := sv.snaps[ev.StateBefore]; cached {
		return ok, nil
	}
	st, err := sv.e.db.SnapshotKeys(ctx, ev.StateBefore, sv.keys...)
	if err != nil {
		return false, err
	}
	nids := make([]int64, 0, len(st))
	for _, n := range st {
		nids = append(nids, n)
	}
	evs, err := sv.e.db.EventsByNID(ctx, nids)
	if err != nil {
		return false, err
	}
	history, joined, invited := "shared", false, false
	for _, s := range evs {
		switch s.Type {
		case "m.room.history_visibility":
			if h := gjson.GetBytes(s.JSON, "content.history_visibility").Str; h != "" {
				history = h
			}
		case "m.room.member":
			switch gjson.GetBytes(s.JSON, "content.membership").Str {
			case "join":
				joined = true
			case "invite":
				invited = true
			}
		}
	}
	ok := false
	switch history {
	case "world_readable", "shared":
		ok = true
	case "invited":
		ok = joined || invited
	default: // "joined", and values this server does not know, as the strictest
		ok = joined
	}
	sv.snaps[ev.StateBefore] = ok
	return ok, nil
}

// serve returns the event as this server may have it: redacted when it may not see it.
func (sv *serverVisibility) serve(ctx context.Context, ev *storage.Event, version id.RoomVersion) (json.RawMessage, error) {
	ok, err := sv.canSee(ctx, ev)
	if err != nil {
		return nil, err
	}
	if ok || ev.RedactedBy != "" {
		return sv.e.servedPDU(ev, version)
	}
	p, err := parsePDU(ev, version)
	if err != nil {
		return nil, err
	}
	if p, err = redactPDU(version, p); err != nil {
		return nil, err
	}
	return wireJSON(version, p)
}
