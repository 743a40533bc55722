package rooms

import (
	"context"
	"errors"
	"fmt"

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
