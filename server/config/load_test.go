package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"fyr/server/config"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// defaultIn is Default with its data directory moved to dir.
func defaultIn(dir string) *config.Config {
	c := config.Default()
	c.DataDir = dir
	return c
}

func TestLoadPrecedence(t *testing.T) {
	kinds := []struct {
		name             string
		section, key     string
		flag, env        string
		file, envV, flgV string
		want             [4]string // default, file, env, flag
		get              func(*config.Config) string
	}{
		{
			name: "string", section: "client", key: "addr", flag: "client-addr", env: "FYR_CLIENT_ADDR",
			file: "127.0.0.1:1001", envV: "127.0.0.1:1002", flgV: "127.0.0.1:1003",
			want: [4]string{config.DefaultClientAddr, "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"},
			get:  func(c *config.Config) string { return c.Client.Addr },
		},
		{
			name: "bool", section: "registration", key: "open", flag: "open-registration", env: "FYR_OPEN_REGISTRATION",
			file: "true", envV: "0", flgV: "true",
			want: [4]string{"false", "true", "false", "true"},
			get:  func(c *config.Config) string { return strconv.FormatBool(c.Register.Open) },
		},
		{
			name: "int", section: "database", key: "read_conns", flag: "database-read-conns", env: "FYR_DATABASE_READ_CONNS",
			file: "8", envV: "16", flgV: "32",
			want: [4]string{"4", "8", "16", "32"},
			get:  func(c *config.Config) string { return strconv.Itoa(c.Database.ReadConns) },
		},
		{
			name: "float", section: "rate_limits", key: "login_per_second", flag: "rate-login-per-second", env: "FYR_RATE_LOGIN_PER_SECOND",
			file: "1.5", envV: "2.5", flgV: "0.75",
			want: [4]string{"0.2", "1.5", "2.5", "0.75"},
			get:  func(c *config.Config) string { return strconv.FormatFloat(c.RateLimits.LoginPerSecond, 'g', -1, 64) },
		},
	}
	const useFile, useEnv, useFlag = 1, 2, 4
	for _, k := range kinds {
		for set := 0; set < 8; set++ {
			var names []string
			content, env := "", []string{"FYR_UNRELATED_TO_FYR=1", "HOME=/nowhere"}
			args := []string{}
			want := k.want[0]
			if set&useFile != 0 {
				names = append(names, "file")
				content = k.section + ":\n  " + k.key + ": " + k.file + "\n"
				want = k.want[1]
			}
			if set&useEnv != 0 {
				names = append(names, "env")
				env = append(env, k.env+"="+k.envV)
				want = k.want[2]
			}
			if set&useFlag != 0 {
				names = append(names, "flag")
				args = append(args, "--"+k.flag+"="+k.flgV)
				want = k.want[3]
			}
			if len(names) == 0 {
				names = []string{"default"}
			}
			t.Run(k.name+"/"+strings.Join(names, "+"), func(t *testing.T) {
				path := writeFile(t, t.TempDir(), "fyr.yaml", content)
				c, _, err := config.Load(append([]string{"--config", path}, args...), env)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got := k.get(c); got != want {
					t.Errorf("%s = %s, want %s", k.key, got, want)
				}
			})
		}
	}
}

func TestLoadBool(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		env  []string
		want bool
	}{
		{"bare flag", "", []string{"--open-registration"}, nil, true},
		{"single dash", "", []string{"-open-registration"}, nil, true},
		{"flag false beats file", "registration:\n  open: true\n", []string{"--open-registration=false"}, nil, false},
		{"env true", "", nil, []string{"FYR_OPEN_REGISTRATION=true"}, true},
		{"env 1", "", nil, []string{"FYR_OPEN_REGISTRATION=1"}, true},
		{"env yes", "", nil, []string{"FYR_OPEN_REGISTRATION=yes"}, true},
		{"env TRUE", "", nil, []string{"FYR_OPEN_REGISTRATION=TRUE"}, true},
		{"env false", "registration:\n  open: true\n", nil, []string{"FYR_OPEN_REGISTRATION=false"}, false},
		{"env 0", "registration:\n  open: true\n", nil, []string{"FYR_OPEN_REGISTRATION=0"}, false},
		{"env no", "registration:\n  open: true\n", nil, []string{"FYR_OPEN_REGISTRATION=no"}, false},
		{"yaml yes", "registration:\n  open: yes\n", nil, nil, true},
		{"first duplicate env wins", "", nil, []string{"FYR_OPEN_REGISTRATION=1", "FYR_OPEN_REGISTRATION=0"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "fyr.yaml", tt.file)
			c, _, err := config.Load(append([]string{"--config", path}, tt.args...), tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := c.Register.Open; got != tt.want {
				t.Errorf("Register.Open = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadChoosesFile(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "server_name: a.test\n")
	b := writeFile(t, dir, "b.yaml", "server_name: b.test\n")
	d1 := writeFile(t, dir, "d1/fyr.yaml", "server_name: d1.test\n")
	d2 := writeFile(t, dir, "d2/fyr.yaml", "server_name: d2.test\n")
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantPath string
		wantName string
	}{
		{"--config", []string{"--config", a}, nil, a, "a.test"},
		{"-config=", []string{"-config=" + a}, nil, a, "a.test"},
		{"FYR_CONFIG", nil, []string{"FYR_CONFIG=" + b}, b, "b.test"},
		{"--config beats FYR_CONFIG", []string{"--config", a}, []string{"FYR_CONFIG=" + b}, a, "a.test"},
		{"FYR_CONFIG beats data dir", []string{"--data-dir", filepath.Dir(d1)}, []string{"FYR_CONFIG=" + b}, b, "b.test"},
		{"--data-dir", []string{"--data-dir", filepath.Dir(d1)}, nil, d1, "d1.test"},
		{"FYR_DATA_DIR", nil, []string{"FYR_DATA_DIR=" + filepath.Dir(d2)}, d2, "d2.test"},
		{"--data-dir beats FYR_DATA_DIR", []string{"--data-dir", filepath.Dir(d1)}, []string{"FYR_DATA_DIR=" + filepath.Dir(d2)}, d1, "d1.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, path, err := config.Load(tt.args, tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got, want := path, tt.wantPath; got != want {
				t.Errorf("path = %q, want %q", got, want)
			}
			if got, want := c.ServerName, tt.wantName; got != want {
				t.Errorf("ServerName = %q, want %q", got, want)
			}
		})
	}
}

func TestLoadFirstStartWritesFile(t *testing.T) {
	tests := []struct {
		name string
		args func(dir string) []string
		env  func(dir string) []string
		path func(dir string) string
	}{
		{
			name: "data dir",
			args: func(dir string) []string { return []string{"--data-dir", filepath.Join(dir, "new", "data")} },
			env:  func(string) []string { return nil },
			path: func(dir string) string { return filepath.Join(dir, "new", "data", config.DefaultConfigFile) },
		},
		{
			name: "FYR_CONFIG",
			args: func(dir string) []string { return []string{"--data-dir", dir} },
			env: func(dir string) []string {
				return []string{"FYR_CONFIG=" + filepath.Join(dir, "etc", "fyr", "my.yaml")}
			},
			path: func(dir string) string { return filepath.Join(dir, "etc", "fyr", "my.yaml") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args, env, wantPath := tt.args(dir), tt.env(dir), tt.path(dir)
			for i := range 2 { // the first start writes the file, the second reads it
				c, path, err := config.Load(args, env)
				if err != nil {
					t.Fatalf("Load #%d: %v", i+1, err)
				}
				if path != wantPath {
					t.Fatalf("Load #%d path = %q, want %q", i+1, path, wantPath)
				}
				if want := defaultIn(c.DataDir); !reflect.DeepEqual(c, want) {
					t.Errorf("Load #%d = %+v, want %+v", i+1, c, want)
				}
			}
			st, err := os.Stat(wantPath)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
				t.Errorf("file mode = %v, want %v", got, want)
			}
			st, err = os.Stat(filepath.Dir(wantPath))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := st.Mode().Perm(), os.FileMode(0o700); got != want {
				t.Errorf("directory mode = %v, want %v", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantIs  error
		wantKey string   // of a *ValidationError
		want    []string // substrings of the message
	}{
		{name: "-h", args: []string{"-h"}, wantIs: flag.ErrHelp},
		{name: "--help", args: []string{"--help"}, wantIs: flag.ErrHelp},
		{name: "positional", args: []string{"--log-level", "debug", "serve", "now"}, want: []string{`"serve" "now"`}},
		{name: "unknown flag", args: []string{"--client-adr=x"}, want: []string{"client-adr"}},
		{name: "flag of wrong type", args: []string{"--max-body-bytes=lots"}, want: []string{"max-body-bytes", "whole number"}},
		{name: "float flag NaN", args: []string{"--rate-login-per-second=NaN"}, want: []string{"rate-login-per-second"}},
		{name: "env of wrong type", env: []string{"FYR_DATABASE_READ_CONNS=many"}, want: []string{"FYR_DATABASE_READ_CONNS", `"many"`, "database.read_conns", "whole number"}},
		{name: "env bool", env: []string{"FYR_OPEN_REGISTRATION=maybe"}, want: []string{"FYR_OPEN_REGISTRATION", "registration.open", "true or false"}},
		{name: "invalid flag value", args: []string{"--client-addr=foo"}, wantKey: "client.addr"},
		{name: "invalid env value", env: []string{"FYR_LOG_LEVEL=loud"}, wantKey: "log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "fyr.yaml", "")
			c, _, err := config.Load(append([]string{"--config", path}, tt.args...), tt.env)
			if err == nil {
				t.Fatalf("Load(%q, %q) = %+v, want an error", tt.args, tt.env, c)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Load error %v, want one wrapping %v", err, tt.wantIs)
			}
			if tt.wantKey != "" {
				var ve *config.ValidationError
				if !errors.As(err, &ve) || ve.Key != tt.wantKey {
					t.Errorf("Load error %v, want a *ValidationError for %s", err, tt.wantKey)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDatabasePath(t *testing.T) {
	tests := []struct {
		dataDir, path, want string
	}{
		{"/var/lib/fyr", "", filepath.Join("/var/lib/fyr", config.DefaultDatabaseFile)},
		{"/var/lib/fyr", "/srv/fyr.sqlite", "/srv/fyr.sqlite"},
	}
	for _, tt := range tests {
		c := config.Default()
		c.DataDir, c.Database.Path = tt.dataDir, tt.path
		if got := c.DatabasePath(); got != tt.want {
			t.Errorf("DatabasePath() with data_dir %q, path %q = %q, want %q", tt.dataDir, tt.path, got, tt.want)
		}
	}
}
