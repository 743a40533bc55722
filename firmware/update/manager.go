package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"fyr/firmware/slots"
	"fyr/storage"
)

// Manager runs updates on one box. Its fields may be changed until the first method call;
// its methods are safe for concurrent use, and an exclusive lock on Dir keeps two processes
// from interleaving.
type Manager struct {
	// Dir holds state.json and database snapshots, e.g. <data dir>/update. Required.
	Dir string
	// Board is this box's board identifier (see Board); a bundle must list it. Required.
	Board string
	// Keys are the trusted signing keys. Required.
	Keys *Keyring
	// Loader is the platform's boot loader. Required.
	Loader slots.Bootloader
	// DB is the homeserver's database file, snapshotted before a new version migrates it.
	// Empty: no snapshots.
	DB string
	// Now tells the time. Nil: time.Now.
	Now func() time.Time
	// Log receives progress. Nil: slog.Default().
	Log *slog.Logger

	mu sync.Mutex
}

// Installed is what Apply wrote.
type Installed struct {
	Manifest *Manifest
	// KeyID names the key that signed the bundle.
	KeyID string
	// Slot now holds the new system, armed for a trial boot.
	Slot slots.Slot
}

// Report is what Boot found.
type Report struct {
	// Status is the boot loader's view of this boot.
	Status slots.Status
	// Trial is set while this boot is a trial: the supervisor must Bless it once the
	// homeserver has stayed healthy, or Rollback it.
	Trial *Trial
	// RolledBack is set when this boot found a failed trial and undid it (database restored).
	RolledBack *Trial
	// RebootNow: Boot gave up the trial it found (the database could not be snapshotted);
	// reboot, without starting the homeserver, to return to the old slot.
	RebootNow bool
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

// begin takes the locks and reads the state and the boot status.
func (m *Manager) begin() (st *State, bs slots.Status, unlock func(), err error) {
	if m.Dir == "" || m.Board == "" || m.Keys == nil || m.Loader == nil {
		return nil, bs, nil, errors.New("update: Manager needs Dir, Board, Keys and Loader")
	}
	m.mu.Lock()
	release, err := lockDir(m.Dir)
	if err != nil {
		m.mu.Unlock()
		return nil, bs, nil, err
	}
	unlock = func() { release(); m.mu.Unlock() }
	if st, err = loadState(m.Dir); err == nil {
		bs, err = m.Loader.Status()
	}
	if err != nil {
		unlock()
		return nil, bs, nil, err
	}
	return st, bs, unlock, nil
}

// Apply verifies the bundle streaming from r and writes it into the inactive slot, then
// arms that slot's trial boot (see RebootArg). Refusals match ErrRefused and leave the
// running system alone; a bundle that fails part way leaves the inactive slot marked invalid
// and out of the boot rotation. During a trial it returns ErrTrialRunning.
func (m *Manager) Apply(ctx context.Context, r io.Reader) (*Installed, error) {
	st, bs, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if bs.Trial {
		return nil, ErrTrialRunning
	}
	if t := st.Trial; t != nil && t.Started && bs.Booted == t.Slot {
		// A trial given up but not yet rebooted away from: the inactive slot is the one to
		// return to, and must not be overwritten.
		return nil, fmt.Errorf("%w: it was given up (%s); reboot to return to slot %s first", ErrTrialRunning, t.Abandoned, t.From)
	}
	br, err := Open(r, m.Keys)
	if err != nil {
		return nil, err
	}
	man := br.Manifest
	if !man.Supports(m.Board) {
		return nil, fmt.Errorf("%w: it lists %q, this box is %q", ErrWrongBoard, man.Boards, m.Board)
	}
	if man.Version <= st.Installed {
		return nil, fmt.Errorf("%w: %s, and this box has installed version %d", ErrDowngrade, man.Name(), st.Installed)
	}
	target := bs.Booted.Other()
	if _, ok := st.Slots[bs.Booted]; !ok {
		st.setSlot(bs.Booted, SlotState{Status: SlotGood})
	}
	st.Trial = nil // an armed trial that never booted is superseded
	st.setSlot(target, SlotState{Status: SlotInvalid})
	if err := st.save(m.Dir); err != nil {
		return nil, err
	}
	m.log().Info("update: writing the inactive slot", "slot", target, "version", man.Version, "label", man.Label,
		"bytes", man.Size(), "key", br.KeyID)
	dir, release, err := m.Loader.OpenSlot(target)
	if err != nil {
		return nil, err
	}
	err = install(dir, br)
	if rerr := release(); err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.Loader.TryNext(target, slots.Entry{Version: man.Version, Label: man.Label}); err != nil {
		return nil, err
	}
	st.Installed = man.Version
	st.setSlot(target, SlotState{Version: man.Version, Label: man.Label, Status: SlotTrial})
	st.Trial = &Trial{Slot: target, From: bs.Booted, Version: man.Version, Label: man.Label, Installed: m.now().UTC()}
	if err := st.save(m.Dir); err != nil {
		return nil, err
	}
	m.log().Info("update: installed; the next reboot tries it", "slot", target, "version", man.Version)
	return &Installed{Manifest: man, KeyID: br.KeyID, Slot: target}, nil
}

// RebootArg returns what the reboot about to happen must pass to reboot(2)
// (slots.Reboot): the boot loader's trial argument while a trial is armed and not yet
// booted, else "". Asking records that the trial boot is being attempted, so that coming
// back up on the old slot counts as a failed trial. Call it right before every reboot.
func (m *Manager) RebootArg() (string, error) {
	st, _, unlock, err := m.begin()
	if err != nil {
		return "", err
	}
	defer unlock()
	t := st.Trial
	if t == nil || t.Started || t.Abandoned != "" {
		return "", nil
	}
	if !t.Rebooting {
		t.Rebooting = true
		if err := st.save(m.Dir); err != nil {
			return "", err
		}
	}
	return m.Loader.RebootArg(), nil
}

// Boot does the updater's work at the start of every boot, before the homeserver opens its
// database; it is idempotent, so more than one caller may run it.
//
//   - On a trial's first boot it snapshots the database (VACUUM INTO) if this version will
//     migrate it. If that fails, it gives the trial up and asks for a reboot.
//   - Back on the old slot after a trial boot, it restores that snapshot and records the
//     trial as failed.
//   - On the trial slot after the boot loader already made it the default, it finishes the
//     Bless whose bookkeeping was cut short.
func (m *Manager) Boot(ctx context.Context) (*Report, error) {
	st, bs, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	rep := &Report{Status: bs}
	t := st.Trial
	switch {
	case t == nil && bs.Trial:
		// A trial the state does not know (its record was lost): still bless or roll it back.
		st.Trial = &Trial{Slot: bs.Booted, From: bs.Booted.Other(), Started: true}
		rep.Trial = st.Trial
		return rep, st.save(m.Dir)
	case t == nil:
		return rep, nil
	case bs.Booted == t.Slot && bs.Trial:
		rep.Trial = t
		if t.Started {
			return rep, nil
		}
		t.Started = true
		if err := m.snapshot(ctx, t); err != nil {
			m.log().Error("update: cannot snapshot the database before the new version migrates it; giving the trial up", "err", err)
			if aerr := m.Loader.Abandon(); aerr != nil {
				return nil, errors.Join(err, aerr)
			}
			t.Abandoned = "database snapshot failed: " + err.Error()
			rep.RebootNow = true
		}
		return rep, st.save(m.Dir)
	case bs.Booted == t.Slot:
		m.log().Info("update: the boot loader already runs the new slot by default; finishing its bless", "slot", t.Slot)
		return rep, m.finishBless(st, bs.Booted)
	case t.Started || t.Rebooting || t.Abandoned != "":
		if err := m.rollBack(ctx, st); err != nil {
			return nil, err
		}
		rep.RolledBack = t
		return rep, nil
	}
	return rep, nil // armed, not yet tried
}

// snapshot copies the database before its first migration by this version.
func (m *Manager) snapshot(ctx context.Context, t *Trial) error {
	if m.DB == "" {
		return nil
	}
	if _, err := os.Stat(m.DB); errors.Is(err, os.ErrNotExist) {
		return nil // a box with no database yet has nothing to lose
	}
	n, err := storage.PendingMigrations(ctx, m.DB)
	if err != nil || n == 0 {
		return err
	}
	path := filepath.Join(m.Dir, fmt.Sprintf("pre-%d.db", t.Version))
	os.Remove(path) // left by an earlier attempt that did not record it
	if err := storage.Snapshot(ctx, m.DB, path); err != nil {
		return err
	}
	t.Snapshot = path
	m.log().Info("update: database snapshot taken before migrating", "pending_migrations", n, "snapshot", path)
	return nil
}

// rollBack undoes a failed trial on the old slot: the database goes back to its snapshot.
func (m *Manager) rollBack(ctx context.Context, st *State) error {
	t := st.Trial
	why := t.Abandoned
	if why == "" {
		why = "the box came back up on the old slot"
	}
	if t.Snapshot != "" && m.DB != "" {
		if err := storage.RestoreSnapshot(ctx, t.Snapshot, m.DB); err != nil {
			return fmt.Errorf("update: restore the database from before the failed trial: %w", err)
		}
		os.Remove(t.Snapshot)
		m.log().Warn("update: database restored from before the failed version migrated it", "snapshot", t.Snapshot)
	}
	st.setSlot(t.Slot, SlotState{Version: t.Version, Label: t.Label, Status: SlotFailed})
	st.Last = fmt.Sprintf("version %d failed its trial (%s) and was rolled back", t.Version, why)
	st.Trial = nil
	m.log().Warn("update: "+st.Last, "slot", t.Slot)
	return st.save(m.Dir)
}

// Bless keeps the running trial slot: every later boot starts it, and the database snapshot
// is dropped. ErrNoTrial outside a trial.
func (m *Manager) Bless(ctx context.Context) error {
	st, bs, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	if !bs.Trial {
		return ErrNoTrial
	}
	if st.Trial != nil && st.Trial.Abandoned != "" {
		return fmt.Errorf("update: the trial was given up (%s); reboot to return to the old slot", st.Trial.Abandoned)
	}
	if err := m.Loader.Bless(); err != nil {
		return err
	}
	return m.finishBless(st, bs.Booted)
}

func (m *Manager) finishBless(st *State, booted slots.Slot) error {
	t := st.Trial
	if t == nil {
		t = &Trial{Slot: booted}
	}
	if t.Snapshot != "" {
		os.Remove(t.Snapshot)
	}
	v := st.Slots[booted]
	if t.Version != 0 {
		v.Version, v.Label = t.Version, t.Label
	}
	v.Status = SlotGood
	st.setSlot(booted, v)
	st.Last = fmt.Sprintf("version %d blessed %s", v.Version, m.now().UTC().Format(time.RFC3339))
	st.Trial = nil
	m.log().Info("update: new slot blessed", "slot", booted, "version", v.Version)
	return st.save(m.Dir)
}

// Rollback gives up the running trial, saying why: the boot loader is told to return to the
// old slot, and the next Boot there restores the database. The caller reboots next (with
// RebootArg, which is now ""). ErrNoTrial outside a trial.
func (m *Manager) Rollback(ctx context.Context, reason string) error {
	st, bs, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	if !bs.Trial {
		return ErrNoTrial
	}
	if err := m.Loader.Abandon(); err != nil {
		return err
	}
	if st.Trial == nil {
		st.Trial = &Trial{Slot: bs.Booted, From: bs.Booted.Other(), Started: true}
	}
	if reason == "" {
		reason = "rolled back"
	}
	st.Trial.Abandoned = reason
	m.log().Warn("update: giving the trial up; reboot to return to the old slot", "slot", bs.Booted, "reason", reason)
	return st.save(m.Dir)
}

// Status returns the updater's state and the boot loader's view of this boot.
func (m *Manager) Status(ctx context.Context) (*State, slots.Status, error) {
	st, bs, unlock, err := m.begin()
	if err != nil {
		return nil, bs, err
	}
	unlock()
	return st, bs, nil
}
