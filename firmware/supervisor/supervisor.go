// Package supervisor keeps the homeserver running as a child process: it restarts it with
// capped exponential back-off, tells when a run first answers its health check, and tells
// when the child is crash-looping, so the slot code can roll a bad update back.
//
// It is not an init system: it runs one child, and it neither mounts nor reaps anything
// (firmware/initd does, and hands it a StartFunc that starts processes through its reaper).
package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Defaults for the zero fields of Supervisor.
const (
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = 30 * time.Second
	DefaultResetAfter     = time.Minute
	DefaultCrashLoop      = 5
	DefaultHealthInterval = 2 * time.Second
	DefaultStopTimeout    = 15 * time.Second
)

// Process is one run of the child.
type Process interface {
	// Wait blocks until the process has exited: nil for exit status 0, else an error that
	// says how it ended. It is called once.
	Wait() error
	// Signal sends sig to the process.
	Signal(sig os.Signal) error
}

// StartFunc starts one run of the child with its standard output and error going to out.
type StartFunc func(out io.Writer) (Process, error)

// Clock is the time source; tests swap in a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Supervisor runs a child until its context ends. Set the fields before calling Run; the
// zero value of each optional field means the default named beside it.
type Supervisor struct {
	// Start starts the child. Required.
	Start StartFunc
	// Output receives the child's output. Nil discards it.
	Output io.Writer
	// Health probes a running child (e.g. GET /health). Nil: OnHealthy is never called.
	Health func(ctx context.Context) error
	// HealthInterval is the pause between probes until a run first answers (DefaultHealthInterval).
	HealthInterval time.Duration
	// MinBackoff is the first restart delay; each run shorter than ResetAfter doubles it, up
	// to MaxBackoff (DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// ResetAfter is how long a run must last to count as good: the back-off and the crash
	// count start over after it (DefaultResetAfter).
	ResetAfter time.Duration
	// CrashLoop is how many short runs in a row make a crash loop (DefaultCrashLoop).
	CrashLoop int
	// StopTimeout is how long the child has to exit after SIGTERM before SIGKILL (DefaultStopTimeout).
	StopTimeout time.Duration
	// Clock is the time source (the real clock).
	Clock Clock
	// Log receives the supervisor's own messages (discarded when nil).
	Log *slog.Logger

	// OnHealthy is called when a run first answers Health, with the time since it started.
	// It runs on the probing goroutine; it must not block for long.
	OnHealthy func(up time.Duration)
	// OnCrashLoop is called once each time the child has ended CrashLoop short runs in a row,
	// with that count; on a slot that is on trial this is the signal to roll back.
	OnCrashLoop func(exits int)
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (s *Supervisor) defaults() {
	if s.Output == nil {
		s.Output = io.Discard
	}
	if s.HealthInterval <= 0 {
		s.HealthInterval = DefaultHealthInterval
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = DefaultMinBackoff
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = DefaultMaxBackoff
	}
	if s.MaxBackoff < s.MinBackoff {
		s.MaxBackoff = s.MinBackoff
	}
	if s.ResetAfter <= 0 {
		s.ResetAfter = DefaultResetAfter
	}
	if s.CrashLoop <= 0 {
		s.CrashLoop = DefaultCrashLoop
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = DefaultStopTimeout
	}
	if s.Clock == nil {
		s.Clock = realClock{}
	}
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Run starts the child and restarts it whenever it ends, until ctx ends; then it stops the
// child (SIGTERM, then SIGKILL after StopTimeout) and returns nil. A child that cannot be
// started counts as a run that ended at once.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.Start == nil {
		return errors.New("supervisor: no Start function")
	}
	s.defaults()
	backoff := s.MinBackoff
	short := 0 // runs in a row that ended before ResetAfter
	for {
		started := s.Clock.Now()
		err, stopped := s.run1(ctx, started)
		if stopped {
			return nil
		}
		up := s.Clock.Now().Sub(started)
		if up >= s.ResetAfter {
			backoff, short = s.MinBackoff, 0
		} else {
			short++
		}
		s.Log.Warn("homeserver ended; restarting", "err", errString(err), "up", up.Round(time.Millisecond), "in", backoff, "short_runs", short)
		if short == s.CrashLoop && s.OnCrashLoop != nil {
			s.Log.Error("homeserver is crash-looping", "short_runs", short)
			s.OnCrashLoop(short)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.Clock.After(backoff):
		}
		if short > 0 {
			backoff = min(2*backoff, s.MaxBackoff)
		}
	}
}

// run1 runs the child once. It returns how the run ended, and stopped=true when ctx ended
// (the child has then been stopped).
func (s *Supervisor) run1(ctx context.Context, started time.Time) (err error, stopped bool) {
	p, err := s.Start(s.Output)
	if err != nil {
		return err, ctx.Err() != nil
	}
	s.Log.Info("homeserver started")
	exited := make(chan error, 1)
	go func() { exited <- p.Wait() }()

	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	if s.Health != nil {
		go s.probe(probeCtx, started)
	}
	select {
	case err := <-exited:
		return err, false
	case <-ctx.Done():
	}
	stopProbe()
	s.Log.Info("stopping homeserver")
	p.Signal(syscall.SIGTERM)
	select {
	case err = <-exited:
	case <-s.Clock.After(s.StopTimeout):
		s.Log.Warn("homeserver ignored SIGTERM; killing it", "after", s.StopTimeout)
		p.Signal(syscall.SIGKILL)
		err = <-exited
	}
	s.Log.Info("homeserver stopped", "err", errString(err))
	return err, true
}

// probe asks Health every HealthInterval until the run first answers, then reports it.
func (s *Supervisor) probe(ctx context.Context, started time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Clock.After(s.HealthInterval):
		}
		if err := s.Health(ctx); err != nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		up := s.Clock.Now().Sub(started)
		s.Log.Info("homeserver is healthy", "after", up.Round(time.Millisecond))
		if s.OnHealthy != nil {
			s.OnHealthy(up)
		}
		return
	}
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Command returns a StartFunc that runs name with args through os/exec, for use outside
// PID 1 (and in tests). PID 1 must start children through its reaper instead, because it
// reaps every process and would steal os/exec's exit status.
func Command(name string, args ...string) StartFunc {
	return func(out io.Writer) (Process, error) {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return execProcess{cmd}, nil
	}
}

type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) Wait() error                { return p.cmd.Wait() }
func (p execProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }
