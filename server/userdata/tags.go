package userdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// TagType is the room account data type that holds a user's tags on a room, as
// {"tags": {name: {"order": 0.5}, …}}: sync delivers all of a room's tags as one m.tag event.
// See https://spec.matrix.org/v1.19/client-server-api/#room-tagging
const TagType = "m.tag"

// Tags returns the tags userID has put on roomID, each name with its object (e.g.
// {"order": 0.25} or {}). No tags is an empty map. An m.tag entry that is not shaped like
// one (clients may write it as plain account data) reads as no tags.
func (s *Service) Tags(ctx context.Context, userID id.UserID, roomID id.RoomID) (map[string]json.RawMessage, error) {
	if err := ValidRoomID(roomID); err != nil {
		return nil, err
	}
	d, err := s.db.AccountData(ctx, userID, roomID, TagType)
	if errors.Is(err, storage.ErrNotFound) {
		return map[string]json.RawMessage{}, nil
	}
	if err != nil {
		return nil, err
	}
	_, tags := parseTags(d.Content)
	return tags, nil
}

// SetTag puts a tag on a room, replacing its object if the tag is there, and returns the
// stream position of the new m.tag content. tag is 1 to MaxTagBytes bytes; content is a
// JSON object whose order, if present, is a number in [0, 1]; its other fields are kept.
func (s *Service) SetTag(ctx context.Context, userID id.UserID, roomID id.RoomID, tag string, content json.RawMessage) (int64, error) {
	if err := s.checkRoomWrite(ctx, roomID); err != nil {
		return 0, err
	}
	if err := checkTag(tag); err != nil {
		return 0, err
	}
	content, err := compactObject(content)
	if err != nil {
		return 0, err
	}
	if err := checkOrder(content); err != nil {
		return 0, err
	}
	return s.updateTags(ctx, userID, roomID, func(tags map[string]json.RawMessage) bool {
		tags[tag] = content
		return true
	})
}

// DeleteTag removes a tag from a room. Removing a tag that is not there is not an error, and
// changes nothing (no stream position is taken, and 0 is returned).
func (s *Service) DeleteTag(ctx context.Context, userID id.UserID, roomID id.RoomID, tag string) (int64, error) {
	if err := ValidRoomID(roomID); err != nil {
		return 0, err
	}
	if err := checkTag(tag); err != nil {
		return 0, err
	}
	return s.updateTags(ctx, userID, roomID, func(tags map[string]json.RawMessage) bool {
		_, ok := tags[tag]
		delete(tags, tag)
		return ok
	})
}

// updateTags rewrites a room's m.tag content with change applied, in one transaction, unless
// change reports that it changed nothing.
func (s *Service) updateTags(ctx context.Context, userID id.UserID, roomID id.RoomID, change func(map[string]json.RawMessage) bool) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		var content json.RawMessage
		d, err := tx.AccountData(userID, roomID, TagType)
		switch {
		case err == nil:
			content = d.Content
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		top, tags := parseTags(content)
		if !change(tags) {
			return nil
		}
		if top["tags"], err = json.Marshal(tags); err != nil {
			return err
		}
		next, err := json.Marshal(top)
		if err != nil {
			return err
		}
		if len(next) > MaxContentBytes {
			return fmt.Errorf("%w: the room's tags would exceed it", ErrTooLarge)
		}
		pos, err = tx.SetAccountData(userID, roomID, TagType, next)
		return err
	})
	if err != nil || pos == 0 {
		return 0, err
	}
	s.notify(userID, pos)
	return pos, nil
}

// parseTags splits m.tag content into its top-level fields and its tags; both are non-nil
// and anything malformed reads as absent.
func parseTags(content json.RawMessage) (top, tags map[string]json.RawMessage) {
	top, tags = map[string]json.RawMessage{}, map[string]json.RawMessage{}
	if len(content) > 0 && json.Unmarshal(content, &top) != nil {
		top = map[string]json.RawMessage{}
	}
	if json.Unmarshal(top["tags"], &tags) != nil || tags == nil {
		tags = map[string]json.RawMessage{}
	}
	for name, v := range tags {
		if len(v) == 0 || v[0] != '{' {
			delete(tags, name)
		}
	}
	return top, tags
}

func checkTag(tag string) error {
	if tag == "" || len(tag) > MaxTagBytes {
		return fmt.Errorf("%w: a tag must be 1 to %d bytes", ErrInvalidParam, MaxTagBytes)
	}
	return nil
}

// checkOrder checks a tag object's order: absent, or a number in [0, 1].
func checkOrder(content json.RawMessage) error {
	var tag struct {
		Order json.RawMessage `json:"order"`
	}
	if err := json.Unmarshal(content, &tag); err != nil || tag.Order == nil {
		return err
	}
	var order float64
	if c := tag.Order[0]; !(c == '-' || c >= '0' && c <= '9') || json.Unmarshal(tag.Order, &order) != nil {
		return fmt.Errorf("%w: order must be a number", ErrBadJSON)
	}
	if order < 0 || order > 1 {
		return fmt.Errorf("%w: order must be between 0 and 1", ErrInvalidParam)
	}
	return nil
}
