package initd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// FindDevice resolves a device spec from the kernel command line to a device node:
// "/dev/vda" as is (once it exists), "PARTLABEL=name" by GPT partition name and
// "LABEL=name" by ext4 volume label. There is no udev in the image, so it reads the
// partition names from sysfs (sysRoot, normally /sys) and the labels from the devices'
// superblocks (devRoot, normally /dev).
func FindDevice(spec, sysRoot, devRoot string) (string, error) {
	key, want, ok := strings.Cut(spec, "=")
	if !ok {
		if _, err := os.Stat(spec); err != nil {
			return "", err
		}
		return spec, nil
	}
	if key != "LABEL" && key != "PARTLABEL" {
		return "", fmt.Errorf("device %q: want /dev/NAME, LABEL=NAME or PARTLABEL=NAME", spec)
	}
	entries, err := os.ReadDir(filepath.Join(sysRoot, "class", "block"))
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		name := e.Name()
		switch key {
		case "PARTLABEL":
			uevent, err := os.ReadFile(filepath.Join(sysRoot, "class", "block", name, "uevent"))
			if err != nil {
				continue
			}
			if ueventValue(uevent, "PARTNAME") == want {
				return filepath.Join(devRoot, name), nil
			}
		case "LABEL":
			if label, err := ext4Label(filepath.Join(devRoot, name)); err == nil && label == want {
				return filepath.Join(devRoot, name), nil
			}
		}
	}
	return "", fmt.Errorf("no block device with %s", spec)
}

func ueventValue(uevent []byte, key string) string {
	for _, line := range strings.Split(string(uevent), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// ext4Label reads the volume name from an ext2/3/4 superblock (1024 bytes in; magic 0xEF53
// at 0x38, name at 0x78).
func ext4Label(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sb := make([]byte, 0x88)
	if _, err := f.ReadAt(sb, 1024); err != nil && err != io.EOF {
		return "", err
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return "", fmt.Errorf("%s: not ext4", dev)
	}
	name := sb[0x78:0x88]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name), nil
}
