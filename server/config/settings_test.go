package config_test

import (
	"reflect"
	"strings"
	"testing"

	"fyr/server/config"
)

func TestSettingsTable(t *testing.T) {
	settings := config.Settings()
	if got, want := len(settings), leafFields(reflect.TypeFor[config.Config]()); got != want {
		t.Errorf("Settings() has %d entries, want one per field: %d", got, want)
	}
	keys, flags := map[string]bool{}, map[string]bool{"config": true}
	for _, s := range settings {
		if keys[s.Key] || flags[s.Flag] {
			t.Errorf("%s: key or flag --%s used twice", s.Key, s.Flag)
		}
		keys[s.Key], flags[s.Flag] = true, true
		if got, want := s.Env, "FYR_"+strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")); got != want {
			t.Errorf("%s: Env = %s, want %s", s.Key, got, want)
		}
		if s.Help == "" {
			t.Errorf("%s: no help", s.Key)
		}
	}

	tests := []struct {
		key, flag, def string
		reload, secret bool
	}{
		{"server_name", "server-name", config.DefaultServerName, false, false},
		{"client.addr", "client-addr", config.DefaultClientAddr, false, false},
		{"log.level", "log-level", config.DefaultLogLevel, true, false},
		{"client.max_body_bytes", "max-body-bytes", "1048576", true, false},
		{"rate_limits.login_per_second", "rate-login-per-second", "0.2", true, false},
		{"registration.open", "open-registration", "false", true, false},
		{"registration.shared_secret", "registration-shared-secret", "", true, true},
		{"database.path", "database", "", false, false},
	}
	for _, tt := range tests {
		s := setting(t, tt.key)
		if s.Flag != tt.flag || s.Default != tt.def || s.Reload != tt.reload || s.Secret != tt.secret {
			t.Errorf("setting %s = flag %s, default %q, reload %v, secret %v; want %s, %q, %v, %v",
				tt.key, s.Flag, s.Default, s.Reload, s.Secret, tt.flag, tt.def, tt.reload, tt.secret)
		}
	}

	settings[0].Key = "changed"
	if got := config.Settings()[0].Key; got == "changed" {
		t.Errorf("Settings() returned the shared table: a change by the caller persisted")
	}
}

// leafFields counts the non-section fields of a struct type, recursively.
func leafFields(t reflect.Type) int {
	n := 0
	for i := range t.NumField() {
		if f := t.Field(i); f.Type.Kind() == reflect.Struct && f.Tag.Get("flag") == "" {
			n += leafFields(f.Type)
		} else {
			n++
		}
	}
	return n
}
