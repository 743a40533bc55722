package netup

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// netlink is Link over rtnetlink (man 7 rtnetlink): the kernel interface that `ip` uses,
// which the image does not have.
type netlink struct{}

// Netlink returns the Link that configures this machine's interfaces.
func Netlink() Link { return netlink{} }

var nlSeq atomic.Uint32

// nlRequest sends one rtnetlink request and waits for its acknowledgement.
func nlRequest(typ, flags uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	seq := nlSeq.Add(1)
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return fmt.Errorf("netlink: bad message length %d", l)
			}
			mtyp := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			if mseq == seq && mtyp == unix.NLMSG_ERROR && l >= unix.SizeofNlMsghdr+4 {
				if errno := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); errno != 0 {
					return syscall.Errno(-errno)
				}
				return nil
			}
			b = b[nlAlign(l):]
		}
	}
}

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// rtattr appends one route attribute.
func rtattr(b []byte, typ uint16, v []byte) []byte {
	l := unix.SizeofRtAttr + len(v)
	var h [unix.SizeofRtAttr]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(l))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(b, h[:]...)
	b = append(b, v...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func ifindex(ifname string) (int, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return 0, err
	}
	return ifc.Index, nil
}

func (netlink) Up(ifname string) error {
	idx, err := ifindex(ifname)
	if err != nil {
		return err
	}
	// struct ifinfomsg: family, pad, type, index, flags, change
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(idx))
	binary.NativeEndian.PutUint32(b[8:], unix.IFF_UP)
	binary.NativeEndian.PutUint32(b[12:], unix.IFF_UP)
	if err := nlRequest(unix.RTM_NEWLINK, 0, b); err != nil {
		return fmt.Errorf("set %s up: %w", ifname, err)
	}
	return nil
}

// addrMsg builds struct ifaddrmsg and its attributes for p on interface idx.
func addrMsg(idx int, p netip.Prefix) []byte {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET
	b[1] = byte(p.Bits())
	b[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(b[4:], uint32(idx))
	ip := p.Addr().As4()
	b = rtattr(b, unix.IFA_LOCAL, ip[:])
	b = rtattr(b, unix.IFA_ADDRESS, ip[:])
	if p.Bits() < 31 {
		bcast := ip
		for i := p.Bits(); i < 32; i++ {
			bcast[i/8] |= 0x80 >> (i % 8)
		}
		b = rtattr(b, unix.IFA_BROADCAST, bcast[:])
	}
	return b
}

func (netlink) AddAddr(ifname string, p netip.Prefix) error {
	idx, err := ifindex(ifname)
	if err != nil {
		return err
	}
	if err := nlRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, addrMsg(idx, p)); err != nil {
		return fmt.Errorf("add %v to %s: %w", p, ifname, err)
	}
	return nil
}

func (netlink) DelAddr(ifname string, p netip.Prefix) error {
	idx, err := ifindex(ifname)
	if err != nil {
		return err
	}
	if err := nlRequest(unix.RTM_DELADDR, 0, addrMsg(idx, p)); err != nil && err != syscall.EADDRNOTAVAIL {
		return fmt.Errorf("remove %v from %s: %w", p, ifname, err)
	}
	return nil
}

// routeMsg builds struct rtmsg for the IPv4 default route through interface idx.
func routeMsg(idx int, gw netip.Addr) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	b[4] = unix.RT_TABLE_MAIN
	b[5] = unix.RTPROT_BOOT
	b[6] = unix.RT_SCOPE_UNIVERSE
	b[7] = unix.RTN_UNICAST
	if gw.IsValid() {
		ip := gw.As4()
		b = rtattr(b, unix.RTA_GATEWAY, ip[:])
	}
	var oif [4]byte
	binary.NativeEndian.PutUint32(oif[:], uint32(idx))
	return rtattr(b, unix.RTA_OIF, oif[:])
}

func (netlink) SetGateway(ifname string, gw netip.Addr) error {
	idx, err := ifindex(ifname)
	if err != nil {
		return err
	}
	if err := nlRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, routeMsg(idx, gw)); err != nil {
		return fmt.Errorf("default route via %v on %s: %w", gw, ifname, err)
	}
	return nil
}

func (netlink) DelGateway(ifname string) error {
	idx, err := ifindex(ifname)
	if err != nil {
		return err
	}
	if err := nlRequest(unix.RTM_DELROUTE, 0, routeMsg(idx, netip.Addr{})); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("remove default route on %s: %w", ifname, err)
	}
	return nil
}
