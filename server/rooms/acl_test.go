package rooms

import "testing"

func TestServerACL(t *testing.T) {
	acl := parseACL([]byte(`{"allow":["*"],"deny":["evil.example","*.bad.example"],"allow_ip_literals":false}`))
	for server, want := range map[string]bool{
		"good.example":      true,
		"GOOD.example:8448": true,
		"evil.example":      false,
		"evil.example:443":  false,
		"x.bad.example":     false,
		"1.2.3.4":           false,
		"[::1]:8448":        false,
	} {
		if got := acl.allows(server); got != want {
			t.Errorf("allows(%q) = %v, want %v", server, got, want)
		}
	}
	if !(serverACL{}).allows("anything") {
		t.Error("a room without an ACL refuses a server")
	}
	if parseACL([]byte(`{}`)).allows("x.example") {
		t.Error("an ACL without allow lets a server in")
	}
	if !parseACL([]byte(`{"allow":["a?c.example"]}`)).allows("abc.example") {
		t.Error("? does not match one character")
	}
}
