package watchdog

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// linuxDevice is /dev/watchdog through the kernel's watchdog API
// (Documentation/watchdog/watchdog-api.rst).
type linuxDevice struct{ f *os.File }

// OpenDevice opens the watchdog device at path, which arms it.
func OpenDevice(path string) (Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &linuxDevice{f}, nil
}

func (d *linuxDevice) Keepalive() error {
	return unix.IoctlWatchdogKeepalive(int(d.f.Fd()))
}

func (d *linuxDevice) SetTimeout(t time.Duration) (time.Duration, error) {
	secs := int(t / time.Second)
	if err := unix.IoctlSetPointerInt(int(d.f.Fd()), unix.WDIOC_SETTIMEOUT, secs); err != nil {
		return 0, fmt.Errorf("WDIOC_SETTIMEOUT: %w", err)
	}
	got, err := unix.IoctlGetInt(int(d.f.Fd()), unix.WDIOC_GETTIMEOUT)
	if err != nil {
		return 0, fmt.Errorf("WDIOC_GETTIMEOUT: %w", err)
	}
	return time.Duration(got) * time.Second, nil
}

// Close writes the magic character 'V' first, which tells a driver without nowayout that
// this close is deliberate and the countdown may stop.
func (d *linuxDevice) Close() error {
	_, werr := d.f.Write([]byte("V"))
	cerr := d.f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}
