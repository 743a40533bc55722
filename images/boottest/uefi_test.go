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

// blessWired says whether the image's PID 1 blesses a slot on trial once its homeserver
// answers: cmd/fyr wiring initd.Config.OnHealthy to firmware/slots. Until the lead merges
// that, TestUEFIArm64 checks that a new slot is tried and counted, and logs that the
// blessing is not checked; set it to true in the merge that wires it.
const blessWired = false

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

// install writes a slot's kernel, initramfs and boot entry (on trial, with tries), as the
// slot code does for an update, replacing the slot's old entry.
func (e esp) install(dir, slot string, version, tries int, kernel, initrd string) {
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
	entry, err := exec.Command("sh", filepath.Join(dir, "entry.sh"), slot, fmt.Sprint(version)).Output()
	if err != nil {
		e.t.Fatal(err)
	}
	tmp := filepath.Join(e.t.TempDir(), "entry.conf")
	os.WriteFile(tmp, entry, 0o644)
	e.mtools("mcopy", "-o", tmp, fmt.Sprintf("::/loader/entries/fyr-%s+%d.conf", slot, tries))
}

func uefiArgs(disk, vars string, port int) []string {
	return append(machineArgs(port),
		"-drive", "if=pflash,format=raw,readonly=on,file="+aavmfCode,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "if=none,id=disk,format=raw,cache=writeback,file="+disk,
		"-device", "virtio-blk-pci,drive=disk")
}

// TestUEFIArm64 boots the uefi-arm64 image through AAVMF and systemd-boot: first a good new
// slot b on trial, which boots and (once blessing is wired) is blessed; then a broken new
// slot a (its initramfs cut short, as by an interrupted write), which panics and rolls back
// to b without anyone's help.
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

	// A good update in slot b, on trial with three tries.
	e.install(dir, "b", 2, 3, kernel, initrd)
	port := freePort(t)
	vm1 := startVM(t, "uefi-good", port, uefiArgs(disk, vars, port)...)
	up := vm1.waitAnswer(5 * time.Minute)
	vm1.waitLog(`msg="Fyr is booting".* slot=b`, time.Second)
	t.Logf("REPORT uefi-arm64: slot b answers %.1f s after power-on (firmware, systemd-boot, kernel, fyr)", up.Seconds())
	vm1.waitLog(`msg="homeserver answers"`, time.Minute)
	blessed := "fyr-b+2-1.conf" // systemd-boot counted one try down
	if blessWired {
		blessed = "fyr-b.conf"
		time.Sleep(5 * time.Second) // the slot code renames the entry after the first answer
	}
	vm1.kill()
	if got := e.entries(); !slices.Contains(got, blessed) {
		t.Fatalf("after slot b came up, the entries are %q, want %s", got, blessed)
	}
	if !blessWired {
		t.Log("slot b was tried and counted; blessing it is not checked: firmware/slots is not wired to initd.Config.OnHealthy (see blessWired)")
	}

	// A broken update in slot a: one try, then systemd-boot must fall back to b.
	broken := filepath.Join(work, "broken-initrd.img")
	b, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(broken, b[:len(b)/8], 0o644)
	e.install(dir, "a", 3, 1, kernel, broken)
	port2 := freePort(t)
	vm2 := startVM(t, "uefi-broken", port2, uefiArgs(disk, vars, port2)...)
	vm2.waitLog(`Kernel panic`, 5*time.Minute)
	panicked := time.Since(vm2.started)
	back := vm2.waitAnswer(5 * time.Minute)
	vm2.waitLog(`msg="Fyr is booting".* slot=b`, time.Second)
	t.Logf("REPORT uefi-arm64: rollback: broken slot a panicked %.1f s after power-on; slot b answered %.1f s after power-on",
		panicked.Seconds(), back.Seconds())
	vm2.kill()
	if got := e.entries(); !slices.Contains(got, "fyr-a+0-1.conf") {
		t.Errorf("after the failed try, the entries are %q, want fyr-a+0-1.conf (no tries left)", got)
	}
}
