package slots

import (
	"syscall"
	"unsafe"
)

// Reboot syncs the file systems and restarts the machine at once, passing arg to the boot
// loader when it is not empty (LINUX_REBOOT_CMD_RESTART2; the Raspberry Pi firmware reads
// "0 tryboot"). It returns only on failure. Stop services and unmount first: this is the
// last step of a shutdown, and needs CAP_SYS_BOOT.
func Reboot(arg string) error {
	syscall.Sync()
	if arg == "" {
		return syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	}
	p, err := syscall.BytePtrFromString(arg)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_REBOOT, syscall.LINUX_REBOOT_MAGIC1, syscall.LINUX_REBOOT_MAGIC2,
		syscall.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(p)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
