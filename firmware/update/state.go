package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"fyr/firmware/slots"
	"fyr/storage/atomicfile"
)

// StateFile is the updater's record in its directory.
const StateFile = "state.json"

// Slot statuses in State.
const (
	// SlotGood: a blessed system (or the one the image shipped with).
	SlotGood = "good"
	// SlotInvalid: being written, or a write that did not finish; never booted.
	SlotInvalid = "invalid"
	// SlotTrial: written and verified; armed for, or running, its trial boot.
	SlotTrial = "trial"
	// SlotFailed: its trial failed and the box went back to the other slot.
	SlotFailed = "failed"
)

// State is what the updater remembers across boots, in <Dir>/state.json.
type State struct {
	// Installed is the highest version ever written to a slot here; a bundle must be newer.
	Installed uint64 `json:"installed"`
	// Slots records what each slot holds, when known.
	Slots map[slots.Slot]SlotState `json:"slots,omitempty"`
	// Trial is the update armed for or undergoing its trial boot; nil when there is none.
	Trial *Trial `json:"trial,omitempty"`
	// Last says how the last trial ended, for fyr update status.
	Last string `json:"last,omitempty"`
}

// SlotState is what one slot holds.
type SlotState struct {
	Version uint64 `json:"version,omitempty"`
	Label   string `json:"label,omitempty"`
	// Status is SlotGood, SlotInvalid, SlotTrial or SlotFailed.
	Status string `json:"status"`
}

// Trial is an installed update on its way to a bless or a rollback.
type Trial struct {
	// Slot holds the new system; From is the slot it replaces, the fallback.
	Slot    slots.Slot `json:"slot"`
	From    slots.Slot `json:"from"`
	Version uint64     `json:"version"`
	Label   string     `json:"label,omitempty"`
	// Installed is when Apply finished writing it.
	Installed time.Time `json:"installed"`
	// Rebooting: RebootArg was asked for, so the trial boot has been attempted.
	Rebooting bool `json:"rebooting,omitempty"`
	// Started: the trial slot has booted (Boot saw it); a return to From now means failure.
	Started bool `json:"started,omitempty"`
	// Snapshot is the database copy taken before the new version first migrated it; empty
	// when the new version had nothing to migrate.
	Snapshot string `json:"snapshot,omitempty"`
	// Abandoned says why Rollback gave the trial up; empty while it runs.
	Abandoned string `json:"abandoned,omitempty"`
}

// loadState reads dir's state; a missing file is the empty state.
func loadState(dir string) (*State, error) {
	st := &State{}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("update: %s: %w", filepath.Join(dir, StateFile), err)
	}
	return st, nil
}

// save writes the state atomically.
func (st *State) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, StateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("update: save state: %w", err)
	}
	return nil
}

func (st *State) setSlot(s slots.Slot, v SlotState) {
	if st.Slots == nil {
		st.Slots = make(map[slots.Slot]SlotState)
	}
	st.Slots[s] = v
}
