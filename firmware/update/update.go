// Package update installs signed system bundles into the inactive A/B slot of a Fyr box and
// carries each one through its trial boot to a bless or a rollback.
//
// A bundle is a tar stream: manifest.json (board compatibility, a version that only ever
// increases, and the payload files with their sizes and SHA-256), then manifest.sig (an
// ed25519 signature over the manifest's exact bytes, naming the key), then the files in
// manifest order. The signature is checked before any payload byte is read; each file is
// hashed while it streams into the slot; the slot is armed for a trial boot only when every
// hash matched, and until then it stays out of the boot rotation and marked invalid.
//
// The steps, each its own method of Manager:
//
//	Apply      verify and write a bundle into the inactive slot, arm its trial boot
//	RebootArg  the reboot(2) argument the next reboot needs (records that the trial is tried)
//	Boot       at every boot, before the homeserver opens its database: start the trial's
//	           bookkeeping and snapshot the database (VACUUM INTO) before the new version
//	           migrates it, or, back on the old slot after a failed trial, restore that snapshot
//	Bless      the homeserver stayed healthy: keep the new slot
//	Rollback   the homeserver crash-loops: give the trial up; reboot to return to the old slot
//
// It is not for deciding when the homeserver is healthy, nor for rebooting: the supervisor
// does both (see firmware/doc.go).
package update

import "errors"

// ErrRefused is what every refusal of a bundle matches with errors.Is: the bundle is not
// installed and the box is unchanged, apart from an inactive slot left marked invalid.
var ErrRefused = errors.New("update: bundle refused")

// Refusals, each matching ErrRefused too.
var (
	ErrMalformed    error = refusal("update: not a well-formed Fyr bundle")
	ErrUntrustedKey error = refusal("update: the bundle is signed by a key this box does not trust")
	ErrBadSignature error = refusal("update: the manifest's signature does not verify")
	ErrWrongBoard   error = refusal("update: the bundle is not built for this board")
	ErrDowngrade    error = refusal("update: the bundle is not newer than the installed version")
	ErrHashMismatch error = refusal("update: a file differs from the manifest")
)

// Errors about the box's state rather than the bundle.
var (
	// ErrTrialRunning: a new bundle while the last one is still on trial; bless or roll back
	// first.
	ErrTrialRunning = errors.New("update: a trial boot is running; it must be blessed or rolled back before the next update")
	// ErrNoTrial: Bless or Rollback when no trial is running.
	ErrNoTrial = errors.New("update: no trial is running")
)

// refusal is an error that also matches ErrRefused.
type refusal string

func (r refusal) Error() string        { return string(r) }
func (r refusal) Is(target error) bool { return target == ErrRefused }
