package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"fyr/server/config"
)

// loadFile loads the configuration from a file holding content, with no environment or flags.
func loadFile(t *testing.T, content string) (*config.Config, string, error) {
	t.Helper()
	path := writeFile(t, t.TempDir(), "fyr.yaml", content)
	c, _, err := config.Load([]string{"--config", path}, nil)
	return c, path, err
}

func TestWriteDefaultLoadsAsDefault(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fyr.yaml")
	if err := config.WriteDefault(path); err != nil {
		t.Fatalf("WriteDefault: %v", err)
	}
	c, got, err := config.Load([]string{"--data-dir", dir}, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got != path {
		t.Errorf("Load read %q, want %q", got, path)
	}
	if want := defaultIn(dir); !reflect.DeepEqual(c, want) {
		t.Errorf("Load = %+v, want %+v", c, want)
	}
}

func TestWriteDefaultListsEverySetting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fyr.yaml")
	if err := config.WriteDefault(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{"defaults < this file < FYR_", "< command-line flags", "(restart)", "SIGHUP"} {
		if !strings.Contains(text, want) {
			t.Errorf("default file lacks %q in its header", want)
		}
	}
	for _, s := range config.Settings() {
		name := s.Key[strings.LastIndex(s.Key, ".")+1:]
		if !strings.Contains(text, "#"+name+": ") || !strings.Contains(text, s.Help) || !strings.Contains(text, "--"+s.Flag+", "+s.Env) {
			t.Errorf("default file lacks %s (line #%s:, its help, --%s, %s)", s.Key, name, s.Flag, s.Env)
		}
		if section, _, nested := strings.Cut(s.Key, "."); nested && !strings.Contains(text, "\n"+section+":\n") {
			t.Errorf("default file lacks the uncommented section line %s:", section)
		}
	}
}

// TestWriteDefaultUncommentAnyLine removes the first '#' of each commented line in turn: every
// result must load, and since each value shown is the default, load as Default.
func TestWriteDefaultUncommentAnyLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fyr.yaml")
	if err := config.WriteDefault(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	settingLines := 0
	for i, line := range lines {
		body := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(body, "#") {
			continue
		}
		if !strings.HasPrefix(body, "##") {
			settingLines++
		}
		edited := append([]string(nil), lines...)
		edited[i] = line[:len(line)-len(body)] + body[1:]
		t.Run(strings.TrimSpace(edited[i]), func(t *testing.T) {
			c, _, err := loadFile(t, strings.Join(edited, "\n"))
			if err != nil {
				t.Fatalf("line %d uncommented: %v", i+1, err)
			}
			if want := config.Default(); !reflect.DeepEqual(c, want) {
				t.Errorf("line %d uncommented: Load = %+v, want %+v", i+1, c, want)
			}
		})
	}
	if got, want := settingLines, len(config.Settings()); got != want {
		t.Errorf("default file has %d commented settings, want %d", got, want)
	}
}

func TestReadFileSections(t *testing.T) {
	tests := []struct {
		name    string
		content string
		check   func(*config.Config) bool
	}{
		{"empty file", "", func(c *config.Config) bool { return reflect.DeepEqual(c, config.Default()) }},
		{"only comments", "# nothing\n", func(c *config.Config) bool { return reflect.DeepEqual(c, config.Default()) }},
		{"section with only comments", "client:\n  # addr: 127.0.0.1:1\nlog:\n  level: debug\n",
			func(c *config.Config) bool { return c.Client == config.Default().Client && c.Log.Level == "debug" }},
		{"section at end of file", "log:\n  level: debug\nclient:\n",
			func(c *config.Config) bool { return c.Client == config.Default().Client && c.Log.Level == "debug" }},
		{"section ~", "client: ~\n", func(c *config.Config) bool { return c.Client == config.Default().Client }},
		{"key with no value keeps default", "client:\n  addr:\n", func(c *config.Config) bool { return c.Client.Addr == config.DefaultClientAddr }},
		{"quoted number as string", "server_name: \"example.org\"\nclient:\n  addr: \"[::1]:0\"\n", func(c *config.Config) bool { return c.Client.Addr == "[::1]:0" }},
		{"anchor and alias", "client:\n  addr: &a 127.0.0.1:9\nfederation:\n  addr: *a\n", func(c *config.Config) bool { return c.Federation.Addr == "127.0.0.1:9" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := loadFile(t, tt.content)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("Load of %q = %+v", tt.content, c)
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // substrings; the file's path is always expected too
		notWant string
	}{
		{"unknown nested key", "log:\n  level: info\nclient:\n  adr: 127.0.0.1:1\n", []string{":4:", "unknown key client.adr", "addr, tls_cert"}, ""},
		{"unknown top-level key", "\nserver_nam: a.test\n", []string{":2:", "unknown key server_nam", "server_name"}, ""},
		{"unknown section", "clients:\n  addr: x\n", []string{":1:", "unknown key clients"}, ""},
		{"duplicate key", "client:\n  addr: 127.0.0.1:1\n  addr: 127.0.0.1:2\n", []string{":3:", "client.addr is set twice", "line 2"}, ""},
		{"int of wrong type", "database:\n  read_conns: many\n", []string{":2:", "database.read_conns", `"many"`, "whole number"}, ""},
		{"float where int wanted", "client:\n  max_body_bytes: 1.5\n", []string{":2:", "client.max_body_bytes", "whole number"}, ""},
		{"bool of wrong type", "registration:\n  open: maybe\n", []string{":2:", "registration.open", "true or false"}, ""},
		{"float NaN", "rate_limits:\n  login_per_second: .nan\n", []string{":2:", "rate_limits.login_per_second", "finite"}, ""},
		{"section as value", "client: 5\n", []string{":1:", "client is a section", "addr"}, ""},
		{"list as value", "client:\n  addr: [a, b]\n", []string{":2:", "client.addr", "single value"}, ""},
		{"secret of wrong type", "registration:\n  shared_secret: {hunter2: x}\n", []string{":2:", "registration.shared_secret"}, "hunter2"},
		{"secret with bad tag", "registration:\n  shared_secret: !!float hunter2\n", []string{":2:", "registration.shared_secret", "(hidden)"}, "hunter2"},
		{"not a mapping", "- a\n- b\n", []string{":1:", "key: value"}, ""},
		{"syntax", "client:\n  addr: [\n", []string{"yaml"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, path, err := loadFile(t, tt.content)
			if err == nil {
				t.Fatalf("Load of %q = %+v, want an error", tt.content, c)
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error %q does not mention %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("Load error %q reveals %q", err, tt.notWant)
			}
		})
	}
}
