package boottest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Board names, as make image takes them.
const (
	boardQEMU = "qemu-arm64"
	boardUEFI = "uefi-arm64"
	boardRPi4 = "rpi4"
)

// Firmware for UEFI boots, from Debian's qemu-efi-aarch64.
const (
	aavmfCode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	aavmfVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// tool is a program a test needs and the Debian package that has it.
type tool struct{ name, pkg string }

var (
	buildTools = []tool{{"make", "make"}, {"curl", "curl"}, {"dpkg-deb", "dpkg"}, {"mke2fs", "e2fsprogs"}}
	diskTools  = []tool{{"genimage", "genimage"}, {"mkdosfs", "dosfstools"}, {"mcopy", "mtools"}}
	qemuTool   = tool{"qemu-system-aarch64", "qemu-system-arm"}
)

// image returns the directory of board's image: FYR_BOOTTEST_IMAGE under make image-test,
// else one built now with make image. It skips the test, saying why, when the tools are
// missing or another board was asked for.
func image(t *testing.T, board string, tools ...tool) string {
	t.Helper()
	if testing.Short() {
		t.Skip("boot tests are slow; skipped in -short mode")
	}
	if b := os.Getenv("FYR_BOOTTEST_BOARD"); b != "" && b != board {
		t.Skipf("make image-test BOARD=%s runs the %s test only", b, b)
	}
	var missing, pkgs []string
	for _, tl := range append(append([]tool{}, buildTools...), tools...) {
		if _, err := exec.LookPath(tl.name); err != nil {
			if _, err := os.Stat(filepath.Join("/usr/sbin", tl.name)); err != nil {
				missing = append(missing, tl.name)
				pkgs = append(pkgs, tl.pkg)
			}
		}
	}
	if len(missing) > 0 {
		t.Skipf("the %s boot test needs %s; install them (Debian: apt-get install %s; .ci/run does)",
			board, strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if dir := os.Getenv("FYR_BOOTTEST_IMAGE"); dir != "" {
		return dir
	}
	dist := t.TempDir()
	start := time.Now()
	cmd := exec.Command("make", "-C", "../..", "image", "BOARD="+board, "DIST="+dist)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image BOARD=%s: %v\n%s", board, err, out)
	}
	t.Logf("built the %s image in %v", board, time.Since(start).Round(time.Second))
	return filepath.Join(dist, "images", board)
}

// sparseCopy copies an image without filling its holes.
func sparseCopy(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v\n%s", src, err, out)
	}
}

// ports are the host's loopback ports forwarded to a VM: the client API (guest port 8008)
// and the first-boot setup page (guest port 80).
type ports struct{ api, setup int }

func freePorts(t *testing.T) ports { return ports{api: freePort(t), setup: freePort(t)} }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// machineArgs are the qemu arguments every board shares: the virt machine under TCG, a
// virtio NIC whose ports 8008 and 80 are forwarded to 127.0.0.1 only, entropy, a watchdog,
// and the serial console on standard output.
func machineArgs(p ports) []string {
	return []string{
		"-M", "virt", "-cpu", "cortex-a57", "-smp", "2", "-m", "1024",
		"-nodefaults", "-display", "none", "-serial", "stdio",
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:8008,hostfwd=tcp:127.0.0.1:%d-:80", p.api, p.setup),
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "virtio-rng-pci", "-device", "i6300esb",
	}
}

// vm is one run of qemu.
type vm struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	ports   ports
	started time.Time
	serial  *serialLog
	exited  chan struct{}
}

func startVM(t *testing.T, name string, p ports, args ...string) *vm {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".serial.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{t: t, name: name, ports: p, serial: &serialLog{file: f}, exited: make(chan struct{})}
	v.cmd = exec.Command("qemu-system-aarch64", args...)
	v.cmd.Stdout, v.cmd.Stderr = v.serial, v.serial
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v.started = time.Now()
	go func() { v.cmd.Wait(); f.Close(); close(v.exited) }()
	t.Cleanup(func() {
		v.kill()
		if t.Failed() {
			t.Logf("%s: serial console (last 6 kB, all of it in %s):\n%s", name, logPath, v.serial.tail(6000))
		}
	})
	return v
}

// kill pulls the plug: SIGKILL, so nothing in the guest or in qemu is flushed.
func (v *vm) kill() {
	select {
	case <-v.exited:
		return
	default:
	}
	v.cmd.Process.Signal(syscall.SIGKILL)
	<-v.exited
}

func (v *vm) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", v.ports.api, path) }

// setup answers the first-boot page as the owner of a new box does: the claim code from the
// console, a server name, the first admin and plain HTTP on the client port. It returns how
// long after qemu started the page took the answers, and the admin's name and password.
func (v *vm) setup(ctx context.Context) (done time.Duration, user, password string) {
	v.t.Helper()
	code := v.waitLog(`enter this claim code:\s+(\S+)`, 5*time.Minute)[1]
	user, password = "admin", "boot-test-password"
	form := url.Values{"claim_code": {code}, "server_name": {"fyr.test"}, "admin": {user},
		"password": {password}, "password_confirm": {password}, "tls_mode": {"http"}}
	page := fmt.Sprintf("http://127.0.0.1:%d/", v.ports.setup)
	for {
		req, _ := http.NewRequestWithContext(ctx, "POST", page, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				v.t.Fatalf("%s: the setup page answered %s:\n%s", v.name, resp.Status, b)
			}
			return time.Since(v.started), user, password
		}
		if ctx.Err() != nil {
			v.t.Fatalf("%s: the setup page did not answer: %v", v.name, err)
		}
		time.Sleep(250 * time.Millisecond) // the banner can come before the listener
	}
}

// waitAnswer waits until GET /_matrix/client/versions answers 200 and returns how long
// after qemu started that was.
func (v *vm) waitAnswer(timeout time.Duration) time.Duration {
	v.t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(v.url("/_matrix/client/versions"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(v.started)
			}
		}
		select {
		case <-v.exited:
			v.t.Fatalf("%s: qemu exited before the homeserver answered", v.name)
		default:
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("%s: /_matrix/client/versions did not answer within %v", v.name, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitLog waits until the serial console shows a match of re and returns its submatches.
func (v *vm) waitLog(re string, timeout time.Duration) []string {
	v.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		if m := rx.FindStringSubmatch(v.serial.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("%s: the console did not show %q within %v", v.name, re, timeout)
		}
		select {
		case <-v.exited:
			if m := rx.FindStringSubmatch(v.serial.String()); m != nil {
				return m
			}
			v.t.Fatalf("%s: qemu exited before the console showed %q", v.name, re)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serialLog keeps the console output in memory and in a file.
type serialLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func (s *serialLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file.Write(p)
	return s.buf.Write(p)
}

func (s *serialLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *serialLog) tail(n int) string {
	str := s.String()
	if len(str) > n {
		str = str[len(str)-n:]
	}
	return str
}

// withTimeout is context.WithTimeout for tests.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
