package transport_test

import (
	"reflect"
	"strings"
	"testing"

	"fyr/federation/transport"
)

func TestParseStaticPeers(t *testing.T) {
	tests := []struct {
		in      string
		want    transport.StaticPeers
		wantErr string
	}{
		{"", transport.StaticPeers{}, ""},
		{" , ", transport.StaticPeers{}, ""},
		{"b.test=10.0.0.2:8448", transport.StaticPeers{"b.test": {"10.0.0.2:8448"}}, ""},
		{"b.test=10.0.0.2:8448, c.test:8448 = c.lan:443 ,b.test=[fd00::2]:8448",
			transport.StaticPeers{"b.test": {"10.0.0.2:8448", "[fd00::2]:8448"}, "c.test:8448": {"c.lan:443"}}, ""},
		{"10.0.0.2:8448", nil, "want name=host:port"},
		{"b test=10.0.0.2:8448", nil, "invalid server name"},
		{"b.test=10.0.0.2", nil, "not a host:port"},
		{"b.test=10.0.0.2:0", nil, "not a host:port"},
		{"b.test=:8448", nil, "not a host:port"},
	}
	for _, tt := range tests {
		got, err := transport.ParseStaticPeers(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseStaticPeers(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseStaticPeers(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
