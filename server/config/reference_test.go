package config_test

import (
	"strings"
	"testing"

	"fyr/server/config"
)

func TestReference(t *testing.T) {
	ref := config.Reference()
	lines := strings.Split(strings.TrimSuffix(ref, "\n"), "\n")
	settings := config.Settings()
	if got, want := len(lines), len(settings)+2; got != want {
		t.Fatalf("Reference() has %d lines, want %d (header, rule, one per setting)", got, want)
	}
	if got, want := lines[0], "| YAML key | flag | environment | default | reload | meaning |"; got != want {
		t.Errorf("Reference() header = %q, want %q", got, want)
	}
	for i, s := range settings {
		row := lines[i+2]
		cells := strings.Split(strings.Trim(row, "|"), " | ")
		if len(cells) != 6 {
			t.Errorf("row %q has %d cells, want 6", row, len(cells))
			continue
		}
		want := []string{"`" + s.Key + "`", "`--" + s.Flag + "`", "`" + s.Env + "`"}
		for j, w := range want {
			if got := strings.TrimSpace(cells[j]); got != w {
				t.Errorf("row for %s: cell %d = %q, want %q", s.Key, j, got, w)
			}
		}
		if s.Secret && strings.TrimSpace(cells[3]) != "" {
			t.Errorf("row for secret %s shows default %q, want it empty", s.Key, cells[3])
		}
		if got, want := strings.TrimSpace(cells[4]) == "yes", s.Reload; got != want {
			t.Errorf("row for %s: reload cell %q, want reload %v", s.Key, cells[4], want)
		}
	}
}
