package voip_test

import (
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/voip"
)

// TestPassword checks the TURN REST API password against coturn's documented scheme:
// base64(HMAC-SHA1(secret, username)), here computed independently with openssl:
// printf '1700000000:@alice:localhost' | openssl dgst -sha1 -hmac s3cret -binary | base64
func TestPassword(t *testing.T) {
	got := voip.Password("s3cret", "1700000000:@alice:localhost")
	if want := "II1XEO81eVden3YXxLdIDuhL5W4="; got != want {
		t.Errorf("Password = %q, want %q", got, want)
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in       string
		wantExp  int64
		wantUser id.UserID
		wantErr  error
	}{
		{"1700000000:@alice:localhost", 1700000000, "@alice:localhost", nil},
		{"1700000000:@bob:example.org:8448", 1700000000, "@bob:example.org:8448", nil},
		{"1700000000", 0, "", voip.ErrBadUsername},
		{"soon:@alice:localhost", 0, "", voip.ErrBadUsername},
		{"-5:@alice:localhost", 0, "", voip.ErrBadUsername},
		{"1700000000:alice", 0, "", voip.ErrBadUsername},
		{"", 0, "", voip.ErrBadUsername},
	}
	for _, tt := range tests {
		exp, user, err := voip.ParseUsername(tt.in)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseUsername(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && (exp.Unix() != tt.wantExp || user != tt.wantUser) {
			t.Errorf("ParseUsername(%q) = %d, %s; want %d, %s", tt.in, exp.Unix(), user, tt.wantExp, tt.wantUser)
		}
	}
	if got, want := voip.Username(time.Unix(1700000000, 0), "@alice:localhost"), "1700000000:@alice:localhost"; got != want {
		t.Errorf("Username = %q, want %q", got, want)
	}
}
