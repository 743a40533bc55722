package userdata

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Presence states. See https://spec.matrix.org/v1.19/client-server-api/#presence
const (
	Online      = "online"
	Unavailable = "unavailable"
	Offline     = "offline"
)

// Presence timing, as in Synapse.
const (
	// IdleTimeout is how long an online user may be inactive before they show as
	// unavailable (the spec's idle timeout). It is applied when presence is read; see StatusAt.
	IdleTimeout = 5 * time.Minute
	// ActiveGranularity is how stale an online user's stored last-active time may grow
	// before activity is written again; a user active within twice this is currently_active.
	ActiveGranularity = time.Minute
)

// Status is a user's presence as clients see it: the body of GET
// /presence/{userId}/status, and the content of an m.presence event in /sync.
type Status struct {
	Presence string `json:"presence"`
	// LastActiveAgo is milliseconds since the user was last active; nil if never.
	LastActiveAgo *int64 `json:"last_active_ago,omitempty"`
	// StatusMsg is the user's status message; "" for none.
	StatusMsg string `json:"status_msg,omitempty"`
	// CurrentlyActive is set only while the user is online.
	CurrentlyActive *bool `json:"currently_active,omitempty"`
}

// StatusAt returns how stored presence p looks at now: an online user inactive for longer
// than IdleTimeout shows as unavailable. Sync applies it to what PresenceSince returns, so
// that /sync and GET /presence agree.
func StatusAt(p storage.Presence, now time.Time) Status {
	st := Status{Presence: p.State, StatusMsg: p.StatusMsg}
	if p.LastActiveTS > 0 {
		ago := max(now.UnixMilli()-p.LastActiveTS, 0)
		st.LastActiveAgo = &ago
		if st.Presence == Online && time.Duration(ago)*time.Millisecond > IdleTimeout {
			st.Presence = Unavailable
		}
	}
	if st.Presence == Online {
		active := st.LastActiveAgo != nil && time.Duration(*st.LastActiveAgo)*time.Millisecond < 2*ActiveGranularity
		st.CurrentlyActive = &active
	}
	return st
}

// PresenceEnabled reports whether presence is on (the presence.enabled setting).
func (s *Service) PresenceEnabled() bool { return s.presence.Load() }

// SetPresenceEnabled turns presence on or off; a configuration reload calls it. While off,
// SetPresence and MarkActive validate and drop their updates, Presence answers offline for
// anyone, and PresenceSince returns nothing: what Synapse does with presence disabled.
func (s *Service) SetPresenceEnabled(on bool) { s.presence.Store(on) }

// Presence returns target's presence as observer sees it. An unknown or deactivated local
// user, or a remote user we have no presence for, is ErrNotFound; a local user who never set
// their presence is offline. CanSeePresence may refuse with ErrPresenceHidden.
func (s *Service) Presence(ctx context.Context, observer, target id.UserID) (Status, error) {
	if !s.PresenceEnabled() {
		return Status{Presence: Offline}, nil
	}
	localpart, _, err := target.Parse()
	if err != nil {
		return Status{}, fmt.Errorf("%w: %q is not a user ID", ErrInvalidParam, target)
	}
	p, err := s.db.Presence(ctx, target)
	if errors.Is(err, storage.ErrNotFound) {
		p, err = nil, nil
	}
	if err != nil {
		return Status{}, err
	}
	if s.isLocal(target) {
		u, err := s.db.User(ctx, localpart)
		if errors.Is(err, storage.ErrNotFound) || err == nil && u.Deactivated {
			return Status{}, fmt.Errorf("%w: no user %s", ErrNotFound, target)
		}
		if err != nil {
			return Status{}, err
		}
	} else if p == nil {
		return Status{}, fmt.Errorf("%w: no presence known for %s", ErrNotFound, target)
	}
	if observer != target && s.CanSeePresence != nil && !s.CanSeePresence(ctx, observer, target) {
		return Status{}, ErrPresenceHidden
	}
	if p == nil {
		return Status{Presence: Offline}, nil
	}
	return StatusAt(*p, s.now()), nil
}

// SetPresence sets a local user's presence state (Online, Unavailable or Offline) and status
// message ("" clears it), as PUT /presence/{userId}/status and the set_presence parameter of
// /sync do. Going online counts as activity. A change nobody could see (same state and
// message, still recently active) writes nothing. It returns the stream position of the
// change, 0 if none was written.
func (s *Service) SetPresence(ctx context.Context, userID id.UserID, state, statusMsg string) (int64, error) {
	switch state {
	case Online, Unavailable, Offline:
	default:
		return 0, fmt.Errorf("%w: presence must be online, unavailable or offline", ErrInvalidParam)
	}
	if len(statusMsg) > MaxContentBytes {
		return 0, fmt.Errorf("%w: the status message is too long", ErrTooLarge)
	}
	if !s.PresenceEnabled() {
		return 0, nil
	}
	now := s.now().UnixMilli()
	return s.updatePresence(ctx, userID, func(old *storage.Presence) *storage.Presence {
		next := storage.Presence{UserID: userID, State: state, StatusMsg: statusMsg}
		if old != nil {
			next.LastActiveTS = old.LastActiveTS
		}
		if state == Online {
			next.LastActiveTS = now
		}
		if old != nil && old.State == state && old.StatusMsg == statusMsg && (state != Online || fresh(old, now)) {
			return nil
		}
		return &next
	})
}

// MarkActive records that a local user did something (sent an event, synced): an
// unavailable user comes back online and an online user's last-active time moves on, at
// most once per ActiveGranularity. An offline user stays offline; SetPresence brings them
// online. It returns the stream position of the change, 0 if none was written.
func (s *Service) MarkActive(ctx context.Context, userID id.UserID) (int64, error) {
	if !s.PresenceEnabled() {
		return 0, nil
	}
	now := s.now().UnixMilli()
	return s.updatePresence(ctx, userID, func(old *storage.Presence) *storage.Presence {
		if old == nil || old.State == Offline || old.State == Online && fresh(old, now) {
			return nil
		}
		next := *old
		next.State, next.LastActiveTS = Online, now
		return &next
	})
}

// fresh reports whether p's last-active time is within ActiveGranularity of now.
func fresh(p *storage.Presence, now int64) bool {
	return now-p.LastActiveTS < ActiveGranularity.Milliseconds()
}

// updatePresence applies change to a user's stored presence (nil if none) in one
// transaction; change returns nil to write nothing.
func (s *Service) updatePresence(ctx context.Context, userID id.UserID, change func(old *storage.Presence) *storage.Presence) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		old, err := tx.Presence(userID)
		if errors.Is(err, storage.ErrNotFound) {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		next := change(old)
		if next == nil {
			return nil
		}
		pos, err = tx.SetPresence(*next)
		return err
	})
	if err != nil || pos == 0 {
		return 0, err
	}
	s.notify(userID, pos)
	if s.OnPresence != nil {
		s.OnPresence(userID)
	}
	return pos, nil
}

// PresenceSince returns the stored presence of those of users whose presence changed in the
// stream positions (since, upto]; nothing while presence is off. Turn each into what clients
// see with StatusAt.
func (s *Service) PresenceSince(ctx context.Context, users []id.UserID, since, upto int64) ([]storage.Presence, error) {
	if !s.PresenceEnabled() {
		return nil, nil
	}
	return s.db.PresenceSince(ctx, users, since, upto)
}

// SetRemotePresence stores the presence another server reports for one of its users (an
// m.presence EDU). lastActiveAgo is relative to now, as the EDU carries it.
func (s *Service) SetRemotePresence(ctx context.Context, userID id.UserID, state, statusMsg string, lastActiveAgo int64) error {
	switch state {
	case Online, Unavailable, Offline:
	default:
		return fmt.Errorf("%w: presence must be online, unavailable or offline", ErrInvalidParam)
	}
	if len(statusMsg) > MaxContentBytes || lastActiveAgo < 0 {
		return fmt.Errorf("%w: bad presence for %s", ErrInvalidParam, userID)
	}
	if !s.PresenceEnabled() {
		return nil
	}
	now := s.now().UnixMilli()
	_, err := s.updatePresence(ctx, userID, func(old *storage.Presence) *storage.Presence {
		next := &storage.Presence{UserID: userID, State: state, StatusMsg: statusMsg, LastActiveTS: now - lastActiveAgo}
		if old != nil && old.State == next.State && old.StatusMsg == next.StatusMsg && next.LastActiveTS-old.LastActiveTS < ActiveGranularity.Milliseconds() {
			return nil
		}
		return next
	})
	return err
}
