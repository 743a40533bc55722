package server

import (
	"slices"
	"testing"
	"time"
)

func TestTypingAnnouncements(t *testing.T) {
	a := typingAnnouncements{}
	k := typingKey{"!r:hs1.test", "@alice:hs1.test"}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		what   string
		typing bool
		at     time.Duration
		want   bool
	}{
		{"a stop nobody heard of", false, 0, false},
		{"a start", true, 0, true},
		{"a renewal soon after", true, typingPingInterval / 2, false},
		{"a renewal a ping interval later", true, typingPingInterval, true},
		{"a stop", false, typingPingInterval + time.Second, true},
		{"a second stop", false, typingPingInterval + 2*time.Second, false},
	}
	for _, s := range steps {
		if got := a.announce(k, s.typing, t0.Add(s.at)); got != s.want {
			t.Errorf("%s: announce(typing=%v) = %v, want %v", s.what, s.typing, got, s.want)
		}
	}
	a.announce(k, true, t0)
	if due := a.due(t0.Add(typingPingInterval - time.Millisecond)); len(due) != 0 {
		t.Errorf("due before the ping interval: %v", due)
	}
	if due := a.due(t0.Add(typingPingInterval)); !slices.Equal(due, []typingKey{k}) {
		t.Errorf("due after the ping interval: %v, want %v", due, k)
	}
}
