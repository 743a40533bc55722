package initd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// BootDir is where the boot partition is mounted, read-write: the factory reset marker
// (firmware/setup) and the boot loader's files (firmware/slots: autoboot.txt on a Raspberry
// Pi, the ESP's loader/entries on UEFI) live there.
const BootDir = "/boot"

// BootDevice finds the boot partition: partition 1 of the disk that holds dataDev, the data
// partition (/dev/mmcblk0p4 → /dev/mmcblk0p1, /dev/vda2 → /dev/vda1). It reads sysfs under
// sysRoot (normally /sys) and names the device under devRoot (normally /dev). A data disk
// that is a whole disk, with no partitions, has no boot partition beside it: an error.
func BootDevice(dataDev, sysRoot, devRoot string) (string, error) {
	name := filepath.Base(dataDev)
	dev, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "class", "block", name))
	if err != nil {
		return "", fmt.Errorf("boot partition: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dev, "partition")); err != nil {
		return "", fmt.Errorf("boot partition: the data disk %s is a whole disk, with no partitions beside it", dataDev)
	}
	disk := filepath.Dir(dev)
	entries, err := os.ReadDir(disk)
	if err != nil {
		return "", fmt.Errorf("boot partition: %w", err)
	}
	for _, e := range entries {
		n, err := os.ReadFile(filepath.Join(disk, e.Name(), "partition"))
		if err == nil && strings.TrimSpace(string(n)) == "1" {
			if e.Name() == name {
				return "", fmt.Errorf("boot partition: the data partition %s is partition 1 itself", dataDev)
			}
			return filepath.Join(devRoot, e.Name()), nil
		}
	}
	return "", fmt.Errorf("boot partition: the disk %s has no partition 1", filepath.Base(disk))
}
