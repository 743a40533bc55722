package slots

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"fyr/storage/atomicfile"
)

// Defaults of RPi.
const (
	DefaultAutoboot      = "/boot/autoboot.txt"
	DefaultDeviceTree    = "/proc/device-tree/chosen/bootloader"
	DefaultRPiDevice     = "/dev/mmcblk0p%d"
	DefaultRPiPartitionA = 2
	DefaultRPiPartitionB = 3
	// autobootMax is the bootloader's limit on autoboot.txt.
	autobootMax = 512
)

// RPi switches slots with the Raspberry Pi bootloader's tryboot feature. Each slot is a FAT
// boot partition (kernel, initramfs, config.txt, cmdline.txt); partition 1 holds
// autoboot.txt, which Fyr keeps in exactly this form:
//
//	[all]
//	tryboot_a_b=1
//	boot_partition=2
//	[tryboot]
//	boot_partition=3
//
// [all] names the slot every normal boot starts; [tryboot] the one a reboot with "0 tryboot"
// starts, once: the bootloader clears the flag before it starts the system, so any later
// reset returns to [all]. The firmware reports what it did in the device tree:
// chosen/bootloader/partition (the partition booted) and chosen/bootloader/tryboot (1 if the
// flag was set), both 32-bit big-endian.
//
// The fields may be changed until the first method call.
type RPi struct {
	// Autoboot is the path of autoboot.txt on the mounted partition 1. Empty: DefaultAutoboot.
	Autoboot string
	// DeviceTree is the firmware's chosen/bootloader directory. Empty: DefaultDeviceTree.
	DeviceTree string
	// PartitionA and PartitionB are the slots' partition numbers. Zero: 2 and 3.
	PartitionA, PartitionB int
	// Device is the block device of a partition, with %d for its number. Empty:
	// DefaultRPiDevice.
	Device string
	// Mount makes a slot's partition writable at a directory and returns it with the
	// function that unmounts it. Nil: mount Device's vfat file system under /run/fyr
	// (Linux only). Tests pass directories.
	Mount func(partition int) (dir string, unmount func() error, err error)
}

var _ Bootloader = (*RPi)(nil)

// Name is "rpi".
func (r *RPi) Name() string { return "rpi" }

// RebootArg is "0 tryboot": boot the default partition with the tryboot flag set, which
// autoboot.txt's [tryboot] section turns into the trial partition.
func (r *RPi) RebootArg() string { return "0 tryboot" }

func (r *RPi) autobootPath() string { return or(r.Autoboot, DefaultAutoboot) }

func (r *RPi) partition(s Slot) int {
	if s == A {
		return orInt(r.PartitionA, DefaultRPiPartitionA)
	}
	return orInt(r.PartitionB, DefaultRPiPartitionB)
}

func (r *RPi) slotOf(partition int) (Slot, error) {
	for _, s := range []Slot{A, B} {
		if r.partition(s) == partition {
			return s, nil
		}
	}
	return "", fmt.Errorf("%w: partition %d is neither slot a (%d) nor b (%d)", ErrUnknown, partition, r.partition(A), r.partition(B))
}

// Status reads the device tree: the booted partition, and whether tryboot started it as the
// trial autoboot.txt names.
func (r *RPi) Status() (Status, error) {
	dt := or(r.DeviceTree, DefaultDeviceTree)
	part, err := readDTInt(filepath.Join(dt, "partition"))
	if err != nil {
		return Status{}, fmt.Errorf("%w: %v", ErrUnknown, err)
	}
	booted, err := r.slotOf(int(part))
	if err != nil {
		return Status{}, err
	}
	tryboot, err := readDTInt(filepath.Join(dt, "tryboot"))
	if errors.Is(err, fs.ErrNotExist) {
		tryboot, err = 0, nil // older firmware says nothing when the flag was not set
	}
	if err != nil {
		return Status{}, err
	}
	ab, err := r.read()
	if err != nil {
		return Status{}, err
	}
	trial := tryboot == 1 && int(part) == ab.try && ab.try != ab.normal
	return Status{Booted: booted, Trial: trial}, nil
}

// OpenSlot points [tryboot] back at the default partition, so a stray tryboot cannot start
// the half-written slot, then mounts the slot's partition.
func (r *RPi) OpenSlot(s Slot) (string, func() error, error) {
	if !s.Valid() {
		return "", nil, fmt.Errorf("slots: open %q: not a slot", s)
	}
	st, err := r.Status()
	if err != nil {
		return "", nil, err
	}
	ab, err := r.read()
	if err != nil {
		return "", nil, err
	}
	if s == st.Booted || r.partition(s) == ab.normal {
		return "", nil, fmt.Errorf("open slot %s: %w", s, ErrBooted)
	}
	ab.try = ab.normal
	if err := r.write(ab); err != nil {
		return "", nil, err
	}
	mount := r.Mount
	if mount == nil {
		mount = r.mountDevice
	}
	return mount(r.partition(s))
}

// TryNext points [tryboot] at slot s.
func (r *RPi) TryNext(s Slot, _ Entry) error {
	if !s.Valid() {
		return fmt.Errorf("slots: try %q: not a slot", s)
	}
	st, err := r.Status()
	if err != nil {
		return err
	}
	ab, err := r.read()
	if err != nil {
		return err
	}
	if s == st.Booted || r.partition(s) == ab.normal {
		return fmt.Errorf("try slot %s: %w", s, ErrBooted)
	}
	ab.try = r.partition(s)
	return r.write(ab)
}

// Bless swaps autoboot.txt: the trial partition becomes [all], the old one [tryboot].
func (r *RPi) Bless() error {
	st, err := r.Status()
	if err != nil {
		return err
	}
	if !st.Trial {
		return ErrNotTrial
	}
	return r.write(autoboot{normal: r.partition(st.Booted), try: r.partition(st.Booted.Other())})
}

// Abandon points [tryboot] back at the default partition. [all] never changed during the
// trial, so a normal reboot already returns to it; this also disarms a repeated tryboot.
func (r *RPi) Abandon() error {
	st, err := r.Status()
	if err != nil {
		return err
	}
	if !st.Trial {
		return ErrNotTrial
	}
	ab, err := r.read()
	if err != nil {
		return err
	}
	ab.try = ab.normal
	return r.write(ab)
}

// autoboot is what Fyr keeps in autoboot.txt: the default and the tryboot partition.
type autoboot struct {
	normal, try int
}

// read parses autoboot.txt. A [tryboot] section without boot_partition tries the default.
func (r *RPi) read() (autoboot, error) {
	path := r.autobootPath()
	b, err := os.ReadFile(path)
	if err != nil {
		return autoboot{}, fmt.Errorf("slots: %w", err)
	}
	ab, err := parseAutoboot(b)
	if err != nil {
		return autoboot{}, fmt.Errorf("slots: %s: %w", path, err)
	}
	return ab, nil
}

func parseAutoboot(b []byte) (autoboot, error) {
	var ab autoboot
	section := "all"
	var abMode bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.ToLower(strings.Trim(line, "[]"))
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return ab, fmt.Errorf("line %d: %q is not key=value", n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "tryboot_a_b" && section == "all":
			abMode = v == "1"
		case k == "boot_partition" && (section == "all" || section == "tryboot"):
			p, err := strconv.Atoi(v)
			if err != nil || p < 0 {
				return ab, fmt.Errorf("line %d: boot_partition %q is not a partition number", n, v)
			}
			if section == "all" {
				ab.normal = p
			} else {
				ab.try = p
			}
		}
	}
	if err := sc.Err(); err != nil {
		return ab, err
	}
	if !abMode {
		return ab, errors.New("tryboot_a_b=1 is missing from [all]; without it the tryboot switch loads tryboot.txt instead of another partition")
	}
	if ab.normal == 0 {
		return ab, errors.New("[all] has no boot_partition")
	}
	if ab.try == 0 {
		ab.try = ab.normal
	}
	return ab, nil
}

func (ab autoboot) String() string {
	return fmt.Sprintf("[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n", ab.normal, ab.try)
}

func (r *RPi) write(ab autoboot) error {
	data := ab.String()
	if len(data) > autobootMax {
		return fmt.Errorf("slots: autoboot.txt would be %d bytes, over the bootloader's %d", len(data), autobootMax)
	}
	if err := atomicfile.WriteFile(r.autobootPath(), []byte(data), 0o644); err != nil {
		return fmt.Errorf("slots: write autoboot.txt: %w", err)
	}
	return nil
}

// readDTInt reads a 32-bit big-endian device-tree property.
func readDTInt(path string) (uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, fmt.Errorf("slots: %s holds %d bytes, want a 32-bit integer", path, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

func (r *RPi) mountDevice(partition int) (string, func() error, error) {
	dev := fmt.Sprintf(or(r.Device, DefaultRPiDevice), partition)
	dir := fmt.Sprintf("/run/fyr/slot-p%d", partition)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	if err := mountVFAT(dev, dir); err != nil {
		return "", nil, fmt.Errorf("slots: mount %s on %s: %w", dev, dir, err)
	}
	return dir, func() error { return unmount(dir) }, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
