package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// envConfig names the YAML file, like --config.
const envConfig = envPrefix + "CONFIG"

// Load builds the configuration from, lowest precedence first: Default, the YAML file, the
// FYR_… variables in environ (os.Environ form; the process environment is never read
// directly) and the flags in args. It returns the validated configuration and the path of
// the YAML file it read.
//
// The file is --config, else $FYR_CONFIG, else fyr.yaml in the data directory, where the data
// directory is taken from --data-dir, $FYR_DATA_DIR or the default before the file is read.
// A missing file is created, with its directory (mode 0700), by WriteDefault.
//
// -h or --help prints the usage to standard error and returns an error wrapping
// flag.ErrHelp. Flag mistakes are printed there too. Arguments left after the flags are an
// error. Every other error is a *ValidationError or names the source (file and line,
// variable, flag) and the setting.
func Load(args, environ []string) (*Config, string, error) {
	flags := newFlagSet()
	if err := flags.set.Parse(args); err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	if rest := flags.set.Args(); len(rest) > 0 {
		return nil, "", fmt.Errorf("config: unexpected arguments %q: settings are flags such as --client-addr=127.0.0.1:8008, see --help", rest)
	}
	env := environMap(environ)

	path := flags.config
	if path == "" {
		path = env[envConfig]
	}
	if path == "" {
		dataDir := DefaultDataDir
		if v, ok := env[envName("data-dir")]; ok {
			dataDir = v
		}
		if v, ok := flags.values["data-dir"]; ok {
			dataDir = v
		}
		path = filepath.Join(dataDir, DefaultConfigFile)
	}
	if err := ensureFile(path); err != nil {
		return nil, path, err
	}

	c := Default()
	if err := readFile(path, c); err != nil {
		return nil, path, err
	}
	if err := applyEnv(c, env); err != nil {
		return nil, path, err
	}
	for _, s := range table() {
		if raw, ok := flags.values[s.Flag]; ok {
			if err := s.set(c, raw); err != nil { // checked by Parse already
				return nil, path, fmt.Errorf("config: --%s: %w", s.Flag, err)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, path, err
	}
	return c, path, nil
}

// DatabasePath is the SQLite file: Database.Path, or fyr.db in the data directory.
func (c *Config) DatabasePath() string {
	if c.Database.Path != "" {
		return c.Database.Path
	}
	return filepath.Join(c.DataDir, DefaultDatabaseFile)
}

// ensureFile creates the commented default file at path unless something is there already.
func ensureFile(path string) error {
	switch _, err := os.Stat(path); {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("config: create the directory for %s: %w", path, err)
	}
	if err := WriteDefault(path); err != nil {
		return err
	}
	slog.Info("config: wrote a commented default file", "path", path)
	return nil
}

// environMap indexes an os.Environ-style list. As with os.Getenv, the first of duplicate
// entries wins.
func environMap(environ []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// applyEnv sets every setting whose FYR_… variable is present, even if empty. A FYR_
// variable that names no setting is logged, as it is most likely a typo.
func applyEnv(c *Config, env map[string]string) error {
	known := map[string]bool{envConfig: true}
	for _, s := range table() {
		known[s.Env] = true
		raw, ok := env[s.Env]
		if !ok {
			continue
		}
		if err := s.set(c, raw); err != nil {
			return fmt.Errorf("config: environment %s=%s (%s): %w", s.Env, s.quote(raw), s.Key, err)
		}
	}
	var unknown []string
	for k := range env {
		if strings.HasPrefix(k, envPrefix) && !known[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		slog.Warn("config: ignoring an environment variable that names no setting; see --help", "name", k)
	}
	return nil
}
