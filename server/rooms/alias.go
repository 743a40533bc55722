package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// ResolveAlias finds the room an alias on this server points at.
func (e *Engine) ResolveAlias(ctx context.Context, alias string) (id.RoomID, error) {
	if !validAlias(alias) {
		return "", fmt.Errorf("%w: %q is not a room alias", ErrInvalidParam, alias)
	}
	a, err := e.db.AliasByName(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%w: no room has the alias %s", ErrNotFound, alias)
	} else if err != nil {
		return "", err
	}
	return id.RoomID(a.RoomID), nil
}

func cutAlias(alias string) (local, server string, ok bool) {
	for i := 1; i < len(alias); i++ {
		if alias[i] == ':' {
			return alias[1:i], alias[i+1:], true
		}
	}
	return "", "", false
}

// ErrAliasExists is an alias that is already taken: 409 M_UNKNOWN, as the spec's PUT
// /directory/room says.
var ErrAliasExists = errors.New("rooms: room alias already exists")

// checkLocalAlias refuses a malformed alias, or one of another server.
func (e *Engine) checkLocalAlias(alias string) error {
	if !validAlias(alias) || strings.IndexFunc(alias, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%w: %q is not a valid room alias", ErrInvalidParam, alias)
	}
	if _, server, _ := cutAlias(alias); server != e.opt.ServerName {
		return fmt.Errorf("%w: room aliases must be on this server (%s)", ErrInvalidParam, e.opt.ServerName)
	}
	return nil
}

// CreateAlias points a new alias on this server at a room. As Synapse requires, the user
// must be joined to the room unless they are a server admin.
// See https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directoryroomroomalias
func (e *Engine) CreateAlias(ctx context.Context, user id.UserID, admin bool, alias string, roomID id.RoomID) error {
	if err := e.checkLocalAlias(alias); err != nil {
		return err
	}
	room, err := e.room(ctx, roomID)
	if err != nil {
		return err
	}
	if !admin {
		m, _, err := e.db.Membership(ctx, room.NID, string(user))
		if err != nil {
			return err
		}
		if m != "join" {
			return fmt.Errorf("%w: you must be in the room to create an alias for it", ErrForbidden)
		}
	}
	err = e.db.Write(ctx, func(tx *storage.Tx) error { return tx.InsertAlias(alias, string(roomID), string(user)) })
	if errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("%w: room alias %s already exists", ErrAliasExists, alias)
	}
	return err
}

// DeleteAlias removes an alias of this server. Its creator, a server admin, or a member
// with the power to send m.room.canonical_alias in its room may delete it (Synapse's rule).
// An alias the room advertises in m.room.canonical_alias is taken out of that event too,
// when the user may send it; the alias goes either way, as the spec recommends.
// See https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3directoryroomroomalias
func (e *Engine) DeleteAlias(ctx context.Context, user id.UserID, admin bool, alias string) error {
	if err := e.checkLocalAlias(alias); err != nil {
		return err
	}
	a, err := e.db.AliasByName(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: room alias %s not found", ErrNotFound, alias)
	} else if err != nil {
		return err
	}
	roomID := id.RoomID(a.RoomID)
	if a.Creator != string(user) && !admin {
		ok, err := e.canEditDirectory(ctx, user, roomID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: you don't have permission to delete the alias", ErrForbidden)
		}
	}
	err = e.db.Write(ctx, func(tx *storage.Tx) error { return tx.DeleteAlias(alias) })
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: room alias %s not found", ErrNotFound, alias)
	} else if err != nil {
		return err
	}
	if err := e.dropCanonicalAlias(ctx, user, roomID, alias); err != nil {
		e.log.Info("alias deleted; the room's canonical alias event still names it", "alias", alias, "room_id", roomID, "err", err)
	}
	return nil
}

// canEditDirectory says whether user may change a room's directory entries: a joined
// member with the power to send m.room.canonical_alias (Synapse's rule; admins are let
// through by the callers).
func (e *Engine) canEditDirectory(ctx context.Context, user id.UserID, roomID id.RoomID) (bool, error) {
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if rs.membership(user) != "join" {
		return false, nil
	}
	pl, err := e.powerLevels(ctx, rs)
	if err != nil {
		return false, err
	}
	return pl.user(user) >= pl.event("m.room.canonical_alias", true), nil
}

// dropCanonicalAlias takes alias out of the room's m.room.canonical_alias event (alias and
// alt_aliases), sent by user, if it is there.
func (e *Engine) dropCanonicalAlias(ctx context.Context, user id.UserID, roomID id.RoomID, alias string) error {
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return err
	}
	ev, err := e.stateEvent(ctx, rs, "m.room.canonical_alias", "")
	if err != nil || ev == nil {
		return err
	}
	content, changed, err := withoutAliases(ev.Content, func(a string) bool { return a == alias })
	if err != nil || !changed {
		return err
	}
	sk := ""
	b, err := e.build(ctx, rs, draft{sender: user, typ: "m.room.canonical_alias", stateKey: &sk, content: content})
	if err != nil {
		return err
	}
	_, err = e.persist(ctx, rs, []*built{b}, nil)
	return err
}

// withoutAliases returns canonical alias content without the aliases drop matches, and
// whether anything was dropped. Other fields, and alt_aliases of an unexpected shape, stay.
func withoutAliases(content []byte, drop func(string) bool) (json.RawMessage, bool, error) {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(content, &c); err != nil {
		return nil, false, fmt.Errorf("%w: canonical alias content: %v", ErrBadJSON, err)
	}
	changed := false
	var a string
	if json.Unmarshal(c["alias"], &a) == nil && a != "" && drop(a) {
		delete(c, "alias")
		changed = true
	}
	var alt []string
	if raw, ok := c["alt_aliases"]; ok && json.Unmarshal(raw, &alt) == nil {
		kept := slices.DeleteFunc(slices.Clone(alt), drop)
		if len(kept) != len(alt) {
			changed = true
			if len(kept) == 0 {
				delete(c, "alt_aliases")
			} else {
				c["alt_aliases"], _ = json.Marshal(kept)
			}
		}
	}
	out, err := json.Marshal(c)
	return out, changed, err
}

// AliasServers resolves an alias of this server to its room and the servers that can help
// a user join it: those with joined members, this one first.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3directoryroomroomalias
func (e *Engine) AliasServers(ctx context.Context, alias string) (id.RoomID, []string, error) {
	return e.LookupAlias(ctx, alias)
}

// localAliasServers resolves one of this server's aliases, with the servers to join through.
func (e *Engine) localAliasServers(ctx context.Context, alias string) (id.RoomID, []string, error) {
	roomID, err := e.ResolveAlias(ctx, alias)
	if err != nil {
		return "", nil, err
	}
	servers := []string{e.opt.ServerName}
	room, err := e.db.RoomByID(ctx, string(roomID))
	if errors.Is(err, storage.ErrNotFound) {
		return roomID, servers, nil
	} else if err != nil {
		return "", nil, err
	}
	joined, err := e.db.JoinedServers(ctx, room.NID)
	if err != nil {
		return "", nil, err
	}
	slices.Sort(joined)
	for _, s := range joined {
		if s != e.opt.ServerName {
			servers = append(servers, s)
		}
	}
	return roomID, servers, nil
}

// LocalAliases lists the aliases this server holds for a room. Joined members may ask, and
// anyone when the room is world readable, and server admins.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidaliases
func (e *Engine) LocalAliases(ctx context.Context, user id.UserID, admin bool, roomID id.RoomID) ([]string, error) {
	room, err := e.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if !admin {
		m, _, err := e.db.Membership(ctx, room.NID, string(user))
		if err != nil {
			return nil, err
		}
		if m != "join" {
			hv, err := e.db.CurrentStateEvent(ctx, room.NID, storage.StateKey{Type: "m.room.history_visibility"})
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			if hv == nil || gjson.GetBytes(hv.JSON, "content.history_visibility").Str != "world_readable" {
				return nil, fmt.Errorf("%w: you are not a member of the room", ErrForbidden)
			}
		}
	}
	return e.db.RoomAliases(ctx, string(roomID))
}
