package setup

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// ResetMarker is the file that asks for a factory reset when it sits at the top of the boot
// partition: anyone with the box's SD card or disk in hand can create it from any computer.
// The name is matched without regard to case, with or without ".txt" (which some editors
// add), as FAT file systems and their users are casual about both.
const ResetMarker = "fyr-factory-reset"

// Kept is what a factory reset leaves in the data directory: the updater's record of the
// highest installed version, so that a reset cannot be used to install an older, signed but
// vulnerable system.
var Kept = []string{"update/state.json"}

// FactoryReset wipes the data directory if bootDir holds the reset marker, then removes the
// marker; it reports whether it did. The directory itself stays (it is usually a mount
// point) and so do the Kept files; symbolic links are removed, never followed. A reset cut
// short by a power cut runs again at the next boot, because the marker goes last.
//
// dataDir must be an absolute path other than "/". Call it at boot, before anything opens
// the data directory.
func FactoryReset(bootDir, dataDir string, log *slog.Logger) (bool, error) {
	if log == nil {
		log = slog.Default()
	}
	marker, err := findMarker(bootDir)
	if err != nil || marker == "" {
		return false, err
	}
	clean := filepath.Clean(dataDir)
	if !filepath.IsAbs(clean) || clean == string(filepath.Separator) {
		return false, fmt.Errorf("setup: refusing to wipe %q for a factory reset: not an absolute path below /", dataDir)
	}
	st, err := os.Lstat(clean)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("setup: factory reset: %w", err)
	case !st.IsDir():
		return false, fmt.Errorf("setup: refusing to wipe %s for a factory reset: not a directory", clean)
	default:
		log.Warn("factory reset: wiping the data directory", "marker", marker, "data_dir", clean)
		keep := map[string]bool{}
		for _, k := range Kept {
			keep[filepath.FromSlash(k)] = true
		}
		if err := wipe(clean, "", keep); err != nil {
			return false, fmt.Errorf("setup: factory reset: %w", err)
		}
	}
	if err := os.Remove(marker); err != nil {
		return false, fmt.Errorf("setup: factory reset done, but the marker stays: %w", err)
	}
	if d, err := os.Open(bootDir); err == nil {
		d.Sync()
		d.Close()
	}
	log.Warn("factory reset: done; the box starts as new", "data_dir", clean)
	return true, nil
}

// findMarker returns the marker's path in dir, or "".
func findMarker(dir string) (string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("setup: look for the factory reset marker: %w", err)
	}
	for _, de := range des {
		name := strings.ToLower(de.Name())
		if name == ResetMarker || name == ResetMarker+".txt" {
			return filepath.Join(dir, de.Name()), nil
		}
	}
	return "", nil
}

// wipe removes everything under root/rel except the kept paths (relative to root) and the
// directories leading to them.
func wipe(root, rel string, keep map[string]bool) error {
	des, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	for _, de := range des {
		p := filepath.Join(rel, de.Name())
		if keep[p] {
			continue
		}
		if de.IsDir() && holdsKept(p, keep) { // IsDir is false for a symlink to a directory
			if err := wipe(root, p, keep); err != nil {
				return err
			}
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
			return err
		}
	}
	return nil
}

func holdsKept(dir string, keep map[string]bool) bool {
	for k := range keep {
		if strings.HasPrefix(k, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}
