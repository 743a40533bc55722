package initd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"fyr/firmware/supervisor"
)

// reaper is PID 1's child handling. Every process whose parent dies is re-parented to PID 1,
// which must wait for it or it stays a zombie; so PID 1 waits for any child (wait4(-1))
// whenever SIGCHLD arrives. That would steal exit statuses from os/exec, so PID 1 starts its
// own children through Start, which hands each one's status to its waiter.
type reaper struct {
	log *slog.Logger
	// mu is held from fork until the child is registered, and while a status is handed
	// over, so a child that exits at once is never mistaken for an orphan.
	mu      sync.Mutex
	waiting map[int]chan unix.WaitStatus
}

func newReaper(log *slog.Logger) *reaper {
	return &reaper{log: log, waiting: map[int]chan unix.WaitStatus{}}
}

// run reaps until ctx ends. Signals coalesce, so each SIGCHLD reaps everything waiting, and
// a slow tick catches anything missed.
func (r *reaper) run(ctx context.Context) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		r.reap()
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-tick.C:
		}
	}
}

func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		ch, ok := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ok {
			ch <- ws
		} else {
			r.log.Debug("reaped an orphan", "pid", pid, "status", describe(ws))
		}
	}
}

// Start starts path with args (args[0] is the program name) and env, with standard output
// and error copied to out, in a session of its own. Only children started here may be
// waited for in PID 1.
func (r *reaper) Start(path string, args, env []string, out io.Writer) (supervisor.Process, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	defer devnull.Close()
	r.mu.Lock()
	p, err := os.StartProcess(path, args, &os.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []*os.File{devnull, pw, pw},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	pw.Close()
	if err != nil {
		r.mu.Unlock()
		pr.Close()
		return nil, err
	}
	c := &child{pid: p.Pid, status: make(chan unix.WaitStatus, 1), copied: make(chan struct{})}
	r.waiting[p.Pid] = c.status
	r.mu.Unlock()
	p.Release() // the reaper waits for it; os.Process must not
	go func() {
		defer close(c.copied)
		io.Copy(out, pr)
		pr.Close()
	}()
	return c, nil
}

// child is one process started by reaper.Start.
type child struct {
	pid    int
	status chan unix.WaitStatus
	copied chan struct{}
}

// Wait returns once the child has exited, and its output has been copied unless a process
// it left behind still holds the pipe (then it waits at most a second more).
func (c *child) Wait() error {
	ws := <-c.status
	select {
	case <-c.copied:
	case <-time.After(time.Second):
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	return fmt.Errorf("%s", describe(ws))
}

func (c *child) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v: not a syscall.Signal", sig)
	}
	return unix.Kill(c.pid, s)
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		if ws.CoreDump() {
			return fmt.Sprintf("signal: %v (core dumped)", ws.Signal())
		}
		return fmt.Sprintf("signal: %v", ws.Signal())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}
