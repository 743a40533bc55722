package httpapi_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyr/server/servertest"
)

// jsclientDir holds the matrix-js-sdk script, its package.json and package-lock.json.
const jsclientDir = "testdata/jsclient"

// TestJSClient drives a real Fyr with matrix-js-sdk, the SDK inside Element Web and Desktop:
// password login, /sync v2 through startClient, rooms, messages, typing, receipts, relations,
// media, an encrypted room with the SDK's Rust crypto, and simplified sliding sync (MSC4186)
// through SlidingSync and SlidingSyncSdk (testdata/jsclient/test.mjs says what each step checks).
//
// It needs node and npm with the npm registry, so it runs only with FYR_JSCLIENT=1
// (make jsclient). The packages are installed with npm ci, pinned by package-lock.json, into
// the user cache directory, once per lock file. The script's output goes to stdout as it runs.
func TestJSClient(t *testing.T) {
	if os.Getenv("FYR_JSCLIENT") != "1" {
		t.Skip("matrix-js-sdk interop: set FYR_JSCLIENT=1 to run it (needs node and npm; make jsclient)")
	}
	dir := jsclientInstall(t)
	node := filepath.Join(dir, "node_modules", ".bin", "node") // Node 22 from the lock file, where it has one
	if _, err := os.Stat(node); err != nil {
		if node, err = exec.LookPath("node"); err != nil {
			t.Fatalf("no node: %v (install Node.js 22)", err)
		}
	}

	srv := servertest.Start(t, servertest.OpenRegistration)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "test.mjs"), srv.URL)
	cmd.Dir = dir
	out := newPrefixWriter(os.Stdout, "jsclient: ")
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	out.Flush()
	if err != nil {
		t.Fatalf("node test.mjs %s after %v: %v", srv.URL, time.Since(start).Round(time.Millisecond), err)
	}
}

// jsclientInstall copies the script and its lock file into a cache directory named for the
// lock file's hash and runs npm ci there unless an earlier run did; it returns the directory.
func jsclientInstall(t *testing.T) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(jsclientDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = t.TempDir()
	}
	dir := filepath.Join(cache, "fyr", "jsclient-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"package.json", "package-lock.json", "test.mjs"} {
		b, err := os.ReadFile(filepath.Join(jsclientDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := filepath.Join(dir, "node_modules", ".fyr-installed")
	if _, err := os.Stat(done); err == nil {
		return dir
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("no npm: %v (install Node.js and npm)", err)
	}
	start := time.Now()
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, b)
	}
	fmt.Printf("jsclient: npm ci into %s took %v\n", dir, time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// prefixWriter writes each line with a prefix, so the script's output stands out among the
// test's.
type prefixWriter struct {
	w      *bufio.Writer
	prefix string
	bol    bool
}

func newPrefixWriter(w io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{w: bufio.NewWriter(w), prefix: prefix, bol: true}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if p.bol {
			p.w.WriteString(p.prefix)
		}
		p.w.WriteString(line)
		p.bol = strings.HasSuffix(line, "\n")
		if p.bol {
			p.w.Flush()
		}
	}
	return len(b), nil
}

// Flush writes out a last line without a newline.
func (p *prefixWriter) Flush() {
	if !p.bol {
		p.w.WriteString("\n")
		p.bol = true
	}
	p.w.Flush()
}
