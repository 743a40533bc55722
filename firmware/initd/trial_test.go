package initd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"fyr/firmware/internal/fakeclock"
	"fyr/firmware/slots"
	"fyr/firmware/update"
)

// pi is a Raspberry Pi's boot loader over a temporary directory: autoboot.txt, the device
// tree the firmware leaves for Linux, and a directory per slot partition. The trials below
// run the real updater (firmware/update) on the real slot code (firmware/slots) over it.
type pi struct {
	t   *testing.T
	dir string
	rpi *slots.RPi
}

func newPi(t *testing.T) *pi {
	dir := t.TempDir()
	p := &pi{t: t, dir: dir}
	os.MkdirAll(filepath.Join(dir, "dt"), 0o755)
	p.rpi = &slots.RPi{
		Autoboot:   filepath.Join(dir, "autoboot.txt"),
		DeviceTree: filepath.Join(dir, "dt"),
		Mount: func(part int) (string, func() error, error) {
			d := filepath.Join(dir, "partition", strconv.Itoa(part))
			return d, func() error { return nil }, os.MkdirAll(d, 0o755)
		},
	}
	p.setAutoboot(2, 2)
	return p
}

// setAutoboot writes autoboot.txt: [all] boots normal, [tryboot] try.
func (p *pi) setAutoboot(normal, try int) {
	ab := fmt.Sprintf("[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n", normal, try)
	if err := os.WriteFile(p.rpi.Autoboot, []byte(ab), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// autoboot returns [all]'s and [tryboot]'s partitions.
func (p *pi) autoboot() (normal, try int) {
	b, err := os.ReadFile(p.rpi.Autoboot)
	if err != nil {
		p.t.Fatal(err)
	}
	section := ""
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "["):
			section = l
		case strings.HasPrefix(l, "boot_partition="):
			n, _ := strconv.Atoi(strings.TrimPrefix(l, "boot_partition="))
			if section == "[all]" {
				normal = n
			} else {
				try = n
			}
		}
	}
	return normal, try
}

// boot is the firmware starting a partition, with or without the tryboot flag.
func (p *pi) boot(partition int, tryboot bool) {
	flag := uint32(0)
	if tryboot {
		flag = 1
	}
	for name, v := range map[string]uint32{"partition": uint32(partition), "tryboot": flag} {
		if err := os.WriteFile(filepath.Join(p.dir, "dt", name), binary.BigEndian.AppendUint32(nil, v), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
}

// manager is the box's updater, as PID 1 makes it at each boot.
func (p *pi) manager(keys *update.Keyring) *update.Manager {
	if keys == nil {
		keys = update.NewKeyring()
	}
	return &update.Manager{Dir: filepath.Join(p.dir, "data", "update"), Board: "raspberrypi,4-model-b", Keys: keys,
		Loader: p.rpi, Log: discard()}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// trialRun is a trial running against a fake clock.
type trialRun struct {
	t       *testing.T
	tr      *trial
	clock   *fakeclock.Clock
	healthy atomic.Bool
	reboots atomic.Int32
	done    chan struct{}
}

// startTrial boots PID 1's trial logic on m: m.Boot, then the trial's run.
func startTrial(t *testing.T, m *update.Manager, blessAfter time.Duration) *trialRun {
	t.Helper()
	rep, err := m.Boot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := &trialRun{t: t, clock: fakeclock.New(time.Unix(1e9, 0)), done: make(chan struct{})}
	r.healthy.Store(true)
	health := func(context.Context) error {
		if r.healthy.Load() {
			return nil
		}
		return errors.New("connection refused")
	}
	r.tr = newTrial(m, rep, blessAfter, health, func() { r.reboots.Add(1) }, discard())
	r.tr.clock = r.clock
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.done)
		r.tr.run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// tick moves the clock to the trial's next health check and waits until the trial has
// made it and gone back to sleep, or returned.
func (r *trialRun) tick() {
	r.t.Helper()
	if !r.asleep() {
		return
	}
	r.clock.Advance(trialCheckEvery)
	r.asleep()
}

// asleep waits until the trial waits on the clock (true) or has returned (false).
func (r *trialRun) asleep() bool {
	waiting := make(chan struct{})
	go func() { r.clock.BlockUntil(1); close(waiting) }()
	select {
	case <-waiting:
		return true
	case <-r.done:
		return false
	}
}

func (r *trialRun) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func TestTrialBlessedAfterStayingHealthy(t *testing.T) {
	p := newPi(t)
	p.setAutoboot(2, 3)
	p.boot(3, true) // the update in slot b, partition 3, on its trial boot
	r := startTrial(t, p.manager(nil), 3*time.Minute)

	r.tr.healthy(20 * time.Second)
	checks := int(3 * time.Minute / trialCheckEvery)
	for i := 1; i < checks; i++ {
		r.tick()
	}
	if normal, _ := p.autoboot(); normal != 2 || r.finished() {
		t.Fatalf("after %v of health, short of 3m: autoboot.txt boots partition %d, trial finished %v; want 2 and no bless yet",
			time.Duration(checks-1)*trialCheckEvery, normal, r.finished())
	}
	r.tick()
	<-r.done
	if normal, try := p.autoboot(); normal != 3 || try != 2 {
		t.Errorf("after 3m of health, autoboot.txt boots %d and tries %d; want the update's 3 kept and 2 to try", normal, try)
	}
	st, _, err := p.manager(nil).Status(context.Background())
	if err != nil || st.Trial != nil || st.Slots[slots.B].Status != update.SlotGood {
		t.Errorf("after the bless, the updater's state is %+v, %v; want slot b good and no trial", st, err)
	}
	if n := r.reboots.Load(); n != 0 {
		t.Errorf("a kept update rebooted %d times", n)
	}
}

func TestTrialMissedHealthCheckStartsTheWaitOver(t *testing.T) {
	p := newPi(t)
	p.setAutoboot(2, 3)
	p.boot(3, true)
	r := startTrial(t, p.manager(nil), time.Minute)

	r.tr.healthy(time.Second)
	for range 6 { // healthy for 30 s
		r.tick()
	}
	r.healthy.Store(false)
	r.tick() // 35 s: the check fails
	r.healthy.Store(true)
	for range 12 { // 40 s … 95 s: healthy again since 40 s, short of a minute
		r.tick()
	}
	if normal, _ := p.autoboot(); normal != 2 || r.finished() {
		t.Fatalf("55 s after a missed check: autoboot.txt boots %d, trial finished %v; want no bless yet", normal, r.finished())
	}
	r.tick() // 100 s: a minute since 40 s
	<-r.done
	if normal, _ := p.autoboot(); normal != 3 {
		t.Errorf("a minute after the missed check, autoboot.txt boots %d; want 3, the update kept", normal)
	}
}

func TestTrialCrashLoopRollsBackAndReboots(t *testing.T) {
	p := newPi(t)
	m := p.manager(nil)
	p.boot(2, false)

	// A signed update, written into slot b and armed for its trial, as fyr update apply does.
	priv, pub, err := update.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := update.ParsePrivateKey(priv)
	pubs, _ := update.ParsePublicKeys(pub)
	m.Keys = update.NewKeyring(pubs...)
	var bundle bytes.Buffer
	files := fstest.MapFS{"vmlinuz": {Data: []byte("kernel")}}
	if err := update.Write(&bundle, update.Manifest{Version: 2, Boards: []string{m.Board}}, files, []string{"vmlinuz"}, key); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(context.Background(), &bundle); err != nil {
		t.Fatal(err)
	}
	if got := rebootArg(m, discard()); got != "0 tryboot" {
		t.Fatalf("the reboot after installing an update passes %q; want \"0 tryboot\", or the Pi never tries it", got)
	}

	// The trial boot: slot b's homeserver crash-loops.
	p.boot(3, true)
	r := startTrial(t, p.manager(m.Keys), DefaultBlessAfter)
	r.tr.crashLoop(5)
	if n := r.reboots.Load(); n != 1 {
		t.Fatalf("a crash loop on trial asked for %d reboots, want 1", n)
	}
	if normal, try := p.autoboot(); normal != 2 || try != 2 {
		t.Errorf("after the rollback, autoboot.txt boots %d and tries %d; want the old slot's 2 for both", normal, try)
	}
	if got := rebootArg(r.tr.m, discard()); got != "" {
		t.Errorf("the reboot after a rollback passes %q; want \"\", a plain reboot into the old slot", got)
	}
	r.tr.healthy(time.Second) // too late: nothing is blessed any more
	<-r.done

	// Back on slot a: the updater records the failed trial.
	p.boot(2, false)
	rep, err := p.manager(m.Keys).Boot(context.Background())
	if err != nil || rep.RolledBack == nil || rep.RolledBack.Version != 2 {
		t.Fatalf("the boot after the rollback = %+v, %v; want version 2 rolled back", rep, err)
	}
	if normal, _ := p.autoboot(); normal != 2 {
		t.Errorf("autoboot.txt boots %d after the rollback, want 2", normal)
	}
}

func TestCrashLoopOffTrialKeepsTheSlot(t *testing.T) {
	p := newPi(t)
	p.boot(2, false) // a normal boot of the blessed slot
	r := startTrial(t, p.manager(nil), time.Minute)
	r.tr.crashLoop(5)
	r.tr.healthy(time.Second)
	<-r.done // no trial: nothing to wait for
	if n := r.reboots.Load(); n != 0 {
		t.Errorf("a crash loop outside a trial asked for %d reboots, want none", n)
	}
	if normal, try := p.autoboot(); normal != 2 || try != 2 {
		t.Errorf("autoboot.txt boots %d and tries %d, want 2 and 2 untouched", normal, try)
	}
	st, _, err := p.manager(nil).Status(context.Background())
	if err != nil || st.Trial != nil || st.Last != "" {
		t.Errorf("the updater's state is %+v, %v; want nothing recorded", st, err)
	}
}

func TestBlessAfterSetting(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    time.Duration
	}{
		{"console=ttyAMA0", DefaultBlessAfter},
		{"fyr.bless_after=10s", 10 * time.Second},
		{"fyr.bless_after=0s", 0},
		{"fyr.bless_after=soon", DefaultBlessAfter},
		{"fyr.bless_after=-1m", DefaultBlessAfter},
	} {
		if got := blessAfter(ParseCmdline(tc.cmdline), discard()); got != tc.want {
			t.Errorf("blessAfter(%q) = %v, want %v", tc.cmdline, got, tc.want)
		}
	}
}
