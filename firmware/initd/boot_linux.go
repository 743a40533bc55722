package initd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"fyr/firmware/netup"
	"fyr/firmware/ringlog"
	"fyr/firmware/slots"
	"fyr/firmware/supervisor"
	"fyr/firmware/update"
	"fyr/firmware/watchdog"
)

// box is the running PID 1.
type box struct {
	parts
	cfg     Config
	sink    *logSink
	reaper  *reaper
	cmdline map[string]string
	ring    *ringlog.Log
	lan     *lan
	// updater is set once system updates are on (a Fyr boot loader was found); shutdown asks
	// it for the reboot's argument.
	updater atomic.Pointer[update.Manager]
	// bootMounted: the boot partition is mounted on BootDir.
	bootMounted atomic.Bool

	cancel context.CancelFunc
	// stoppedClean is set when the supervisor stopped the homeserver at shutdown.
	stoppedClean atomic.Bool
}

// Main runs the box as PID 1. It never returns: it ends in a reboot or power-off, on
// SIGTERM or SIGINT (ctrl-alt-del) and SIGUSR2 respectively, or by Reboot.
func Main(cfg Config) {
	b := &box{cfg: cfg, sink: &logSink{console: os.Stderr}}
	b.log = slog.New(slog.NewTextHandler(b.sink, nil)).With("src", "init")
	b.reaper = newReaper(b.log)
	b.ctx, b.cancel = context.WithCancel(context.Background())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2)
	// Ctrl-alt-del becomes SIGINT to us instead of an instant reboot.
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)

	go b.protect("reaper", func() { b.reaper.run(context.Background()) })
	// Shutdown waits for the boot too: it may be waiting on the first-boot page.
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.protect("boot", b.boot)
	}()

	for {
		sig := <-stop
		cmd := unix.LINUX_REBOOT_CMD_RESTART
		if sig == syscall.SIGUSR2 {
			cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
		}
		b.protect("shutdown", func() { b.shutdown(sig, cmd) })
	}
}

// Reboot asks PID 1 for a clean reboot: the homeserver is stopped, the data disk unmounted.
// It returns at once; the box reboots moments later.
func Reboot() error { return unix.Kill(1, unix.SIGTERM) }

// boot brings the box up. Only the data disk is essential; every other step that fails is
// logged and skipped, so a board without a boot partition, clock, network or watchdog
// still boots and serves:
//   - mounts /proc, /sys, /dev, /run and /tmp
//   - loads the kernel modules of ModuleList, in order
//   - mounts the data disk (fyr.data= on the kernel command line, else DefaultDataDevice)
//     on DataDir, waiting for it as long as it takes
//   - mounts the boot partition on BootDir (fyr.boot=, else partition 1 of the data disk's
//     disk), and carries out a factory reset if its marker is there, before anything uses
//     the data disk
//   - opens the log ring on the data disk
//   - sets the clock forward to the best time known (saved, RTC, build time) and keeps it
//     (NTP), in the background
//   - brings up loopback and the network (DHCP, static fallback), and announces the box
//     on it as fyr.local (mDNS), in the background
//   - runs the updater's boot step (a trial's database snapshot, or the rollback of a
//     failed one) and reboots at once if it asks to
//   - checks the database if the last run ended in a power cut
//   - while the homeserver has no admin, serves the first-boot setup page and prints its
//     claim code on the console, then reloads the configuration it wrote
//   - arms the hardware watchdog, if the board has one
//   - starts the homeserver under the supervisor; on a system update's trial, keeps the
//     update once the homeserver stays healthy, or gives it up and reboots if it crash-loops
func (b *box) boot() {
	mountKernelFilesystems(b.log)
	reopenConsole(b.sink)
	raw, _ := os.ReadFile("/proc/cmdline")
	b.cmdline = ParseCmdline(string(raw))
	b.log.Info("Fyr is booting", "version", b.cfg.Version, "slot", b.cmdline["fyr.slot"], "uptime", uptime())
	if err := unix.Sethostname([]byte(Hostname)); err != nil {
		b.log.Warn("host name not set", "err", err)
	}
	b.loadModules()
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		mount(b.log, "efivarfs", "/sys/firmware/efi/efivars", "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	dataDev := b.mountData()
	data := openData(b.mountBoot(dataDev), DataDir, b.log)
	if data.ring != nil {
		b.ring = data.ring
		b.sink.setRing(data.ring)
	}
	b.startClock(data.network)

	b.lan = newLAN(Hostname, b.log.With("part", "mdns"))
	network := &netup.Network{Config: data.network, Hostname: Hostname, Log: b.log.With("part", "network"), OnAddr: b.lan.setAddr}
	b.keep("network", network.Run)
	b.keep("mdns", b.lan.run)

	cfg, cfgFile := b.loadConfig()
	rep := b.bootUpdates(cfg)
	if rep != nil && rep.RebootNow {
		b.log.Warn("the updater gave the update on trial up before the homeserver started; rebooting into the old slot")
		b.reboot()
		return
	}
	if data.powerCut {
		b.checkDatabase()
	}
	if cfg != nil {
		if b.firstBoot(cfg, cfgFile) {
			cfg, _ = b.loadConfig() // setup wrote the server name and TLS settings
		}
		if cfg != nil {
			b.lan.setServices(homeserverServices(cfg)...)
		}
	}
	if b.ctx.Err() != nil {
		return // shut down during the first boot
	}

	health := watchdog.HTTPHealth(HealthURL, "https"+strings.TrimPrefix(HealthURL, "http"))
	tr := newTrial(b.updater.Load(), rep, blessAfter(b.cmdline, b.log), health, b.reboot, b.log.With("part", "update"))
	b.keep("trial", tr.run)
	wd := &watchdog.Watchdog{Health: health, Log: b.log.With("part", "watchdog")}
	b.keep("watchdog", wd.Run)

	exe, err := os.Executable()
	if err != nil {
		exe = "/init"
	}
	args := b.serveArgs()
	sup := &supervisor.Supervisor{
		Start: func(out io.Writer) (supervisor.Process, error) {
			return b.reaper.Start(exe, append([]string{"fyr"}, args...), childEnv(), out)
		},
		Output: b.sink,
		Health: health,
		Log:    b.log.With("part", "supervisor"),
		OnHealthy: func(up time.Duration) {
			b.log.Info("homeserver answers", "after_start", up.Round(time.Millisecond), "uptime", uptime())
			tr.healthy(up)
			if b.cfg.OnHealthy != nil {
				b.cfg.OnHealthy(up)
			}
		},
		OnCrashLoop: func(exits int) {
			if b.cfg.OnCrashLoop != nil {
				b.cfg.OnCrashLoop(exits)
			}
			tr.crashLoop(exits)
		},
	}
	if err := os.WriteFile(runningMarker, nil, 0o644); err != nil {
		b.log.Warn("run marker not written; a power cut will not be noticed", "err", err)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.protect("supervisor", func() {
			sup.Run(b.ctx)
			b.stoppedClean.Store(true)
		})
	}()
}

// serveArgs are the homeserver child's arguments.
func (b *box) serveArgs() []string {
	if b.cfg.ServeArgs != nil {
		return b.cfg.ServeArgs
	}
	return DefaultServeArgs
}

// reboot asks for a clean reboot, from any goroutine.
func (b *box) reboot() {
	if err := Reboot(); err != nil {
		b.log.Error("reboot not started", "err", err)
	}
}

func (b *box) loadModules() {
	f, err := os.Open(ModuleList)
	if errors.Is(err, fs.ErrNotExist) {
		b.log.Info("no kernel modules to load", "list", ModuleList)
		return
	}
	if err != nil {
		b.log.Error("kernel modules not loaded", "err", err)
		return
	}
	defer f.Close()
	paths, err := ReadModuleList(f, filepath.Dir(ModuleList))
	if err != nil {
		b.log.Error("kernel modules not loaded", "err", err)
		return
	}
	start := time.Now()
	n, err := LoadModules(paths, finitModule)
	if err != nil {
		b.log.Warn("some kernel modules did not load", "err", err)
	}
	b.log.Info("kernel modules loaded", "loaded", n, "listed", len(paths), "took", time.Since(start).Round(time.Millisecond))
}

func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), "", 0)
}

// mountData mounts the data disk, retrying until it appears and mounts, and returns its
// device.
func (b *box) mountData() string {
	spec := b.cmdline["fyr.data"]
	if spec == "" {
		spec = DefaultDataDevice
	}
	os.MkdirAll(DataDir, 0o755)
	start := time.Now()
	nextLog := 5 * time.Second
	for {
		dev, err := FindDevice(spec, "/sys", "/dev")
		if err == nil {
			err = unix.Mount(dev, DataDir, "ext4", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID, "")
			if err == nil {
				b.log.Info("data disk mounted", "device", dev, "on", DataDir)
				return dev
			}
			err = fmt.Errorf("mount %s: %w", dev, err)
		}
		if waited := time.Since(start); waited >= nextLog {
			b.log.Error("waiting for the data disk; the homeserver cannot start without it", "device", spec, "err", err, "waited", waited.Round(time.Second))
			nextLog = min(2*nextLog, 10*time.Minute)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDatabase runs `fyr check` after a power cut, before the homeserver opens the
// database. A damaged database is reported loudly; the homeserver starts anyway, since a
// box that serves from a damaged database can still be backed up and repaired remotely.
func (b *box) checkDatabase() {
	exe, err := os.Executable()
	if err != nil {
		exe = "/init"
	}
	b.log.Info("the last run ended without a clean shutdown; checking the database")
	start := time.Now()
	p, err := b.reaper.Start(exe, []string{"fyr", "check", "--data-dir", DataDir}, childEnv(), b.sink)
	if err == nil {
		err = p.Wait()
	}
	if err != nil {
		b.log.Error("database integrity_check failed; restore a backup", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return
	}
	b.log.Info("database integrity_check passed", "took", time.Since(start).Round(time.Millisecond))
}

// shutdown stops everything in order and reboots or powers off with cmd.
func (b *box) shutdown(sig os.Signal, cmd int) {
	b.log.Info("shutting down", "signal", sig)
	b.cancel()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(supervisor.DefaultStopTimeout + 5*time.Second):
		b.log.Warn("not everything stopped in time; going on")
	}
	if b.stoppedClean.Load() {
		os.Remove(runningMarker)
	}
	arg := ""
	if cmd == unix.LINUX_REBOOT_CMD_RESTART {
		arg = rebootArg(b.updater.Load(), b.log) // writes to the data disk: before unmounting it
	}
	b.log.Info("stopped; unmounting the data disk")
	b.sink.dropRing()
	if b.ring != nil {
		b.ring.Close()
	}
	unix.Sync()
	if err := unix.Unmount(DataDir, 0); err != nil {
		unix.Mount("", DataDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	if b.bootMounted.Load() {
		if err := unix.Unmount(BootDir, 0); err != nil {
			unix.Mount("", BootDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
	unix.Sync()
	if arg != "" {
		err := slots.Reboot(arg)
		b.log.Error("reboot with the boot loader's argument failed; rebooting without it", "arg", arg, "err", err)
	}
	if err := unix.Reboot(cmd); err != nil {
		b.log.Error("reboot failed", "err", err)
	}
}

// mountKernelFilesystems mounts what the kernel and Go's runtime expect to find.
func mountKernelFilesystems(log *slog.Logger) {
	const common = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	mount(log, "proc", "/proc", "proc", common, "")
	mount(log, "sysfs", "/sys", "sysfs", common, "")
	mount(log, "devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755")
	mount(log, "devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666")
	mount(log, "tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755")
	mount(log, "tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
	os.MkdirAll("/etc", 0o755)
}

func mount(log *slog.Logger, source, target, fstype string, flags uintptr, data string) {
	os.MkdirAll(target, 0o755)
	if err := unix.Mount(source, target, fstype, flags, data); err != nil && err != unix.EBUSY {
		log.Warn("mount failed", "target", target, "type", fstype, "err", err)
	}
}

// reopenConsole gives PID 1 the console as its output if the kernel could not (the
// initramfs lacked /dev/console).
func reopenConsole(sink *logSink) {
	if _, err := unix.FcntlInt(2, unix.F_GETFD, 0); err == nil {
		return
	}
	f, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := 0; fd <= 2; fd++ {
		unix.Dup3(int(f.Fd()), fd, 0)
	}
	sink.mu.Lock()
	sink.console = os.NewFile(2, "/dev/console")
	sink.mu.Unlock()
}

// uptime is the time since the kernel started, from /proc/uptime.
func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	s, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0
	}
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}
