// Package initd is what the fyr binary does when the kernel starts it as PID 1 on a Fyr
// box: it mounts the kernel's filesystems, the data disk and the boot partition, loads the
// image's kernel modules, carries out a factory reset, keeps the clock, brings up the
// network and announces the box on it, runs the updater's boot step and the first-boot
// setup page, and runs the homeserver (`fyr serve`, the same binary) as a supervised
// child, with the hardware watchdog fed while the homeserver is healthy and a system
// update on trial blessed or rolled back (see firmware/doc.go for the order).
//
// PID 1 must never exit: the kernel panics if it does. So every step logs its failure and
// the box carries on (a missing watchdog or driver is not fatal), the long-running parts
// are restarted if they panic, and the risky work — the homeserver — runs in a child that
// may crash as often as it likes. PID 1 reaps every process; nothing running in it may use
// os/exec, whose exit statuses the reaper would take.
//
// It is not for a homeserver run under systemd or in a container: there fyr serve runs
// directly and none of this applies.
package initd

import (
	"os"
	"time"
)

// Paths and settings of a box. The data disk holds everything that survives an update.
const (
	// DataDir is where the data disk is mounted.
	DataDir = "/data"
	// DefaultDataDevice finds the data disk when the kernel command line has no fyr.data=.
	DefaultDataDevice = "LABEL=fyr-data"
	// ModuleList names the image's kernel modules in load order.
	ModuleList = "/lib/modules/fyr.modules"
	// LogFile is the log ring (firmware/ringlog): PID 1's messages and the homeserver's output.
	LogFile = DataDir + "/" + logName
	// NetworkFile holds the network settings (firmware/netup.Config).
	NetworkFile = DataDir + "/" + networkName
	// runningMarker exists while the homeserver runs; found at boot, it means the last run
	// did not end in a clean shutdown (a power cut), and the database is checked.
	runningMarker = DataDir + "/" + runningName
	// ClientPort is the client API's port on every interface.
	ClientPort = "8008"
	// HealthURL is the homeserver's health endpoint, which the supervisor and watchdog
	// probe; over https:// too when the operator turns TLS on for the client port.
	HealthURL = "http://127.0.0.1:" + ClientPort + "/health"
	// Hostname is the box's host name until configured otherwise.
	Hostname = "fyr"
)

// Files on the data disk, relative to DataDir.
const (
	logName     = "log/fyr.log"
	networkName = "network.yaml"
	runningName = "log/running"
	// clockName keeps the last known time (firmware/clock).
	clockName = "clock"
	// updateName is the updater's directory (firmware/update).
	updateName = "update"
)

// DefaultServeArgs are the arguments of the homeserver child: the data disk, and the APIs
// on every interface (a box is reached over its LAN). Settings in the data disk's fyr.yaml
// apply too, below these.
var DefaultServeArgs = []string{"serve", "--data-dir", DataDir,
	"--client-addr", "0.0.0.0:" + ClientPort, "--federation-addr", "0.0.0.0:8448"}

// Config is what cmd/fyr hands to PID 1. The zero value boots a box.
type Config struct {
	// Version is logged at boot.
	Version string
	// ServeArgs are the homeserver child's arguments (DefaultServeArgs).
	ServeArgs []string
	// OnHealthy and OnCrashLoop are called besides PID 1's own handling of the supervisor's
	// events (firmware/supervisor), which blesses an update on trial once its homeserver
	// has stayed healthy and rolls back one whose homeserver crash-loops. Nil: nothing more.
	OnHealthy   func(up time.Duration)
	OnCrashLoop func(exits int)
}

// IsPID1 reports whether this process was started by the kernel as init.
func IsPID1() bool { return os.Getpid() == 1 }
