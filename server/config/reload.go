package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Diff lists the dotted keys whose values differ between old and new, in table order: live
// ones a running server can apply, and restart ones it cannot.
func Diff(old, new *Config) (live, restart []string) {
	for _, s := range table() {
		if reflect.DeepEqual(s.field(old).Interface(), s.field(new).Interface()) {
			continue
		}
		if s.Reload {
			live = append(live, s.Key)
		} else {
			restart = append(restart, s.Key)
		}
	}
	return live, restart
}

// Apply returns what a running server should use after a reload to next: next's value for
// every live setting, and running's for every setting that needs a restart, so the running
// configuration always describes what is in force.
func Apply(running, next *Config) *Config {
	out := *running
	for _, s := range table() {
		if s.Reload {
			s.field(&out).Set(s.field(next))
		}
	}
	return &out
}

// watchDebounce is how long Watch waits after the last change before calling onChange: an
// editor's save is several events.
const watchDebounce = 200 * time.Millisecond

// Watch calls onChange after the file at path is written or replaced, once the changes have
// settled. It watches the file's directory, since editors and atomic writers replace a file
// by renaming another over it. onChange runs on Watch's goroutine, never concurrently with
// itself. Watch returns nil when ctx is done, having released the watcher; it returns an
// error if the directory cannot be watched. Errors while watching are logged at warn.
func Watch(ctx context.Context, path string, onChange func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config: watch %s: %w", path, err)
	}
	defer w.Close() // waits for fsnotify's goroutine
	name := filepath.Clean(path)
	if err := w.Add(filepath.Dir(name)); err != nil {
		return fmt.Errorf("config: watch %s: %w", path, err)
	}

	timer := time.NewTimer(watchDebounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == name && ev.Op.Has(fsnotify.Write|fsnotify.Create) {
				timer.Reset(watchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			slog.Warn("config: watching the file", "path", path, "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				timer.Reset(watchDebounce) // a change may have been lost
			}
		case <-timer.C:
			onChange()
		}
	}
}
