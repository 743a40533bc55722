package initd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"fyr/firmware/update"
)

// DefaultBlessAfter is how long the homeserver of a system update on trial must keep
// answering its health check before the update is kept (ParamBlessAfter changes it): long
// enough for a version that fails a little after its start (a migration, the first
// federation traffic) to show it, short enough that a power cut soon after an update rarely
// lands before the bless.
const DefaultBlessAfter = 3 * time.Minute

// Pacing of a trial.
const (
	// trialCheckEvery is the pause between health checks while a trial waits for its bless.
	trialCheckEvery = 5 * time.Second
	// blessRetry is the pause before a bless that failed is tried again.
	blessRetry = time.Minute
)

// Clock is the time source of PID 1's timers; tests swap in a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// trial carries a system update on trial to its end (firmware/update). Once the homeserver
// has answered every health check for blessAfter, it keeps the update (Manager.Bless); if
// the homeserver crash-loops first, it gives the update up (Manager.Rollback) and asks for
// the reboot that returns to the old slot. A boot that is no trial makes it do nothing.
//
// The supervisor drives it through healthy and crashLoop; run waits to bless.
type trial struct {
	m *update.Manager
	// blessAfter is how long the homeserver must stay healthy.
	blessAfter time.Duration
	// every is the pause between health checks (trialCheckEvery).
	every time.Duration
	// health probes the homeserver, as the supervisor's Health does.
	health func(ctx context.Context) error
	clock  Clock
	// reboot asks PID 1 for a clean reboot, which passes m.RebootArg() to reboot(2). It
	// must not block: PID 1 stops the supervisor, which may be calling crashLoop.
	reboot func()
	log    *slog.Logger

	// answered receives a value whenever a run of the homeserver first answers.
	answered chan struct{}
	// mu keeps a bless and a rollback apart.
	mu sync.Mutex
	// on: the update is on trial, neither kept nor given up yet.
	on bool
	// over is closed when on turns false.
	over chan struct{}
}

// newTrial returns the trial of the boot m.Boot reported on; rep nil or without a trial
// gives one that does nothing.
func newTrial(m *update.Manager, rep *update.Report, blessAfter time.Duration, health func(context.Context) error,
	reboot func(), log *slog.Logger) *trial {
	t := &trial{
		m: m, blessAfter: blessAfter, every: trialCheckEvery, health: health, clock: realClock{},
		reboot: reboot, log: log, answered: make(chan struct{}, 1), on: true, over: make(chan struct{}),
	}
	if m == nil || rep == nil || rep.Trial == nil {
		t.end()
	}
	return t
}

// end records that the trial is over; t.mu is held.
func (t *trial) end() {
	if t.on {
		t.on = false
		close(t.over)
	}
}

// healthy is the supervisor's OnHealthy: a run of the homeserver answered for the first time.
func (t *trial) healthy(time.Duration) {
	select {
	case t.answered <- struct{}{}:
	default:
	}
}

// crashLoop is the supervisor's OnCrashLoop. On a trial it gives the update up and asks for
// a reboot into the old slot; otherwise a crash loop is the homeserver's own problem, and
// the slot stays. Even when the updater cannot record the rollback, the box reboots: the
// boot loader's own fallback (a tryboot is tried once; a boot counter runs out) then
// returns to the old slot, which a crash-looping box on trial could never reach.
func (t *trial) crashLoop(exits int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.on {
		return
	}
	t.end()
	reason := fmt.Sprintf("the homeserver crash-looped (%d short runs in a row)", exits)
	if err := t.m.Rollback(context.Background(), reason); err != nil {
		t.log.Error("the update on trial crash-loops and could not be given up; rebooting anyway, the boot loader falls back to the old slot", "err", err)
	} else {
		t.log.Warn("the update on trial crash-loops; rebooting into the old slot", "short_runs", exits)
	}
	t.reboot()
}

// run waits for the homeserver's first answer, then blesses the update once every health
// check for blessAfter has passed. A failed check, or a new run of the homeserver (the last
// one ended), starts the wait over. It returns when the update is kept or given up, or when
// ctx ends.
func (t *trial) run(ctx context.Context) error {
	select {
	case <-t.over:
		return nil
	default:
	}
	t.log.Info("the update on trial is kept once the homeserver has stayed healthy", "for", t.blessAfter)
	select {
	case <-ctx.Done():
		return nil
	case <-t.over:
		return nil
	case <-t.answered:
	}
	since := t.clock.Now() // start of the healthy stretch; zero while the homeserver fails
	for {
		if !since.IsZero() && t.clock.Now().Sub(since) >= t.blessAfter {
			done, err := t.bless(ctx)
			if done {
				return nil
			}
			t.log.Error("the update on trial cannot be kept yet; trying again", "in", blessRetry, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-t.over:
				return nil
			case <-t.clock.After(blessRetry):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.over:
			return nil
		case <-t.answered:
			since = t.clock.Now()
			continue
		case <-t.clock.After(t.every):
		}
		pctx, cancel := context.WithTimeout(ctx, t.every)
		err := t.health(pctx)
		cancel()
		switch {
		case err != nil && !since.IsZero():
			t.log.Info("the homeserver on trial missed a health check; waiting for it to stay healthy again", "err", err)
			since = time.Time{}
		case err == nil && since.IsZero():
			since = t.clock.Now()
		}
	}
}

// bless keeps the update; done is false when it should be tried again.
func (t *trial) bless(ctx context.Context) (done bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.on {
		return true, nil // given up meanwhile
	}
	err = t.m.Bless(ctx)
	switch {
	case err == nil:
		t.log.Info("the update on trial stayed healthy and is kept", "after", t.blessAfter)
	case errors.Is(err, update.ErrNoTrial):
		t.log.Info("the boot loader no longer reports a trial (kept by hand?); nothing to bless")
	default:
		return false, err
	}
	t.end()
	return true, nil
}

// rebootArg is what the reboot about to happen passes to reboot(2): the boot loader's trial
// argument while an installed update waits for its trial ("0 tryboot" on a Raspberry Pi),
// else "". m nil (system updates off) gives "". Asking records that the trial is attempted,
// on the data disk, so call it after stopping the homeserver and before unmounting.
func rebootArg(m *update.Manager, log *slog.Logger) string {
	if m == nil {
		return ""
	}
	arg, err := m.RebootArg()
	if err != nil {
		log.Error("the updater cannot say how to reboot; rebooting plainly, and an update waiting for its trial waits on", "err", err)
		return ""
	}
	return arg
}
