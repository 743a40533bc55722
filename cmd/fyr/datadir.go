package main

import (
	"flag"
	"os"

	"fyr/server/config"
)

// dataFlags are the --data-dir and --config flags of the offline subcommands (user,
// keygen): they find the same configuration, and so the same files, as fyr serve.
type dataFlags struct {
	dataDir, config *string
}

func addDataFlags(fs *flag.FlagSet) dataFlags {
	return dataFlags{
		dataDir: fs.String("data-dir", "", "data directory (as for fyr serve)"),
		config:  fs.String("config", "", "configuration file (as for fyr serve)"),
	}
}

// load reads the configuration as fyr serve would, from the file, FYR_ variables and these
// two flags.
func (d dataFlags) load() (*config.Config, error) {
	var args []string
	if *d.dataDir != "" {
		args = append(args, "--data-dir", *d.dataDir)
	}
	if *d.config != "" {
		args = append(args, "--config", *d.config)
	}
	cfg, _, err := config.Load(args, os.Environ())
	return cfg, err
}
