package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
)

// A real Dendrite (the last Apache-2.0 release, v0.13.8, built by ../shared/peers/dendrite.sh
// outside the repository) federating with Fyr over TLS on loopback. Both servers have IP-literal
// server names with ports, so neither needs DNS; one test CA signs both federation
// certificates and both trust it: Fyr through federation.ca_file, Dendrite through
// SSL_CERT_FILE, which Go's system roots honour, so its TLS validation stays on.

// dendriteBinEnv names the directory holding the dendrite, generate-config and generate-keys
// binaries. The interop tests are skipped without it.
const dendriteBinEnv = "FYR_DENDRITE_BIN"

// dendriteLogsEnv, if set, names a directory that receives Dendrite's logs when it stops.
const dendriteLogsEnv = "FYR_DENDRITE_LOGS"

// dendrite is one Dendrite process started for a test, stopped when the test ends.
type dendrite struct {
	// Name is the server name, "127.x.y.z:8448", also the HTTPS federation address.
	Name string
	// URL is the plain-HTTP client API base URL.
	URL string
	// Dir holds the config, keys, databases, stdout.log and log/.
	Dir string
	// Startup is how long Dendrite took from exec to answering /versions.
	Startup time.Duration

	bin  string
	args []string
	env  []string
	// cmd is the running process; exited is closed when it has exited.
	cmd    *exec.Cmd
	exited chan struct{}
}

// dendriteBin returns the binary directory, or skips the test.
func dendriteBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(dendriteBinEnv)
	if bin == "" {
		t.Skipf("interop with Dendrite: set %s to the directory of dendrite, generate-config and generate-keys "+
			"(build them with ../shared/peers/dendrite.sh build; they land in /tmp/peers/bin), or run make interop", dendriteBinEnv)
	}
	for _, b := range []string{"dendrite", "generate-config", "generate-keys"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s=%s: %v (build with ../shared/peers/dendrite.sh build)", dendriteBinEnv, bin, err)
		}
	}
	return bin
}

// loopbackHost picks a random address of 127.0.0.0/8 on which every port in ports is free,
// so that servers on it need no ephemeral port that another test might take, and names made
// of it never collide with the other servers of the run.
func loopbackHost(t *testing.T, ports ...int) string {
	t.Helper()
next:
	for range 50 {
		host := fmt.Sprintf("127.%d.%d.%d", 1+mrand.IntN(250), mrand.IntN(256), 1+mrand.IntN(250))
		for _, p := range ports {
			l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
			if err != nil {
				continue next
			}
			l.Close()
		}
		return host
	}
	t.Fatal("no free loopback address")
	return ""
}

// startDendrite configures and starts a Dendrite named host:8448, serving federation over
// HTTPS there with a certificate from the CA, and the client API over plain HTTP on host:8008.
func startDendrite(t *testing.T, bin, host, caCert, caKey string) *dendrite {
	t.Helper()
	d := &dendrite{Name: host + ":8448", URL: "http://" + host + ":8008", Dir: t.TempDir()}
	key := filepath.Join(d.Dir, "matrix_key.pem")
	if out, err := exec.Command(filepath.Join(bin, "generate-keys"), "--private-key", key).CombinedOutput(); err != nil {
		t.Fatalf("dendrite generate-keys: %v: %s", err, out)
	}
	tlsCert, tlsKey := filepath.Join(d.Dir, "federation.crt"), filepath.Join(d.Dir, "federation.key")
	if _, err := transport.EnsureCertificate(tlsCert, tlsKey, d.Name, caCert, caKey); err != nil {
		t.Fatalf("dendrite certificate: %v", err)
	}
	gen, err := exec.Command(filepath.Join(bin, "generate-config"), "-dir", d.Dir, "-server", d.Name).Output()
	if err != nil {
		t.Fatalf("dendrite generate-config: %v", err)
	}
	cfg, err := dendriteConfig(gen, key, filepath.Join(d.Dir, "log"))
	if err != nil {
		t.Fatalf("dendrite config: %v", err)
	}
	cfgPath := filepath.Join(d.Dir, "dendrite.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	d.args = []string{"-config", cfgPath, "-http-bind-address", host + ":8008", "-https-bind-address", d.Name,
		"-tls-cert", tlsCert, "-tls-key", tlsKey, "-really-enable-open-registration"}
	// Dendrite has no CA setting for federation, but Go's system roots are SSL_CERT_FILE and
	// the certificates in SSL_CERT_DIR (here none): the test CA is all it trusts.
	d.env = append(os.Environ(), "SSL_CERT_FILE="+caCert, "SSL_CERT_DIR="+t.TempDir())
	d.bin = filepath.Join(bin, "dendrite")
	t.Cleanup(func() { d.stop(t) })
	d.start(t)
	return d
}

// start runs the configured Dendrite and waits until it answers.
func (d *dendrite) start(t *testing.T) {
	t.Helper()
	out, err := os.OpenFile(filepath.Join(d.Dir, "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(d.bin, d.args...)
	d.cmd.Dir = d.Dir
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.Env = d.env
	d.exited = make(chan struct{})
	begin := time.Now()
	if err := d.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start dendrite: %v", err)
	}
	exited := d.exited
	go func() { d.cmd.Wait(); out.Close(); close(exited) }()
	d.waitReady(t)
	d.Startup = time.Since(begin)
	t.Logf("dendrite %s (pid %d) ready in %v, logs in %s", d.Name, d.cmd.Process.Pid, d.Startup.Round(time.Millisecond), d.Dir)
}

// Restart stops Dendrite and starts it again on the same databases and addresses.
func (d *dendrite) Restart(t *testing.T) {
	t.Helper()
	d.halt(t)
	d.start(t)
}

// dendriteConfig edits the output of generate-config: federation on with TLS validation,
// no notaries (keys are fetched from the servers themselves), open registration without
// rate limits, presence both ways, and logs at info level into the directory logDir.
func dendriteConfig(generated []byte, keyPath, logDir string) ([]byte, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(generated, &cfg); err != nil {
		return nil, err
	}
	set := func(path string, v any) error {
		keys := strings.Split(path, ".")
		m := cfg
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				return fmt.Errorf("generated config has no %s", path)
			}
			m = next
		}
		if _, ok := m[keys[len(keys)-1]]; !ok {
			return fmt.Errorf("generated config has no %s", path)
		}
		m[keys[len(keys)-1]] = v
		return nil
	}
	err := errors.Join(
		set("global.private_key", keyPath),
		set("global.disable_federation", false),
		set("global.trusted_third_party_id_servers", []string{}),
		set("global.presence.enable_inbound", true),
		set("global.presence.enable_outbound", true),
		set("client_api.registration_disabled", false),
		set("client_api.rate_limiting.enabled", false),
		set("federation_api.key_perspectives", []any{}),
		set("federation_api.disable_tls_validation", false),
		set("logging", []any{map[string]any{"type": "file", "level": "info", "params": map[string]any{"path": logDir}}}),
	)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(cfg)
}

// waitReady polls /versions until Dendrite answers, failing if it exits first.
func (d *dendrite) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-d.exited:
			t.Fatalf("dendrite exited during startup: %s", d.logTail(40))
		default:
		}
		resp, err := http.Get(d.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dendrite not answering at %s: %v", d.URL, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// halt sends SIGTERM to the process this test started, then SIGKILL if it lingers, and
// waits for it to exit.
func (d *dendrite) halt(t *testing.T) {
	if d.cmd == nil || d.cmd.Process == nil {
		return // never started
	}
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Logf("dendrite pid %d ignored SIGTERM; killing it", d.cmd.Process.Pid)
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// stop halts Dendrite at the end of the test and reports on its logs.
func (d *dendrite) stop(t *testing.T) {
	d.halt(t)
	if keep := os.Getenv(dendriteLogsEnv); keep != "" {
		d.copyLogs(t, keep)
	}
	if t.Failed() {
		t.Logf("dendrite log tail:\n%s", d.logTail(80))
	} else if w := d.warnings(); w != "" {
		t.Logf("dendrite warnings and errors:\n%s", w)
	}
}

// copyLogs copies Dendrite's log files into dir, which outlives the test's temporary
// directory.
func (d *dendrite) copyLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(d.Dir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(d.Dir, "log", "*.log"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keep dendrite logs: %v", err)
		return
	}
	for _, f := range append(logs, more...) {
		data, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644)
		}
		if err != nil {
			t.Logf("keep dendrite logs: %v", err)
		}
	}
	t.Logf("dendrite logs copied to %s", dir)
}

// rejected returns the lines of Dendrite's log about events it rejected, except in the
// rooms given.
func (d *dendrite) rejected(except ...id.RoomID) []string {
	var out []string
	logs, _ := filepath.Glob(filepath.Join(d.Dir, "log", "*.log"))
	for _, f := range logs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
	line:
		for line := range strings.Lines(string(data)) {
			if !strings.Contains(line, `msg="Stored rejected event"`) && !strings.Contains(line, `msg="Roomserver rejected event"`) {
				continue
			}
			for _, r := range except {
				if r != "" && strings.Contains(line, `room_id="`+string(r)+`"`) {
					continue line
				}
			}
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// warnings returns the lines of Dendrite's log at level warning or above: what it found
// wrong with Fyr shows up there even when the scenario passes.
func (d *dendrite) warnings() string {
	var b strings.Builder
	logs, _ := filepath.Glob(filepath.Join(d.Dir, "log", "*.log"))
	for _, f := range logs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if strings.Contains(line, "level=warning") || strings.Contains(line, "level=error") || strings.Contains(line, "level=fatal") {
				b.WriteString(line)
			}
		}
	}
	return b.String()
}

// logTail returns the last n lines of Dendrite's stdout and log files.
func (d *dendrite) logTail(n int) string {
	var b bytes.Buffer
	logs, _ := filepath.Glob(filepath.Join(d.Dir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(d.Dir, "log", "*.log"))
	logs = append(logs, more...)
	for _, f := range logs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(f), strings.Join(lines, "\n"))
	}
	return b.String()
}

// Register creates a Dendrite account through /register with m.login.dummy and returns a
// client logged in as it.
func (d *dendrite) Register(t *testing.T, localpart, password string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(d.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: localpart, Password: password})
	if err != nil {
		t.Fatalf("dendrite: register %s: %v", localpart, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	return c
}
