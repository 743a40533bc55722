package boottest

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// esp is the EFI system partition inside a disk image, reached with mtools.
type esp struct {
	t    *testing.T
	disk string
	off  int64
}

// findESP reads the GPT of disk and returns its first partition, the ESP.
func findESP(t *testing.T, disk string) esp {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 92)
	if _, err := f.ReadAt(hdr, 512); err != nil {
		t.Fatal(err)
	}
	if string(hdr[:8]) != "EFI PART" {
		t.Fatalf("%s has no GPT", disk)
	}
	entries := int64(binary.LittleEndian.Uint64(hdr[72:]))
	entry := make([]byte, 128)
	if _, err := f.ReadAt(entry, entries*512); err != nil {
		t.Fatal(err)
	}
	return esp{t: t, disk: disk, off: int64(binary.LittleEndian.Uint64(entry[32:])) * 512}
}

func (e esp) mtools(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(args[0], append([]string{"-i", fmt.Sprintf("%s@@%d", e.disk, e.off)}, args[1:]...)...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// entries lists the boot entry files.
func (e esp) entries() []string {
	out := e.mtools("mdir", "-b", "::/loader/entries")
	var names []string
	for _, l := range strings.Fields(out) {
		names = append(names, strings.TrimPrefix(l, "::/loader/entries/"))
	}
	slices.Sort(names)
	return names
}

// install writes a slot's kernel, initramfs and boot entry (on trial, with tries, and
// options added to its kernel command line), as the slot code does for an update,
// replacing the slot's old entry.
func (e esp) install(dir, slot string, version, tries int, kernel, initrd string, options ...string) {
	e.t.Helper()
	for _, name := range e.entries() {
		if strings.HasPrefix(name, "fyr-"+slot) {
			e.mtools("mdel", "::/loader/entries/"+name)
		}
	}
	if !strings.Contains(e.mtools("mdir", "-b", "::/fyr"), "::/fyr/"+slot) {
		e.mtools("mmd", "::/fyr/"+slot)
	}
	e.mtools("mcopy", "-o", kernel, "::/fyr/"+slot+"/vmlinuz")
	e.mtools("mcopy", "-o", initrd, "::/fyr/"+slot+"/initrd.img")
	entry, err := exec.Command("sh", append([]string{filepath.Join(dir, "entry.sh"), slot, fmt.Sprint(version)}, options...)...).Output()
	if err != nil {
		e.t.Fatal(err)
	}
	tmp := filepath.Join(e.t.TempDir(), "entry.conf")
	os.WriteFile(tmp, entry, 0o644)
	e.mtools("mcopy", "-o", tmp, fmt.Sprintf("::/loader/entries/fyr-%s+%d.conf", slot, tries))
}

func uefiArgs(disk, vars string, p ports) []string {
	return append(machineArgs(p),
		"-drive", "if=pflash,format=raw,readonly=on,file="+aavmfCode,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "if=none,id=disk,format=raw,cache=writeback,file="+disk,
		"-device", "virtio-blk-pci,drive=disk")
}

// TestUEFIArm64 boots the uefi-arm64 image through AAVMF and systemd-boot, and takes it
// through two updates, as firmware/update and PID 1 handle them: first a good new slot b on
// trial, which comes up (through the first-boot setup: the data disk is fresh), stays
// healthy and is blessed by PID 1 (its entry loses the boot counter); then a broken new slot
// a, whose homeserver cannot start, which PID 1 gives up after the crash loop, rebooting
// into b without anyone's help.
func TestUEFIArm64(t *testing.T) {
	dir := image(t, boardUEFI, append(diskTools, qemuTool)...)
	for _, f := range []string{aavmfCode, aavmfVars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("the uefi-arm64 boot test needs %s (Debian: apt-get install qemu-efi-aarch64; .ci/run does)", f)
		}
	}
	work := t.TempDir()
	disk, vars := filepath.Join(work, "disk.img"), filepath.Join(work, "vars.fd")
	sparseCopy(t, filepath.Join(dir, "fyr-uefi-arm64.img"), disk)
	sparseCopy(t, aavmfVars, vars)
	e := findESP(t, disk)
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	if got := e.entries(); !slices.Equal(got, []string{"fyr-a.conf"}) {
		t.Fatalf("the image's boot entries are %q, want slot a alone, blessed", got)
	}
	ctx := withTimeout(t, 15*time.Minute)

	// A good update in slot b, on trial with three tries; kept after 10 s of health rather
	// than the default minutes.
	e.install(dir, "b", 2, 3, kernel, initrd, "fyr.bless_after=10s")
	p1 := freePorts(t)
	vm1 := startVM(t, "uefi-good", p1, uefiArgs(disk, vars, p1)...)
	page, _, _ := vm1.setup(ctx)
	up := vm1.waitAnswer(5 * time.Minute)
	vm1.waitLog(`msg="Fyr is booting".* slot=b`, time.Second)
	vm1.waitLog(`msg="boot partition mounted"`, time.Second)
	vm1.waitLog(`msg="this boot is a system update's trial"`, time.Second)
	t.Logf("REPORT uefi-arm64: power-on → slot b's setup page done %.1f s → homeserver answers %.1f s (firmware, systemd-boot, kernel, fyr)",
		page.Seconds(), up.Seconds())
	vm1.waitLog(`msg="update: new slot blessed".* slot=b`, 3*time.Minute)
	blessed := time.Since(vm1.started)
	vm1.waitLog(`msg="the update on trial stayed healthy and is kept"`, time.Minute) // the updater's state is saved
	vm1.kill()
	if got := e.entries(); !slices.Equal(got, []string{"fyr-a.conf", "fyr-b.conf"}) {
		t.Fatalf("after slot b stayed healthy, the entries are %q, want fyr-b.conf blessed beside fyr-a.conf", got)
	}
	t.Logf("REPORT uefi-arm64: slot b blessed %.1f s after power-on (fyr.bless_after=10s)", blessed.Seconds())

	// A broken update in slot a: its homeserver cannot start (a setting it refuses reaches
	// it from the kernel command line), so it crash-loops, and PID 1 must give the slot up.
	e.install(dir, "a", 3, 3, kernel, initrd, "FYR_LOG_LEVEL=loud")
	p2 := freePorts(t)
	vm2 := startVM(t, "uefi-broken", p2, uefiArgs(disk, vars, p2)...)
	vm2.waitLog(`msg="Fyr is booting".* slot=a`, 5*time.Minute)
	vm2.waitLog(`msg="homeserver is crash-looping"`, 5*time.Minute)
	looped := time.Since(vm2.started)
	vm2.waitLog(`msg="update: giving the trial up; reboot to return to the old slot"`, time.Minute)
	back := vm2.waitAnswer(5 * time.Minute)
	vm2.waitLog(`msg="Fyr is booting".* slot=b`, time.Second)
	vm2.waitLog(`msg="a system update failed its trial and was rolled back".* slot=b`, time.Second)
	t.Logf("REPORT uefi-arm64: rollback: slot a's crash loop found %.1f s after power-on; slot b answered %.1f s after power-on (%.1f s later)",
		looped.Seconds(), back.Seconds(), (back - looped).Seconds())
	vm2.kill()
	if got := e.entries(); !slices.Equal(got, []string{"fyr-b.conf"}) {
		t.Errorf("after the rollback, the entries are %q, want fyr-b.conf alone (slot a's removed, so it is never tried again)", got)
	}
}
