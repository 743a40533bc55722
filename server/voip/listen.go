package voip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"fyr/server/config"
)

// ListenAddr is where TURN listens for UDP and TCP: turn.addr, else client.addr's IP on the
// default port 3478, or on port 0 (any free port) when client.addr's port is 0, as in tests.
// A host name in client.addr is resolved to its first IPv4 address.
func ListenAddr(cfg *config.Config) (string, error) {
	if cfg.TURN.Addr != "" {
		return cfg.TURN.Addr, nil
	}
	host, port, err := net.SplitHostPort(cfg.Client.Addr)
	if err != nil {
		return "", fmt.Errorf("derive turn.addr from client.addr: %w", err)
	}
	if host != "" && net.ParseIP(host) == nil {
		ua, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", fmt.Errorf("derive turn.addr from client.addr: %w; set turn.addr", err)
		}
		host = ua.IP.String()
	}
	if port != "0" {
		port = strconv.Itoa(config.DefaultTURNPort)
	}
	return net.JoinHostPort(host, port), nil
}

// sockets are the TURN listeners.
type sockets struct {
	udp *net.UDPConn
	tcp net.Listener
	tls net.Listener // nil: no TLS
}

func (s *sockets) close() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.tls != nil {
		s.tls.Close()
	}
}

// Socket buffer sizes, in bytes: the shared listener's and each relay socket's.
const (
	listenBuffer = 4 << 20
	relayBuffer  = 512 << 10
)

// bindTries bounds the attempts to find a port free for both UDP and TCP when addr asks for
// any free port.
const bindTries = 10

// bindUDPTCP opens UDP and TCP on the same port of addr. A port in use is an error that names
// the setting, so the operator knows what to change.
func bindUDPTCP(addr string) (*net.UDPConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	var lastErr error
	for range bindTries {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, settingError("turn.addr", "turn-addr", addr, err)
		}
		udp := pc.(*net.UDPConn)
		// One socket takes every client's datagrams and one goroutine reads it: a deep
		// buffer rides out a GC pause or a busy core instead of dropping media. The kernel
		// caps it at net.core.rmem_max.
		udp.SetReadBuffer(listenBuffer)
		udp.SetWriteBuffer(listenBuffer)
		tcpAddr := addr
		if port == "0" {
			host, _, _ := net.SplitHostPort(addr)
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		}
		ln, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return udp, ln, nil
		}
		udp.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, settingError("turn.addr", "turn-addr", addr, lastErr)
}

// settingError names the setting whose address could not be bound, in all three spellings
// as config.ValidationError does, so the operator finds it wherever it was set.
func settingError(key, flag, addr string, err error) error {
	hint := ""
	if errors.Is(err, syscall.EADDRINUSE) {
		hint = "; another TURN server such as coturn may be running there: stop it, or choose another address"
	}
	env := "FYR_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	return fmt.Errorf("turn listener: %s (--%s, %s) = %q: %w%s", key, flag, env, addr, err, hint)
}

// relayAddrs decides where relay sockets bind and which address clients are told: turn.relay_ip
// if set; else the listen IP if it is a specific IPv4 (or loopback); else an address detected
// from the host's interfaces.
func relayAddrs(cfg *config.Config, listen string) (bind string, relay net.IP, detected bool) {
	host, _, _ := net.SplitHostPort(listen)
	ip, _ := netip.ParseAddr(host)
	ip = ip.Unmap()
	bind = "0.0.0.0"
	switch {
	case ip.IsLoopback():
		bind = "127.0.0.1"
		relay = net.IPv4(127, 0, 0, 1).To4()
	case ip.Is4() && !ip.IsUnspecified():
		bind = ip.String()
		relay = net.IP(ip.AsSlice())
	}
	if cfg.TURN.RelayIP != "" {
		return bind, net.ParseIP(cfg.TURN.RelayIP).To4(), false
	}
	if relay != nil {
		return bind, relay, false
	}
	return bind, detectRelayIP(), true
}

// detectRelayIP picks the host's address for relays: the first public IPv4 address of an
// interface that is up, else the first private one, else loopback.
func detectRelayIP() net.IP {
	var private net.IP
	ifaces, _ := net.Interfaces()
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil || !n.IP.IsGlobalUnicast() {
				continue
			}
			if !n.IP.IsPrivate() {
				return n.IP.To4()
			}
			if private == nil {
				private = n.IP.To4()
			}
		}
	}
	if private != nil {
		return private
	}
	return net.IPv4(127, 0, 0, 1).To4()
}
