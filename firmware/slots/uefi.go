package slots

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf16"

	"fyr/storage/atomicfile"
)

// Defaults of UEFI.
const (
	DefaultESP     = "/boot"
	DefaultEFIVars = "/sys/firmware/efi/efivars"
	DefaultCmdline = "/proc/cmdline"
	DefaultTries   = 3
	// loaderVendor is systemd-boot's EFI variable vendor GUID.
	loaderVendor = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
)

// UEFI switches slots with systemd-boot's boot counting (the Boot Loader Specification's
// "+LEFT-DONE" entry names). The EFI system partition holds each slot's files in fyr/a/ and
// fyr/b/, and one entry per slot:
//
//	loader/entries/fyr-a.conf      a blessed slot: no counter
//	loader/entries/fyr-b+3.conf    a trial with three tries left
//
// Before each boot of a counted entry systemd-boot renames it (+3 → +2-1 → +1-2 → +0-3); an
// entry with no tries left sorts after every other, so the old slot starts again. Entries
// carry "sort-key fyr" and the bundle version, and systemd-boot orders entries with the same
// sort key newest version first: a trial outranks the slot it replaces, and once blessed
// (renamed to fyr-b.conf) it stays first. loader.conf gets "default fyr-*" so the first Fyr
// entry in that order is the default.
//
// The booted entry comes from the LoaderEntrySelected EFI variable systemd-boot sets, or
// failing that from "fyr.slot=" on the kernel command line, which TryNext writes into each
// entry.
//
// The fields may be changed until the first method call.
type UEFI struct {
	// ESP is where the EFI system partition is mounted. Empty: DefaultESP.
	ESP string
	// EFIVars is the efivarfs directory. Empty: DefaultEFIVars.
	EFIVars string
	// Cmdline is the kernel command line file. Empty: DefaultCmdline.
	Cmdline string
	// Tries is how many boots a trial entry gets. Zero: DefaultTries.
	Tries int
}

var _ Bootloader = (*UEFI)(nil)

// Name is "uefi".
func (u *UEFI) Name() string { return "uefi" }

// RebootArg is empty: the trial entry sorts first, so any reboot tries it.
func (u *UEFI) RebootArg() string { return "" }

func (u *UEFI) esp() string        { return or(u.ESP, DefaultESP) }
func (u *UEFI) entriesDir() string { return filepath.Join(u.esp(), "loader", "entries") }

// SlotDir is the directory on the ESP that holds slot s's files.
func (u *UEFI) SlotDir(s Slot) string { return filepath.Join(u.esp(), "fyr", string(s)) }

// entryName is a parsed loader/entries file name of a Fyr slot.
type entryName struct {
	slot Slot
	// counted: the name carries "+LEFT[-DONE]".
	counted    bool
	left, done int
	fileName   string
	// conf: the name ends in ".conf", as a file name does (an entry ID may not).
	conf bool
}

// parseEntryName reads "fyr-b+2-1.conf" (or the same without ".conf", as some systemd-boot
// versions report entry IDs). ok is false for any other name.
func parseEntryName(name string) (e entryName, ok bool) {
	e.fileName = name
	base, hasConf := strings.CutSuffix(strings.ToLower(name), ".conf")
	e.conf = hasConf
	rest, ok := strings.CutPrefix(base, "fyr-")
	if !ok || rest == "" {
		return e, false
	}
	slot, counter, counted := strings.Cut(rest, "+")
	if !Slot(slot).Valid() {
		return e, false
	}
	e.slot = Slot(slot)
	if !counted {
		return e, true
	}
	e.counted = true
	left, done, hasDone := strings.Cut(counter, "-")
	var err error
	if e.left, err = strconv.Atoi(left); err != nil || e.left < 0 {
		return e, false
	}
	if hasDone {
		if e.done, err = strconv.Atoi(done); err != nil || e.done < 0 {
			return e, false
		}
	}
	return e, true
}

// entries lists the Fyr entries of slot s on the ESP.
func (u *UEFI) entries(s Slot) ([]entryName, error) {
	des, err := os.ReadDir(u.entriesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("slots: %w", err)
	}
	var out []entryName
	for _, de := range des {
		if e, ok := parseEntryName(de.Name()); ok && e.conf && e.slot == s {
			out = append(out, e)
		}
	}
	return out, nil
}

// booted finds the running slot: from systemd-boot's EFI variable, else the command line.
func (u *UEFI) booted() (Slot, error) {
	v, err := os.ReadFile(filepath.Join(or(u.EFIVars, DefaultEFIVars), "LoaderEntrySelected-"+loaderVendor))
	if err == nil {
		id, err := decodeEFIString(v)
		if err != nil {
			return "", fmt.Errorf("%w: LoaderEntrySelected: %v", ErrUnknown, err)
		}
		e, ok := parseEntryName(id)
		if !ok {
			return "", fmt.Errorf("%w: systemd-boot started entry %q, not a Fyr slot", ErrUnknown, id)
		}
		return e.slot, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("slots: %w", err)
	}
	cmdline, err := os.ReadFile(or(u.Cmdline, DefaultCmdline))
	if err != nil {
		return "", fmt.Errorf("%w: no LoaderEntrySelected EFI variable, and %v", ErrUnknown, err)
	}
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "fyr.slot="); ok {
			if s, err := ParseSlot(v); err == nil {
				return s, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no LoaderEntrySelected EFI variable and no fyr.slot= on the kernel command line", ErrUnknown)
}

// decodeEFIString reads an efivarfs file holding a UTF-16LE string: four bytes of
// attributes, then the string, usually NUL-terminated.
func decodeEFIString(b []byte) (string, error) {
	if len(b) < 4 || (len(b)-4)%2 != 0 {
		return "", fmt.Errorf("%d bytes is not an EFI string variable", len(b))
	}
	u := make([]uint16, 0, (len(b)-4)/2)
	for i := 4; i+1 < len(b); i += 2 {
		c := uint16(b[i]) | uint16(b[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

// Status reads the booted slot; the boot is a trial while that slot's entry still counts.
func (u *UEFI) Status() (Status, error) {
	s, err := u.booted()
	if err != nil {
		return Status{}, err
	}
	es, err := u.entries(s)
	if err != nil {
		return Status{}, err
	}
	st := Status{Booted: s}
	for _, e := range es {
		st.Trial = st.Trial || e.counted
	}
	return st, nil
}

// OpenSlot removes slot s's entries, so the boot loader cannot start it, and returns its
// directory on the ESP.
func (u *UEFI) OpenSlot(s Slot) (string, func() error, error) {
	if !s.Valid() {
		return "", nil, fmt.Errorf("slots: open %q: not a slot", s)
	}
	booted, err := u.booted()
	if err != nil {
		return "", nil, err
	}
	if s == booted {
		return "", nil, fmt.Errorf("open slot %s: %w", s, ErrBooted)
	}
	if err := u.removeEntries(s); err != nil {
		return "", nil, err
	}
	dir := u.SlotDir(s)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("slots: %w", err)
	}
	return dir, func() error { return nil }, nil
}

func (u *UEFI) removeEntries(s Slot) error {
	es, err := u.entries(s)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := os.Remove(filepath.Join(u.entriesDir(), e.fileName)); err != nil {
			return fmt.Errorf("slots: %w", err)
		}
	}
	return syncDir(u.entriesDir())
}

// TryNext writes slot s's entry with a fresh counter, fyr-s+Tries.conf, and makes sure
// loader.conf defaults to the first Fyr entry. The entry starts fyr/s/fyr.efi (a unified
// kernel image) if the slot has one, else fyr/s/vmlinuz with fyr/s/initrd.img when present;
// its options are fyr/s/cmdline.txt plus fyr.slot=s.
func (u *UEFI) TryNext(s Slot, e Entry) error {
	if !s.Valid() {
		return fmt.Errorf("slots: try %q: not a slot", s)
	}
	booted, err := u.booted()
	if err != nil {
		return err
	}
	if s == booted {
		return fmt.Errorf("try slot %s: %w", s, ErrBooted)
	}
	body, err := u.entryFile(s, e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(u.entriesDir(), 0o755); err != nil {
		return fmt.Errorf("slots: %w", err)
	}
	if err := u.removeEntries(s); err != nil {
		return err
	}
	name := fmt.Sprintf("fyr-%s+%d.conf", s, orInt(u.Tries, DefaultTries))
	if err := atomicfile.WriteFile(filepath.Join(u.entriesDir(), name), []byte(body), 0o644); err != nil {
		return fmt.Errorf("slots: write entry: %w", err)
	}
	return u.setDefault()
}

// entryFile renders slot s's Boot Loader Specification entry.
func (u *UEFI) entryFile(s Slot, e Entry) (string, error) {
	dir := u.SlotDir(s)
	exists := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}
	label := e.Label
	if label == "" {
		label = strconv.FormatUint(e.Version, 10)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "title Fyr %s (slot %s)\nsort-key fyr\nversion %d\n", label, s, e.Version)
	switch {
	case exists("fyr.efi"):
		fmt.Fprintf(&b, "efi /fyr/%s/fyr.efi\n", s)
	case exists("vmlinuz"):
		fmt.Fprintf(&b, "linux /fyr/%s/vmlinuz\n", s)
		if exists("initrd.img") {
			fmt.Fprintf(&b, "initrd /fyr/%s/initrd.img\n", s)
		}
	default:
		return "", fmt.Errorf("try slot %s: %w: %s holds neither fyr.efi nor vmlinuz", s, ErrIncomplete, dir)
	}
	options := ""
	if c, err := os.ReadFile(filepath.Join(dir, "cmdline.txt")); err == nil {
		options = strings.Join(strings.Fields(string(c)), " ") + " "
	}
	fmt.Fprintf(&b, "options %sfyr.slot=%s\n", options, s)
	return b.String(), nil
}

// setDefault rewrites loader.conf with "default fyr-*", keeping its other lines.
func (u *UEFI) setDefault() error {
	path := filepath.Join(u.esp(), "loader", "loader.conf")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("slots: %w", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "default" {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	lines = append(lines, "default fyr-*")
	next := strings.Join(lines, "\n") + "\n"
	if next == string(old) {
		return nil
	}
	if err := atomicfile.WriteFile(path, []byte(next), 0o644); err != nil {
		return fmt.Errorf("slots: write loader.conf: %w", err)
	}
	return nil
}

// Bless renames the running slot's counted entry to drop its counter, as
// systemd-bless-boot does.
func (u *UEFI) Bless() error {
	e, err := u.trialEntry()
	if err != nil {
		return err
	}
	return u.rename(e.fileName, fmt.Sprintf("fyr-%s.conf", e.slot))
}

// Abandon removes the running slot's counted entry, so the boot loader has only the old
// slot's entry left to start; the slot's files stay until the next update replaces them.
func (u *UEFI) Abandon() error {
	e, err := u.trialEntry()
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(u.entriesDir(), e.fileName)); err != nil {
		return fmt.Errorf("slots: %w", err)
	}
	return syncDir(u.entriesDir())
}

func (u *UEFI) trialEntry() (entryName, error) {
	s, err := u.booted()
	if err != nil {
		return entryName{}, err
	}
	es, err := u.entries(s)
	if err != nil {
		return entryName{}, err
	}
	for _, e := range es {
		if e.counted {
			return e, nil
		}
	}
	return entryName{}, ErrNotTrial
}

func (u *UEFI) rename(from, to string) error {
	if from == to {
		return nil
	}
	dir := u.entriesDir()
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		return fmt.Errorf("slots: %w", err)
	}
	// On FAT the renamed entry holds the file's size and first cluster only once the file's
	// inode is written: syncing the file writes it, even on an ESP mounted without
	// MountFlags (an empty entry would leave the slot unbootable).
	if f, err := os.Open(filepath.Join(dir, to)); err == nil {
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("slots: sync %s: %w", to, err)
		}
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("slots: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("slots: sync %s: %w", dir, err)
	}
	return nil
}
