package clock

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// systemClock is the Linux system clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Step(t time.Time) error {
	tv := syscall.NsecToTimeval(t.UnixNano())
	return syscall.Settimeofday(&tv)
}

// adjOffsetSingleshot is ADJ_OFFSET_SINGLESHOT: adjtimex's form of adjtime(3), which slews
// the clock by the offset (in microseconds) at the kernel's fixed rate.
const adjOffsetSingleshot = 0x8001

func (systemClock) Slew(d time.Duration) error {
	var tx syscall.Timex
	tx.Modes = adjOffsetSingleshot
	setInt(&tx.Offset, d.Microseconds())
	_, err := syscall.Adjtimex(&tx)
	return err
}

// setInt stores v in a field whose width differs between architectures.
func setInt[T int32 | int64](p *T, v int64) { *p = T(v) }

// DefaultRTC is the first real-time clock's device.
const DefaultRTC = "/dev/rtc0"

// DeviceRTC is a Linux real-time clock device, kept in UTC.
type DeviceRTC struct {
	// Path is the device. Empty: DefaultRTC.
	Path string
}

// OpenRTC returns the real-time clock at path ("" for DefaultRTC) if the device exists,
// else nil: the board has none.
func OpenRTC(path string) RTC {
	if path == "" {
		path = DefaultRTC
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	return DeviceRTC{Path: path}
}

// rtcTime is the kernel's struct rtc_time: nine ints.
type rtcTime struct {
	Sec, Min, Hour, Mday, Mon, Year, Wday, Yday, Isdst int32
}

// The ioctls of linux/rtc.h: _IOR('p', 0x09, struct rtc_time) and _IOW('p', 0x0a, …).
const (
	rtcRdTime  = 0x80247009
	rtcSetTime = 0x4024700a
)

func (r DeviceRTC) ioctl(req uintptr, t *rtcTime, flag int) error {
	f, err := os.OpenFile(orString(r.Path, DefaultRTC), flag, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(t)))
	if errno != 0 {
		return fmt.Errorf("clock: %s: %w", f.Name(), errno)
	}
	return nil
}

// Read reads the clock; a clock that lost its time (a flat battery) fails with EINVAL.
func (r DeviceRTC) Read() (time.Time, error) {
	var t rtcTime
	if err := r.ioctl(rtcRdTime, &t, os.O_RDONLY); err != nil {
		return time.Time{}, err
	}
	return time.Date(int(t.Year)+1900, time.Month(t.Mon+1), int(t.Mday), int(t.Hour), int(t.Min), int(t.Sec), 0, time.UTC), nil
}

// Set writes t to the clock, in UTC.
func (r DeviceRTC) Set(t time.Time) error {
	t = t.UTC()
	rt := rtcTime{Sec: int32(t.Second()), Min: int32(t.Minute()), Hour: int32(t.Hour()), Mday: int32(t.Day()),
		Mon: int32(t.Month()) - 1, Year: int32(t.Year()) - 1900, Wday: int32(t.Weekday()), Yday: int32(t.YearDay()) - 1}
	return r.ioctl(rtcSetTime, &rt, os.O_RDWR)
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
