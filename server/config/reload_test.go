package config_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"fyr/server/config"
	"fyr/storage/atomicfile"
)

func TestDiff(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*config.Config)
		wantLive    []string
		wantRestart []string
	}{
		{"nothing", func(*config.Config) {}, nil, nil},
		{"live", func(c *config.Config) { c.Log.Level = "debug" }, []string{"log.level"}, nil},
		{"restart", func(c *config.Config) { c.Client.Addr = "127.0.0.1:1" }, nil, []string{"client.addr"}},
		{"both, in table order", func(c *config.Config) {
			c.Register.SharedSecret = "complement"
			c.Log.Level = "debug"
			c.Database.ReadConns = 8
			c.ServerName = "example.org"
			c.RateLimits.LoginPerSecond = 1
		}, []string{"log.level", "registration.shared_secret", "rate_limits.login_per_second"}, []string{"server_name", "database.read_conns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := config.Default(), config.Default()
			tt.edit(new)
			live, restart := config.Diff(old, new)
			if !reflect.DeepEqual(live, tt.wantLive) || !reflect.DeepEqual(restart, tt.wantRestart) {
				t.Errorf("Diff() = %q, %q, want %q, %q", live, restart, tt.wantLive, tt.wantRestart)
			}
		})
	}
}

// startWatch runs Watch on path and returns a channel that receives each onChange call and
// one that receives Watch's result.
func startWatch(ctx context.Context, path string) (changes chan struct{}, done chan error) {
	changes = make(chan struct{}, 100)
	done = make(chan error, 1)
	go func() {
		done <- config.Watch(ctx, path, func() { changes <- struct{}{} })
	}()
	return changes, done
}

// changeUntilSeen repeats change until onChange fires, since the watcher may not be ready
// for the first one. It fails the test after a deadline.
func changeUntilSeen(t *testing.T, changes <-chan struct{}, change func() error) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if err := change(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changes:
			return
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatal("onChange not called within 10s")
		}
	}
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name   string
		change func(path string) error
	}{
		{"write in place", func(path string) error {
			return os.WriteFile(path, []byte("log:\n  level: debug\n"), 0o600)
		}},
		{"atomic replace", func(path string) error {
			return atomicfile.WriteFile(path, []byte("log:\n  level: warn\n"), 0o600)
		}},
		{"created after removal", func(path string) error {
			os.Remove(path)
			return os.WriteFile(path, []byte("log:\n  level: error\n"), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "fyr.yaml", "")
			ctx, cancel := context.WithCancel(t.Context())
			changes, done := startWatch(ctx, path)
			changeUntilSeen(t, changes, func() error { return tt.change(path) })
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Watch() = %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Watch did not return within 10s of cancel")
			}
		})
	}
}

func TestWatchStopsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	path := writeFile(t, t.TempDir(), "fyr.yaml", "")
	ctx, cancel := context.WithCancel(t.Context())
	changes, done := startWatch(ctx, path)
	changeUntilSeen(t, changes, func() error { return os.WriteFile(path, []byte("# hi\n"), 0o600) })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch() = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return within 10s of cancel")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Watch returned, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent", "fyr.yaml")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := config.Watch(ctx, path, func() {}); err == nil {
		t.Errorf("Watch(%q) = nil, want an error", path)
	}
}

func TestApplyKeepsRestartSettings(t *testing.T) {
	running := config.Default()
	next := config.Default()
	next.ServerName = "other.example"
	next.Register.Open = true
	next.Log.Level = "debug"
	got := config.Apply(running, next)
	if got.ServerName != running.ServerName {
		t.Errorf("Apply changed server_name to %q; it needs a restart", got.ServerName)
	}
	if !got.Register.Open || got.Log.Level != "debug" {
		t.Errorf("Apply dropped live settings: open=%v level=%q", got.Register.Open, got.Log.Level)
	}
	if running.Register.Open {
		t.Error("Apply modified its running argument")
	}
}
