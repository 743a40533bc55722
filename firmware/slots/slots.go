// Package slots switches a Fyr box between its two system slots, A and B, through the
// platform's own one-shot boot mechanism, so that a new system is tried once and kept only
// when it proves healthy:
//
//   - RPi: the Raspberry Pi bootloader's autoboot.txt with tryboot_a_b=1, and a reboot with
//     the argument "0 tryboot" (see https://www.raspberrypi.com/documentation/computers/config_txt.html#autoboot-txt).
//   - UEFI: systemd-boot's counted entries from the Boot Loader Specification
//     (loader/entries/fyr-b+3.conf; see https://systemd.io/AUTOMATIC_BOOT_ASSESSMENT/).
//
// The life of an update, as firmware/update drives it:
//
//	dir, release, _ := bl.OpenSlot(inactive)   // out of the boot rotation, then writable
//	… write and verify the new system into dir …
//	bl.TryNext(inactive, entry)                // the next boot, and only that one, tries it
//	slots.Reboot(bl.RebootArg())
//	… on the new system, after it has stayed healthy …
//	bl.Bless()                                 // or bl.Abandon() and reboot: back to the old slot
//
// It is not for verifying what goes into a slot (firmware/update does that) nor for deciding
// when a boot is healthy (the supervisor does).
package slots

import (
	"errors"
	"fmt"
)

// Errors callers test for with errors.Is.
var (
	// ErrNotTrial: Bless or Abandon outside a trial boot.
	ErrNotTrial = errors.New("slots: this boot is not a trial")
	// ErrBooted: an attempt to open or try the slot that is running.
	ErrBooted = errors.New("slots: that slot is running")
	// ErrIncomplete: TryNext on a slot that lacks what the boot loader needs to start it.
	ErrIncomplete = errors.New("slots: the slot has nothing to boot")
	// ErrUnknown: the boot loader's records name no slot this package knows.
	ErrUnknown = errors.New("slots: cannot tell which slot is running")
)

// Slot is one of the two system slots.
type Slot string

// The two slots.
const (
	A Slot = "a"
	B Slot = "b"
)

// Other is the slot that is not s.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// Valid reports whether s is A or B.
func (s Slot) Valid() bool { return s == A || s == B }

// ParseSlot reads "a" or "b" (either case).
func ParseSlot(name string) (Slot, error) {
	switch name {
	case "a", "A":
		return A, nil
	case "b", "B":
		return B, nil
	}
	return "", fmt.Errorf("slots: %q is not a slot; want a or b", name)
}

// Status is what the boot loader says about the running boot.
type Status struct {
	// Booted is the slot running now.
	Booted Slot
	// Trial is true while Booted runs on a one-shot try that nobody has blessed: a reset now
	// brings back the other slot.
	Trial bool
}

// Entry describes the system in a slot, for boot menus that show it.
type Entry struct {
	// Version is the bundle's version; systemd-boot sorts newer entries first.
	Version uint64
	// Label is the human version, e.g. "2026.10.1"; empty shows Version.
	Label string
}

// Bootloader switches between slots on one kind of platform. Its methods are not safe for
// concurrent use: one updater owns it.
type Bootloader interface {
	// Name is "rpi" or "uefi".
	Name() string
	// Status reads which slot is running and whether this boot is a trial.
	Status() (Status, error)
	// OpenSlot first takes slot s out of the boot rotation, so that a half-written slot is
	// never started, then returns the directory its files go into and a function that
	// releases it (unmounting what OpenSlot mounted). The running slot is refused with
	// ErrBooted.
	OpenSlot(s Slot) (dir string, release func() error, err error)
	// TryNext arranges for the next boot, when started with RebootArg, to try slot s once
	// (UEFI: a few times), falling back to the running slot if that boot never blesses it.
	// The slot's files must be complete and released.
	TryNext(s Slot, e Entry) error
	// RebootArg is the argument the reboot that starts a trial must pass to reboot(2)
	// (LINUX_REBOOT_CMD_RESTART2): "0 tryboot" on a Raspberry Pi, "" where any reboot will do.
	RebootArg() string
	// Bless makes the running trial slot the one every later boot starts. ErrNotTrial
	// outside a trial.
	Bless() error
	// Abandon makes sure the next boot, however it is started, returns to the other slot: the
	// trial failed. Status no longer reports a trial afterwards, so Bless is refused.
	// ErrNotTrial outside a trial.
	Abandon() error
}
