package update_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fyr/firmware/slots"
	"fyr/firmware/update"
	"fyr/storage"
)

// fakeLoader is a boot loader with Raspberry Pi semantics held in memory: a default slot, a
// slot armed for tryboot, and a reboot that honours "0 tryboot" once.
type fakeLoader struct {
	booted, def, armed slots.Slot
	trial              bool
	dirs               map[slots.Slot]string
	opened             int
}

var _ slots.Bootloader = (*fakeLoader)(nil)

func newFakeLoader(t *testing.T) *fakeLoader {
	root := t.TempDir()
	l := &fakeLoader{booted: slots.A, def: slots.A, dirs: map[slots.Slot]string{}}
	for _, s := range []slots.Slot{slots.A, slots.B} {
		l.dirs[s] = filepath.Join(root, string(s))
		os.MkdirAll(l.dirs[s], 0o755)
	}
	return l
}

func (l *fakeLoader) Name() string { return "fake" }
func (l *fakeLoader) Status() (slots.Status, error) {
	return slots.Status{Booted: l.booted, Trial: l.trial}, nil
}

func (l *fakeLoader) OpenSlot(s slots.Slot) (string, func() error, error) {
	if s == l.booted || s == l.def {
		return "", nil, slots.ErrBooted
	}
	l.armed = ""
	l.opened++
	return l.dirs[s], func() error { return nil }, nil
}

func (l *fakeLoader) TryNext(s slots.Slot, _ slots.Entry) error {
	if s == l.booted || s == l.def {
		return slots.ErrBooted
	}
	l.armed = s
	return nil
}

func (l *fakeLoader) RebootArg() string { return "0 tryboot" }

func (l *fakeLoader) Bless() error {
	if !l.trial {
		return slots.ErrNotTrial
	}
	l.def, l.armed, l.trial = l.booted, "", false
	return nil
}

func (l *fakeLoader) Abandon() error {
	if !l.trial {
		return slots.ErrNotTrial
	}
	l.armed, l.trial = "", false
	return nil
}

// reboot is the firmware starting again.
func (l *fakeLoader) reboot(arg string) {
	if arg == "0 tryboot" && l.armed != "" {
		l.booted, l.trial = l.armed, true
		return
	}
	l.booted, l.trial = l.def, false
}

// box is a Fyr box under test: a manager over a fake loader, with a database file.
type box struct {
	t    *testing.T
	m    *update.Manager
	l    *fakeLoader
	priv ed25519.PrivateKey
	db   string
}

const board = "raspberrypi,4-model-b"

func newBox(t *testing.T) *box {
	t.Helper()
	pub, priv := testKey(t)
	l := newFakeLoader(t)
	data := t.TempDir()
	b := &box{t: t, l: l, priv: priv, db: filepath.Join(data, "fyr.db")}
	b.m = &update.Manager{Dir: filepath.Join(data, "update"), Board: board, Keys: update.NewKeyring(pub),
		Loader: l, DB: b.db, Now: func() time.Time { return time.Unix(1e9, 0) },
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	return b
}

func (b *box) apply(version uint64) (*update.Installed, error) {
	return b.m.Apply(context.Background(), bytes.NewReader(makeBundle(b.t, b.priv, version, board)))
}

func (b *box) mustApply(version uint64) {
	b.t.Helper()
	if _, err := b.apply(version); err != nil {
		b.t.Fatalf("Apply(v%d): %v", version, err)
	}
}

func (b *box) reboot() {
	b.t.Helper()
	arg, err := b.m.RebootArg()
	if err != nil {
		b.t.Fatalf("RebootArg: %v", err)
	}
	b.l.reboot(arg)
}

func (b *box) boot() *update.Report {
	b.t.Helper()
	rep, err := b.m.Boot(context.Background())
	if err != nil {
		b.t.Fatalf("Boot: %v", err)
	}
	return rep
}

func (b *box) state() *update.State {
	b.t.Helper()
	st, _, err := b.m.Status(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

// oldDatabase makes a database as the previous version left it: one migration behind, with
// alice in it.
func (b *box) oldDatabase() {
	b.t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, b.db, storage.Options{})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *storage.Tx) error { return tx.CreateUser(storage.User{Localpart: "alice", CreatedTS: 1}) }); err != nil {
		b.t.Fatal(err)
	}
	v, _ := db.SchemaVersion(ctx)
	db.Close()
	b.exec(fmt.Sprintf("PRAGMA user_version = %d", v-1))
}

// migrate does what the new version does to the database: migrate it and write to it.
func (b *box) migrate() {
	b.t.Helper()
	b.exec("PRAGMA user_version = 10000")
	b.exec("INSERT INTO users (localpart, is_admin, deactivated, created_ts) VALUES ('bob', 0, 0, 2)")
}

func (b *box) exec(q string) {
	b.t.Helper()
	raw, err := sql.Open("sqlite", "file:"+b.db)
	if err != nil {
		b.t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(q); err != nil {
		b.t.Fatalf("%s: %v", q, err)
	}
}

// users lists the database's users.
func (b *box) users() string {
	b.t.Helper()
	raw, err := sql.Open("sqlite", "file:"+b.db+"?mode=ro")
	if err != nil {
		b.t.Fatal(err)
	}
	defer raw.Close()
	var users string
	if err := raw.QueryRow("SELECT group_concat(localpart, ',') FROM (SELECT localpart FROM users ORDER BY localpart)").Scan(&users); err != nil {
		b.t.Fatal(err)
	}
	return users
}

func (b *box) userVersion() int {
	b.t.Helper()
	raw, err := sql.Open("sqlite", "file:"+b.db+"?mode=ro")
	if err != nil {
		b.t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		b.t.Fatal(err)
	}
	return v
}

func TestUpdateBlessed(t *testing.T) {
	b := newBox(t)
	b.oldDatabase()
	before := b.userVersion()

	inst, err := b.apply(2)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if inst.Slot != slots.B || inst.Manifest.Version != 2 || b.l.armed != slots.B {
		t.Fatalf("Apply = %+v, armed %q; want slot b armed", inst, b.l.armed)
	}
	got, err := os.ReadFile(filepath.Join(b.l.dirs[slots.B], "overlays", "fyr-rtc.dtbo"))
	if err != nil || string(got) != "OVERLAY" {
		t.Errorf("slot b's overlay = %q, %v", got, err)
	}
	if rep := b.boot(); rep.Trial != nil || rep.RolledBack != nil {
		t.Errorf("Boot before the reboot = %+v, want nothing to do", rep)
	}

	b.reboot()
	rep := b.boot()
	if rep.Trial == nil || rep.Trial.Version != 2 || !rep.Status.Trial {
		t.Fatalf("Boot on the trial = %+v, want the v2 trial", rep)
	}
	snap := rep.Trial.Snapshot
	if snap == "" {
		t.Fatal("no database snapshot before the new version's migration")
	}
	if rep := b.boot(); rep.Trial == nil || rep.Trial.Snapshot != snap {
		t.Errorf("a second Boot in the same trial = %+v, want the same trial and snapshot", rep)
	}
	b.migrate()

	if err := b.m.Bless(context.Background()); err != nil {
		t.Fatalf("Bless: %v", err)
	}
	if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the snapshot outlived the bless: %v", err)
	}
	st := b.state()
	if st.Trial != nil || st.Installed != 2 || st.Slots[slots.B].Status != update.SlotGood || st.Slots[slots.B].Version != 2 {
		t.Errorf("state after Bless = %+v", st)
	}
	b.reboot()
	if b.l.booted != slots.B || b.l.trial {
		t.Errorf("after Bless a reboot starts %s (trial %v), want b", b.l.booted, b.l.trial)
	}
	if v := b.userVersion(); v != 10000 || before == 10000 {
		t.Errorf("after Bless the database is at %d, want the migrated 10000", v)
	}
	if err := b.m.Bless(context.Background()); !errors.Is(err, update.ErrNoTrial) {
		t.Errorf("a second Bless = %v, want ErrNoTrial", err)
	}

	// The next update goes into slot a, the old one.
	b.boot()
	if inst, err := b.apply(3); err != nil || inst.Slot != slots.A {
		t.Fatalf("Apply(v3) = %+v, %v; want slot a", inst, err)
	}
}

func TestUpdateRolledBack(t *testing.T) {
	for _, how := range []string{"crash loop", "reset"} {
		t.Run(how, func(t *testing.T) {
			b := newBox(t)
			b.oldDatabase()
			before := b.userVersion()
			b.mustApply(2)
			b.reboot()
			if rep := b.boot(); rep.Trial == nil {
				t.Fatal("no trial")
			}
			b.migrate()
			if how == "crash loop" {
				if err := b.m.Rollback(context.Background(), "homeserver restarted 5 times in 2m"); err != nil {
					t.Fatalf("Rollback: %v", err)
				}
				if err := b.m.Bless(context.Background()); err == nil {
					t.Error("Bless after Rollback succeeded")
				}
			}
			b.reboot() // a crash loop reboots on purpose; a reset (watchdog, power) the same way
			if b.l.booted != slots.A {
				t.Fatalf("after the failed trial the box runs %s, want a", b.l.booted)
			}
			rep := b.boot()
			if rep.RolledBack == nil || rep.RolledBack.Version != 2 {
				t.Fatalf("Boot back on a = %+v, want the v2 trial rolled back", rep)
			}
			if v := b.userVersion(); v != before {
				t.Errorf("database at schema %d after the rollback, want %d", v, before)
			}
			if users := b.users(); users != "alice" {
				t.Errorf("after the rollback the users are %q, want alice only", users)
			}
			st := b.state()
			if st.Trial != nil || st.Slots[slots.B].Status != update.SlotFailed || st.Last == "" {
				t.Errorf("state after the rollback = %+v", st)
			}
			if rep := b.boot(); rep.RolledBack != nil {
				t.Error("a second Boot rolled back again")
			}
			// The broken version is never installed again; a fixed, newer one is.
			if _, err := b.apply(2); !errors.Is(err, update.ErrDowngrade) {
				t.Errorf("reapplying the failed version = %v, want ErrDowngrade", err)
			}
			b.mustApply(3)
		})
	}
}

func TestUpdateWithoutMigrationsTakesNoSnapshot(t *testing.T) {
	b := newBox(t)
	b.oldDatabase()
	b.exec(fmt.Sprintf("PRAGMA user_version = %d", b.userVersion()+1)) // already current
	b.mustApply(2)
	b.reboot()
	if rep := b.boot(); rep.Trial == nil || rep.Trial.Snapshot != "" {
		t.Errorf("Boot = %+v, want a trial without a snapshot", rep)
	}
}

func TestUpdateRefusals(t *testing.T) {
	b := newBox(t)
	_, otherKey := testKey(t)
	good := makeBundle(t, b.priv, 5, board)
	cases := []struct {
		name   string
		bundle []byte
		want   error
	}{
		{"wrong board", makeBundle(t, b.priv, 5, "raspberrypi,5-model-b", "uefi-amd64"), update.ErrWrongBoard},
		{"untrusted key", makeBundle(t, otherKey, 5, board), update.ErrUntrustedKey},
		{"flipped byte", flip(t, good, "KERNEL"), update.ErrHashMismatch},
		{"truncated", good[:len(good)/2], update.ErrMalformed},
	}
	for _, c := range cases {
		_, err := b.m.Apply(context.Background(), bytes.NewReader(c.bundle))
		if !errors.Is(err, c.want) || !errors.Is(err, update.ErrRefused) {
			t.Errorf("%s: Apply = %v, want %v", c.name, err, c.want)
		}
		if b.l.armed != "" {
			t.Errorf("%s: a refused bundle armed slot %s", c.name, b.l.armed)
		}
	}
	if st := b.state(); st.Slots[slots.B].Status != update.SlotInvalid || st.Installed != 0 {
		t.Errorf("after a half-written slot the state is %+v, want slot b invalid, nothing installed", st)
	}

	b.mustApply(5)
	for _, v := range []uint64{5, 4} {
		if _, err := b.apply(v); !errors.Is(err, update.ErrDowngrade) {
			t.Errorf("Apply(v%d) after v5 = %v, want ErrDowngrade", v, err)
		}
	}
	// Armed but not booted: a newer bundle replaces it.
	b.mustApply(6)
	b.reboot()
	b.boot()
	if _, err := b.apply(7); !errors.Is(err, update.ErrTrialRunning) {
		t.Errorf("Apply during a trial = %v, want ErrTrialRunning", err)
	}
	if err := b.m.Rollback(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if err := b.m.Rollback(context.Background(), ""); !errors.Is(err, update.ErrNoTrial) {
		t.Errorf("a second Rollback = %v, want ErrNoTrial", err)
	}
	// Given up but not yet rebooted: the inactive slot is the way back and stays untouched.
	opened := b.l.opened
	if _, err := b.apply(7); !errors.Is(err, update.ErrTrialRunning) {
		t.Errorf("Apply after Rollback, before the reboot = %v, want ErrTrialRunning", err)
	}
	if b.l.opened != opened {
		t.Error("Apply after Rollback opened a slot")
	}
	b.reboot()
	b.boot()
	b.mustApply(7)
}

func TestUpdateStreamFailsMidway(t *testing.T) {
	b := newBox(t)
	good := makeBundle(t, b.priv, 2, board)
	cut := bytes.Index(good, []byte("INITRAMFS")) + 10
	_, err := b.m.Apply(context.Background(), io.MultiReader(bytes.NewReader(good[:cut]), errReader{}))
	if err == nil {
		t.Fatal("Apply of a failing stream succeeded")
	}
	if b.l.armed != "" || b.state().Slots[slots.B].Status != update.SlotInvalid {
		t.Errorf("after a failed stream: armed %q, state %+v", b.l.armed, b.state())
	}
	for _, name := range []string{"initramfs.img", "initramfs.img.partial"} {
		if _, err := os.Stat(filepath.Join(b.l.dirs[slots.B], name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed stream", name)
		}
	}
	// The same bundle, whole, goes in afterwards.
	b.mustApply(2)
}

func TestRebootArg(t *testing.T) {
	b := newBox(t)
	if arg, err := b.m.RebootArg(); arg != "" || err != nil {
		t.Errorf("RebootArg with nothing installed = %q, %v; want empty", arg, err)
	}
	b.mustApply(2)
	if arg, _ := b.m.RebootArg(); arg != "0 tryboot" {
		t.Errorf("RebootArg with a trial armed = %q", arg)
	}
	if !b.state().Trial.Rebooting {
		t.Error("RebootArg did not record the attempt")
	}
	// The trial boot never came up (the tryboot flag is gone by the next start): that is a
	// failure even though Boot never saw the trial.
	b.l.reboot("")
	if rep := b.boot(); rep.RolledBack == nil {
		t.Errorf("Boot after an attempted trial that never started = %+v, want a rollback", rep)
	}
}
