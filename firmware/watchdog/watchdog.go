// Package watchdog feeds the board's hardware watchdog while the homeserver is healthy, so a
// box whose homeserver (or whose PID 1) stops answering resets itself, and a bad update on
// trial rolls back. A board without a watchdog just runs without one.
//
// It is not the supervisor: restarting a crashed homeserver is firmware/supervisor's job;
// the watchdog is the last resort when that does not help.
package watchdog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// DefaultPath is the watchdog device.
const DefaultPath = "/dev/watchdog"

// Defaults for the zero fields of Watchdog.
const (
	DefaultInterval = 5 * time.Second
	// DefaultGrace outlasts one homeserver crash: the supervisor's capped back-off (30 s)
	// plus a slow start on an SD card.
	DefaultGrace = 90 * time.Second
	// DefaultStartGrace covers the first start, which may migrate the database.
	DefaultStartGrace = 5 * time.Minute
)

// Device is an open hardware watchdog. Once open it resets the board unless Keepalive is
// called within its timeout.
type Device interface {
	// Keepalive restarts the watchdog's countdown.
	Keepalive() error
	// SetTimeout asks for a countdown of d and returns the one the hardware accepted.
	SetTimeout(d time.Duration) (time.Duration, error)
	// Close disarms the watchdog (the magic 'V' close) and closes the device.
	Close() error
}

// Clock is the time source; tests swap in a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Watchdog pings a Device while Health answers. Set the fields before calling Run; the zero
// value of each optional field means the default named beside it.
type Watchdog struct {
	// Health probes the homeserver (e.g. GET /health). Required.
	Health func(ctx context.Context) error
	// Open opens the device (OpenDevice(DefaultPath)).
	Open func() (Device, error)
	// Interval is the pause between probes, and so between pings (DefaultInterval). It must
	// be well below the hardware timeout.
	Interval time.Duration
	// Timeout, if set, is asked of the hardware; zero keeps the driver's default.
	Timeout time.Duration
	// Grace is how long pings go on after the last good answer (DefaultGrace). Zero means
	// the default; pings stop at the first failed probe only if Grace is negative.
	Grace time.Duration
	// StartGrace is how long pings go on before the first good answer (DefaultStartGrace).
	StartGrace time.Duration
	// Clock is the time source (the real clock).
	Clock Clock
	// Log receives what the watchdog does (discarded when nil).
	Log *slog.Logger
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (w *Watchdog) defaults() {
	if w.Open == nil {
		w.Open = func() (Device, error) { return OpenDevice(DefaultPath) }
	}
	if w.Interval <= 0 {
		w.Interval = DefaultInterval
	}
	if w.Grace == 0 {
		w.Grace = DefaultGrace
	}
	if w.Grace < 0 {
		w.Grace = 0
	}
	if w.StartGrace <= 0 {
		w.StartGrace = DefaultStartGrace
	}
	if w.Clock == nil {
		w.Clock = realClock{}
	}
	if w.Log == nil {
		w.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Run opens the watchdog and pings it for as long as the homeserver has answered Health
// within Grace (or, before its first answer, within StartGrace of Run's start). When ctx
// ends it disarms the watchdog and returns nil. A board without a watchdog is logged and
// Run returns nil at once: the box works, it just cannot reset itself.
func (w *Watchdog) Run(ctx context.Context) error {
	if w.Health == nil {
		return errors.New("watchdog: no Health function")
	}
	w.defaults()
	dev, err := w.Open()
	if err != nil {
		w.Log.Warn("disabling hardware watchdog, as it could not be opened", "err", err)
		return nil
	}
	if w.Timeout > 0 {
		got, err := dev.SetTimeout(w.Timeout)
		if err != nil {
			w.Log.Warn("watchdog timeout not set; keeping the driver's", "want", w.Timeout, "err", err)
		} else if got != w.Timeout {
			w.Log.Info("watchdog timeout adjusted by the hardware", "want", w.Timeout, "got", got)
		}
	}
	w.Log.Info("hardware watchdog armed", "interval", w.Interval, "grace", w.Grace)

	start := w.Clock.Now()
	var lastGood time.Time
	pinging := true
	for {
		if ctx.Err() != nil {
			break
		}
		if w.probe(ctx) {
			lastGood = w.Clock.Now()
		}
		if ctx.Err() != nil {
			break
		}
		ok := w.alive(start, lastGood)
		switch {
		case ok:
			if err := dev.Keepalive(); err != nil {
				w.Log.Warn("watchdog ping failed", "err", err)
			}
			if !pinging {
				w.Log.Info("homeserver answers again; pinging the watchdog")
			}
		case pinging:
			w.Log.Error("homeserver has not answered its health check; no longer pinging the watchdog, the board will reset",
				"last_answer", lastGood, "grace", w.Grace)
		}
		pinging = ok
		select {
		case <-ctx.Done():
		case <-w.Clock.After(w.Interval):
		}
	}
	if err := dev.Close(); err != nil {
		w.Log.Warn("watchdog not disarmed; the board may reset", "err", err)
		return nil
	}
	w.Log.Info("hardware watchdog disarmed")
	return nil
}

// probe asks Health once, giving it at most one Interval.
func (w *Watchdog) probe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, w.Interval)
	defer cancel()
	return w.Health(ctx) == nil
}

// alive says whether the homeserver counts as alive now: it answered within Grace, or it
// has not answered yet and Run started within StartGrace.
func (w *Watchdog) alive(start, lastGood time.Time) bool {
	now := w.Clock.Now()
	if lastGood.IsZero() {
		return now.Sub(start) <= w.StartGrace
	}
	return now.Sub(lastGood) <= w.Grace
}
