package initd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// admins is an account store in memory.
type admins struct {
	mu     sync.Mutex
	admin  string
	hasErr error
}

func (a *admins) HasAdmin(context.Context) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.admin != "", a.hasErr
}

func (a *admins) CreateAdmin(_ context.Context, serverName, name, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admin = "@" + name + ":" + serverName
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFirstBoot(t *testing.T, a *admins) (*firstBoot, *syncBuffer, *syncBuffer) {
	dir := t.TempDir()
	var console, logs syncBuffer
	return &firstBoot{
		admins:     a,
		configPath: filepath.Join(dir, "fyr.yaml"),
		dataDir:    dir,
		listen:     func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
		console:    &console,
		lan:        newLAN("fyr", discard()),
		log:        slogTo(&logs),
	}, &console, &logs
}

func TestFirstBootServesSetupUntilAnAdminExists(t *testing.T) {
	a := &admins{}
	f, console, logs := newFirstBoot(t, a)
	done := make(chan bool)
	go func() { done <- f.run(context.Background()) }()

	code := regexp.MustCompile(`claim code:\s+(\S+)`)
	page := regexp.MustCompile(`http://fyr\.local:(\d+)/`)
	var m, p []string
	for deadline := time.Now().Add(10 * time.Second); m == nil || p == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no banner on the console:\n%s", console.String())
		}
		time.Sleep(10 * time.Millisecond)
		m, p = code.FindStringSubmatch(console.String()), page.FindStringSubmatch(console.String())
	}
	if strings.Contains(logs.String(), m[1]) {
		t.Error("the claim code reached the log; it belongs on the console only")
	}
	f.lan.setAddr("eth0", netip.MustParsePrefix("192.168.1.23/24"))
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(console.String(), "http://192.168.1.23:"+p[1]+"/"); {
		if time.Now().After(deadline) {
			t.Fatalf("the banner was not shown again with the new address:\n%s", console.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, services, _ := f.lan.current(); len(services) != 1 || services[0].Type != "_http._tcp" {
		t.Errorf("while setup waits, the LAN hears of %+v; want the setup page", services)
	}

	resp, err := http.PostForm("http://127.0.0.1:"+p[1]+"/", url.Values{
		"claim_code": {m[1]}, "server_name": {"chat.example.org"}, "admin": {"boss"},
		"password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}, "tls_mode": {"http"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("submitting the setup page: %s", resp.Status)
	}
	select {
	case ok := <-done:
		if !ok {
			t.Error("setup ran to the end, but run says it did not")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return once an admin existed")
	}
	if a.admin != "@boss:chat.example.org" {
		t.Errorf("admin = %q", a.admin)
	}
	if b, _ := os.ReadFile(f.configPath); !strings.Contains(string(b), "chat.example.org") {
		t.Errorf("fyr.yaml after setup:\n%s", b)
	}
}

func TestFirstBootSkipped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		admins *admins
		listen error
		want   string
	}{
		{"an admin exists", &admins{admin: "@boss:example.org"}, nil, ""},
		{"the database is unreadable", &admins{hasErr: errors.New("database disk image is malformed")}, nil, "skipping the setup page"},
		{"port 80 is taken", &admins{}, errors.New("address already in use"), "registration token"},
	} {
		f, console, logs := newFirstBoot(t, tc.admins)
		listened := false
		f.listen = func() (net.Listener, error) {
			listened = true
			if tc.listen != nil {
				return nil, tc.listen
			}
			return nil, fmt.Errorf("listen called")
		}
		if f.run(context.Background()) {
			t.Errorf("%s: run reports setup done", tc.name)
		}
		if console.String() != "" {
			t.Errorf("%s: the console shows %q", tc.name, console.String())
		}
		if tc.want != "" && !strings.Contains(logs.String(), tc.want) {
			t.Errorf("%s: the log does not say %q:\n%s", tc.name, tc.want, logs.String())
		}
		if tc.name == "an admin exists" && listened {
			t.Errorf("%s: the setup page was opened", tc.name)
		}
	}
}
