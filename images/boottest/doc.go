// Package boottest boots Fyr's images under qemu-system-aarch64 (-M virt, TCG) and checks
// them from the host through forwarded loopback ports: the homeserver answers, a power cut
// in a burst of messages loses no acknowledged message and leaves a database that passes
// integrity_check, and on UEFI a new slot is tried and a broken one rolls back.
//
// The tests run in `make test` when qemu and the image tools are installed (.ci/run
// installs them) and skip, saying what to install, when they are not; `make image-test
// BOARD=…` builds one board's image and runs its test. They are slow by nature (software
// emulation), and they print the boot and rollback times they measure.
package boottest
