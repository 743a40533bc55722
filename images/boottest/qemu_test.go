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
func qemuArgs(dir, disk, cmdline string, port int) []string {
	return append(machineArgs(port),
		"-no-reboot",
		"-kernel", filepath.Join(dir, "Image"), "-initrd", filepath.Join(dir, "initrd.img"),
		"-append", cmdline,
		"-drive", "if=none,id=data,format=raw,cache=writeback,file="+disk,
		"-device", "virtio-blk-pci,drive=data")
}

// TestQEMUArm64 boots the qemu-arm64 image, sends a burst of messages, cuts the power in
// the middle of it, boots again and checks that every acknowledged message is there and
// that the database passed integrity_check at boot.
func TestQEMUArm64(t *testing.T) {
	dir := image(t, boardQEMU, qemuTool)
	disk := filepath.Join(t.TempDir(), "data.img")
	sparseCopy(t, filepath.Join(dir, "data.img"), disk)
	cmdline := "console=ttyAMA0 panic=-1 fyr.data=LABEL=fyr-data"

	port := freePort(t)
	vm1 := startVM(t, "boot1", port, qemuArgs(dir, disk, cmdline, port)...)
	first := vm1.waitAnswer(5 * time.Minute)
	t.Logf("REPORT qemu-arm64: first answer %.1f s after qemu started (fresh data disk)", first.Seconds())
	vm1.waitLog(`msg="Fyr is booting"`, time.Second)

	token := vm1.waitLog(`one-time registration token:\s+(\S+)`, time.Minute)[1]
	ctx := withTimeout(t, 5*time.Minute)
	c := newClient(vm1.url(""))
	if err := c.registerWithToken(ctx, "admin", "boot-test-password", token); err != nil {
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

	port2 := freePort(t)
	vm2 := startVM(t, "boot2", port2, qemuArgs(dir, disk, cmdline, port2)...)
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
	if strings.Contains(vm2.serial.String(), "Kernel panic") {
		t.Error("the kernel panicked on the second boot")
	}
}
