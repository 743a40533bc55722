package ringlog_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyr/firmware/ringlog"
)

func readAll(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	for _, p := range []string{path + ".1", path} {
		data, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		b = append(b, data...)
	}
	return string(b)
}

func TestBoundedAndKeepsNewest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "fyr.log")
	l, err := ringlog.Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		fmt.Fprintf(l, "line %02d\n", i) // 8 bytes each
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".1"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 50 {
			t.Errorf("%s is %d bytes, want at most 50", p, st.Size())
		}
	}
	got := readAll(t, path)
	if !strings.HasSuffix(got, "line 48\nline 49\n") {
		t.Errorf("log does not end with the newest lines:\n%s", got)
	}
	if strings.Contains(got, "line 00") {
		t.Errorf("oldest line kept past the bound:\n%s", got)
	}
	// Lines are never split across segments and stay in order.
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] <= lines[i-1] {
			t.Fatalf("lines out of order: %q after %q", lines[i], lines[i-1])
		}
	}
}

func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fyr.log")
	for _, s := range []string{"first run\n", "second run\n"} {
		l, err := ringlog.Open(path, 1000)
		if err != nil {
			t.Fatal(err)
		}
		l.Write([]byte(s))
		l.Close()
	}
	if got, want := readAll(t, path), "first run\nsecond run\n"; got != want {
		t.Errorf("after two runs the log reads %q, want %q", got, want)
	}
}

func TestReopenFullSegmentRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fyr.log")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 60), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ringlog.Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("new\n"))
	l.Close()
	if got, _ := os.ReadFile(path); string(got) != "new\n" {
		t.Errorf("current segment = %q, want a fresh one", got)
	}
}

func TestOversizedWriteKeepsTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fyr.log")
	l, err := ringlog.Open(path, 20)
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.Write([]byte("0123456789abcdefghij"))
	if err != nil || n != 20 {
		t.Fatalf("Write = %d, %v; want 20, nil", n, err)
	}
	l.Close()
	if got := readAll(t, path); got != "abcdefghij" {
		t.Errorf("log = %q, want the last 10 bytes", got)
	}
	if _, err := l.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}
