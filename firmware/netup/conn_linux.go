package netup

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// udpConn is a DHCP socket: UDP port 68 bound to one interface, allowed to broadcast. The
// kernel sends from 0.0.0.0 while the interface has no address, and the client sets the
// broadcast flag so that answers come back to 255.255.255.255.
type udpConn struct{ pc net.PacketConn }

// ListenDHCP opens the DHCP client socket on ifname.
func ListenDHCP(ifname string) (Conn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		return nil, err
	}
	return &udpConn{pc}, nil
}

func (c *udpConn) Send(b []byte, to netip.Addr) error {
	_, err := c.pc.WriteTo(b, net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, 67)))
	return err
}

func (c *udpConn) Receive(ctx context.Context) ([]byte, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Time{}
	}
	c.pc.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 1500)
	n, _, err := c.pc.ReadFrom(buf)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return buf[:n], nil
}

func (c *udpConn) Close() error { return c.pc.Close() }
