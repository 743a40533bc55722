//go:build !linux

package initd

import (
	"errors"
	"fmt"
	"os"
)

// Main reports that a Fyr box runs Linux, and exits.
func Main(cfg Config) {
	fmt.Fprintln(os.Stderr, "fyr: running as PID 1 is only supported on Linux")
	os.Exit(1)
}

// Reboot fails: there is no box to reboot.
func Reboot() error { return errors.New("initd: not supported on this system") }
