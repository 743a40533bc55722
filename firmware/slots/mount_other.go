//go:build !linux

package slots

import "errors"

var errNotLinux = errors.New("slots: only Linux can mount slots and reboot")

func mountVFAT(dev, dir string) error { return errNotLinux }

func unmount(dir string) error { return errNotLinux }
