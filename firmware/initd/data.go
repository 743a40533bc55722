package initd

import (
	"log/slog"
	"os"
	"path/filepath"

	"fyr/firmware/netup"
	"fyr/firmware/ringlog"
	"fyr/firmware/setup"
)

// dataDisk is what the box found on its data disk at boot.
type dataDisk struct {
	// ring is the log ring; nil when it could not be opened.
	ring *ringlog.Log
	// network is the network settings (the zero Config when absent or unreadable).
	network netup.Config
	// powerCut: the last run ended without a clean shutdown.
	powerCut bool
}

// openData readies the data directory dir for the box, the factory reset first: when the
// boot partition (mounted at bootDir; "" if the box has none) holds the reset marker, dir is
// wiped before anything in it is opened or read, so nothing from before the reset survives,
// not even the log or the network settings. Then it opens the log ring, reads the network
// settings and looks for the run marker. Failures are logged, never fatal: the box boots on
// without what failed.
func openData(bootDir, dir string, log *slog.Logger) dataDisk {
	if bootDir != "" {
		if _, err := setup.FactoryReset(bootDir, dir, log); err != nil {
			log.Error("factory reset failed; booting with the data as it is", "err", err)
		}
	}
	var d dataDisk
	if ring, err := ringlog.Open(filepath.Join(dir, logName), 0); err != nil {
		log.Error("no log ring on the data disk; logging to the console only", "err", err)
	} else {
		d.ring = ring
	}
	netCfg, err := netup.LoadConfig(filepath.Join(dir, networkName))
	if err != nil {
		log.Error("network settings ignored; using DHCP with a link-local fallback", "err", err)
		netCfg = netup.Config{}
	}
	d.network = netCfg
	if _, err := os.Stat(filepath.Join(dir, runningName)); err == nil {
		d.powerCut = true
	}
	return d
}
