// Package push is push notifications: users' push rules (the server defaults merged with
// their own), the evaluation of every new room event against the rules of each local member
// it concerns, the unread notification counts /sync reports, GET /notifications, pushers,
// and the delivery of notifications to push gateways.
//
// Evaluation runs as the rooms engine's EventHook: before an event's write, under the room's
// lock, and its notifications are stored in the event's own transaction, so that a /sync
// that sees an event also sees the counts it raised. A notification is unread until the
// user's read receipt (m.read or m.read.private), or an event they send, reaches it.
//
// It is not for HTTP (server/httpapi decodes requests and maps the sentinel errors below)
// nor for sync (server/sync reads UnreadCounts through a source).
//
// See https://spec.matrix.org/v1.19/client-server-api/#push-notifications
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// Errors the API maps to the spec's codes.
var (
	ErrNotFound     = errors.New("push: not found")
	ErrInvalidParam = errors.New("push: invalid parameter")
	ErrBadJSON      = errors.New("push: bad JSON")
	ErrMissingParam = errors.New("push: missing parameter")
	// ErrRelativeNotFound is a before or after naming no rule of the user's (400 M_UNKNOWN,
	// as the spec's example and Synapse answer).
	ErrRelativeNotFound = errors.New("push: rule not found")
)

// Defaults for Options.
const (
	// DefaultRetention is how long notifications are kept for GET /notifications and the
	// unread counts.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultCachedRulesets bounds how many users' compiled rulesets are kept in memory.
	DefaultCachedRulesets = 4096
	// pruneEvery is how often old notifications are deleted, and pruneBatch how many at once.
	pruneEvery = time.Hour
	pruneBatch = 1000
)

// AccountDataType is the account data event that carries a user's push rules to clients.
const AccountDataType = "m.push_rules"

// Options configure a Service. The zero value is usable.
type Options struct {
	Log *slog.Logger
	// Gateway configures delivery to push gateways.
	Gateway GatewayOptions
	// Retention is how long notifications are kept; zero means DefaultRetention.
	Retention time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Ignored returns the users whose events user ignores (m.ignored_user_list): their
	// events notify nobody who ignores them. Nil: nobody is ignored.
	Ignored func(ctx context.Context, user id.UserID) (map[id.UserID]bool, error)
}

// Service is the push engine of one server. Create it with New, hand it to the rooms engine
// (SetEventHook) and Run it. It is safe for concurrent use; Notify must be set before use.
type Service struct {
	// Notify is called after a committed change a user's syncs must see (their push
	// rules); it must not block. Nil tells nobody.
	Notify func(user id.UserID)

	db      *storage.DB
	rooms   *rooms.Engine
	opt     Options
	log     *slog.Logger
	gateway *Gateway
	pushers pusherUsers

	cacheMu sync.Mutex
	// cacheGen grows with every rules change, so a ruleset read before a change is not
	// cached after it.
	cacheGen uint64
	cache    map[id.UserID]*compiled
}

// New returns a Service over db; roomsEngine formats the events GET /notifications lists.
func New(db *storage.DB, roomsEngine *rooms.Engine, opt Options) *Service {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	s := &Service{db: db, rooms: roomsEngine, opt: opt, log: opt.Log, cache: map[id.UserID]*compiled{}}
	s.pushers.db = db
	s.gateway = newGateway(opt.Gateway, opt.Log, serviceHost{s})
	return s
}

// Run delivers notifications to push gateways and deletes old notifications until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.gateway.Run(ctx)
	}()
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		s.prune(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

// SetAllowPrivate lets pushers reach gateways on loopback and private networks, or stops it.
func (s *Service) SetAllowPrivate(allow bool) { s.gateway.SetAllowPrivate(allow) }

// prune deletes notifications older than the retention, a batch per write.
func (s *Service) prune(ctx context.Context) {
	before := s.opt.Now().Add(-s.opt.Retention).UnixMilli()
	for ctx.Err() == nil {
		var n int64
		err := s.db.Write(ctx, func(tx *storage.Tx) error {
			var err error
			n, err = tx.PruneNotifications(before, pruneBatch)
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("pruning old notifications", "err", err)
			}
			return
		}
		if n < pruneBatch {
			return
		}
	}
}

// Rules returns a user's global push ruleset.
func (s *Service) Rules(ctx context.Context, user id.UserID) (*Ruleset, error) {
	c, err := s.changes(ctx, user)
	if err != nil {
		return nil, err
	}
	return c.merge(user), nil
}

// Rule returns one of a user's rules, their own or a server default; ErrNotFound if the
// kind has no rule with that ID.
func (s *Service) Rule(ctx context.Context, user id.UserID, kind Kind, ruleID string) (*Rule, error) {
	rs, err := s.Rules(ctx, user)
	if err != nil {
		return nil, err
	}
	if r := rs.Find(kind, ruleID); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: no %s rule %s", ErrNotFound, kind, ruleID)
}

// PutRule adds or replaces one of a user's own rules (see the spec's PUT
// /pushrules/global/{kind}/{ruleId}): a new rule is enabled and, unless before or after
// places it, the most important of its kind; an existing one keeps its place and enabled
// state unless before or after moves it. Rule IDs starting with '.' or containing slashes
// are refused (ErrInvalidParam); a before or after that names none of the user's rules of
// the kind is ErrRelativeNotFound.
func (s *Service) PutRule(ctx context.Context, user id.UserID, kind Kind, ruleID string, nr *NewRule, before, after string) error {
	return s.edit(ctx, user, func(c *changes) error { return c.put(kind, ruleID, nr, before, after) })
}

// DeleteRule deletes one of a user's own rules; server-default rules cannot be deleted
// (ErrInvalidParam).
func (s *Service) DeleteRule(ctx context.Context, user id.UserID, kind Kind, ruleID string) error {
	return s.edit(ctx, user, func(c *changes) error { return c.remove(kind, ruleID) })
}

// SetEnabled enables or disables a rule, the user's own or a server default.
func (s *Service) SetEnabled(ctx context.Context, user id.UserID, kind Kind, ruleID string, enabled bool) error {
	return s.edit(ctx, user, func(c *changes) error { return c.set(kind, ruleID, &enabled, nil) })
}

// SetActions replaces a rule's actions, the user's own or a server default's.
func (s *Service) SetActions(ctx context.Context, user id.UserID, kind Kind, ruleID string, actions []json.RawMessage) error {
	return s.edit(ctx, user, func(c *changes) error { return c.set(kind, ruleID, nil, actions) })
}

// edit applies a change to a user's rules and, in the same write, updates their m.push_rules
// account data, which carries the change to their syncs.
func (s *Service) edit(ctx context.Context, user id.UserID, change func(*changes) error) error {
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		raw, err := tx.PushRules(string(user))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		c, err := parseChanges(raw)
		if err != nil {
			return err
		}
		if err := change(c); err != nil {
			return err
		}
		doc, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := tx.SetPushRules(string(user), doc); err != nil {
			return err
		}
		content, err := json.Marshal(map[string]any{"global": c.merge(user)})
		if err != nil {
			return err
		}
		_, err = tx.SetAccountData(user, "", AccountDataType, content)
		return err
	})
	if err != nil {
		return err
	}
	s.forget(user)
	if s.Notify != nil {
		s.Notify(user)
	}
	return nil
}

// changes loads what a user changed of their rules.
func (s *Service) changes(ctx context.Context, user id.UserID) (*changes, error) {
	raw, err := s.db.PushRules(ctx, string(user))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	return parseChanges(raw)
}

// compiled returns a user's rules ready to match, from the cache when it has them.
func (s *Service) compiled(ctx context.Context, user id.UserID) (*compiled, error) {
	s.cacheMu.Lock()
	c, gen := s.cache[user], s.cacheGen
	s.cacheMu.Unlock()
	if c != nil {
		return c, nil
	}
	rs, err := s.Rules(ctx, user)
	if err != nil {
		return nil, err
	}
	c = compile(rs)
	s.cacheMu.Lock()
	if s.cacheGen == gen {
		if len(s.cache) >= DefaultCachedRulesets {
			clear(s.cache)
		}
		s.cache[user] = c
	}
	s.cacheMu.Unlock()
	return c, nil
}

// forget drops a user's compiled rules after a change.
func (s *Service) forget(user id.UserID) {
	s.cacheMu.Lock()
	s.cacheGen++
	delete(s.cache, user)
	s.cacheMu.Unlock()
}

// AccountData puts a user's current push rules into the global account data events a sync
// sends: it replaces a stored m.push_rules event with one made from the current rules and
// server defaults, and adds one to an initial sync (initial) for users who never changed
// their rules, as clients expect m.push_rules in every initial sync.
func (s *Service) AccountData(ctx context.Context, user id.UserID, initial bool, events []json.RawMessage) ([]json.RawMessage, error) {
	at := -1
	for i, ev := range events {
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(ev, &head) == nil && head.Type == AccountDataType {
			at = i
		}
	}
	if at < 0 && !initial {
		return events, nil
	}
	rs, err := s.Rules(ctx, user)
	if err != nil {
		return nil, err
	}
	ev, err := json.Marshal(map[string]any{"type": AccountDataType, "content": map[string]any{"global": rs}})
	if err != nil {
		return nil, err
	}
	if at >= 0 {
		events[at] = ev
		return events, nil
	}
	return append(events, ev), nil
}
