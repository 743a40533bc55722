package initd

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeSys builds /sys/class/block and /sys/devices as the kernel does: each class entry is
// a link into the device tree, where a disk's partitions are directories inside the disk's,
// each with a "partition" file holding its number.
func fakeSys(t *testing.T, disks map[string][]string) string {
	t.Helper()
	sys := t.TempDir()
	class := filepath.Join(sys, "class", "block")
	os.MkdirAll(class, 0o755)
	for disk, parts := range disks {
		d := filepath.Join(sys, "devices", "pci0000:00", disk)
		os.MkdirAll(filepath.Join(d, "queue"), 0o755) // not a partition
		os.Symlink(d, filepath.Join(class, disk))
		for i, p := range parts {
			pd := filepath.Join(d, p)
			os.MkdirAll(pd, 0o755)
			os.WriteFile(filepath.Join(pd, "partition"), []byte(strconv.Itoa(i+1)+"\n"), 0o444)
			os.Symlink(pd, filepath.Join(class, p))
		}
	}
	return sys
}

func TestBootDevice(t *testing.T) {
	sys := fakeSys(t, map[string][]string{
		"mmcblk0": {"mmcblk0p1", "mmcblk0p2", "mmcblk0p3", "mmcblk0p4"},
		"vda":     {"vda1", "vda2"},
		"vdb":     nil,
		"sda":     {"sda1"},
	})
	for _, tc := range []struct{ data, want string }{
		{"/dev/mmcblk0p4", "/dev/mmcblk0p1"},
		{"/dev/vda2", "/dev/vda1"},
	} {
		got, err := BootDevice(tc.data, sys, "/dev")
		if err != nil || got != tc.want {
			t.Errorf("BootDevice(%q) = %q, %v; want %q", tc.data, got, err, tc.want)
		}
	}
	for _, data := range []string{"/dev/vdb", "/dev/sda1", "/dev/nvme0n1p2"} {
		if got, err := BootDevice(data, sys, "/dev"); err == nil {
			t.Errorf("BootDevice(%q) = %q; want an error: there is no other partition 1 beside it", data, got)
		}
	}
}
