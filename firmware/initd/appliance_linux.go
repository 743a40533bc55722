package initd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"fyr/firmware/clock"
	"fyr/firmware/netup"
	"fyr/firmware/setup"
	"fyr/firmware/slots"
	"fyr/firmware/update"
	"fyr/server/config"
)

// DefaultNTP are the NTP servers of a box whose network.yaml names none.
var DefaultNTP = []string{"pool.ntp.org"}

// mountBoot mounts the boot partition read-write on BootDir and returns BootDir, or "" when
// the box has none (the qemu-arm64 board) or it does not mount.
func (b *box) mountBoot(dataDev string) string {
	var dev string
	var err error
	if spec := b.cmdline[ParamBoot]; spec != "" {
		dev, err = FindDevice(spec, "/sys", "/dev")
	} else {
		dev, err = BootDevice(dataDev, "/sys", "/dev")
	}
	if err != nil {
		b.log.Info("no boot partition: factory reset by marker and system updates are off", "err", err)
		return ""
	}
	os.MkdirAll(BootDir, 0o755)
	if err := unix.Mount(dev, BootDir, "vfat", slots.MountFlags, ""); err != nil {
		b.log.Warn("the boot partition does not mount: factory reset by marker and system updates are off", "device", dev, "err", err)
		return ""
	}
	b.bootMounted.Store(true)
	b.log.Info("boot partition mounted", "device", dev, "on", BootDir)
	return BootDir
}

// startClock sets the clock forward to the best time known, then keeps it in the
// background: saved on the data disk, from the RTC if the board has one, and from NTP.
func (b *box) startClock(network netup.Config) {
	servers := network.NTP
	if len(servers) == 0 {
		servers = DefaultNTP
	}
	k := &clock.Keeper{File: filepath.Join(DataDir, clockName), RTC: clock.OpenRTC(""), Servers: servers,
		Floor: buildTime(), Log: b.log.With("part", "clock")}
	if _, _, err := k.Boot(); err != nil {
		b.log.Warn("clock not set at boot", "err", err)
	}
	b.keep("clock", k.Run)
}

// buildTime is the commit time of the binary's source, which the clock is surely past.
func buildTime() time.Time {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.time" {
			t, _ := time.Parse(time.RFC3339, s.Value)
			return t
		}
	}
	return time.Time{}
}

// loadConfig reads the homeserver's configuration as fyr serve will, and the path of its
// file. It returns nil when the configuration does not load: fyr serve will then say why,
// and PID 1 goes on without the steps that need it (the setup page, mDNS services).
func (b *box) loadConfig() (*config.Config, string) {
	args := b.serveArgs()
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	cfg, file, err := config.Load(args, childEnv())
	if err != nil {
		b.log.Error("the homeserver's configuration does not load; no setup page and no mDNS services", "file", file, "err", err)
		return nil, file
	}
	return cfg, file
}

// bootUpdates runs the updater's boot step before anything opens the database: it snapshots
// the database on a trial's first boot, or restores it after a failed trial. It returns nil
// where system updates are off.
func (b *box) bootUpdates(cfg *config.Config) *update.Report {
	if cfg == nil {
		cfg = config.Default()
		cfg.DataDir = DataDir
	}
	m, err := update.Detect("/", filepath.Join(DataDir, updateName), cfg.DatabasePath(), b.log.With("part", "update"))
	if errors.Is(err, slots.ErrNoBootloader) {
		b.log.Info("not started by a Fyr boot loader: system updates are off", "why", err)
		return nil
	}
	if err != nil {
		b.log.Error("system updates are off", "err", err)
		return nil
	}
	b.updater.Store(m)
	rep, err := m.Boot(b.ctx)
	if err != nil {
		b.log.Error("the updater's boot step failed; starting the homeserver anyway", "err", err)
		return nil
	}
	switch {
	case rep.RolledBack != nil:
		b.log.Warn("a system update failed its trial and was rolled back", "version", rep.RolledBack.Version, "slot", rep.Status.Booted)
	case rep.Trial != nil:
		b.log.Info("this boot is a system update's trial", "version", rep.Trial.Version, "slot", rep.Trial.Slot)
	}
	return rep
}

// firstBoot serves the setup page while the homeserver has no admin; it reports whether
// setup ran to the end.
func (b *box) firstBoot(cfg *config.Config, file string) bool {
	f := &firstBoot{
		admins:     setup.DBAdmins{Path: cfg.DatabasePath()},
		configPath: file,
		dataDir:    cfg.DataDir,
		listen:     func() (net.Listener, error) { return net.Listen("tcp", SetupAddr) },
		console:    b.sink.consoleOnly(),
		lan:        b.lan,
		log:        b.log.With("part", "setup"),
	}
	return f.run(b.ctx)
}
