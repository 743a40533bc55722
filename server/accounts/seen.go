package accounts

import (
	"context"
	"errors"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// SeenFlushInterval is how often last-seen times and addresses of devices are written. They
// are kept in memory in between, so an authenticated request costs no write.
const SeenFlushInterval = time.Minute

type deviceKey struct {
	localpart string
	device    id.DeviceID
}

type seen struct {
	ts int64
	ip string
}

type seenTracker struct {
	mu      sync.Mutex
	pending map[deviceKey]seen
}

// noteSeen records that a device was just used from ip.
func (s *Service) noteSeen(localpart string, device id.DeviceID, ip string) {
	t := &s.seen
	t.mu.Lock()
	if t.pending == nil {
		t.pending = map[deviceKey]seen{}
	}
	t.pending[deviceKey{localpart, device}] = seen{ts: s.nowMS(), ip: ip}
	t.mu.Unlock()
}

// FlushSeen writes the recorded last-seen times in one transaction.
func (s *Service) FlushSeen(ctx context.Context) error {
	t := &s.seen
	t.mu.Lock()
	pending := t.pending
	t.pending = nil
	t.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx *storage.Tx) error {
		for k, v := range pending {
			if err := tx.TouchDevice(k.localpart, k.device, v.ts, v.ip); err != nil {
				return err
			}
		}
		return nil
	})
}

// Run flushes last-seen records every SeenFlushInterval, and forgets expired OpenID tokens,
// until ctx ends; then it flushes once more. Call it before closing the database's last user,
// and wait for it to return.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(SeenFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.FlushSeen(context.Background())
		case <-tick.C:
			err := errors.Join(s.FlushSeen(ctx), s.forgetOpenIDTokens(ctx))
			if err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}
