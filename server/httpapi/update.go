package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// Updater installs signed system bundles on a Fyr box. httpapi knows nothing of slots or
// signatures: cmd/fyr hands it firmware/update's, through Server.SetUpdater.
type Updater interface {
	// ApplyUpdate verifies the bundle streaming from r and installs it into the inactive
	// slot. A refusal of the bundle itself (signature, board, version, hash) wraps
	// ErrUpdateRefused; an update while another is on trial wraps ErrUpdateBusy.
	ApplyUpdate(ctx context.Context, r io.Reader) (UpdateResult, error)
	// MaxBundleBytes bounds an uploaded bundle; a larger one is refused with 413.
	MaxBundleBytes() int64
}

// UpdateResult is what an installed bundle holds, as POST /_fyr/admin/v1/update answers it.
type UpdateResult struct {
	Version uint64 `json:"version"`
	Label   string `json:"label,omitempty"`
	Slot    string `json:"slot"`
	KeyID   string `json:"key_id"`
	// RebootRequired is true: the new system runs after the next reboot.
	RebootRequired bool `json:"reboot_required"`
}

// Errors an Updater wraps.
var (
	ErrUpdateRefused = errors.New("update refused")
	ErrUpdateBusy    = errors.New("update busy")
)

// updater holds the Updater, set once the server is built.
type updater struct {
	u atomic.Pointer[Updater]
	// busy is set while one upload streams; a second is refused rather than queued.
	busy atomic.Bool
}

// SetUpdater enables POST /_fyr/admin/v1/update. It is safe to call while serving.
func (a *API) SetUpdater(u Updater) { a.updates.u.Store(&u) }

func (a *API) updateRoutes() {
	a.handle("POST /_fyr/admin/v1/update", a.authed(a.applyUpdate))
}

// applyUpdate is POST /_fyr/admin/v1/update: a server admin uploads a signed system bundle as
// the request body, which streams into the box's inactive slot.
func (a *API) applyUpdate(w http.ResponseWriter, r *http.Request) error {
	up := a.updates.u.Load()
	if up == nil {
		return errUnrecognized(404, "this server is not a Fyr box: it has no system slots to update")
	}
	if !caller(r).Admin {
		return errForbidden("only server admins may update the system")
	}
	limit := (*up).MaxBundleBytes()
	if r.ContentLength > limit {
		return newErr(413, "M_TOO_LARGE", "a bundle may be at most %d bytes", limit)
	}
	if !a.updates.busy.CompareAndSwap(false, true) {
		return newErr(409, "M_UNKNOWN", "another bundle is being uploaded")
	}
	defer a.updates.busy.Store(false)
	res, err := (*up).ApplyUpdate(r.Context(), http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return newErr(413, "M_TOO_LARGE", "a bundle may be at most %d bytes", limit)
	case errors.Is(err, ErrUpdateRefused):
		e := errInvalidParam(err.Error())
		e.Err = err
		return e
	case errors.Is(err, ErrUpdateBusy):
		e := newErr(409, "M_UNKNOWN", "%s", err.Error())
		e.Err = err
		return e
	case err != nil:
		return err
	}
	res.RebootRequired = true
	writeJSON(w, 200, res)
	return nil
}
