package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"fyr/server/accounts"
	"fyr/server/ephemeral"
	e2ee "fyr/server/keys"
	"fyr/server/media"
	"fyr/server/notices"
	"fyr/server/push"
	"fyr/server/reports"
	"fyr/server/rooms"
	"fyr/server/sync"
	"fyr/server/userdata"
	"fyr/storage"
)

// Error is a client-facing error: the spec's status and errcode, a message for the client,
// and an internal cause (Err) that only reaches the log.
type Error struct {
	Status int
	Code   string
	Msg    string
	Err    error          // logged, never sent
	Extra  map[string]any // extra response fields, e.g. soft_logout
	// RetryAfter, when set, is sent as the Retry-After header and retry_after_ms.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s %s: %v", e.Code, e.Msg, e.Err)
	}
	return e.Code + " " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// newErr builds an Error with a formatted message.
func newErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func errUnrecognized(status int, msg string) *Error {
	return newErr(status, "M_UNRECOGNIZED", "%s", msg)
}
func errNotJSON(msg string) *Error    { return newErr(http.StatusBadRequest, "M_NOT_JSON", "%s", msg) }
func errBadJSON(msg string) *Error    { return newErr(http.StatusBadRequest, "M_BAD_JSON", "%s", msg) }
func errMissingParam(p string) *Error { return newErr(400, "M_MISSING_PARAM", "missing %s", p) }
func errInvalidParam(msg string) *Error {
	return newErr(http.StatusBadRequest, "M_INVALID_PARAM", "%s", msg)
}
func errForbidden(msg string) *Error { return newErr(http.StatusForbidden, "M_FORBIDDEN", "%s", msg) }
func errNotFound(msg string) *Error  { return newErr(http.StatusNotFound, "M_NOT_FOUND", "%s", msg) }

// engineErrors maps the engine packages' sentinels to the spec's errors.
var engineErrors = []struct {
	err    error
	status int
	code   string
}{
	{accounts.ErrInvalidUsername, 400, "M_INVALID_USERNAME"},
	{accounts.ErrUserInUse, 400, "M_USER_IN_USE"},
	{accounts.ErrForbidden, 403, "M_FORBIDDEN"},
	{accounts.ErrWrongUser, 403, "M_FORBIDDEN"},
	{accounts.ErrUnknownToken, 401, "M_UNKNOWN_TOKEN"},
	{accounts.ErrPasswordTooLong, 400, "M_INVALID_PARAM"},
	{accounts.ErrInvalidRegToken, 401, "M_FORBIDDEN"},
	{accounts.ErrUnknownSession, 400, "M_UNKNOWN"},
	{accounts.ErrNotFound, 404, "M_NOT_FOUND"},
	{accounts.ErrNotLocal, 400, "M_INVALID_PARAM"},
	{accounts.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{accounts.ErrProfileTooLarge, 400, "M_PROFILE_TOO_LARGE"},
	{accounts.ErrKeyTooLarge, 400, "M_KEY_TOO_LARGE"},
	{accounts.ErrSharedSecretUnset, 400, "M_UNKNOWN"},
	{accounts.ErrRemoteUnavailable, 502, "M_UNKNOWN"},
	{storage.ErrClosed, 503, "M_UNKNOWN"},

	{media.ErrNotFound, 404, "M_NOT_FOUND"},
	{media.ErrTooLarge, 413, "M_TOO_LARGE"},
	{media.ErrImageTooLarge, 413, "M_TOO_LARGE"},
	{media.ErrQuotaExceeded, 403, "M_FORBIDDEN"},
	{media.ErrTooManyPending, 429, "M_LIMIT_EXCEEDED"},
	{media.ErrNotYetUploaded, 504, "M_NOT_YET_UPLOADED"},
	{media.ErrCannotOverwrite, 409, "M_CANNOT_OVERWRITE_MEDIA"},
	{media.ErrNotOwner, 403, "M_FORBIDDEN"},
	{media.ErrCannotThumbnail, 400, "M_UNKNOWN"},
	{media.ErrInvalidThumbSize, 400, "M_INVALID_PARAM"},
	{media.ErrPreviewURL, 400, "M_INVALID_PARAM"},
	{media.ErrPreviewBlocked, 403, "M_FORBIDDEN"},
	{media.ErrPreviewFetch, 502, "M_UNKNOWN"},
	{media.ErrRemoteTooLarge, 502, "M_TOO_LARGE"},
	{media.ErrRemoteFailed, 502, "M_UNKNOWN"},
	{media.ErrRemoteTimeout, 504, "M_UNKNOWN"},

	{rooms.ErrNotFound, 404, "M_NOT_FOUND"},
	{rooms.ErrForbidden, 403, "M_FORBIDDEN"},
	{rooms.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{rooms.ErrBadJSON, 400, "M_BAD_JSON"},
	{rooms.ErrTooLarge, 413, "M_TOO_LARGE"},
	{rooms.ErrUnsupportedVersion, 400, "M_UNSUPPORTED_ROOM_VERSION"},
	{rooms.ErrRoomInUse, 400, "M_ROOM_IN_USE"},
	{rooms.ErrBadAlias, 400, "M_BAD_ALIAS"},
	{rooms.ErrAliasExists, 409, "M_UNKNOWN"},
	{rooms.ErrRemote, 502, "M_UNKNOWN"},
	{rooms.ErrLimitExceeded, 429, "M_LIMIT_EXCEEDED"},
	{rooms.ErrStillMember, 400, "M_UNKNOWN"},
	{userdata.ErrNotFound, 404, "M_NOT_FOUND"},
	{userdata.ErrServerManaged, 405, "M_BAD_JSON"},
	{userdata.ErrTooLarge, 413, "M_TOO_LARGE"},
	{userdata.ErrInvalidRoomID, 400, "M_INVALID_PARAM"},
	{userdata.ErrUnknownRoom, 404, "M_NOT_FOUND"},
	{userdata.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{userdata.ErrBadJSON, 400, "M_BAD_JSON"},
	{userdata.ErrPresenceHidden, 403, "M_FORBIDDEN"},

	{ephemeral.ErrNotFound, 404, "M_NOT_FOUND"},
	{ephemeral.ErrForbidden, 403, "M_FORBIDDEN"},
	{ephemeral.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{ephemeral.ErrUnavailable, 500, "M_UNKNOWN"},
	{reports.ErrNotFound, 404, "M_NOT_FOUND"},
	{reports.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{rooms.ErrDuplicateAnnotation, 400, "M_DUPLICATE_ANNOTATION"},
	{rooms.ErrBadRelation, 400, "M_UNKNOWN"},
	{e2ee.ErrBadJSON, 400, "M_BAD_JSON"},
	{e2ee.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{e2ee.ErrMissingParam, 400, "M_MISSING_PARAM"},
	{e2ee.ErrInvalidSignature, 400, "M_INVALID_SIGNATURE"},
	{e2ee.ErrForbidden, 403, "M_FORBIDDEN"},
	{e2ee.ErrNotFound, 404, "M_NOT_FOUND"},
	{sync.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{sync.ErrNotJSON, 400, "M_NOT_JSON"},
	{sync.ErrBadFilter, 400, "M_BAD_JSON"},
	{push.ErrNotFound, 404, "M_NOT_FOUND"},
	{push.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{push.ErrBadJSON, 400, "M_BAD_JSON"},
	{push.ErrMissingParam, 400, "M_MISSING_PARAM"},
	{push.ErrRelativeNotFound, 400, "M_UNKNOWN"},
	{notices.ErrNotLocal, 400, "M_UNKNOWN"},
	{notices.ErrUnknownUser, 404, "M_NOT_FOUND"},
	{notices.ErrInvalidParam, 400, "M_INVALID_PARAM"},
	{notices.ErrBadJSON, 400, "M_BAD_JSON"},
	{notices.ErrTooLarge, 413, "M_TOO_LARGE"},
	{notices.ErrCannotReject, 403, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"},
	{accounts.ErrSystemLocalpart, 500, "M_UNKNOWN"},
}

// asAPIError turns any error into the Error the client sees. Unknown errors become
// 500 M_UNKNOWN with no detail.
func asAPIError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range engineErrors {
		if errors.Is(err, m.err) {
			return &Error{Status: m.status, Code: m.code, Msg: clientMessage(err), Err: err}
		}
	}
	return &Error{Status: 500, Code: "M_UNKNOWN", Msg: "internal server error", Err: err}
}

// clientMessage strips the engine package's prefix ("accounts: ") for the client.
func clientMessage(err error) string {
	msg := err.Error()
	// Engine packages prefix their errors with their name ("rooms: "); clients do not need it.
	if name, rest, ok := strings.Cut(msg, ": "); ok && isEngineName(name) {
		return rest
	}
	return msg
}

// isEngineName says whether s looks like an engine package's error prefix.
func isEngineName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// writeError sends err as a spec error response; a *accounts.Challenge becomes the 401
// user-interactive auth body.
func writeError(w http.ResponseWriter, err error) *Error {
	var ch *accounts.Challenge
	if errors.As(err, &ch) {
		body := map[string]any{"flows": flowsJSON(ch.Flows), "params": ch.Params, "session": ch.Session}
		if len(ch.Completed) > 0 {
			body["completed"] = ch.Completed
		}
		e := &Error{Status: 401, Code: "", Msg: "", Err: ch}
		if ch.Err != nil {
			ae := asAPIError(ch.Err)
			body["errcode"], body["error"] = ae.Code, ae.Msg
			e.Code, e.Msg = ae.Code, ae.Msg
		}
		writeJSON(w, 401, body)
		return e
	}
	e := asAPIError(err)
	body := map[string]any{"errcode": e.Code, "error": e.Msg}
	for k, v := range e.Extra {
		body[k] = v
	}
	if e.RetryAfter > 0 {
		ms := e.RetryAfter.Milliseconds()
		body["retry_after_ms"] = ms
		w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
	}
	writeJSON(w, e.Status, body)
	return e
}

func flowsJSON(flows accounts.Flows) []map[string][]string {
	out := make([]map[string][]string, len(flows))
	for i, f := range flows {
		out[i] = map[string][]string{"stages": f}
	}
	return out
}
