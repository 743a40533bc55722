//go:build !linux

package clock

import (
	"errors"
	"time"
)

var errNotLinux = errors.New("clock: only Linux can set the system clock")

// systemClock reads the system clock; only Linux can set it.
type systemClock struct{}

func (systemClock) Now() time.Time           { return time.Now() }
func (systemClock) Step(time.Time) error     { return errNotLinux }
func (systemClock) Slew(time.Duration) error { return errNotLinux }

// OpenRTC finds no real-time clock outside Linux.
func OpenRTC(path string) RTC { return nil }
