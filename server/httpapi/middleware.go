package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// requestInfo travels in the request context so the log line can say who asked and what
// went wrong.
type requestInfo struct {
	id   string
	user string
	err  *Error
	// quiet lowers a successful request's log line to debug (health probes).
	quiet bool
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// statusWriter remembers the status code for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware wraps every request: CORS (and OPTIONS preflights), a request ID, panic
// recovery, and one log line with the duration. The query string is never logged: it may
// carry an access token.
func (a *API) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := rw.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if r.Method == http.MethodOptions {
			// The spec: answer preflights for any path, and run no endpoint logic.
			rw.WriteHeader(http.StatusOK)
			return
		}
		info := &requestInfo{id: newRequestID()}
		w := &statusWriter{ResponseWriter: rw}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("handler panicked", "request_id", info.id, "method", r.Method, "path", r.URL.Path,
					"panic", p, "stack", string(debug.Stack()))
				if w.status == 0 {
					info.err = writeError(w, &Error{Status: 500, Code: "M_UNKNOWN", Msg: "internal server error (request " + info.id + ")"})
				}
			}
			a.logRequest(r, w, info, time.Since(start))
		}()
		next.ServeHTTP(w, r)
	})
}

func (a *API) logRequest(r *http.Request, w *statusWriter, info *requestInfo, d time.Duration) {
	level := slog.LevelInfo
	if info.quiet {
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", w.status),
		slog.Duration("duration", d),
		slog.String("client", clientIP(r)),
	}
	if info.user != "" {
		attrs = append(attrs, slog.String("user", info.user))
	}
	if e := info.err; e != nil {
		attrs = append(attrs, slog.String("errcode", e.Code))
		if e.Status >= 500 {
			level = slog.LevelError
			if e.Err != nil {
				attrs = append(attrs, slog.String("cause", e.Err.Error()))
			}
		}
	}
	a.log.LogAttrs(context.Background(), level, "request", attrs...)
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// clientIP is the address rate limits and device records use: the TCP peer.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
