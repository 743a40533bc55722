package config_test

import (
	"os"
	"strings"
	"testing"

	"fyr/server/config"
)

// TestREADMEHasReference keeps the README's configuration table true: it must contain
// Reference() verbatim. On failure, paste the table printed below into README.md.
func TestREADMEHasReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if ref := config.Reference(); !strings.Contains(string(readme), ref) {
		t.Errorf("README.md's configuration table is out of date; it should contain:\n%s", ref)
	}
}
