package setup_test

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"fyr/firmware/setup"
)

// tree lists the files and directories under dir, relative, sorted.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

func mkfile(t *testing.T, path, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFactoryReset(t *testing.T) {
	for _, marker := range []string{"fyr-factory-reset", "FYR-FACTORY-RESET.TXT", "Fyr-Factory-Reset.txt"} {
		t.Run(marker, func(t *testing.T) {
			boot, data, outside := t.TempDir(), t.TempDir(), t.TempDir()
			mkfile(t, filepath.Join(boot, "config.txt"), "kernel")
			mkfile(t, filepath.Join(boot, marker), "")
			mkfile(t, filepath.Join(data, "fyr.db"), "db")
			mkfile(t, filepath.Join(data, "fyr.yaml"), "server_name: x")
			mkfile(t, filepath.Join(data, "media", "ab", "cd"), "photo")
			mkfile(t, filepath.Join(data, "update", "state.json"), `{"installed":7}`)
			mkfile(t, filepath.Join(data, "update", "pre-7.db"), "snapshot")
			mkfile(t, filepath.Join(outside, "precious"), "not the box's")
			os.Symlink(outside, filepath.Join(data, "link"))

			did, err := setup.FactoryReset(boot, data, nil)
			if err != nil || !did {
				t.Fatalf("FactoryReset = %v, %v", did, err)
			}
			if got := tree(t, data); got != "update update/state.json" {
				t.Errorf("data after the reset: %s; want only update/state.json", got)
			}
			if got := tree(t, boot); got != "config.txt" {
				t.Errorf("boot after the reset: %s; want the marker gone and config.txt kept", got)
			}
			if _, err := os.Stat(filepath.Join(outside, "precious")); err != nil {
				t.Errorf("the reset followed a symbolic link out of the data directory: %v", err)
			}
			// Once is enough.
			if did, err := setup.FactoryReset(boot, data, nil); did || err != nil {
				t.Errorf("a second FactoryReset = %v, %v; want nothing to do", did, err)
			}
		})
	}
}

func TestFactoryResetRefusals(t *testing.T) {
	boot := t.TempDir()
	data := t.TempDir()
	mkfile(t, filepath.Join(data, "fyr.db"), "db")
	// No marker: nothing happens.
	if did, err := setup.FactoryReset(boot, data, nil); did || err != nil {
		t.Errorf("FactoryReset without a marker = %v, %v", did, err)
	}
	if did, err := setup.FactoryReset(filepath.Join(boot, "missing"), data, nil); did || err != nil {
		t.Errorf("FactoryReset without a boot partition = %v, %v", did, err)
	}
	mkfile(t, filepath.Join(boot, setup.ResetMarker), "")
	for _, bad := range []string{"/", "relative/data", "", filepath.Join(data, "fyr.db")} {
		if did, err := setup.FactoryReset(boot, bad, nil); did || err == nil {
			t.Errorf("FactoryReset(data dir %q) = %v, %v; want a refusal", bad, did, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "fyr.db")); err != nil {
		t.Errorf("a refused reset removed files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(boot, setup.ResetMarker)); err != nil {
		t.Errorf("a refused reset removed the marker: %v", err)
	}
	// A data directory that does not exist yet: the marker is simply consumed.
	if did, err := setup.FactoryReset(boot, filepath.Join(data, "never"), nil); !did || err != nil {
		t.Errorf("FactoryReset of a missing data directory = %v, %v", did, err)
	}
	if _, err := os.Stat(filepath.Join(boot, setup.ResetMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the marker outlived the reset: %v", err)
	}
}
