package initd

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oldData fills a data directory as a box in use has it.
func oldData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		logName:                   "old log: @alice's secrets\n",
		runningName:               "",
		networkName:               "mode: static\nstatic:\n  address: 192.168.1.50/24\n",
		"fyr.db":                  "the old database",
		"update/state.json":       `{"installed": 7}`,
		"update/pre-7.db":         "a snapshot",
		"media/ab/cdef":           "a picture",
		clockName:                 "2030-01-01T00:00:00Z\n",
		"update/trusted_keys.pem": "a key",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFactoryResetBeforeDataUse(t *testing.T) {
	boot, data := t.TempDir(), oldData(t)
	os.WriteFile(filepath.Join(boot, "FYR-FACTORY-RESET.TXT"), nil, 0o644)
	var logs bytes.Buffer
	d := openData(boot, data, slogTo(&logs))
	if d.ring == nil {
		t.Fatalf("no log ring after the reset:\n%s", logs.String())
	}
	d.ring.Write([]byte("new boot\n"))
	d.ring.Close()

	log, _ := os.ReadFile(filepath.Join(data, logName))
	if bytes.Contains(log, []byte("secrets")) {
		t.Error("the log ring from before the factory reset survived it: it was opened before the wipe")
	}
	if d.network.Mode != "" || d.network.Static != nil {
		t.Errorf("network settings %+v were read from before the reset; want the defaults", d.network)
	}
	if d.powerCut {
		t.Error("the run marker from before the reset counted as a power cut")
	}
	var left []string
	filepath.WalkDir(data, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(data, p)
			left = append(left, filepath.ToSlash(rel))
		}
		return nil
	})
	if got := strings.Join(left, " "); got != "log/fyr.log update/state.json" {
		t.Errorf("after the reset the data directory holds %s; want the new log and the updater's state only", got)
	}
	if _, err := os.Stat(filepath.Join(boot, "FYR-FACTORY-RESET.TXT")); err == nil {
		t.Error("the reset marker stays: every boot would wipe the box")
	}
}

func TestOpenDataWithoutReset(t *testing.T) {
	for _, boot := range []string{"", "empty"} {
		if boot == "empty" {
			boot = t.TempDir()
		}
		data := oldData(t)
		d := openData(boot, data, discard())
		if d.ring == nil {
			t.Fatal("no log ring")
		}
		d.ring.Close()
		if d.network.Mode != "static" || !d.powerCut {
			t.Errorf("boot partition %q: network %+v, power cut %v; want the saved static settings and a power cut", boot, d.network, d.powerCut)
		}
		if b, err := os.ReadFile(filepath.Join(data, "fyr.db")); err != nil || string(b) != "the old database" {
			t.Errorf("boot partition %q: the database is %q, %v; want it untouched", boot, b, err)
		}
	}
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
