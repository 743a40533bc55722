package initd

import (
	"bytes"
	"io"
	"sync"
)

// logSink is where PID 1's log and the homeserver's output go: the console always, and
// the log ring once the data disk is mounted. Output from before that is kept in memory
// (bounded) and written to the ring first, so the ring holds the whole boot. A sink that
// fails is skipped, never allowed to block the others.
type logSink struct {
	mu      sync.Mutex
	console io.Writer
	ring    io.Writer
	early   bytes.Buffer
}

// earlyMax bounds what is kept before the ring opens.
const earlyMax = 256 << 10

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.console != nil {
		s.console.Write(p)
	}
	if s.ring != nil {
		s.ring.Write(p)
	} else if s.early.Len()+len(p) <= earlyMax {
		s.early.Write(p)
	}
	return len(p), nil
}

// setRing starts writing to ring, after what was kept so far.
func (s *logSink) setRing(ring io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ring.Write(s.early.Bytes())
	s.early = bytes.Buffer{}
	s.ring = ring
}

// dropRing stops writing to the ring (before it is closed at shutdown).
func (s *logSink) dropRing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring = nil
}

// consoleOnly returns a writer to the console alone, for what must stay out of the log ring
// (the first boot's claim code).
func (s *logSink) consoleOnly() io.Writer { return consoleWriter{s} }

type consoleWriter struct{ s *logSink }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.console != nil {
		w.s.console.Write(p)
	}
	return len(p), nil
}
