package configfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyr/firmware/configfile"
	"fyr/server/config"
)

// isSubsequence reports whether every line of before appears in after, in order.
func isSubsequence(before, after string) bool {
	a := strings.Split(after, "\n")
	i := 0
	for _, l := range strings.Split(before, "\n") {
		for i < len(a) && a[i] != l {
			i++
		}
		if i == len(a) {
			return false
		}
		i++
	}
	return true
}

func TestSetOnTheDefaultFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fyr.yaml")
	cfg, err := configfile.Set(path, map[string]any{
		"server_name":       "box.example.org",
		"client.tls_cert":   "/data/federation.crt",
		"client.tls_key":    "/data/federation.key",
		"registration.open": true,
		"presence.enabled":  false,
		"turn.ttl":          "1h",
		"log.level":         "debug",
	})
	if err != nil {
		t.Fatalf("Set: %v", err)
	}
	if cfg.ServerName != "box.example.org" || cfg.Client.TLSCert != "/data/federation.crt" || !cfg.Register.Open ||
		cfg.Presence.Enabled || cfg.TURN.TTL.String() != "1h0m0s" || cfg.Log.Level != "debug" {
		t.Errorf("Set returned %+v", cfg)
	}
	// fyr serve reads the same.
	loaded, _, err := config.Load([]string{"--config", path}, nil)
	if err != nil || loaded.ServerName != "box.example.org" || loaded.Presence.Enabled {
		t.Fatalf("Load after Set = %+v, %v", loaded, err)
	}
	got, _ := os.ReadFile(path)
	// Every line of the commented default file is still there, and each value sits under
	// its commented-out default, at the section's indentation.
	def := filepath.Join(t.TempDir(), "default.yaml")
	config.WriteDefault(def)
	want, _ := os.ReadFile(def)
	if !isSubsequence(string(want), string(got)) {
		t.Errorf("Set lost lines of the default file:\n%s", got)
	}
	for _, pair := range []string{
		"#server_name: localhost  # --server-name, FYR_SERVER_NAME\nserver_name: box.example.org\n",
		"  #tls_cert: \"\"  # --client-tls-cert, FYR_CLIENT_TLS_CERT\n  tls_cert: /data/federation.crt\n",
		"  #enabled: true  # --presence-enabled, FYR_PRESENCE_ENABLED\n  enabled: false\n",
	} {
		if !strings.Contains(string(got), pair) {
			t.Errorf("the file lacks\n%s\nin:\n%s", pair, got)
		}
	}

	// Changing a set value edits its line; nil removes it.
	if _, err := configfile.Set(path, map[string]any{"server_name": "other.example.org", "registration.open": nil}); err != nil {
		t.Fatal(err)
	}
	got2, _ := os.ReadFile(path)
	if strings.Count(string(got2), "\nserver_name:") != 1 || !strings.Contains(string(got2), "\nserver_name: other.example.org\n") {
		t.Errorf("server_name not changed in place:\n%s", got2)
	}
	if strings.Contains(string(got2), "  open: true") {
		t.Error("registration.open: nil left the setting in the file")
	}
}

func TestSetRefusesWhatWouldNotLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fyr.yaml")
	if _, err := configfile.Set(path, map[string]any{"server_name": "box.example.org"}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	var verr *config.ValidationError
	for name, values := range map[string]map[string]any{
		"bad server name":   {"server_name": "not a name!"},
		"half a TLS pair":   {"client.tls_cert": "/data/x.crt"},
		"wrong type":        {"client.max_body_bytes": "lots"},
		"unknown key":       {"client.colour": "blue"},
		"not a single line": {"client.public_url": "https://a\nb"},
	} {
		_, err := configfile.Set(path, values)
		if err == nil {
			t.Errorf("Set(%s) succeeded", name)
			continue
		}
		if name == "bad server name" && !errors.As(err, &verr) {
			t.Errorf("Set(%s) = %v, want a *config.ValidationError", name, err)
		}
		if strings.Contains(err.Error(), ".check") {
			t.Errorf("Set(%s) = %v, which names the temporary file", name, err)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Errorf("Set(%s) changed the file", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestSetOnHandWrittenFiles(t *testing.T) {
	for name, c := range map[string]struct {
		file, want string
	}{
		"empty":            {"", "client:\n  addr: 0.0.0.0:8008\nserver_name: box.example.org\n"},
		"four-space":       {"client:\n    addr: 127.0.0.1:1\n", "client:\n    addr: 0.0.0.0:8008\n    tls_cert: a\n    tls_key: b\nserver_name: box.example.org\n"},
		"trailing comment": {"server_name: old.example.org  # the old name\n", "server_name: box.example.org\nclient:\n  addr: 0.0.0.0:8008\n"},
		"no final newline": {"log:\n  level: warn", "log:\n  level: warn\nclient:\n  addr: 0.0.0.0:8008\nserver_name: box.example.org\n"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fyr.yaml")
			os.WriteFile(path, []byte(c.file), 0o600)
			values := map[string]any{"server_name": "box.example.org", "client.addr": "0.0.0.0:8008"}
			if name == "four-space" {
				values["client.tls_cert"], values["client.tls_key"] = "a", "b"
			}
			if _, err := configfile.Set(path, values); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != c.want {
				t.Errorf("file:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "fyr.yaml")
	os.WriteFile(path, []byte("client: {addr: \"127.0.0.1:1\"}\n"), 0o600)
	if _, err := configfile.Set(path, map[string]any{"client.addr": "0.0.0.0:1"}); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("Set on a flow mapping = %v, want a refusal", err)
	}
}
