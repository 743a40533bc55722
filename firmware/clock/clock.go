// Package clock keeps a Fyr box's wall clock plausible. A Raspberry Pi has no battery-backed
// clock and boots believing it is 1970; certificates, signing keys and tokens then look
// expired or not yet valid. So the box remembers the last time it knew in the data
// directory, reads a real-time clock when one is fitted, asks NTP servers when the network
// allows, and never steps the clock backwards: time from every source only ever moves it
// forward, and a clock found ahead of NTP is slowed (slewed), not set back.
//
// It is not a full NTP daemon: one SNTP exchange per server and sync, no filtering beyond the
// median of the servers that answered, no frequency discipline.
package clock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"fyr/storage/atomicfile"
)

// Defaults of Keeper.
const (
	DefaultSaveEvery = 10 * time.Minute
	DefaultSyncEvery = time.Hour
	// DefaultStepThreshold: NTP ahead by more than this steps the clock; less is slewed.
	DefaultStepThreshold = 128 * time.Millisecond
	// DefaultMaxSlewBack: a clock ahead of NTP by up to this much is slowed down; beyond it
	// slewing would take weeks, so the difference is only reported.
	DefaultMaxSlewBack = 30 * time.Second
	// retryMin is the first wait before asking NTP again after a failure; it doubles up to
	// SyncEvery.
	retryMin     = time.Minute
	queryTimeout = 5 * time.Second
)

// System is the clock being kept.
type System interface {
	Now() time.Time
	// Step sets the clock to t at once. Keeper only ever steps forward.
	Step(t time.Time) error
	// Slew has the clock drift by d gradually, speeding it up (d > 0) or slowing it down.
	Slew(d time.Duration) error
}

// RTC is a battery-backed real-time clock.
type RTC interface {
	Read() (time.Time, error)
	Set(t time.Time) error
}

// Keeper keeps the clock. Set its fields, call Boot once early, then Run. Its methods are
// safe for concurrent use.
type Keeper struct {
	// File keeps the last known time, e.g. <data dir>/clock. Required.
	File string
	// System is the clock kept. Nil: the Linux system clock (needs CAP_SYS_TIME).
	System System
	// RTC is the real-time clock, if the board has one. Nil: none.
	RTC RTC
	// Servers are NTP servers, "host" or "host:port". Empty: no NTP.
	Servers []string
	// Floor is a time the clock is surely past, such as the build time. Zero: none.
	Floor time.Time
	// SaveEvery, SyncEvery, StepThreshold and MaxSlewBack: zero means the default.
	SaveEvery, SyncEvery       time.Duration
	StepThreshold, MaxSlewBack time.Duration
	// Log receives what happens. Nil: slog.Default().
	Log *slog.Logger

	mu sync.Mutex
	// trusted is set once a source better than a saved time (RTC or NTP) set the clock.
	trusted bool
}

func (k *Keeper) sys() System {
	if k.System != nil {
		return k.System
	}
	return systemClock{}
}

func (k *Keeper) log() *slog.Logger {
	if k.Log != nil {
		return k.Log
	}
	return slog.Default()
}

// Trusted reports whether an RTC or NTP server has vouched for the clock since boot; until
// then it is only a lower bound (the saved time), and validity checks of certificates and
// keys should be lenient.
func (k *Keeper) Trusted() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.trusted
}

// Boot sets the clock at boot to the latest of the system clock, the RTC, the saved time
// and Floor, stepping only forward, and returns the time chosen and where it came from.
// An unreadable RTC or saved time is logged and skipped.
func (k *Keeper) Boot() (time.Time, string, error) {
	sys := k.sys()
	now := sys.Now()
	best, source := now, "system clock"
	consider := func(t time.Time, from string) {
		if t.After(best) {
			best, source = t, from
		}
	}
	if k.RTC != nil {
		if t, err := k.RTC.Read(); err != nil {
			k.log().Warn("clock: the real-time clock cannot be read; ignoring it", "err", err)
		} else {
			consider(t, "real-time clock")
			k.mu.Lock()
			k.trusted = true
			k.mu.Unlock()
		}
	}
	if saved, err := k.saved(); err != nil {
		k.log().Warn("clock: the saved time cannot be read; ignoring it", "file", k.File, "err", err)
	} else {
		consider(saved, "saved time")
	}
	consider(k.Floor, "build time")
	if best.After(now) {
		if err := sys.Step(best); err != nil {
			return now, "system clock", fmt.Errorf("clock: set the clock to %s (%s): %w", best.Format(time.RFC3339), source, err)
		}
		k.log().Info("clock: set forward", "to", best.Format(time.RFC3339), "from", source, "by", best.Sub(now).Round(time.Second))
	}
	return best, source, nil
}

// saved reads File; a missing file is the zero time.
func (k *Keeper) saved() (time.Time, error) {
	b, err := os.ReadFile(k.File)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
}

// Save records the clock's time in File, unless File already holds a later time (the clock
// would then be behind a time it once knew, and the file keeps the later one).
func (k *Keeper) Save() error {
	now := k.sys().Now()
	if saved, err := k.saved(); err == nil && !now.After(saved) {
		return nil
	}
	if err := atomicfile.WriteFile(k.File, []byte(now.UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return fmt.Errorf("clock: save the time: %w", err)
	}
	return nil
}

// Result is what one Sync did.
type Result struct {
	// Offset is the median offset of the servers that answered: how far they are ahead.
	Offset time.Duration
	// Action is "stepped", "slewed", "held" (ahead of NTP by more than MaxSlewBack) or
	// "none" (already right).
	Action string
	// Answered counts the servers that answered.
	Answered int
}

// Sync asks every server once and corrects the clock by the median offset of those that
// answered: stepping forward when the clock is behind by more than StepThreshold, slewing
// smaller differences either way, and slowing a clock that is ahead by up to MaxSlewBack.
// It never steps back. After a correction it sets the RTC and saves the time.
func (k *Keeper) Sync(ctx context.Context) (Result, error) {
	if len(k.Servers) == 0 {
		return Result{}, errors.New("clock: no NTP servers configured")
	}
	sys := k.sys()
	var offsets []time.Duration
	var errs []error
	for _, s := range k.Servers {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		sample, err := Query(qctx, s, sys.Now)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		offsets = append(offsets, sample.Offset)
	}
	if len(offsets) == 0 {
		return Result{}, errors.Join(errs...)
	}
	slices.Sort(offsets)
	res := Result{Offset: offsets[len(offsets)/2], Answered: len(offsets)}
	step := orDur(k.StepThreshold, DefaultStepThreshold)
	switch off := res.Offset; {
	case off > step:
		if err := sys.Step(sys.Now().Add(off)); err != nil {
			return res, fmt.Errorf("clock: step forward by %s: %w", off, err)
		}
		res.Action = "stepped"
		k.log().Info("clock: stepped forward to NTP time", "by", off.Round(time.Millisecond))
	case off == 0:
		res.Action = "none"
	case off > -orDur(k.MaxSlewBack, DefaultMaxSlewBack):
		if err := sys.Slew(off); err != nil {
			return res, fmt.Errorf("clock: slew by %s: %w", off, err)
		}
		res.Action = "slewed"
	default:
		res.Action = "held"
		k.log().Warn("clock: the clock is ahead of NTP; it is never set back, so the difference stays",
			"ahead_by", (-off).Round(time.Second))
	}
	k.mu.Lock()
	k.trusted = true
	k.mu.Unlock()
	if k.RTC != nil && res.Action != "held" {
		truth := sys.Now() // after a step; a slew is still under way
		if res.Action == "slewed" {
			truth = truth.Add(res.Offset)
		}
		if err := k.RTC.Set(truth); err != nil {
			k.log().Warn("clock: the real-time clock cannot be set", "err", err)
		}
	}
	return res, k.Save()
}

// Run saves the time every SaveEvery and syncs with NTP every SyncEvery (retrying sooner,
// from a minute up, while no server answers) until ctx ends; it saves once more on the way
// out and returns nil.
func (k *Keeper) Run(ctx context.Context) error {
	save := time.NewTicker(orDur(k.SaveEvery, DefaultSaveEvery))
	defer save.Stop()
	every := orDur(k.SyncEvery, DefaultSyncEvery)
	retry := min(retryMin, every)
	sync := time.NewTimer(0)
	if len(k.Servers) == 0 {
		sync.Stop()
	}
	defer sync.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := k.Save(); err != nil {
				k.log().Warn("clock: save at shutdown", "err", err)
			}
			return nil
		case <-save.C:
			if err := k.Save(); err != nil {
				k.log().Warn("clock: save", "err", err)
			}
		case <-sync.C:
			if _, err := k.Sync(ctx); err != nil {
				k.log().Debug("clock: no NTP answer; trying again later", "in", retry, "err", err)
				sync.Reset(retry)
				retry = min(retry*2, every)
				continue
			}
			retry = min(retryMin, every)
			sync.Reset(every)
		}
	}
}

func orDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
