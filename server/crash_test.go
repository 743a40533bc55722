package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fyr/server"
	"fyr/server/accounts"
	"fyr/server/config"
	"fyr/storage"
)

// crashChildEnv makes the test binary act as a Fyr server process that the test can SIGKILL.
const crashChildEnv = "FYR_TEST_CRASH_CHILD_DATA_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	if role := os.Getenv(netbedChildEnv); role != "" {
		runNetbedChild(role)
		return
	}
	os.Exit(m.Run())
}

func runCrashChild(dir string) {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Client.Addr = "127.0.0.1:0"
	cfg.Federation.Addr = "127.0.0.1:0"
	cfg.Register.Open = true
	cfg.RateLimits.LoginPerSecond = 0
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(context.Background(), cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	fmt.Println(srv.ClientURL())
	srv.Run(context.Background()) // until killed
}

// TestKillDuringWritesLosesNothingAcknowledged SIGKILLs a server in the middle of a burst of
// registrations and profile updates, then opens its database: it must be intact, and every
// write the server acknowledged with 200 must be there.
func TestKillDuringWritesLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child did not report its address: %v", err)
	}
	base := strings.TrimSpace(line)

	type acked struct {
		token       string
		displayname int // highest display name number acknowledged
	}
	var mu sync.Mutex
	ack := map[string]*acked{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				var reg struct {
					AccessToken string `json:"access_token"`
				}
				if post(client, "POST", base+"/_matrix/client/v3/register", "",
					fmt.Sprintf(`{"username":%q,"password":"pw","auth":{"type":"m.login.dummy"}}`, name), &reg) != nil {
					return // the server is gone
				}
				mu.Lock()
				ack[name] = &acked{token: reg.AccessToken}
				mu.Unlock()
				for n := 1; n <= 5; n++ {
					url := base + "/_matrix/client/v3/profile/@" + name + ":localhost/displayname"
					if post(client, "PUT", url, reg.AccessToken, fmt.Sprintf(`{"displayname":"%d"}`, n), nil) != nil {
						return
					}
					mu.Lock()
					ack[name].displayname = n
					mu.Unlock()
				}
			}
		}()
	}
	// Let the burst run until enough writes are acknowledged, then pull the plug.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(ack)
		mu.Unlock()
		if n >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	close(stop)
	wg.Wait()

	db, err := storage.Open(context.Background(), filepath.Join(dir, config.DefaultDatabaseFile), storage.Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer db.Close()
	if len(ack) == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	for name, a := range ack {
		if _, err := db.User(context.Background(), name); err != nil {
			t.Errorf("acknowledged registration of %s lost: %v", name, err)
			continue
		}
		if _, err := db.TokenOwner(context.Background(), accounts.HashToken(a.token)); err != nil {
			t.Errorf("acknowledged access token of %s lost: %v", name, err)
		}
		p, err := db.Profile(context.Background(), name)
		if err != nil {
			t.Errorf("profile of %s: %v", name, err)
			continue
		}
		got := 0
		if v, ok := p["displayname"]; ok {
			var s string
			json.Unmarshal(v, &s)
			got, _ = strconv.Atoi(s)
		}
		// The stored value is the last acknowledged one, or one the kill interrupted after it.
		if got < a.displayname {
			t.Errorf("%s: display name %d stored, but %d was acknowledged", name, got, a.displayname)
		}
	}
	t.Logf("%d acknowledged registrations survived SIGKILL", len(ack))
}

// post sends a JSON request and decodes a 200 answer into out; any other outcome is an error.
func post(c *http.Client, method, url, token, body string, out any) error {
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
