package userdata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// CreateFilter validates a filter (see ParseFilter) and stores it for userID, returning its
// ID: a small integer as a string, unique per user. Uploading a filter the user already has
// returns that filter's ID. A filter larger than MaxContentBytes is ErrTooLarge.
func (s *Service) CreateFilter(ctx context.Context, userID id.UserID, raw json.RawMessage) (string, error) {
	if _, err := ParseFilter(raw); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if buf.Len() > MaxContentBytes {
		return "", fmt.Errorf("%w: the filter is too large", ErrTooLarge)
	}
	var fid int64
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		fid, err = tx.AddFilter(userID, buf.Bytes())
		return err
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(fid, 10), nil
}

// FilterJSON returns one of userID's filters as it was uploaded (compacted). An unknown or
// malformed filter ID is ErrNotFound.
func (s *Service) FilterJSON(ctx context.Context, userID id.UserID, filterID string) (json.RawMessage, error) {
	fid, err := strconv.ParseInt(filterID, 10, 64)
	if err != nil || strconv.FormatInt(fid, 10) != filterID {
		return nil, fmt.Errorf("%w: no filter %q", ErrNotFound, filterID)
	}
	raw, err := s.db.Filter(ctx, userID, fid)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no filter %q", ErrNotFound, filterID)
	}
	return raw, err
}

// Filter returns one of userID's filters, parsed. An unknown or malformed filter ID is
// ErrNotFound.
func (s *Service) Filter(ctx context.Context, userID id.UserID, filterID string) (*Filter, error) {
	raw, err := s.FilterJSON(ctx, userID, filterID)
	if err != nil {
		return nil, err
	}
	return ParseFilter(raw)
}

// ResolveFilter interprets the filter query parameter of /sync: empty means no filter (a
// zero Filter), a value starting with '{' is a filter inline, anything else the ID of one of
// userID's filters.
func (s *Service) ResolveFilter(ctx context.Context, userID id.UserID, param string) (*Filter, error) {
	switch {
	case param == "":
		return &Filter{}, nil
	case strings.HasPrefix(param, "{"):
		return ParseFilter([]byte(param))
	default:
		return s.Filter(ctx, userID, param)
	}
}
