//go:build !linux

package slots

// Reboot is only implemented on Linux.
func Reboot(arg string) error { return errNotLinux }
