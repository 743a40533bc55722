package slots

import "syscall"

// MountFlags are the flags a FAT boot or slot partition is mounted with. MS_DIRSYNC makes a
// rename reach the disk before it returns: Linux's FAT driver otherwise writes a renamed
// file's new directory entry with no data and fills it in only when the inode is written
// back, seconds later, so a power cut after an atomic write (temporary file, rename) could
// leave an empty autoboot.txt or boot entry.
const MountFlags = syscall.MS_NOATIME | syscall.MS_NODEV | syscall.MS_NOEXEC | syscall.MS_NOSUID | syscall.MS_DIRSYNC

// mountVFAT mounts the FAT file system on dev at dir.
func mountVFAT(dev, dir string) error {
	return syscall.Mount(dev, dir, "vfat", MountFlags, "")
}

func unmount(dir string) error { return syscall.Unmount(dir, 0) }
