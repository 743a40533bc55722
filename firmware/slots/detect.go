package slots

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrNoBootloader: Detect found neither boot loader; this is not a Fyr appliance.
var ErrNoBootloader = errors.New("slots: no Raspberry Pi tryboot or systemd-boot found")

// Detect returns the boot loader of the system whose root is root ("" means "/"), by what
// the firmware left behind: RPi when the Raspberry Pi firmware reports the booted partition
// in the device tree, UEFI when systemd-boot set LoaderEntrySelected. Paths in the result are
// the defaults under root.
func Detect(root string) (Bootloader, error) {
	if root == "" {
		root = "/"
	}
	at := func(p string) string { return filepath.Join(root, p) }
	if _, err := os.Stat(at(filepath.Join(DefaultDeviceTree, "partition"))); err == nil {
		return &RPi{Autoboot: at(DefaultAutoboot), DeviceTree: at(DefaultDeviceTree)}, nil
	}
	if _, err := os.Stat(at(filepath.Join(DefaultEFIVars, "LoaderEntrySelected-"+loaderVendor))); err == nil {
		return &UEFI{ESP: at(DefaultESP), EFIVars: at(DefaultEFIVars), Cmdline: at(DefaultCmdline)}, nil
	}
	return nil, ErrNoBootloader
}
