package transport

import (
	"net/http"
	"testing"
	"time"
)

func TestWellKnownTTL(t *testing.T) {
	tests := []struct {
		cacheControl, age string
		want              time.Duration
	}{
		{"", "", DefaultWellKnownTTL},
		{"public", "", DefaultWellKnownTTL},
		{"max-age=3600", "", time.Hour},
		{"public, max-age=3600", "600", 50 * time.Minute},
		{`max-age="7200"`, "", 2 * time.Hour},
		{"MAX-AGE=60", "", MinWellKnownTTL},
		{"max-age=999999999", "", MaxWellKnownTTL},
		{"max-age=600", "900", MinWellKnownTTL},
		{"no-store", "", MinWellKnownTTL},
		{"max-age=3600, no-cache", "", MinWellKnownTTL},
		{"max-age=bogus", "", DefaultWellKnownTTL},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.cacheControl != "" {
			h.Set("Cache-Control", tt.cacheControl)
		}
		if tt.age != "" {
			h.Set("Age", tt.age)
		}
		if got := wellKnownTTL(h); got != tt.want {
			t.Errorf("wellKnownTTL(Cache-Control %q, Age %q) = %v, want %v", tt.cacheControl, tt.age, got, tt.want)
		}
	}
}

func TestWellKnownBackoff(t *testing.T) {
	want := []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := wellKnownBackoff(i + 1); got != w {
			t.Errorf("wellKnownBackoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := wellKnownBackoff(1000); got != MaxWellKnownBackoff {
		t.Errorf("wellKnownBackoff(1000) = %v, want %v", got, MaxWellKnownBackoff)
	}
}
