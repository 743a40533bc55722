//go:build !linux

package watchdog

import "errors"

// OpenDevice fails: hardware watchdogs are only driven on Linux.
func OpenDevice(path string) (Device, error) {
	return nil, errors.New("watchdog: not supported on this system")
}
