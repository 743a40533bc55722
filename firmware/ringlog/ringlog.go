// Package ringlog keeps the newest log output of a Fyr box in bounded space on its data
// disk: the current segment and the one before it, so `cat fyr.log.1 fyr.log` reads the tail
// of the box's history in order. It survives restarts (a reopened log appends) and never
// grows past its bound, so a crash-looping homeserver cannot fill the disk.
//
// It is not a log shipper, a parser or an index: readers are people with a shell.
package ringlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// DefaultMaxBytes bounds both segments together.
const DefaultMaxBytes = 8 << 20

// Log is a ring of two files. It is safe for concurrent use; each Write lands whole in one
// segment. Close it once; Write after Close fails.
type Log struct {
	path string
	// half is the size at which the current segment is rotated.
	half int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (creating it and its directory) the log at path, whose older segment is
// path+".1". maxBytes bounds both segments together; zero or less means DefaultMaxBytes.
func Open(path string, maxBytes int64) (*Log, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("ringlog: %w", err)
	}
	l := &Log{path: path, half: max(maxBytes/2, 1)}
	if err := l.open(); err != nil {
		return nil, err
	}
	if l.size >= l.half {
		if err := l.rotate(); err != nil {
			l.f.Close()
			return nil, err
		}
	}
	return l, nil
}

func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("ringlog: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("ringlog: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// rotate makes the current segment the older one and starts an empty current segment.
func (l *Log) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("ringlog: %w", err)
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("ringlog: %w", err)
	}
	return l.open()
}

// Write appends p, rotating first if p would take the current segment past half the bound.
// A single p longer than that keeps only its tail.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, errors.New("ringlog: write after close")
	}
	n := len(p)
	if int64(len(p)) > l.half {
		p = p[int64(len(p))-l.half:]
	}
	if l.size > 0 && l.size+int64(len(p)) > l.half {
		if err := l.rotate(); err != nil {
			l.f = nil
			return 0, err
		}
	}
	w, err := l.f.Write(p)
	l.size += int64(w)
	if err != nil {
		return 0, fmt.Errorf("ringlog: %w", err)
	}
	return n, nil
}

// Sync flushes the current segment to disk.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	return l.f.Sync()
}

// Close flushes and closes the log. Later calls return nil.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := errors.Join(l.f.Sync(), l.f.Close())
	l.f = nil
	return err
}
