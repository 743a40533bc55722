package netup

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"gopkg.in/yaml.v3"
)

// The modes of Config.Mode.
const (
	ModeDHCP   = "dhcp"
	ModeStatic = "static"
)

// Config is the box's network settings, from network.yaml on the data disk:
//
//	interface: eth0        # empty: the first Ethernet interface
//	mode: dhcp             # dhcp (default): DHCP, static as fallback; static: never ask
//	static:
//	  address: 192.168.1.50/24
//	  gateway: 192.168.1.1
//	  dns: [192.168.1.1]
//	ntp: [ntp.example.org]  # the clock's NTP servers (firmware/clock); empty: pool.ntp.org
type Config struct {
	// Interface names the interface; empty means the first Ethernet interface.
	Interface string `yaml:"interface"`
	// Mode is ModeDHCP (the default, when empty) or ModeStatic.
	Mode string `yaml:"mode"`
	// Static is the address used when DHCP gets no lease, or always in ModeStatic. Nil: a
	// link-local address (LinkLocal).
	Static *Static `yaml:"static"`
	// NTP are the NTP servers the box's clock asks (firmware/clock), "host" or "host:port".
	// netup does not use them; they are network settings, so they live here. Empty: the
	// caller's default (PID 1 asks pool.ntp.org).
	NTP []string `yaml:"ntp"`
}

// Static is a fixed IPv4 configuration.
type Static struct {
	// Address is the address with its prefix length, e.g. 192.168.1.50/24.
	Address netip.Prefix `yaml:"address"`
	// Gateway is the default route; the zero Addr means none.
	Gateway netip.Addr   `yaml:"gateway"`
	DNS     []netip.Addr `yaml:"dns"`
}

// LoadConfig reads the YAML file at path. A missing file is the zero Config: DHCP with a
// link-local fallback.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("netup: %w", err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("netup: %s: %w", path, err)
	}
	if c.Mode != "" && c.Mode != ModeDHCP && c.Mode != ModeStatic {
		return c, fmt.Errorf("netup: %s: mode %q: want %q or %q", path, c.Mode, ModeDHCP, ModeStatic)
	}
	if c.Mode == ModeStatic && (c.Static == nil || !c.Static.Address.IsValid()) {
		return c, fmt.Errorf("netup: %s: mode static needs static.address, e.g. 192.168.1.50/24", path)
	}
	if s := c.Static; s != nil && s.Address.IsValid() && !s.Address.Addr().Is4() {
		return c, fmt.Errorf("netup: %s: static.address %v: want an IPv4 address", path, s.Address)
	}
	return c, nil
}
