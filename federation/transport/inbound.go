package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

// DefaultMaxRequestBytes bounds an inbound request body: a transaction of 50 PDUs of at most
// 64 KiB each, plus EDUs, fits with room to spare.
const DefaultMaxRequestBytes = 16 << 20

// KeyLookup finds the public key a server signed with: the key serverName published as keyID
// and that was valid at time at. It returns an error if the key is unknown, expired at at, or
// cannot be fetched. federation/keys implements it with its persistent cache.
type KeyLookup interface {
	VerifyKey(ctx context.Context, serverName string, keyID id.KeyID, at time.Time) (ed25519.PublicKey, error)
}

// Verifier authenticates inbound federation requests by their X-Matrix Authorization headers.
// See https://spec.matrix.org/v1.19/server-server-api/#request-authentication
//
// A request passes if it carries at least one X-Matrix header, every one of them names the
// same valid origin, names this server as destination (or, as older servers do, none), uses an
// ed25519 key that Keys knows for the origin now, and signs this method, URI and body.
// Anything else is refused with 401 M_UNAUTHORIZED (a body over MaxBodyBytes with 413
// M_TOO_LARGE, a PUT or POST body that is not JSON with 400 M_NOT_JSON).
//
// Replays. X-Matrix signs no timestamp or nonce, and Fyr does not invent one that other
// servers would not send. What limits a replay:
//   - TLS: only the two servers and whoever terminates their TLS ever see a signed request.
//   - destination: a request signed for another server fails here, so one server cannot
//     replay what it received to a third.
//   - key validity: once the origin's key has expired or been revoked, Keys stops returning
//     it and every request signed with it is refused.
//   - idempotence where it matters: PUT /send/{txnId} is deduplicated per origin and
//     transaction ID by the inbound transaction handler, and join, leave, knock and invite
//     are keyed by event ID, so a replay changes nothing.
//
// A signed request cannot be refused for being seen before: a sender retrying after a lost
// answer sends byte-identical bytes with an identical signature (ed25519 is deterministic),
// and must get the same answer.
//
// The exported fields may be changed until the first request.
type Verifier struct {
	// ServerName is this server's name: the destination requests must be signed for.
	ServerName string
	Keys       KeyLookup
	// MaxBodyBytes bounds the request body; NewVerifier sets DefaultMaxRequestBytes.
	MaxBodyBytes int64
	// Now is the clock used to ask for keys valid now; NewVerifier sets time.Now.
	Now func() time.Time
	// Log receives one debug line per refused request.
	Log *slog.Logger
	// Authenticated, if set, is called with the origin of every request that passes: the
	// peer is alive, which the outbound queue and Client.PeerAlive want to know. It must not
	// block.
	Authenticated func(origin string)
}

// NewVerifier returns a verifier for requests to serverName, checking signatures with keys.
func NewVerifier(serverName string, keys KeyLookup) *Verifier {
	return &Verifier{
		ServerName:   serverName,
		Keys:         keys,
		MaxBodyBytes: DefaultMaxRequestBytes,
		Now:          time.Now,
		Log:          slog.New(slog.DiscardHandler),
	}
}

// authError is a refusal: status and errcode for the peer, cause for the log only.
type authError struct {
	status  int
	errcode string
	msg     string
	cause   error
}

func (e *authError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.msg, e.cause)
	}
	return e.msg
}

func unauthorized(msg string, cause error) *authError {
	return &authError{status: http.StatusUnauthorized, errcode: "M_UNAUTHORIZED", msg: msg, cause: cause}
}

// Authenticate wraps next so that it only sees authenticated requests, with the origin in the
// context (see Origin) and the body, already read, still readable.
func (v *Verifier) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin, err := v.Verify(r)
		if err != nil {
			var ae *authError
			if !errors.As(err, &ae) {
				ae = unauthorized("request not authenticated", err)
			}
			v.Log.Debug("federation request refused", "method", r.Method, "uri", r.RequestURI, "remote", r.RemoteAddr, "err", err)
			writeError(w, ae.status, ae.errcode, ae.msg)
			return
		}
		if v.Authenticated != nil {
			v.Authenticated(origin)
		}
		next.ServeHTTP(w, r.WithContext(WithOrigin(r.Context(), origin)))
	})
}

// Verify checks r's X-Matrix authorization and returns the origin. It reads the body and puts
// it back so that handlers can read it again.
func (v *Verifier) Verify(r *http.Request) (origin string, err error) {
	var auths []federation.XMatrixAuth
	for _, h := range r.Header.Values("Authorization") {
		scheme, _, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "X-Matrix") {
			continue
		}
		auth, err := ParseXMatrix(h)
		if err != nil {
			return "", unauthorized("malformed X-Matrix authorization", err)
		}
		auths = append(auths, auth)
	}
	if len(auths) == 0 {
		return "", unauthorized("missing X-Matrix authorization", nil)
	}
	origin = auths[0].Origin
	if _, _, ok := federation.ParseServerName(origin); !ok {
		return "", unauthorized("origin is not a server name", nil)
	}
	for _, a := range auths {
		switch {
		case a.Origin != origin:
			return "", unauthorized("X-Matrix headers name different origins", nil)
		case a.Destination != "" && a.Destination != v.ServerName:
			return "", unauthorized("destination is not this server", fmt.Errorf("destination %q", a.Destination))
		}
		if alg, _ := a.KeyID.Parse(); alg != id.KeyAlgorithmEd25519 {
			return "", unauthorized("unsupported key algorithm", fmt.Errorf("key %q", a.KeyID))
		}
	}

	content, err := v.readBody(r)
	if err != nil {
		return "", err
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI() // a request built in a test rather than read from the wire
	}
	now := v.Now()
	for _, a := range auths {
		pub, err := v.Keys.VerifyKey(r.Context(), origin, a.KeyID, now)
		if err != nil {
			return "", unauthorized("unknown or expired signing key", fmt.Errorf("%s key %s: %w", origin, a.KeyID, err))
		}
		if err := VerifyRequest(pub, a, v.ServerName, r.Method, uri, content); err != nil {
			return "", unauthorized("invalid signature", fmt.Errorf("%s key %s: %w", origin, a.KeyID, err))
		}
	}
	return origin, nil
}

// readBody reads and restores r's body and returns the signed content: the body of a PUT or
// POST, which must be JSON, or nil. Like Synapse, it ignores a body on other methods.
func (v *Verifier) readBody(r *http.Request) (json.RawMessage, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > v.MaxBodyBytes {
		return nil, &authError{status: http.StatusRequestEntityTooLarge, errcode: "M_TOO_LARGE", msg: "request body too large"}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, v.MaxBodyBytes+1))
	r.Body.Close()
	if err != nil {
		return nil, &authError{status: http.StatusBadRequest, errcode: "M_UNKNOWN", msg: "could not read request body", cause: err}
	}
	if int64(len(b)) > v.MaxBodyBytes {
		return nil, &authError{status: http.StatusRequestEntityTooLarge, errcode: "M_TOO_LARGE", msg: "request body too large"}
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	if r.Method != http.MethodPut && r.Method != http.MethodPost || len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, &authError{status: http.StatusBadRequest, errcode: "M_NOT_JSON", msg: "request body is not JSON"}
	}
	return b, nil
}

type originKey struct{}

// WithOrigin returns ctx carrying an authenticated origin server name, as Authenticate does;
// tests of handlers use it directly.
func WithOrigin(ctx context.Context, origin string) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

// Origin returns the server name that signed the request, or "" outside Authenticate.
func Origin(ctx context.Context) string {
	s, _ := ctx.Value(originKey{}).(string)
	return s
}

// writeError writes a Matrix JSON error.
func writeError(w http.ResponseWriter, status int, errcode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"errcode": errcode, "error": msg})
}
