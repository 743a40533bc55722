package slots

import "syscall"

// mountVFAT mounts the FAT file system on dev at dir.
func mountVFAT(dev, dir string) error {
	return syscall.Mount(dev, dir, "vfat", syscall.MS_NOATIME|syscall.MS_NODEV|syscall.MS_NOEXEC|syscall.MS_NOSUID, "")
}

func unmount(dir string) error { return syscall.Unmount(dir, 0) }
