package transport

import (
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT from linux/tcp.h; package syscall lacks the constant
// on some architectures (amd64, arm), but its value is the same on all of them.
const tcpUserTimeout = 0x12

// userTimeoutControl returns a net.Dialer.Control that sets TCP_USER_TIMEOUT: the kernel
// drops a connection whose sent data stays unacknowledged for d, instead of retransmitting
// for about 15 minutes. That is how a silent cut is noticed on an HTTP/1.1 connection, which
// has no pings. Failing to set it is not fatal, only slower to notice.
func userTimeoutControl(d time.Duration) func(network, address string, c syscall.RawConn) error {
	if d <= 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
		})
	}
}
