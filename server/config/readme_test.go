package config_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"fyr/server/config"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table from the settings")

const readme = "../../README.md"

// TestREADMEHasReference keeps the README's configuration table true: it must contain
// Reference() verbatim. After adding or changing a setting, run
//
//	go test ./server/config -run README -update
func TestREADMEHasReference(t *testing.T) {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text, ref := string(b), config.Reference()
	if *update {
		start := strings.Index(text, "| YAML key |")
		if start < 0 {
			t.Fatal("README.md has no configuration table to replace")
		}
		end := start
		for end < len(text) && text[end] == '|' {
			nl := strings.IndexByte(text[end:], '\n')
			if nl < 0 {
				end = len(text)
				break
			}
			end += nl + 1
		}
		text = text[:start] + ref + text[end:]
		if err := os.WriteFile(readme, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(text, ref) {
		t.Errorf("README.md's configuration table is out of date; run: go test ./server/config -run README -update")
	}
}
