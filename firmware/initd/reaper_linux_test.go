package initd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childEnvVar makes the test binary act as a child: "exit N" prints and exits with N,
// and "sleep" waits to be signalled.
const childEnvVar = "FYR_TEST_INITD_CHILD"

func TestMain(m *testing.M) {
	switch v := os.Getenv(childEnvVar); {
	case strings.HasPrefix(v, "exit "):
		var code int
		fmt.Sscan(strings.TrimPrefix(v, "exit "), &code)
		fmt.Println("child output")
		os.Exit(code)
	case v == "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startReaper(t *testing.T) *reaper {
	r := newReaper(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestReaperHandsOverExitStatus(t *testing.T) {
	r := startReaper(t)
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"exit 0", ""},
		{"exit 3", "exit status 3"},
	} {
		var out lockedBuffer
		p, err := r.Start(os.Args[0], []string{"child", "-test.run=^$"}, []string{childEnvVar + "=" + tc.env}, &out)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Wait()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: Wait = %q, want %q", tc.env, got, tc.want)
		}
		if !strings.Contains(out.String(), "child output") {
			t.Errorf("%s: output %q not copied", tc.env, out.String())
		}
	}
}

func TestReaperSignal(t *testing.T) {
	r := startReaper(t)
	p, err := r.Start(os.Args[0], []string{"child", "-test.run=^$"}, []string{childEnvVar + "=sleep"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("Wait after SIGKILL = %v, want signal: killed", err)
	}
}

func TestReaperStartFails(t *testing.T) {
	r := startReaper(t)
	if _, err := r.Start("/nonexistent/fyr", []string{"fyr"}, nil, io.Discard); err == nil {
		t.Fatal("Start of a missing program succeeded")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) != 0 {
		t.Errorf("a failed start left %d waiters", len(r.waiting))
	}
}
