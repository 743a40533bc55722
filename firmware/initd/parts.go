package initd

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// parts runs PID 1's long-running parts (network, watchdog, supervisor) so that a panic in
// one is logged and the part restarted, never allowed to end PID 1.
type parts struct {
	log *slog.Logger
	// ctx ends at shutdown; wg then waits for the parts.
	ctx context.Context
	wg  sync.WaitGroup
	// restartDelay is the pause before a part that panicked starts again (a second).
	restartDelay time.Duration
}

// protect runs fn, turning a panic into a log line.
func (p *parts) protect(name string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("recovered from a panic", "in", name, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// keep runs fn in a goroutine until it returns, starting it again after a panic: a part
// that panicked is restarted, one that returned is done (a board without a watchdog, say).
func (p *parts) keep(name string, fn func(ctx context.Context) error) {
	delay := p.restartDelay
	if delay <= 0 {
		delay = time.Second
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for p.ctx.Err() == nil {
			panicked := true
			p.protect(name, func() {
				if err := fn(p.ctx); err != nil {
					p.log.Error("stopped with an error", "part", name, "err", err)
				}
				panicked = false
			})
			if !panicked {
				return
			}
			select {
			case <-p.ctx.Done():
			case <-time.After(delay):
			}
		}
	}()
}
