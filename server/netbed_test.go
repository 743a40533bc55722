package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server"
	"fyr/server/config"
	"fyr/server/servertest"
	"fyr/storage"
)

// Netbed measures federation delivery between two Fyr processes in the network namespaces of
// ../shared/netbed (hs1 sends, hs2 receives) through a silent cut and over delay, loss and a
// rate cap. It needs root and runs only with FYR_NETBED=1 (make netbed).

const (
	netbedChildEnv = "FYR_NETBED_CHILD" // "sender" or "receiver": the test binary is a server
	netbedDirEnv   = "FYR_NETBED_DIR"   // data directory of a child
	netbedCAEnv    = "FYR_NETBED_CA"    // test CA certificate (its key is FYR_NETBED_CA_KEY)
	netbedCAKeyEnv = "FYR_NETBED_CA_KEY"
	netbedSender   = "hs1:8448"
	netbedReceiver = "hs2:8448"
)

func netbedScript() string {
	if s := os.Getenv("FYR_NETBED_SH"); s != "" {
		return s
	}
	return filepath.Join("..", "..", "shared", "netbed", "netbed.sh") // shared/ beside the repository
}

// runNetbedChild runs one side of the bed. The sender reads "send N" lines on stdin and
// enqueues N PDUs {"n":i,"t":unix micros} for the receiver (canonical JSON allows integers up
// to 2^53 only, so not nanoseconds); the receiver prints
// "recv n t_sent t_recv" for every PDU it is handed. Both print "ready" once serving.
func runNetbedChild(role string) {
	// Static peers pin each name to its namespace address: federation refuses private
	// addresses found by resolution, and the bed is a private network.
	name, addr, peers := netbedSender, "10.99.0.1:8448", netbedReceiver+"=10.99.0.2:8448"
	if role == "receiver" {
		name, addr, peers = netbedReceiver, "10.99.0.2:8448", netbedSender+"=10.99.0.1:8448"
	}
	cfg := config.Default()
	cfg.ServerName = name
	cfg.DataDir = os.Getenv(netbedDirEnv)
	cfg.Client.Addr = "127.0.0.1:0"
	cfg.Federation.Addr = addr
	cfg.Federation.TLSCACert = os.Getenv(netbedCAEnv)
	cfg.Federation.TLSCAKey = os.Getenv(netbedCAKeyEnv)
	cfg.Federation.CAFile = os.Getenv(netbedCAEnv)
	cfg.Federation.StaticPeers = peers
	cfg.TURN.Enabled = false
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbed child:", err)
		os.Exit(1)
	}
	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	if role == "receiver" {
		srv.Inbound.PDUs = netbedPrinter{say}
	}
	go func() {
		if err := srv.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "netbed child: run:", err)
		}
		os.Exit(1)
	}()
	say("ready")
	if role == "receiver" {
		select {} // until killed
	}
	next := 0
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != "send" {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		err := srv.DB.Write(ctx, func(tx *storage.Tx) error {
			for range n {
				pdu := fmt.Sprintf(`{"n":%d,"t":%d}`, next, time.Now().UnixMicro())
				if err := tx.EnqueueOutbound(netbedReceiver, storage.OutboundPDU, []byte(pdu), 0, 0); err != nil {
					return err
				}
				next++
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "netbed child: enqueue:", err)
			os.Exit(1)
		}
		srv.Outbound.Notify(netbedReceiver)
		say("queued %d", next)
	}
	os.Exit(0) // stdin closed: the parent is done
}

type netbedPrinter struct{ say func(string, ...any) }

func (p netbedPrinter) HandlePDUs(_ context.Context, _ string, pdus []json.RawMessage) map[id.EventID]string {
	now := time.Now().UnixMicro()
	for _, raw := range pdus {
		var e struct{ N, T int64 }
		if json.Unmarshal(raw, &e) == nil {
			p.say("recv %d %d %d", e.N, e.T, now)
		}
	}
	return nil
}

type arrival struct{ sent, recv int64 } // Unix microseconds, one machine clock

// netbedRun is the parent's view of the bed: the children, and what the receiver reported.
type netbedRun struct {
	t      *testing.T
	stdin  *bufio.Writer
	queued chan int
	mu     sync.Mutex
	got    map[int]arrival
	dups   int
	next   int // number of PDUs asked of the sender so far
}

func (r *netbedRun) send(n int) {
	r.t.Helper()
	fmt.Fprintf(r.stdin, "send %d\n", n)
	if err := r.stdin.Flush(); err != nil {
		r.t.Fatalf("sender: %v", err)
	}
	r.next += n
	select {
	case <-r.queued:
	case <-time.After(10 * time.Second):
		r.t.Fatal("sender did not acknowledge a send")
	}
}

// wait returns the arrivals of PDUs [from,to) once all are in, or fails after timeout.
func (r *netbedRun) wait(what string, from, to int, timeout time.Duration) []arrival {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		var out []arrival
		for i := from; i < to; i++ {
			if a, ok := r.got[i]; ok {
				out = append(out, a)
			}
		}
		r.mu.Unlock()
		if len(out) == to-from {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %d of %d events arrived within %v", what, len(out), to-from, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *netbedRun) count(from, to int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := from; i < to; i++ {
		if _, ok := r.got[i]; ok {
			n++
		}
	}
	return n
}

func netbedCmd(t *testing.T, timeout time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, netbedScript(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netbed.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// startNetbedChild starts the test binary as role inside namespace ns and waits for "ready".
func startNetbedChild(t *testing.T, ns, role, dir, ca, caKey string) (io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), netbedChildEnv+"="+role, netbedDirEnv+"="+filepath.Join(dir, role),
		netbedCAEnv+"="+ca, netbedCAKeyEnv+"="+caKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Join(os.Getenv("FYR_NETBED_LOGDIR"), role+".log")
	if os.Getenv("FYR_NETBED_LOGDIR") == "" {
		logPath = filepath.Join(dir, role+".log")
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, role), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	br := bufio.NewReader(stdout)
	ready := make(chan error, 1)
	go func() {
		line, err := br.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%s did not start (log %s): %v", role, logPath, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30s (log %s)", role, logPath)
	}
	t.Logf("%s running in %s, log %s", role, ns, logPath)
	return stdin, br
}

func median(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func latencies(as []arrival) []time.Duration {
	var out []time.Duration
	for _, a := range as {
		out = append(out, time.Duration(a.recv-a.sent)*time.Microsecond)
	}
	return out
}

// oneByOne sends n events one at a time, every gap, and returns their latencies.
func (r *netbedRun) oneByOne(what string, n int, gap time.Duration) []time.Duration {
	from := r.next
	for range n {
		r.send(1)
		time.Sleep(gap)
	}
	return latencies(r.wait(what, from, r.next, 120*time.Second))
}

func TestNetbed(t *testing.T) {
	if os.Getenv("FYR_NETBED") != "1" {
		t.Skip("set FYR_NETBED=1 (as root, with ../shared/netbed) to run: make netbed")
	}
	if os.Geteuid() != 0 {
		t.Skip("netbed needs root")
	}
	dir := t.TempDir()
	netbedCmd(t, 3*time.Minute, "up", "2")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, netbedScript(), "down").CombinedOutput(); err != nil {
			t.Logf("netbed.sh down: %v\n%s", err, out)
		}
	})
	ca, caKey := servertest.TestCA(t)
	// Cleanups run last-in first-out: children are killed before the bed goes down.
	_, recvOut := startNetbedChild(t, "hs2", "receiver", dir, ca, caKey)
	stdin, sendOut := startNetbedChild(t, "hs1", "sender", dir, ca, caKey)
	r := &netbedRun{t: t, stdin: bufio.NewWriter(stdin), queued: make(chan int, 16), got: map[int]arrival{}}
	go func() {
		for {
			line, err := sendOut.ReadString('\n')
			if err != nil {
				return
			}
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "queued "); ok {
				v, _ := strconv.Atoi(n)
				r.queued <- v
			}
		}
	}()
	go func() {
		for {
			line, err := recvOut.ReadString('\n')
			if err != nil {
				return
			}
			var n int
			var a arrival
			if _, err := fmt.Sscanf(line, "recv %d %d %d", &n, &a.sent, &a.recv); err != nil {
				continue
			}
			r.mu.Lock()
			if _, ok := r.got[n]; ok {
				r.dups++
			} else {
				r.got[n] = a
			}
			r.mu.Unlock()
		}
	}()
	var summary []string
	report := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		t.Log(s)
		summary = append(summary, s)
	}
	defer func() {
		r.mu.Lock()
		dups := r.dups
		r.mu.Unlock()
		summary = append(summary, fmt.Sprintf("duplicates received: %d", dups))
		fmt.Printf("\n=== netbed summary (Fyr, hs1 -> hs2) ===\n%s\n\n", strings.Join(summary, "\n"))
	}()

	// Steady state: the first event also fetches the sender's keys; then a clear-link base.
	start := time.Now()
	r.send(1)
	r.wait("first event", 0, 1, 60*time.Second)
	report("first event (key fetch, TLS setup): %v", time.Since(start).Round(time.Millisecond))
	base := median(r.oneByOne("clear link", 30, 300*time.Millisecond))
	report("clear link: median latency %v (30 events, 300 ms apart)", base.Round(10*time.Microsecond))

	// A 60 s silent cut with events queued during it, then heal.
	netbedCmd(t, time.Minute, "cut", "hs1", "hs2")
	cutAt := time.Now()
	from := r.next
	for i := range 20 {
		time.Sleep(time.Until(cutAt.Add(time.Duration(i) * 3 * time.Second)))
		r.send(1)
	}
	time.Sleep(time.Until(cutAt.Add(60 * time.Second)))
	during := r.count(from, r.next)
	healStart := time.Now()
	netbedCmd(t, time.Minute, "heal", "hs1", "hs2")
	healed := time.Now()
	t.Logf("healed at %s (sender log times are UTC)", healed.UTC().Format("15:04:05.000"))
	as := r.wait("after heal", from, r.next, 5*time.Minute)
	var last, first int64
	for _, a := range as {
		last = max(last, a.recv)
		if first == 0 || a.recv < first {
			first = a.recv
		}
	}
	catchUp := time.Duration(last-healed.UnixMicro()) * time.Microsecond
	report("cut 60 s, 20 events queued (%d arrived during the cut): heal -> last arrival %v, heal -> first arrival %v (heal command took %v) [target <= 2s]",
		during, catchUp.Round(time.Millisecond), (time.Duration(first-healed.UnixMicro()) * time.Microsecond).Round(time.Millisecond), healed.Sub(healStart).Round(time.Millisecond))
	if catchUp > 2*time.Second {
		t.Errorf("heal -> last arrival %v, want <= 2s", catchUp)
	}
	// Settle on a clear link before the impaired runs.
	r.oneByOne("after heal, clear", 5, 300*time.Millisecond)

	for _, c := range []struct {
		cond string
		ref  time.Duration // the link's own one-way delay
		what string
	}{
		{"delay=100ms", 100 * time.Millisecond, "configured one-way delay"},
		{"loss=5%", 0, "clear link just before"},
		{"rate=256kbit", 0, "clear link just before"},
	} {
		if c.ref == 0 { // the clear link just before, as its latency drifts with machine load
			c.ref = median(r.oneByOne("clear before "+c.cond, 15, 300*time.Millisecond))
		}
		netbedCmd(t, time.Minute, "link", "hs1", "hs2", c.cond)
		time.Sleep(time.Second)
		lat := r.oneByOne(c.cond, 30, 300*time.Millisecond)
		m := median(lat)
		s := slices.Clone(lat)
		slices.Sort(s)
		ratio := float64(m) / float64(c.ref)
		report("%s: median %v, p90 %v, max %v; reference %v (%s): ratio %.2f [target <= 1.2]",
			c.cond, m.Round(10*time.Microsecond), s[len(s)*9/10].Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond),
			c.ref.Round(10*time.Microsecond), c.what, ratio)
		if ratio > 1.2 {
			t.Errorf("%s: median %v is %.2fx the reference %v", c.cond, m, ratio, c.ref)
		}
		netbedCmd(t, time.Minute, "clear", "hs1", "hs2")
		time.Sleep(time.Second)
	}
}
