package userdata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// serverManaged are the account data types only the server writes. See
// https://spec.matrix.org/v1.19/client-server-api/#client-config ("Servers MUST reject
// setting account data for event types that the server manages").
var serverManaged = map[string]bool{
	"m.fully_read": true,
	"m.push_rules": true,
}

// AccountData returns one entry of a user's account data: roomID "" for global. There is no
// fallback from a room to global data. ErrNotFound if the user has none of that type.
func (s *Service) AccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, typ string) (json.RawMessage, error) {
	if roomID != "" {
		if err := ValidRoomID(roomID); err != nil {
			return nil, err
		}
	}
	d, err := s.db.AccountData(ctx, userID, roomID, typ)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no account data of type %s", ErrNotFound, typ)
	}
	if err != nil {
		return nil, err
	}
	return d.Content, nil
}

// SetAccountData stores an entry of a user's account data as the client API asks, roomID ""
// for global, and returns its stream position. It refuses the types the server manages
// (ErrServerManaged), content that is not a JSON object (ErrBadJSON) or is larger than
// MaxContentBytes (ErrTooLarge), and a room that RoomExists denies (ErrUnknownRoom).
func (s *Service) SetAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, typ string, content json.RawMessage) (int64, error) {
	if serverManaged[typ] {
		return 0, fmt.Errorf("%w: %s", ErrServerManaged, typ)
	}
	if roomID != "" {
		if err := s.checkRoomWrite(ctx, roomID); err != nil {
			return 0, err
		}
	}
	return s.SetServerAccountData(ctx, userID, roomID, typ, content)
}

// SetServerAccountData stores an entry of a user's account data on the server's own behalf,
// including the types clients may not set (m.fully_read for read markers, m.push_rules), and
// returns its stream position. It validates like SetAccountData but does not ask RoomExists.
func (s *Service) SetServerAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, typ string, content json.RawMessage) (int64, error) {
	if roomID != "" {
		if err := ValidRoomID(roomID); err != nil {
			return 0, err
		}
	}
	if err := checkType(typ); err != nil {
		return 0, err
	}
	content, err := compactObject(content)
	if err != nil {
		return 0, err
	}
	var pos int64
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		pos, err = tx.SetAccountData(userID, roomID, typ, content)
		return err
	})
	if roomID == "" && typ == IgnoredUserListType {
		s.forgetIgnored(userID)
	}
	if err != nil {
		return 0, err
	}
	s.notify(userID, pos)
	return pos, nil
}

// AccountDataSince returns the entries of a user's account data changed in the stream
// positions (since, upto], global and by room; since 0 returns all. See
// storage.DB.AccountDataSince.
func (s *Service) AccountDataSince(ctx context.Context, userID id.UserID, since, upto int64) (global []storage.AccountData, rooms map[id.RoomID][]storage.AccountData, err error) {
	return s.db.AccountDataSince(ctx, userID, since, upto)
}

// checkType validates an account data type.
func checkType(typ string) error {
	if typ == "" || len(typ) > MaxTypeBytes {
		return fmt.Errorf("%w: an account data type must be 1 to %d bytes", ErrInvalidParam, MaxTypeBytes)
	}
	return nil
}

// compactObject checks that raw is a JSON object of at most MaxContentBytes once compacted,
// and returns it compacted.
func compactObject(raw json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("%w: content is not valid JSON", ErrBadJSON)
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, fmt.Errorf("%w: content must be a JSON object", ErrBadJSON)
	}
	if buf.Len() > MaxContentBytes {
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}
