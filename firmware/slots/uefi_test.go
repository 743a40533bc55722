package slots_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"fyr/firmware/slots"
)

// fakeESP is an EFI system partition with systemd-boot's behaviour: on each boot it picks the
// first entry in its order (entries with no tries left last, then by version, newest
// first), counts the try by renaming a counted entry, and reports the entry it started in
// the LoaderEntrySelected EFI variable.
type fakeESP struct {
	t    *testing.T
	root string
	u    *slots.UEFI
}

func newFakeESP(t *testing.T) *fakeESP {
	t.Helper()
	root := t.TempDir()
	e := &fakeESP{t: t, root: root, u: &slots.UEFI{
		ESP:     filepath.Join(root, "esp"),
		EFIVars: filepath.Join(root, "efivars"),
		Cmdline: filepath.Join(root, "cmdline"),
	}}
	for _, d := range []string{"esp/loader/entries", "esp/fyr/a", "efivars"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	// The image ships slot a blessed, at version 1.
	e.write("esp/fyr/a/vmlinuz", "kernel a")
	e.write("esp/loader/entries/fyr-a.conf", "title Fyr 1\nsort-key fyr\nversion 1\nlinux /fyr/a/vmlinuz\noptions fyr.slot=a\n")
	e.write("esp/loader/loader.conf", "timeout 0\ndefault fyr-a.conf\n")
	return e
}

func (e *fakeESP) write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.root, name), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

var counterRE = regexp.MustCompile(`^(fyr-[ab])(?:\+(\d+)(?:-(\d+))?)?\.conf$`)

// boot starts the first entry and returns its file name as it was before the boot.
func (e *fakeESP) boot() string {
	e.t.Helper()
	dir := filepath.Join(e.root, "esp/loader/entries")
	des, err := os.ReadDir(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	type entry struct {
		name, base   string
		left, done   int
		counted, bad bool
		version      int
	}
	var es []entry
	for _, de := range des {
		m := counterRE.FindStringSubmatch(de.Name())
		if m == nil {
			continue
		}
		en := entry{name: de.Name(), base: m[1], counted: m[2] != ""}
		en.left, _ = strconv.Atoi(m[2])
		en.done, _ = strconv.Atoi(m[3])
		en.bad = en.counted && en.left == 0
		body, _ := os.ReadFile(filepath.Join(dir, de.Name()))
		for _, l := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(l, "version "); ok {
				en.version, _ = strconv.Atoi(v)
			}
		}
		es = append(es, en)
	}
	if len(es) == 0 {
		e.t.Fatal("fake systemd-boot: no entries")
	}
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].bad != es[j].bad {
			return !es[i].bad
		}
		return es[i].version > es[j].version
	})
	pick := es[0]
	id := pick.name
	if pick.counted && pick.left > 0 {
		id = pick.base + "+" + strconv.Itoa(pick.left-1) + "-" + strconv.Itoa(pick.done+1) + ".conf"
		if err := os.Rename(filepath.Join(dir, pick.name), filepath.Join(dir, id)); err != nil {
			e.t.Fatal(err)
		}
	}
	v := []byte{7, 0, 0, 0} // attributes
	for _, c := range utf16.Encode([]rune(id + "\x00")) {
		v = append(v, byte(c), byte(c>>8))
	}
	if err := os.WriteFile(filepath.Join(e.root, "efivars", "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), v, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return pick.name
}

func (e *fakeESP) entries() []string {
	des, _ := os.ReadDir(filepath.Join(e.root, "esp/loader/entries"))
	var names []string
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			names = append(names, de.Name())
		}
	}
	return names
}

func (e *fakeESP) wantStatus(step string, want slots.Status) {
	e.t.Helper()
	got, err := e.u.Status()
	if err != nil {
		e.t.Fatalf("%s: Status: %v", step, err)
	}
	if got != want {
		e.t.Fatalf("%s: Status() = %+v, want %+v (entries %v)", step, got, want, e.entries())
	}
}

// install writes a kernel into slot s and arms it for a trial.
func (e *fakeESP) install(s slots.Slot, version uint64) {
	e.t.Helper()
	dir, release, err := e.u.OpenSlot(s)
	if err != nil {
		e.t.Fatalf("OpenSlot(%s): %v", s, err)
	}
	for name, content := range map[string]string{"vmlinuz": "kernel", "initrd.img": "initrd", "cmdline.txt": "console=ttyS0  quiet\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := release(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.u.TryNext(s, slots.Entry{Version: version, Label: "v" + strconv.FormatUint(version, 10)}); err != nil {
		e.t.Fatalf("TryNext(%s): %v", s, err)
	}
}

func TestUEFIUpdateBlessed(t *testing.T) {
	e := newFakeESP(t)
	e.boot()
	e.wantStatus("first boot", slots.Status{Booted: slots.A})

	e.install(slots.B, 2)
	entry, err := os.ReadFile(filepath.Join(e.root, "esp/loader/entries/fyr-b+3.conf"))
	if err != nil {
		t.Fatalf("TryNext wrote no fyr-b+3.conf: %v (entries %v)", err, e.entries())
	}
	want := "title Fyr v2 (slot b)\nsort-key fyr\nversion 2\nlinux /fyr/b/vmlinuz\ninitrd /fyr/b/initrd.img\noptions console=ttyS0 quiet fyr.slot=b\n"
	if string(entry) != want {
		t.Errorf("entry:\n%s\nwant:\n%s", entry, want)
	}
	loader, _ := os.ReadFile(filepath.Join(e.root, "esp/loader/loader.conf"))
	if string(loader) != "timeout 0\ndefault fyr-*\n" {
		t.Errorf("loader.conf = %q, want its timeout kept and default fyr-*", loader)
	}
	if e.u.RebootArg() != "" {
		t.Errorf("RebootArg() = %q, want empty", e.u.RebootArg())
	}

	if got := e.boot(); got != "fyr-b+3.conf" {
		t.Fatalf("systemd-boot started %s, want the trial fyr-b+3.conf", got)
	}
	e.wantStatus("trial", slots.Status{Booted: slots.B, Trial: true})
	if err := e.u.Bless(); err != nil {
		t.Fatalf("Bless: %v", err)
	}
	if got := e.entries(); strings.Join(got, " ") != "fyr-a.conf fyr-b.conf" {
		t.Errorf("entries after Bless = %v, want fyr-a.conf fyr-b.conf", got)
	}
	e.wantStatus("after Bless", slots.Status{Booted: slots.B})
	e.boot()
	e.wantStatus("reboot after Bless", slots.Status{Booted: slots.B})
	if err := e.u.Bless(); !errors.Is(err, slots.ErrNotTrial) {
		t.Errorf("Bless outside a trial = %v, want ErrNotTrial", err)
	}
}

func TestUEFIAbandon(t *testing.T) {
	e := newFakeESP(t)
	e.boot()
	e.install(slots.B, 2)
	e.boot()
	e.wantStatus("trial", slots.Status{Booted: slots.B, Trial: true})
	// The homeserver crash-loops: the supervisor gives up on the trial.
	if err := e.u.Abandon(); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	e.wantStatus("after Abandon", slots.Status{Booted: slots.B})
	if got := e.entries(); strings.Join(got, " ") != "fyr-a.conf" {
		t.Errorf("entries after Abandon = %v", got)
	}
	if got := e.boot(); got != "fyr-a.conf" {
		t.Fatalf("after Abandon systemd-boot started %s, want fyr-a.conf", got)
	}
	e.wantStatus("back on a", slots.Status{Booted: slots.A})
	if err := e.u.Abandon(); !errors.Is(err, slots.ErrNotTrial) {
		t.Errorf("Abandon outside a trial = %v, want ErrNotTrial", err)
	}
}

func TestUEFITriesRunOut(t *testing.T) {
	e := newFakeESP(t)
	e.boot()
	e.install(slots.B, 2)
	// The new kernel never gets far enough to bless or abandon: three tries, then slot a.
	for i, want := range []string{"fyr-b+3.conf", "fyr-b+2-1.conf", "fyr-b+1-2.conf", "fyr-a.conf"} {
		if got := e.boot(); got != want {
			t.Fatalf("boot %d started %s, want %s", i+1, got, want)
		}
	}
	e.wantStatus("after the tries ran out", slots.Status{Booted: slots.A})
	// The next update reuses slot b: its bad entry goes, a fresh counted one comes.
	e.install(slots.B, 3)
	if got := e.entries(); strings.Join(got, " ") != "fyr-a.conf fyr-b+3.conf" {
		t.Errorf("entries after a new TryNext = %v", got)
	}
}

func TestUEFIRefusals(t *testing.T) {
	e := newFakeESP(t)
	e.boot()
	if _, _, err := e.u.OpenSlot(slots.A); !errors.Is(err, slots.ErrBooted) {
		t.Errorf("OpenSlot(booted) = %v, want ErrBooted", err)
	}
	if err := e.u.TryNext(slots.A, slots.Entry{Version: 9}); !errors.Is(err, slots.ErrBooted) {
		t.Errorf("TryNext(booted) = %v, want ErrBooted", err)
	}
	if _, _, err := e.u.OpenSlot(slots.B); err != nil {
		t.Fatal(err)
	}
	if err := e.u.TryNext(slots.B, slots.Entry{Version: 2}); !errors.Is(err, slots.ErrIncomplete) {
		t.Errorf("TryNext of an empty slot = %v, want ErrIncomplete", err)
	}
	if got := e.entries(); strings.Join(got, " ") != "fyr-a.conf" {
		t.Errorf("a refused TryNext left entries %v", got)
	}
	// A UKI is preferred over a kernel and initrd.
	os.WriteFile(filepath.Join(e.u.SlotDir(slots.B), "fyr.efi"), []byte("uki"), 0o644)
	if err := e.u.TryNext(slots.B, slots.Entry{Version: 2}); err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(filepath.Join(e.root, "esp/loader/entries/fyr-b+3.conf"))
	if !strings.Contains(string(body), "efi /fyr/b/fyr.efi\n") || !strings.Contains(string(body), "title Fyr 2 (slot b)") {
		t.Errorf("entry for a UKI:\n%s", body)
	}

	// Without the EFI variable, the kernel command line names the slot.
	os.Remove(filepath.Join(e.root, "efivars", "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"))
	if _, err := e.u.Status(); !errors.Is(err, slots.ErrUnknown) {
		t.Errorf("Status without any clue = %v, want ErrUnknown", err)
	}
	e.write("cmdline", "root=/dev/sda2 fyr.slot=a quiet\n")
	e.wantStatus("from the command line", slots.Status{Booted: slots.A})
}

func TestDetect(t *testing.T) {
	root := t.TempDir()
	if _, err := slots.Detect(root); !errors.Is(err, slots.ErrNoBootloader) {
		t.Errorf("Detect(empty root) = %v, want ErrNoBootloader", err)
	}
	efi := filepath.Join(root, "sys/firmware/efi/efivars")
	os.MkdirAll(efi, 0o755)
	os.WriteFile(filepath.Join(efi, "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), []byte{7, 0, 0, 0, 'f', 0}, 0o644)
	if bl, err := slots.Detect(root); err != nil || bl.Name() != "uefi" {
		t.Errorf("Detect(systemd-boot) = %v, %v; want uefi", bl, err)
	}
	dt := filepath.Join(root, "proc/device-tree/chosen/bootloader")
	os.MkdirAll(dt, 0o755)
	os.WriteFile(filepath.Join(dt, "partition"), []byte{0, 0, 0, 2}, 0o444)
	if bl, err := slots.Detect(root); err != nil || bl.Name() != "rpi" {
		t.Errorf("Detect(raspberry pi) = %v, %v; want rpi", bl, err)
	}
}
