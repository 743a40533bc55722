package slots_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"fyr/firmware/slots"
)

// fakePi is a Raspberry Pi bootloader over a temporary directory: autoboot.txt on "partition
// 1", the device-tree files it leaves for Linux, and one directory per slot partition.
type fakePi struct {
	t        *testing.T
	dir      string
	rpi      *slots.RPi
	mounted  map[int]int
	released map[int]int
}

func newFakePi(t *testing.T, autoboot string) *fakePi {
	t.Helper()
	dir := t.TempDir()
	p := &fakePi{t: t, dir: dir, mounted: map[int]int{}, released: map[int]int{}}
	os.MkdirAll(filepath.Join(dir, "dt"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "autoboot.txt"), []byte(autoboot), 0o644); err != nil {
		t.Fatal(err)
	}
	p.rpi = &slots.RPi{
		Autoboot:   filepath.Join(dir, "autoboot.txt"),
		DeviceTree: filepath.Join(dir, "dt"),
		Mount: func(part int) (string, func() error, error) {
			d := filepath.Join(dir, "p"+strconv.Itoa(part))
			p.mounted[part]++
			return d, func() error { p.released[part]++; return nil }, os.MkdirAll(d, 0o755)
		},
	}
	return p
}

// boot does what the firmware does: pick [tryboot]'s partition when the flag is set, else
// [all]'s, and report it in the device tree.
func (p *fakePi) boot(tryboot bool) {
	p.t.Helper()
	b, err := os.ReadFile(p.rpi.Autoboot)
	if err != nil {
		p.t.Fatal(err)
	}
	section, part := "all", map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			section = strings.Trim(l, "[]")
		} else if v, ok := strings.CutPrefix(l, "boot_partition="); ok {
			part[section], _ = strconv.Atoi(v)
		}
	}
	booted, flag := part["all"], uint32(0)
	if tryboot {
		flag = 1
		if n, ok := part["tryboot"]; ok {
			booted = n
		}
	}
	p.writeDT("partition", uint32(booted))
	p.writeDT("tryboot", flag)
}

func (p *fakePi) writeDT(name string, v uint32) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "dt", name), binary.BigEndian.AppendUint32(nil, v), 0o444); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakePi) status() slots.Status {
	p.t.Helper()
	st, err := p.rpi.Status()
	if err != nil {
		p.t.Fatalf("Status: %v", err)
	}
	return st
}

func (p *fakePi) wantStatus(step string, want slots.Status) {
	p.t.Helper()
	if got := p.status(); got != want {
		p.t.Fatalf("%s: Status() = %+v, want %+v", step, got, want)
	}
}

const initialAutoboot = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"

func TestRPiUpdateBlessed(t *testing.T) {
	p := newFakePi(t, initialAutoboot)
	p.boot(false)
	p.wantStatus("first boot", slots.Status{Booted: slots.A})

	dir, release, err := p.rpi.OpenSlot(slots.B)
	if err != nil {
		t.Fatalf("OpenSlot(b): %v", err)
	}
	if dir != filepath.Join(p.dir, "p3") || p.mounted[3] != 1 {
		t.Errorf("OpenSlot(b) = %q after mounting %v, want partition 3's directory", dir, p.mounted)
	}
	// While slot b is being written, even a tryboot must start slot a.
	p.boot(true)
	p.wantStatus("tryboot while b is open", slots.Status{Booted: slots.A})
	if err := release(); err != nil || p.released[3] != 1 {
		t.Fatalf("release: %v, %v", err, p.released)
	}

	if err := p.rpi.TryNext(slots.B, slots.Entry{Version: 2}); err != nil {
		t.Fatalf("TryNext(b): %v", err)
	}
	if got := p.rpi.RebootArg(); got != "0 tryboot" {
		t.Errorf("RebootArg() = %q, want %q", got, "0 tryboot")
	}
	p.boot(false)
	p.wantStatus("a normal reboot after TryNext", slots.Status{Booted: slots.A})
	p.boot(true)
	p.wantStatus("tryboot after TryNext", slots.Status{Booted: slots.B, Trial: true})

	if err := p.rpi.Bless(); err != nil {
		t.Fatalf("Bless: %v", err)
	}
	got, _ := os.ReadFile(p.rpi.Autoboot)
	if want := "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n"; string(got) != want {
		t.Errorf("autoboot.txt after Bless:\n%s\nwant:\n%s", got, want)
	}
	p.wantStatus("after Bless, same boot", slots.Status{Booted: slots.B})
	p.boot(false)
	p.wantStatus("normal boot after Bless", slots.Status{Booted: slots.B})
	if err := p.rpi.Bless(); !errors.Is(err, slots.ErrNotTrial) {
		t.Errorf("Bless outside a trial = %v, want ErrNotTrial", err)
	}
	if err := p.rpi.Abandon(); !errors.Is(err, slots.ErrNotTrial) {
		t.Errorf("Abandon outside a trial = %v, want ErrNotTrial", err)
	}
}

func TestRPiTrialFails(t *testing.T) {
	for _, how := range []string{"abandoned", "reset"} {
		t.Run(how, func(t *testing.T) {
			p := newFakePi(t, initialAutoboot)
			p.boot(false)
			if _, _, err := p.rpi.OpenSlot(slots.B); err != nil {
				t.Fatal(err)
			}
			if err := p.rpi.TryNext(slots.B, slots.Entry{Version: 2}); err != nil {
				t.Fatal(err)
			}
			p.boot(true)
			p.wantStatus("trial", slots.Status{Booted: slots.B, Trial: true})
			// The fallback slot is off limits while the trial runs.
			if _, _, err := p.rpi.OpenSlot(slots.A); !errors.Is(err, slots.ErrBooted) {
				t.Errorf("OpenSlot(a) during b's trial = %v, want ErrBooted", err)
			}
			if how == "abandoned" {
				if err := p.rpi.Abandon(); err != nil {
					t.Fatalf("Abandon: %v", err)
				}
				p.wantStatus("after Abandon, same boot", slots.Status{Booted: slots.B})
				if err := p.rpi.Bless(); !errors.Is(err, slots.ErrNotTrial) {
					t.Errorf("Bless after Abandon = %v, want ErrNotTrial", err)
				}
				p.boot(true) // even a stray tryboot
			} else {
				p.boot(false) // the watchdog fired: the flag is gone
			}
			p.wantStatus("after the failed trial", slots.Status{Booted: slots.A})
		})
	}
}

func TestRPiRefusals(t *testing.T) {
	p := newFakePi(t, initialAutoboot)
	p.boot(false)
	if _, _, err := p.rpi.OpenSlot(slots.A); !errors.Is(err, slots.ErrBooted) {
		t.Errorf("OpenSlot(booted) = %v, want ErrBooted", err)
	}
	if err := p.rpi.TryNext(slots.A, slots.Entry{}); !errors.Is(err, slots.ErrBooted) {
		t.Errorf("TryNext(booted) = %v, want ErrBooted", err)
	}
	if _, _, err := p.rpi.OpenSlot("c"); err == nil {
		t.Error("OpenSlot(c) succeeded")
	}
	p.writeDT("partition", 7)
	if _, err := p.rpi.Status(); !errors.Is(err, slots.ErrUnknown) {
		t.Errorf("Status on partition 7 = %v, want ErrUnknown", err)
	}
	os.Remove(filepath.Join(p.dir, "dt", "partition"))
	if _, err := p.rpi.Status(); !errors.Is(err, slots.ErrUnknown) {
		t.Errorf("Status without a device tree = %v, want ErrUnknown", err)
	}

	for name, bad := range map[string]string{
		"no tryboot_a_b": "[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n",
		"no partition":   "[all]\ntryboot_a_b=1\n",
		"not a number":   "[all]\ntryboot_a_b=1\nboot_partition=two\n",
	} {
		q := newFakePi(t, bad)
		q.writeDT("partition", 2)
		if _, err := q.rpi.Status(); err == nil {
			t.Errorf("Status with autoboot.txt %s succeeded", name)
		}
	}
}

func TestRPiTrybootFlagWithoutTrial(t *testing.T) {
	// A tryboot whose [tryboot] section names the default partition is no trial.
	p := newFakePi(t, "[all]\ntryboot_a_b=1\nboot_partition=2\n")
	p.boot(true)
	p.wantStatus("tryboot onto the default", slots.Status{Booted: slots.A})
	// Firmware that predates the tryboot property leaves it out.
	os.Remove(filepath.Join(p.dir, "dt", "tryboot"))
	p.wantStatus("no tryboot property", slots.Status{Booted: slots.A})
}
