package boottest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// qemuArgs boots the qemu-arm64 image: the kernel and initramfs directly, the data disk
// as a virtio disk with qemu's default write-back cache (what the guest flushed reached the
// file; what it did not is lost when qemu is killed, as in a power cut).
func qemuArgs(dir, disk, cmdline string, p ports) []string {
	return append(machineArgs(p),
		"-no-reboot",
		"-kernel", filepath.Join(dir, "Image"), "-initrd", filepath.Join(dir, "initrd.img"),
		"-append", cmdline,
		"-drive", "if=none,id=data,format=raw,cache=writeback,file="+disk,
		"-device", "virtio-blk-pci,drive=data")
}

// TestQEMUArm64 boots the qemu-arm64 image (a board with no boot partition and no boot
// loader: no factory reset, no updates), sets it up through the first-boot page, sends a
// burst of messages, cuts the power in the middle of it, boots again and checks that every
// acknowledged message is there and that the database passed integrity_check at boot.
func TestQEMUArm64(t *testing.T) {
	dir := image(t, boardQEMU, qemuTool)
	disk := filepath.Join(t.TempDir(), "data.img")
	sparseCopy(t, filepath.Join(dir, "data.img"), disk)
	cmdline := "console=ttyAMA0 panic=-1 fyr.data=LABEL=fyr-data"

	p1 := freePorts(t)
	vm1 := startVM(t, "boot1", p1, qemuArgs(dir, disk, cmdline, p1)...)
	ctx := withTimeout(t, 10*time.Minute)
	page, user, password := vm1.setup(ctx)
	first := vm1.waitAnswer(5 * time.Minute)
	t.Logf("REPORT qemu-arm64: fresh data disk: setup page done %.1f s after qemu started; the homeserver's first answer %.1f s", page.Seconds(), first.Seconds())
	vm1.waitLog(`msg="Fyr is booting"`, time.Second)
	vm1.waitLog(`no boot partition`, time.Second)

	c := newClient(vm1.url(""))
	if err := c.login(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	room, err := c.createRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The burst: four senders, each message acknowledged before the next. The plug is
	// pulled while they are still sending.
	var mu sync.Mutex
	acked := map[string]string{} // event ID → body
	burstCtx, stopBurst := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; burstCtx.Err() == nil; i++ {
				body := fmt.Sprintf("sender %d message %d", s, i)
				id, err := c.send(burstCtx, room, fmt.Sprintf("s%d-%d", s, i), body)
				if err != nil {
					return // the power is gone
				}
				mu.Lock()
				acked[id] = body
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	vm1.kill()
	stopBurst()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no message was acknowledged before the power cut")
	}
	t.Logf("power cut after %d acknowledged messages", len(acked))

	p2 := freePorts(t)
	vm2 := startVM(t, "boot2", p2, qemuArgs(dir, disk, cmdline, p2)...)
	second := vm2.waitAnswer(5 * time.Minute)
	t.Logf("REPORT qemu-arm64: first answer %.1f s after qemu started (after the power cut, with integrity_check)", second.Seconds())
	vm2.waitLog(`the last run ended without a clean shutdown; checking the database`, time.Second)
	vm2.waitLog(`integrity_check: ok`, time.Second)
	vm2.waitLog(`msg="database integrity_check passed"`, time.Second)

	c.base = vm2.url("")
	lost := 0
	for id, want := range acked {
		got, err := c.event(ctx, room, id)
		if err != nil || got != want {
			lost++
			t.Errorf("acknowledged message %s (%q) after the power cut: %q, %v", id, want, got, err)
		}
	}
	if lost == 0 {
		t.Logf("all %d acknowledged messages survived the power cut", len(acked))
	}
	if strings.Contains(vm2.serial.String(), "claim code") {
		t.Error("the setup page came back on the second boot, though an admin exists")
	}
	if strings.Contains(vm2.serial.String(), "Kernel panic") {
		t.Error("the kernel panicked on the second boot")
	}
}
