package clock

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// fakeSystem is a clock the test sets; it records steps and slews.
type fakeSystem struct {
	mu     sync.Mutex
	now    time.Time
	steps  []time.Time
	slews  []time.Duration
	setErr error
}

func (f *fakeSystem) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fakeSystem) Step(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.now = t
	f.steps = append(f.steps, t)
	return nil
}

func (f *fakeSystem) Slew(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slews = append(f.slews, d)
	return nil
}

type fakeRTC struct {
	t      time.Time
	err    error
	setTos []time.Time
}

func (r *fakeRTC) Read() (time.Time, error) { return r.t, r.err }
func (r *fakeRTC) Set(t time.Time) error    { r.setTos = append(r.setTos, t); return nil }

var (
	day   = 24 * time.Hour
	truth = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

func TestBootTakesTheLatestSource(t *testing.T) {
	epoch := time.Unix(0, 0).UTC()
	for _, c := range []struct {
		name       string
		system     time.Time
		rtc        *fakeRTC
		saved      time.Time
		floor      time.Time
		want       time.Time
		wantSource string
		trusted    bool
	}{
		{"saved time beats 1970", epoch, nil, truth, time.Time{}, truth, "saved time", false},
		{"RTC beats the saved time", epoch, &fakeRTC{t: truth.Add(day)}, truth, time.Time{}, truth.Add(day), "real-time clock", true},
		{"saved time beats a stale RTC", epoch, &fakeRTC{t: truth.Add(-day)}, truth, time.Time{}, truth, "saved time", true},
		{"a broken RTC is skipped", epoch, &fakeRTC{err: errors.New("EINVAL")}, truth, time.Time{}, truth, "saved time", false},
		{"the build time is a floor", epoch, nil, time.Time{}, truth, truth, "build time", false},
		{"never backwards", truth.Add(day), &fakeRTC{t: truth}, truth, truth, truth.Add(day), "system clock", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys := &fakeSystem{now: c.system}
			k := &Keeper{Log: testLog(t), File: filepath.Join(t.TempDir(), "clock"), System: sys, Floor: c.floor}
			if c.rtc != nil {
				k.RTC = c.rtc
			}
			if !c.saved.IsZero() {
				os.WriteFile(k.File, []byte(c.saved.Format(time.RFC3339Nano)+"\n"), 0o644)
			}
			got, source, err := k.Boot()
			if err != nil || !got.Equal(c.want) || source != c.wantSource {
				t.Fatalf("Boot() = %s, %q, %v; want %s from %q", got, source, err, c.want, c.wantSource)
			}
			if !sys.Now().Equal(c.want) {
				t.Errorf("the clock reads %s, want %s", sys.Now(), c.want)
			}
			if c.want.Equal(c.system) && len(sys.steps) != 0 {
				t.Errorf("stepped %v although the clock was right", sys.steps)
			}
			if k.Trusted() != c.trusted {
				t.Errorf("Trusted() = %v, want %v", k.Trusted(), c.trusted)
			}
		})
	}
}

func TestBootReportsAClockThatCannotBeSet(t *testing.T) {
	sys := &fakeSystem{now: time.Unix(0, 0), setErr: errors.New("EPERM")}
	k := &Keeper{Log: testLog(t), File: filepath.Join(t.TempDir(), "clock"), System: sys, Floor: truth}
	if _, _, err := k.Boot(); err == nil {
		t.Error("Boot() succeeded without setting the clock")
	}
}

func TestSaveNeverRecordsAnEarlierTime(t *testing.T) {
	sys := &fakeSystem{now: truth}
	k := &Keeper{Log: testLog(t), File: filepath.Join(t.TempDir(), "clock"), System: sys}
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	sys.now = truth.Add(-time.Hour)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.saved(); !got.Equal(truth) {
		t.Errorf("saved %s, want the later %s", got, truth)
	}
	sys.now = truth.Add(time.Hour)
	k.Save()
	if got, _ := k.saved(); !got.Equal(truth.Add(time.Hour)) {
		t.Errorf("saved %s, want %s", got, truth.Add(time.Hour))
	}
}

// ntpServer is a fake NTP server on loopback answering with its clock; tweak alters each
// response.
type ntpServer struct {
	addr  string
	clock func() time.Time
	tweak func(resp []byte)
}

func startNTP(t *testing.T, clock func() time.Time, tweak func([]byte)) *ntpServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &ntpServer{addr: pc.LocalAddr().String(), clock: clock, tweak: tweak}
	go func() {
		buf := make([]byte, 128)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 || buf[0]&7 != 3 {
				continue
			}
			recv := s.clock()
			resp := make([]byte, 48)
			resp[0] = 0<<6 | 4<<3 | 4
			resp[1] = 2 // stratum
			copy(resp[12:16], "GPS\x00")
			copy(resp[24:32], buf[40:48]) // originate = the client's transmit
			putNTPTime(resp[32:40], recv)
			putNTPTime(resp[40:48], s.clock())
			if s.tweak != nil {
				s.tweak(resp)
			}
			pc.WriteTo(resp, from)
		}
	}()
	return s
}

func putNTPTime(b []byte, t time.Time) {
	d := t.Sub(ntpEpoch)
	binary.BigEndian.PutUint32(b[0:4], uint32(d/time.Second))
	binary.BigEndian.PutUint32(b[4:8], uint32(uint64(d%time.Second)<<32/1e9))
}

func TestQuery(t *testing.T) {
	ctx := context.Background()
	// The server runs an hour ahead of the machine's clock.
	s := startNTP(t, func() time.Time { return time.Now().Add(time.Hour) }, nil)
	sample, err := Query(ctx, s.addr, time.Now)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if d := sample.Offset - time.Hour; d < -time.Second || d > time.Second || sample.Stratum != 2 {
		t.Errorf("Query = %+v, want an offset of about an hour, stratum 2", sample)
	}

	for _, c := range []struct {
		name  string
		tweak func([]byte)
		want  error
	}{
		{"kiss of death", func(b []byte) { b[1] = 0; copy(b[12:16], "RATE") }, ErrKissOfDeath},
		{"unsynchronised", func(b []byte) { b[0] = 3<<6 | 4<<3 | 4 }, ErrUnsynced},
		{"forged origin", func(b []byte) { b[24] ^= 1 }, ErrBogusResponse},
		{"not a server", func(b []byte) { b[0] = 4<<3 | 5 }, ErrBogusResponse},
		{"no transmit time", func(b []byte) { clear(b[40:48]) }, ErrBogusResponse},
	} {
		s := startNTP(t, time.Now, c.tweak)
		if _, err := Query(ctx, s.addr, time.Now); !errors.Is(err, c.want) {
			t.Errorf("%s: Query = %v, want %v", c.name, err, c.want)
		}
	}

	// A server that never answers: the context ends the wait.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Query(cctx, silent.LocalAddr().String(), time.Now); err == nil {
		t.Error("Query of a silent server succeeded")
	}
}

func TestNTPEras(t *testing.T) {
	for _, want := range []time.Time{
		time.Date(2026, 11, 25, 12, 0, 0, 500_000_000, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), // era 1 starts
		time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		b := make([]byte, 8)
		putNTPTime(b, want)
		if got := ntpTime(b); got.Sub(want).Abs() > time.Microsecond {
			t.Errorf("ntpTime(putNTPTime(%s)) = %s", want, got)
		}
	}
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	// The servers' clocks run at "truth" time; the box's is off by skew.
	for _, c := range []struct {
		name   string
		skew   time.Duration
		action string
	}{
		{"behind by a day: stepped forward", -day, "stepped"},
		{"behind a little: slewed", -50 * time.Millisecond, "slewed"},
		{"ahead a little: slowed down", 5 * time.Second, "slewed"},
		{"ahead by a day: never set back", day, "held"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			sys := &fakeSystem{now: truth.Add(c.skew)}
			// The fake system clock advances with the truth one.
			clockNow := func() time.Time { return truth.Add(time.Since(start)) }
			sysNow := func() time.Time { return sys.Now().Add(time.Since(start)) }
			a := startNTP(t, clockNow, nil)
			b := startNTP(t, clockNow, nil)
			rtc := &fakeRTC{}
			k := &Keeper{Log: testLog(t), File: filepath.Join(t.TempDir(), "clock"), System: sysFunc{sys, sysNow}, RTC: rtc,
				Servers: []string{a.addr, "127.0.0.1:1", b.addr}}
			res, err := k.Sync(ctx)
			if err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if res.Action != c.action || res.Answered != 2 {
				t.Errorf("Sync = %+v, want %s by 2 servers", res, c.action)
			}
			if d := res.Offset + c.skew; d.Abs() > 40*time.Millisecond {
				t.Errorf("offset %s, want about %s", res.Offset, -c.skew)
			}
			switch c.action {
			case "stepped":
				if len(sys.steps) != 1 || sys.steps[0].Sub(truth).Abs() > time.Second {
					t.Errorf("steps %v, want one to about %s", sys.steps, truth)
				}
			case "slewed":
				if len(sys.slews) != 1 || len(sys.steps) != 0 {
					t.Errorf("slews %v, steps %v; want one slew and no step", sys.slews, sys.steps)
				}
			case "held":
				if len(sys.slews)+len(sys.steps) != 0 {
					t.Errorf("a clock far ahead was changed: slews %v, steps %v", sys.slews, sys.steps)
				}
			}
			for _, s := range sys.steps {
				if s.Before(truth.Add(c.skew)) {
					t.Errorf("stepped back to %s", s)
				}
			}
			if !k.Trusted() {
				t.Error("not Trusted() after an NTP answer")
			}
			if (c.action == "held") != (len(rtc.setTos) == 0) {
				t.Errorf("RTC set to %v", rtc.setTos)
			}
			if saved, err := k.saved(); err != nil || saved.IsZero() {
				t.Errorf("Sync saved nothing: %v", err)
			}
		})
	}

	k := &Keeper{Log: testLog(t), File: filepath.Join(t.TempDir(), "clock"), System: &fakeSystem{now: truth}, Servers: []string{"127.0.0.1:1"}}
	if _, err := k.Sync(ctx); err == nil || k.Trusted() {
		t.Errorf("Sync with no server answering = %v, trusted %v", err, k.Trusted())
	}
}

// sysFunc is a fakeSystem whose Now runs on.
type sysFunc struct {
	*fakeSystem
	now func() time.Time
}

func (s sysFunc) Now() time.Time { return s.now() }

func TestRunSavesAndSyncs(t *testing.T) {
	srv := startNTP(t, func() time.Time { return time.Now().Add(time.Hour) }, nil)
	sys := &fakeSystem{now: truth}
	k := &Keeper{Log: testLog(t), File: filepath.Join(t.TempDir(), "clock"), System: sys, Servers: []string{srv.addr},
		SaveEvery: time.Millisecond, SyncEvery: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !k.Trusted() {
		if time.Now().After(deadline) {
			t.Fatal("Run never synced")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	b, err := os.ReadFile(k.File)
	if err != nil || !strings.HasPrefix(string(b), "20") {
		t.Errorf("saved %q, %v", b, err)
	}
}
