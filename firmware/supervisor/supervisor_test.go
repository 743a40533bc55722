package supervisor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fyr/firmware/internal/fakeclock"
	"fyr/firmware/supervisor"
)

// childEnv makes the test binary act as a homeserver that prints a line and crashes.
const childEnv = "FYR_TEST_SUPERVISOR_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		fmt.Println("child: serving")
		fmt.Fprintln(os.Stderr, "child: panic: boom")
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// fakeProc is a child the test ends by hand.
type fakeProc struct {
	exit    chan error
	signals chan os.Signal
	// ignoreTerm makes SIGTERM do nothing, like a wedged process.
	ignoreTerm bool
}

func (p *fakeProc) Wait() error { return <-p.exit }

func (p *fakeProc) Signal(sig os.Signal) error {
	p.signals <- sig
	if sig == syscall.SIGKILL || (sig == syscall.SIGTERM && !p.ignoreTerm) {
		p.exit <- fmt.Errorf("signal: %v", sig)
	}
	return nil
}

// harness runs a Supervisor over fake processes and a fake clock.
type harness struct {
	t       *testing.T
	clock   *fakeclock.Clock
	procs   chan *fakeProc
	sup     *supervisor.Supervisor
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	loops   []int
	healthy []time.Duration
}

func newHarness(t *testing.T, configure func(*supervisor.Supervisor)) *harness {
	t.Helper()
	h := &harness{t: t, clock: fakeclock.New(time.Unix(1e9, 0)), procs: make(chan *fakeProc, 1), done: make(chan error, 1)}
	h.sup = &supervisor.Supervisor{
		Start: func(io.Writer) (supervisor.Process, error) {
			p := &fakeProc{exit: make(chan error, 2), signals: make(chan os.Signal, 2)}
			h.procs <- p
			return p, nil
		},
		Clock: h.clock,
		OnCrashLoop: func(n int) {
			h.mu.Lock()
			h.loops = append(h.loops, n)
			h.mu.Unlock()
		},
		OnHealthy: func(up time.Duration) {
			h.mu.Lock()
			h.healthy = append(h.healthy, up)
			h.mu.Unlock()
		},
	}
	if configure != nil {
		configure(h.sup)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case p := <-h.procs: // started while we cancelled: let it stop
			p.exit <- nil
			<-h.done
		}
	})
	return h
}

// crash ends the running child and returns the restart delay the supervisor then waits.
func (h *harness) crash(p *fakeProc) time.Duration {
	h.t.Helper()
	p.exit <- errors.New("exit status 2")
	h.clock.BlockUntil(1)
	d, _ := h.clock.Next()
	return d
}

func (h *harness) crashLoops() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.loops...)
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	h := newHarness(t, nil)
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		p := <-h.procs
		got := h.crash(p)
		if got != w*time.Second {
			t.Fatalf("restart %d after %v, want %v", i+1, got, w*time.Second)
		}
		h.clock.Advance(got)
	}
}

func TestGoodRunResetsBackoffAndCrashCount(t *testing.T) {
	h := newHarness(t, func(s *supervisor.Supervisor) { s.CrashLoop = 3 })
	for range 2 {
		p := <-h.procs
		h.clock.Advance(h.crash(p))
	}
	// The third run lasts past ResetAfter: it was a good run.
	p := <-h.procs
	h.clock.Advance(supervisor.DefaultResetAfter)
	if got := h.crash(p); got != supervisor.DefaultMinBackoff {
		t.Fatalf("after a good run the restart waits %v, want %v", got, supervisor.DefaultMinBackoff)
	}
	h.clock.Advance(supervisor.DefaultMinBackoff)
	for range 2 {
		p := <-h.procs
		h.clock.Advance(h.crash(p))
	}
	if got := h.crashLoops(); len(got) != 0 {
		t.Fatalf("crash loop reported after 2 short runs following a good one: %v", got)
	}
	p = <-h.procs
	h.crash(p)
	if got := h.crashLoops(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("crash loops = %v, want [3]", got)
	}
}

func TestCrashLoopReportedOnce(t *testing.T) {
	h := newHarness(t, nil)
	for i := 1; i <= 8; i++ {
		p := <-h.procs
		d := h.crash(p)
		got := h.crashLoops()
		switch {
		case i < supervisor.DefaultCrashLoop && len(got) != 0:
			t.Fatalf("crash loop reported after %d short runs", i)
		case i >= supervisor.DefaultCrashLoop && len(got) != 1:
			t.Fatalf("after %d short runs, crash loops = %v, want one report", i, got)
		}
		h.clock.Advance(d)
	}
}

func TestStartFailureCountsAsShortRun(t *testing.T) {
	clock := fakeclock.New(time.Unix(1e9, 0))
	starts := 0
	var loops []int
	s := &supervisor.Supervisor{
		Start: func(io.Writer) (supervisor.Process, error) {
			starts++
			return nil, errors.New("exec format error")
		},
		Clock:       clock,
		CrashLoop:   2,
		OnCrashLoop: func(n int) { loops = append(loops, n) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	clock.BlockUntil(1)
	clock.Advance(time.Second)
	clock.BlockUntil(1)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if starts != 2 || len(loops) != 1 {
		t.Fatalf("starts = %d, crash loops = %v; want 2 starts and one crash loop", starts, loops)
	}
}

func TestHealthyReportsTimeToFirstAnswer(t *testing.T) {
	var mu sync.Mutex
	probes := 0
	h := newHarness(t, func(s *supervisor.Supervisor) {
		s.Health = func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			probes++
			if probes < 3 {
				return errors.New("connection refused")
			}
			return nil
		}
	})
	<-h.procs
	for range 3 {
		h.clock.BlockUntil(1)
		h.clock.Advance(supervisor.DefaultHealthInterval)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got := append([]time.Duration(nil), h.healthy...)
		h.mu.Unlock()
		if len(got) == 1 {
			if want := 3 * supervisor.DefaultHealthInterval; got[0] != want {
				t.Fatalf("OnHealthy(%v), want OnHealthy(%v)", got[0], want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnHealthy calls = %v, want one", got)
		}
		time.Sleep(time.Millisecond)
	}
	// Once healthy, the run is not probed again.
	if n := h.clock.Waiters(); n != 0 {
		t.Fatalf("%d timers pending after the run answered, want none", n)
	}
}

func TestStopSendsTermThenKill(t *testing.T) {
	for _, wedged := range []bool{false, true} {
		t.Run(fmt.Sprintf("wedged=%v", wedged), func(t *testing.T) {
			clock := fakeclock.New(time.Unix(1e9, 0))
			p := &fakeProc{exit: make(chan error, 2), signals: make(chan os.Signal, 2), ignoreTerm: wedged}
			started := make(chan struct{})
			s := &supervisor.Supervisor{
				Start: func(io.Writer) (supervisor.Process, error) { close(started); return p, nil },
				Clock: clock,
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- s.Run(ctx) }()
			<-started
			cancel()
			if sig := <-p.signals; sig != syscall.SIGTERM {
				t.Fatalf("first signal %v, want SIGTERM", sig)
			}
			if wedged {
				clock.BlockUntil(1)
				clock.Advance(supervisor.DefaultStopTimeout)
				if sig := <-p.signals; sig != syscall.SIGKILL {
					t.Fatalf("second signal %v, want SIGKILL", sig)
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
			select {
			case sig := <-p.signals:
				t.Fatalf("extra signal %v", sig)
			default:
			}
		})
	}
}

// TestRealChildRestartedWithItsOutput runs the test binary as a crashing child through
// Command: its output reaches Output, and it is started again after it dies.
func TestRealChildRestartedWithItsOutput(t *testing.T) {
	t.Setenv(childEnv, "1")
	var out syncBuffer
	starts := make(chan struct{}, 10)
	cmd := supervisor.Command(os.Args[0], "-test.run=^$")
	s := &supervisor.Supervisor{
		Start: func(w io.Writer) (supervisor.Process, error) {
			starts <- struct{}{}
			return cmd(w)
		},
		Output:     &out,
		MinBackoff: time.Millisecond,
		MaxBackoff: time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for range 3 {
		<-starts
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	got := out.String()
	if strings.Count(got, "child: serving") < 2 || !strings.Contains(got, "child: panic: boom") {
		t.Fatalf("output of two runs not captured:\n%s", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
