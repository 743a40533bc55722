package initd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"console=ttyAMA0 fyr.data=/dev/vda quiet\n", map[string]string{"console": "ttyAMA0", "fyr.data": "/dev/vda", "quiet": ""}},
		{`fyr.slot=a  root="LABEL=x y" fyr.slot=b`, map[string]string{"fyr.slot": "b", "root": "LABEL=x y"}},
		{"", map[string]string{}},
	} {
		if got := ParseCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCmdline(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestModules(t *testing.T) {
	list := "# virtio first\nkernel/drivers/virtio/virtio_pci.ko\n\n kernel/fs/ext4/ext4.ko \nkernel/drivers/watchdog/i6300esb.ko\nkernel/fs/fat/vfat.ko\n"
	paths, err := ReadModuleList(strings.NewReader(list), "/lib/modules")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/modules/kernel/drivers/virtio/virtio_pci.ko", "/lib/modules/kernel/fs/ext4/ext4.ko",
		"/lib/modules/kernel/drivers/watchdog/i6300esb.ko", "/lib/modules/kernel/fs/fat/vfat.ko"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("ReadModuleList = %q, want %q", paths, want)
	}
	var order []string
	loaded, err := LoadModules(paths, func(p string) error {
		order = append(order, filepath.Base(p))
		switch filepath.Base(p) {
		case "ext4.ko":
			return syscall.EEXIST // built in
		case "i6300esb.ko":
			return syscall.ENODEV // no such watchdog on this board
		case "vfat.ko":
			return syscall.ENOEXEC
		}
		return nil
	})
	if loaded != 1 {
		t.Errorf("loaded = %d, want 1", loaded)
	}
	if err == nil || !strings.Contains(err.Error(), "vfat.ko") || strings.Contains(err.Error(), "ext4") || strings.Contains(err.Error(), "i6300esb") {
		t.Errorf("LoadModules error = %v, want only vfat's failure", err)
	}
	if len(order) != 4 {
		t.Errorf("a failure stopped the loading: %q", order)
	}
	for _, bad := range []string{"/lib/x.ko\n", "../x.ko\n"} {
		if _, err := ReadModuleList(strings.NewReader(bad), "/lib/modules"); err == nil {
			t.Errorf("ReadModuleList(%q) accepted a path outside the directory", bad)
		}
	}
}

func TestFindDevice(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	mkdev := func(name, uevent string, sb []byte) {
		d := filepath.Join(sys, "class", "block", name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "uevent"), []byte(uevent), 0o644)
		os.WriteFile(filepath.Join(dev, name), sb, 0o644)
	}
	ext4 := func(label string) []byte {
		b := make([]byte, 4096)
		binary.LittleEndian.PutUint16(b[1024+0x38:], 0xEF53)
		copy(b[1024+0x78:], label)
		return b
	}
	mkdev("vda", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n", make([]byte, 4096))
	mkdev("vda1", "DEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=esp\n", make([]byte, 4096))
	mkdev("vda2", "DEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=fyr-data\n", ext4("fyr-data"))
	mkdev("vdb", "DEVNAME=vdb\n", ext4("other"))

	for _, tc := range []struct{ spec, want string }{
		{"PARTLABEL=fyr-data", filepath.Join(dev, "vda2")},
		{"LABEL=fyr-data", filepath.Join(dev, "vda2")},
		{"LABEL=other", filepath.Join(dev, "vdb")},
		{filepath.Join(dev, "vdb"), filepath.Join(dev, "vdb")},
	} {
		got, err := FindDevice(tc.spec, sys, dev)
		if err != nil || got != tc.want {
			t.Errorf("FindDevice(%q) = %q, %v; want %q", tc.spec, got, err, tc.want)
		}
	}
	for _, spec := range []string{"LABEL=missing", "PARTLABEL=missing", "UUID=1234", filepath.Join(dev, "vdz")} {
		if got, err := FindDevice(spec, sys, dev); err == nil {
			t.Errorf("FindDevice(%q) = %q, want an error", spec, got)
		}
	}
}

func TestLogSinkKeepsEarlyOutputForTheRing(t *testing.T) {
	var console, ring bytes.Buffer
	s := &logSink{console: &console}
	s.Write([]byte("booting\n"))
	s.setRing(&ring)
	s.Write([]byte("data mounted\n"))
	s.dropRing()
	s.Write([]byte("rebooting\n"))
	if got, want := ring.String(), "booting\ndata mounted\n"; got != want {
		t.Errorf("ring = %q, want %q", got, want)
	}
	if got, want := console.String(), "booting\ndata mounted\nrebooting\n"; got != want {
		t.Errorf("console = %q, want %q", got, want)
	}
	// A failing console does not stop the ring.
	s = &logSink{console: failWriter{}}
	s.setRing(&ring)
	if n, err := s.Write([]byte("x")); n != 1 || err != nil {
		t.Errorf("Write with a failing console = %d, %v", n, err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("console gone") }

func TestPartsRestartAfterPanicOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	p := &parts{log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, nil)), ctx: ctx, restartDelay: time.Millisecond}
	var panics, returns atomic.Int32
	restarted := make(chan struct{})
	p.keep("flaky", func(ctx context.Context) error {
		if panics.Add(1) <= 2 {
			panic("boom")
		}
		close(restarted)
		<-ctx.Done()
		return nil
	})
	p.keep("done", func(context.Context) error {
		returns.Add(1)
		return errors.New("no watchdog")
	})
	<-restarted
	cancel()
	p.wg.Wait()
	if got := panics.Load(); got != 3 {
		t.Errorf("a part that panicked twice ran %d times, want 3", got)
	}
	if got := returns.Load(); got != 1 {
		t.Errorf("a part that returned ran %d times, want once", got)
	}
	if !strings.Contains(logs.String(), "recovered from a panic") || !strings.Contains(logs.String(), "no watchdog") {
		t.Errorf("log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
