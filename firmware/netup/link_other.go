//go:build !linux

package netup

import (
	"errors"
	"net/netip"
)

var errUnsupported = errors.New("netup: not supported on this system")

type noLink struct{}

// Netlink returns a Link that fails: interfaces are only configured on Linux.
func Netlink() Link { return noLink{} }

func (noLink) Up(string) error                     { return errUnsupported }
func (noLink) AddAddr(string, netip.Prefix) error  { return errUnsupported }
func (noLink) DelAddr(string, netip.Prefix) error  { return errUnsupported }
func (noLink) SetGateway(string, netip.Addr) error { return errUnsupported }
func (noLink) DelGateway(string) error             { return errUnsupported }

// ListenDHCP fails: DHCP is only spoken on Linux.
func ListenDHCP(string) (Conn, error) { return nil, errUnsupported }
