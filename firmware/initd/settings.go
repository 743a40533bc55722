package initd

import (
	"log/slog"
	"os"
	"strings"
	"time"
)

// Kernel command line parameters a box reads, besides fyr.data= (the data disk) and
// fyr.slot= (the slot that booted, which the boot loader's entry names).
const (
	// ParamBoot names the boot partition as fyr.data= names the data disk (/dev/NAME,
	// PARTLABEL=NAME). Without it, the boot partition is partition 1 of the disk that holds
	// the data partition, where every Fyr image puts it (the ESP on UEFI, the autoboot
	// partition on a Raspberry Pi).
	ParamBoot = "fyr.boot"
	// ParamBlessAfter is how long the homeserver of a system update on trial must keep
	// answering its health check before the update is kept, as a Go duration
	// (fyr.bless_after=10m). Without it: DefaultBlessAfter.
	ParamBlessAfter = "fyr.bless_after"
)

// envPrefix marks the homeserver's settings among PID 1's environment variables: the kernel
// hands every KEY=value parameter of its command line that it does not know itself, and that
// has no dot, to PID 1 as an environment variable, so FYR_LOG_LEVEL=debug on the command
// line reaches fyr serve (whose flags still take precedence, see server/config).
const envPrefix = "FYR_"

// blessAfter reads ParamBlessAfter from the kernel command line.
func blessAfter(cmdline map[string]string, log *slog.Logger) time.Duration {
	v, ok := cmdline[ParamBlessAfter]
	if !ok {
		return DefaultBlessAfter
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		log.Warn("ignoring "+ParamBlessAfter+"=: not a duration such as 5m", "value", v, "default", DefaultBlessAfter)
		return DefaultBlessAfter
	}
	return d
}

// childEnv is the homeserver's environment: the box has no shell, so little is needed
// beyond the FYR_ settings PID 1 was given.
func childEnv() []string {
	env := []string{"HOME=" + DataDir, "PATH=/", "TZ=UTC"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}
