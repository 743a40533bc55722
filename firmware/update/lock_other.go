//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package update

// lockDir is a no-op where flock(2) is missing; Manager's mutex still serialises one process.
func lockDir(dir string) (func(), error) { return func() {}, nil }
