package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Profile limits. The spec caps a whole profile at 64 KiB and a key at 255 bytes; the display
// name and avatar limits are Synapse's, which clients already live with.
const (
	MaxProfileBytes     = 64 * 1024
	MaxProfileKeyBytes  = 255
	MaxDisplayNameBytes = 256
	MaxAvatarURLBytes   = 1000
)

// Profile errors, mapped to the spec's codes by httpapi.
var (
	ErrProfileTooLarge = errors.New("accounts: profile would exceed 64 KiB")
	ErrKeyTooLarge     = errors.New("accounts: profile key longer than 255 bytes")
)

// profileKey is the spec's keyName grammar: the two legacy keys, m.tz, or a namespaced key.
var profileKey = regexp.MustCompile(`^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$`)

// ValidProfileKey reports whether key may name a profile field.
func ValidProfileKey(key string) error {
	if len(key) > MaxProfileKeyBytes {
		return ErrKeyTooLarge
	}
	if !profileKey.MatchString(key) {
		return fmt.Errorf("%w: %q is not a profile key (displayname, avatar_url, m.tz or a namespaced key like org.example.field)", ErrInvalidParam, key)
	}
	return nil
}

// Profile returns a local user's profile fields as raw JSON, or ErrNotFound.
func (s *Service) Profile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	localpart, server, err := userID.Parse()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidParam, err)
	}
	if server != s.serverName {
		if s.remoteProfile == nil {
			return nil, ErrNotFound
		}
		return s.remoteProfile(ctx, userID)
	}
	fields, err := s.db.Profile(ctx, localpart)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		out[k] = v
	}
	return out, nil
}

// RemoteProfile fetches another server's user's profile over federation. It returns
// ErrNotFound when that server says so, and ErrRemoteUnavailable when it cannot be asked.
type RemoteProfile func(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)

// ErrRemoteUnavailable means another server could not answer.
var ErrRemoteUnavailable = errors.New("accounts: the user's server could not be reached")

// SetRemoteProfile installs the federation lookup for remote users' profiles.
func (s *Service) SetRemoteProfile(f RemoteProfile) { s.remoteProfile = f }

// OnProfileChange sets a hook called after a local user's display name or avatar changed,
// so that the rooms they are in can be told.
func (s *Service) OnProfileChange(f func(user id.UserID)) { s.profileChanged = f }

func (s *Service) profileChange(localpart, key string) {
	if s.profileChanged != nil && (key == "displayname" || key == "avatar_url") {
		s.profileChanged(id.NewUserID(localpart, s.serverName))
	}
}

// SetProfileField validates and stores one field of the caller's own profile.
func (s *Service) SetProfileField(ctx context.Context, localpart, key string, value json.RawMessage) error {
	if err := ValidProfileKey(key); err != nil {
		return err
	}
	switch key {
	case "displayname", "avatar_url", "m.tz":
		var str string
		if err := json.Unmarshal(value, &str); err != nil {
			return fmt.Errorf("%w: %s must be a string", ErrInvalidParam, key)
		}
		limit := MaxDisplayNameBytes
		if key == "avatar_url" {
			limit = MaxAvatarURLBytes
			if str != "" {
				if _, err := id.ParseContentURI(str); err != nil {
					return fmt.Errorf("%w: avatar_url must be an mxc:// URI", ErrInvalidParam)
				}
			}
		}
		if len(str) > limit {
			return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidParam, key, limit)
		}
	}
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		if err := tx.SetProfileField(localpart, key, value); err != nil {
			return err
		}
		// Checked inside the transaction, so two racing writes cannot both squeeze past it.
		size, err := tx.ProfileSize(localpart)
		if err != nil {
			return err
		}
		if size > MaxProfileBytes {
			return ErrProfileTooLarge
		}
		return nil
	})
	if err == nil {
		s.profileChange(localpart, key)
	}
	return err
}

// SetDisplayName sets a local user's display name.
func (s *Service) SetDisplayName(ctx context.Context, localpart, name string) error {
	v, _ := json.Marshal(name)
	return s.SetProfileField(ctx, localpart, "displayname", v)
}

// DeleteProfileField removes one field of the caller's own profile.
func (s *Service) DeleteProfileField(ctx context.Context, localpart, key string) error {
	if err := ValidProfileKey(key); err != nil {
		return err
	}
	err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.DeleteProfileField(localpart, key) })
	if err == nil {
		s.profileChange(localpart, key)
	}
	return err
}
