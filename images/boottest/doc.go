// Package boottest boots Fyr's images under qemu-system-aarch64 (-M virt, TCG) and checks
// them from the host through forwarded loopback ports (the client API, and port 80 for the
// first-boot page): a fresh box is set up through its setup page with the claim code from
// its console, the homeserver answers, a power cut in a burst of messages loses no
// acknowledged message and leaves a database that passes integrity_check, and on UEFI PID 1
// blesses a good new slot once it stays healthy and rolls a crash-looping one back.
//
// The tests run in `make test` when qemu and the image tools are installed (.ci/run
// installs them) and skip, saying what to install, when they are not; `make image-test
// BOARD=…` builds one board's image and runs its test. They are slow by nature (software
// emulation), and they print the boot and rollback times they measure.
package boottest
