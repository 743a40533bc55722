package setup_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fyr/firmware/setup"
	"fyr/server"
	"fyr/server/accounts"
	"fyr/server/config"
	"fyr/storage"
)

// fakeAdmins is an account store in memory.
type fakeAdmins struct {
	mu      sync.Mutex
	created []string
	err     error
}

func (f *fakeAdmins) HasAdmin(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.created) > 0, nil
}

func (f *fakeAdmins) CreateAdmin(_ context.Context, serverName, name, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.created = append(f.created, name+"@"+serverName+":"+password)
	return nil
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type page struct {
	t       *testing.T
	s       *setup.Setup
	admins  *fakeAdmins
	clock   *fakeClock
	results []setup.Result
}

func newPage(t *testing.T) *page {
	t.Helper()
	dir := t.TempDir()
	p := &page{t: t, admins: &fakeAdmins{}, clock: &fakeClock{t: time.Unix(1e9, 0)}}
	p.s = &setup.Setup{ClaimCode: "ABCD-EFGH", ConfigPath: filepath.Join(dir, "fyr.yaml"), DataDir: dir,
		Admins: p.admins, Now: p.clock.Now, Done: func(r setup.Result) { p.results = append(p.results, r) }}
	return p
}

// post submits the form from addr and returns the status and the page.
func (p *page) post(addr string, fields map[string]string) (int, string) {
	p.t.Helper()
	v := url.Values{}
	for k, val := range fields {
		v.Set(k, val)
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = addr + ":40000"
	w := httptest.NewRecorder()
	p.s.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func (p *page) get(path string) (int, string, http.Header) {
	r := httptest.NewRequest("GET", path, nil)
	w := httptest.NewRecorder()
	p.s.ServeHTTP(w, r)
	return w.Code, w.Body.String(), w.Header()
}

func good() map[string]string {
	return map[string]string{"claim_code": "abcd efgh", "server_name": "box.example.org", "admin": "root",
		"password": "correct horse battery", "password_confirm": "correct horse battery", "tls_mode": setup.TLSSelfSigned}
}

func with(f map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i]] = kv[i+1]
	}
	return f
}

func TestSetupPage(t *testing.T) {
	p := newPage(t)
	status, body, h := p.get("/")
	if status != 200 || !strings.Contains(body, `name="claim_code"`) || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET / = %d with CSP %q:\n%s", status, h.Get("Content-Security-Policy"), body)
	}
	if status, _, _ := p.get("/other"); status != 404 {
		t.Errorf("GET /other = %d, want 404", status)
	}

	cases := []struct {
		name   string
		form   map[string]string
		status int
		says   string
	}{
		{"wrong claim code", with(good(), "claim_code", "ABCD-EFGX"), 403, "not the code"},
		{"no claim code", with(good(), "claim_code", ""), 403, "not the code"},
		{"short password", with(good(), "password", "short", "password_confirm", "short"), 400, "at least 10"},
		{"passwords differ", with(good(), "password_confirm", "correct horse battery!"), 400, "differ"},
		{"no server name", with(good(), "server_name", ""), 400, "Give the server a name"},
		{"bad server name", with(good(), "server_name", "not a name!"), 400, "not a Matrix server name"},
		{"no admin", with(good(), "admin", " "), 400, "Give the admin account a name"},
		{"unknown TLS mode", with(good(), "tls_mode", "carrier-pigeon"), 400, "Choose how"},
		{"custom TLS without files", with(good(), "tls_mode", setup.TLSCustom, "tls_cert", "/nonexistent.pem", "tls_key", "/nonexistent.key"), 400, "do not load"},
	}
	for i, c := range cases {
		// Each from its own address, so the limit on wrong codes stays out of the way.
		status, body := p.post("10.0.0."+string(rune('1'+i)), c.form)
		if status != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s: POST = %d, want %d saying %q:\n%s", c.name, status, c.status, c.says, body)
		}
		if strings.Contains(body, "correct horse") {
			t.Errorf("%s: the page echoes the password", c.name)
		}
	}
	if _, err := os.Stat(p.s.ConfigPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused form wrote the configuration: %v", err)
	}
	if len(p.admins.created) != 0 || len(p.results) != 0 {
		t.Fatalf("a refused form created %v, reported %v", p.admins.created, p.results)
	}

	p.admins.err = &setup.FieldError{Field: "admin", Msg: "That account exists already"}
	if status, body := p.post("10.0.1.1", good()); status != 400 || !strings.Contains(body, "exists already") {
		t.Errorf("POST with a taken name = %d:\n%s", status, body)
	}
	p.admins.err = nil

	status, body = p.post("10.0.1.1", good())
	if status != 200 || !strings.Contains(body, "Done.") || !strings.Contains(body, "accept it once") {
		t.Fatalf("POST good form = %d:\n%s", status, body)
	}
	if got := strings.Join(p.admins.created, ","); got != "root@box.example.org:correct horse battery" {
		t.Errorf("created %q", got)
	}
	if len(p.results) != 1 || p.results[0] != (setup.Result{ServerName: "box.example.org", Admin: "root", TLSMode: setup.TLSSelfSigned}) {
		t.Errorf("Done got %+v", p.results)
	}
	cfg, _, err := config.Load([]string{"--config", p.s.ConfigPath}, nil)
	if err != nil {
		t.Fatalf("the written configuration does not load: %v", err)
	}
	if cfg.ServerName != "box.example.org" || cfg.Client.TLSCert != filepath.Join(p.s.DataDir, server.FedCertFile) ||
		cfg.Client.TLSKey != filepath.Join(p.s.DataDir, server.FedKeyFile) {
		t.Errorf("configuration: server_name %q, tls %q %q; want the federation certificate fyr serve makes",
			cfg.ServerName, cfg.Client.TLSCert, cfg.Client.TLSKey)
	}
	// Now an admin exists: the page is gone.
	if status, _, _ := p.get("/"); status != 404 {
		t.Errorf("GET / after setup = %d, want 404", status)
	}
	if status, _ := p.post("10.0.1.1", good()); status != 404 {
		t.Errorf("POST after setup = %d, want 404", status)
	}
}

func TestSetupPlainHTTPClearsTLS(t *testing.T) {
	p := newPage(t)
	os.WriteFile(p.s.ConfigPath, []byte("client:\n  tls_cert: /x.crt\n  tls_key: /x.key\n"), 0o600)
	if status, body := p.post("10.0.0.1", with(good(), "tls_mode", setup.TLSOff)); status != 200 {
		t.Fatalf("POST = %d:\n%s", status, body)
	}
	cfg, _, err := config.Load([]string{"--config", p.s.ConfigPath}, nil)
	if err != nil || cfg.Client.TLSCert != "" || cfg.Client.TLSKey != "" {
		t.Errorf("after choosing plain HTTP: %+v, %v", cfg.Client, err)
	}
}

func TestSetupLimitsWrongCodes(t *testing.T) {
	p := newPage(t)
	wrong := with(good(), "claim_code", "ZZZZ-ZZZZ")
	for i := range 5 {
		if status, _ := p.post("10.0.0.1", wrong); status != 403 {
			t.Fatalf("wrong code %d = %d, want 403", i+1, status)
		}
	}
	// Even the right code waits now.
	if status, body := p.post("10.0.0.1", good()); status != 429 || !strings.Contains(body, "Too many") {
		t.Fatalf("sixth try = %d, want 429:\n%s", status, body)
	}
	// Another address is not held up by this one.
	if status, _ := p.post("10.0.0.2", wrong); status != 403 {
		t.Errorf("another address = %d, want 403", status)
	}
	p.clock.Advance(10 * time.Minute)
	if status, _ := p.post("10.0.0.1", wrong); status != 403 {
		t.Errorf("after the window = %d, want 403 again", status)
	}

	// Many addresses together share one budget.
	q := newPage(t)
	for i := range 30 {
		q.post("10.1."+string(rune('0'+i/10))+"."+string(rune('0'+i%10)), wrong)
	}
	if status, _ := q.post("10.2.0.1", good()); status != 429 {
		t.Errorf("a fresh address after 30 wrong codes from many = %d, want 429", status)
	}
}

func TestClaimCode(t *testing.T) {
	seen := map[string]bool{}
	re := regexp.MustCompile(`^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$`)
	for range 100 {
		c := setup.NewClaimCode()
		if !re.MatchString(c) {
			t.Fatalf("NewClaimCode() = %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 99 {
		t.Errorf("100 claim codes hold only %d distinct ones", len(seen))
	}
	if b := setup.Banner("ABCD-EFGH", "http://fyr.local/"); !strings.Contains(b, "ABCD-EFGH") || !strings.Contains(b, "http://fyr.local/") {
		t.Errorf("Banner = %q", b)
	}
}

func TestServeReturnsWhenDone(t *testing.T) {
	p := newPage(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type out struct {
		r   setup.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := p.s.Serve(context.Background(), ln)
		done <- out{r, err}
	}()
	v := url.Values{}
	for k, val := range good() {
		v.Set(k, val)
	}
	resp, err := http.PostForm("http://"+ln.Addr().String()+"/", v)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Done.") {
		t.Fatalf("POST = %d:\n%s", resp.StatusCode, body)
	}
	select {
	case o := <-done:
		if o.err != nil || o.r.ServerName != "box.example.org" {
			t.Errorf("Serve = %+v, %v", o.r, o.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after setup")
	}

	ctx, cancel := context.WithCancel(context.Background())
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	cancel()
	if _, err := newPage(t).s.Serve(ctx, ln2); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve after cancel = %v, want context.Canceled", err)
	}
}

func TestDBAdmins(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	a := setup.DBAdmins{Path: path}
	if has, err := a.HasAdmin(ctx); has || err != nil {
		t.Fatalf("HasAdmin on no database = %v, %v", has, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("HasAdmin created the database")
	}
	var fe *setup.FieldError
	if err := a.CreateAdmin(ctx, "box.example.org", "bad name!", "correct horse battery"); !errors.As(err, &fe) || fe.Field != "admin" {
		t.Errorf("CreateAdmin(bad name) = %v, want a FieldError on admin", err)
	}
	if err := a.CreateAdmin(ctx, "box.example.org", "Root", "correct horse battery"); err != nil {
		t.Fatalf("CreateAdmin: %v", err)
	}
	if has, err := a.HasAdmin(ctx); !has || err != nil {
		t.Errorf("HasAdmin after CreateAdmin = %v, %v", has, err)
	}
	if err := a.CreateAdmin(ctx, "other.example.org", "root2", "correct horse battery"); !errors.As(err, &fe) || fe.Field != "server_name" {
		t.Errorf("CreateAdmin on another server name = %v, want a FieldError on server_name", err)
	}
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.User(ctx, "root")
	if err != nil || !u.Admin {
		t.Fatalf("root = %+v, %v; want an admin", u, err)
	}
	if ok, _ := accounts.VerifyPassword(u.PasswordHash, "correct horse battery"); !ok {
		t.Error("the admin's password does not verify")
	}
}
