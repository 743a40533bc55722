package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"fyr/server/accounts"
	"fyr/storage"
)

// TestMain lets the test binary act as the fyr command: FYR_TEST_MAIN=1 runs main().
func TestMain(m *testing.M) {
	if os.Getenv("FYR_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func fyrCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FYR_TEST_MAIN=1")
	return cmd
}

func TestUserAdd(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret pass\n"), 0o600)
	out, err := fyrCmd("user", "add", "--data-dir", dir, "--password-file", pwFile, "--admin", "Alice").CombinedOutput()
	if err != nil {
		t.Fatalf("fyr user add: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "created admin @alice:localhost") {
		t.Errorf("output %q", out)
	}
	out, err = fyrCmd("user", "add", "--data-dir", dir, "bob").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "password: ") {
		t.Fatalf("user add with a generated password: %v\n%s", err, out)
	}
	out, err = fyrCmd("user", "add", "--data-dir", dir, "--password-file", pwFile, "alice").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "taken") {
		t.Errorf("adding a taken name: %v\n%s", err, out)
	}

	db, err := storage.Open(context.Background(), filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.User(context.Background(), "alice")
	if err != nil || !u.Admin {
		t.Fatalf("alice = %+v, %v; want an admin", u, err)
	}
	if ok, _ := accounts.VerifyPassword(u.PasswordHash, "s3cret pass"); !ok {
		t.Error("the password from the file (without its newline) does not verify")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nonsense"}, {"user"}, {"user", "add"}, {"serve", "--no-such-flag"}, {"serve", "--client-addr", "nonsense"}} {
		cmd := fyrCmd(args...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err == nil || !asExit(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("fyr %v succeeded; output %s", args, out)
		}
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}

// TestServeReloadAndShutdown runs `fyr serve` as a process: a config file edit and SIGHUP
// reload it, and SIGTERM shuts it down cleanly.
func TestServeReloadAndShutdown(t *testing.T) {
	dir := t.TempDir()
	cmd := fyrCmd("serve", "--data-dir", dir, "--client-addr", "127.0.0.1:0", "--federation-addr", "127.0.0.1:0", "--rate-login-per-second", "0")
	stderr, _ := cmd.StderrPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	waitFor := func(re string) []string {
		t.Helper()
		r := regexp.MustCompile(re)
		deadline := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("fyr exited before logging %q", re)
				}
				if m := r.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-deadline:
				t.Fatalf("no log line matching %q", re)
			}
		}
	}
	base := waitFor(`client_api=(\S+)`)[1]

	// The sign-in banner on stdout carries the one-time admin token; a client registers with it.
	var token string
	sc := bufio.NewScanner(stdout)
	for token == "" && sc.Scan() {
		if m := regexp.MustCompile(`^ {6}([A-Za-z0-9_-]{24})$`).FindStringSubmatch(sc.Text()); m != nil {
			token = m[1]
		}
	}
	go io.Copy(io.Discard, stdout)
	if token == "" {
		t.Fatal("fyr serve printed no admin registration token")
	}
	reg := `{"username":"root","password":"pw","auth":{"type":"m.login.registration_token","token":"` + token + `"}}`
	resp, err := http.Post(base+"/_matrix/client/v3/register", "application/json", strings.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), `"user_id":"@root:localhost"`) {
		t.Fatalf("register with the printed token = %d %s", resp.StatusCode, b)
	}
	resp.Body.Close()
	flows := func() string {
		resp, err := http.Post(base+"/_matrix/client/v3/register", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if f := flows(); strings.Contains(f, "m.login.dummy") {
		t.Fatalf("closed server offers dummy registration: %s", f)
	}

	// Editing the file reloads it (fsnotify).
	cfgFile := filepath.Join(dir, "fyr.yaml")
	orig, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), "registration:\n", "registration:\n    open: true\n", 1)
	if edited == string(orig) {
		t.Fatalf("default file has no registration section:\n%s", orig)
	}
	if err := os.WriteFile(cfgFile, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(`configuration reloaded`)
	if f := flows(); !strings.Contains(f, "m.login.dummy") {
		t.Errorf("after the edit, flows = %s; want m.login.dummy", f)
	}

	// A change that needs a restart is reported, and SIGHUP reloads too.
	os.WriteFile(cfgFile, []byte(edited+"\nserver_name: other.example\n"), 0o600)
	waitFor(`takes effect after a restart.*server_name`)
	os.WriteFile(cfgFile, orig, 0o600)
	waitFor(`configuration reloaded`)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(`reloading configuration.*trigger=SIGHUP`)
	waitFor(`configuration reloaded`)

	cmd.Process.Signal(syscall.SIGTERM)
	waitFor(`shutting down`)
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("fyr serve after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fyr serve did not exit after SIGTERM")
	}
}

// Every name in commands is a command run knows: a PID 1 given one of them serves it
// instead of becoming the box's init.
func TestCommandsAreKnown(t *testing.T) {
	for name := range commands {
		err := run(context.Background(), []string{name, "-h"})
		if err != nil && strings.Contains(err.Error(), "unknown command") {
			t.Errorf("%q is in commands but run does not know it: %v", name, err)
		}
	}
	if err := run(context.Background(), []string{"nonsense"}); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("an unknown command: %v", err)
	}
}
