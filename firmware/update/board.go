package update

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
)

// Board identifies the machine under root ("" means "/") for bundle compatibility: the first
// "compatible" string of the device tree's root node where there is one (a Raspberry Pi 4 is
// "raspberrypi,4-model-b", a Pi 5 "raspberrypi,5-model-b"), else "uefi-" and the Go
// architecture ("uefi-amd64", "uefi-arm64").
func Board(root string) string {
	if root == "" {
		root = "/"
	}
	b, err := os.ReadFile(filepath.Join(root, "proc/device-tree/compatible"))
	if err == nil {
		if first, _, _ := bytes.Cut(b, []byte{0}); len(first) > 0 {
			return string(first)
		}
	}
	return "uefi-" + runtime.GOARCH
}
