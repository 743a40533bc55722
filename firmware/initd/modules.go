package initd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
)

// ReadModuleList reads the image's module list: one path per line, relative to the list's
// directory, in load order (dependencies first, as the image recipe wrote them). Blank
// lines and lines starting with # are skipped.
func ReadModuleList(r io.Reader, dir string) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if filepath.IsAbs(line) || strings.Contains(line, "..") {
			return nil, fmt.Errorf("module list: %q is not a path below %s", line, dir)
		}
		paths = append(paths, filepath.Join(dir, line))
	}
	return paths, sc.Err()
}

// LoadModules loads each module with load, in order. A module that is already loaded or
// built in is fine, and one whose hardware is absent (ENODEV, as a watchdog driver on a
// board without that watchdog answers) is skipped; other failures are collected and the
// rest still loaded, since a missing driver rarely stops the whole box.
func LoadModules(paths []string, load func(path string) error) (loaded int, err error) {
	var errs []error
	for _, p := range paths {
		switch e := load(p); {
		case e == nil:
			loaded++
		case errors.Is(e, syscall.EEXIST), errors.Is(e, syscall.ENODEV):
		default:
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(p), e))
		}
	}
	return loaded, errors.Join(errs...)
}
