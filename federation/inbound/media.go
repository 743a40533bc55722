package inbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"fyr/federation/transport"
	"fyr/server/media"
)

// Media serves this server's own media to other servers: the authenticated content
// repository endpoints of spec v1.11. Only media uploaded here is served, never cached copies
// of other servers' media, and quarantined or unknown media is 404 M_NOT_FOUND. Every route
// needs transport.Verifier in front of it.
//
// The answer is multipart/mixed: a JSON part ({}), then the content itself (this server
// never answers with a Location).
//
// See https://spec.matrix.org/v1.19/server-server-api/#content-repository
type Media struct {
	Repo *media.Service
	// ServerName is this server's name: the origin of the media served.
	ServerName string
	Log        *slog.Logger
}

// defaultMediaWait is the spec's default timeout_ms for content not uploaded yet.
const defaultMediaWait = 20 * time.Second

// Routes registers the endpoints on mux, each behind authenticate.
func (h *Media) Routes(mux *http.ServeMux, authenticate func(http.Handler) http.Handler) {
	route := func(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				h.fail(w, r, err)
			}
		})))
	}
	const v1 = "/_matrix/federation/v1"
	route("GET "+v1+"/media/download/{mediaID}", h.download)
	route("GET "+v1+"/media/thumbnail/{mediaID}", h.thumbnail)
}

// download is GET /media/download/{mediaId}.
func (h *Media) download(w http.ResponseWriter, r *http.Request) error {
	wait, err := mediaWait(r)
	if err != nil {
		return err
	}
	c, err := h.Repo.Open(r.Context(), h.ServerName, r.PathValue("mediaID"), wait)
	if err != nil {
		return err
	}
	defer c.File.Close()
	return writeMultipart(w, c, c.Meta.Filename)
}

// thumbnail is GET /media/thumbnail/{mediaId}?width=&height=&method=&animated=&timeout_ms=.
// Thumbnails are never animated here, which the spec allows whatever animated says.
func (h *Media) thumbnail(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("width") == "" || q.Get("height") == "" {
		return paramError{"M_MISSING_PARAM", "width and height are required"}
	}
	width, err1 := strconv.Atoi(q.Get("width"))
	height, err2 := strconv.Atoi(q.Get("height"))
	if err1 != nil || err2 != nil {
		return paramError{"M_INVALID_PARAM", "width and height must be integers"}
	}
	method := q.Get("method")
	if method == "" {
		method = media.MethodScale
	}
	if a := q.Get("animated"); a != "" && a != "true" && a != "false" {
		return paramError{"M_INVALID_PARAM", "animated must be true or false"}
	}
	wait, err := mediaWait(r)
	if err != nil {
		return err
	}
	c, err := h.Repo.Thumbnail(r.Context(), media.ThumbnailRequest{Origin: h.ServerName, MediaID: r.PathValue("mediaID"),
		Width: width, Height: height, Method: method, Wait: wait})
	if err != nil {
		return err
	}
	defer c.File.Close()
	return writeMultipart(w, c, "")
}

// mediaWait reads timeout_ms: how long to wait for content not uploaded yet.
func mediaWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("timeout_ms")
	if v == "" {
		return defaultMediaWait, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, paramError{"M_INVALID_PARAM", "timeout_ms must be a non-negative integer"}
	}
	return time.Duration(min(ms, int64(media.MaxWait/time.Millisecond))) * time.Millisecond, nil
}

// writeMultipart answers with the metadata part and the content part. The framing is built
// first so that the answer has a Content-Length, which lets the receiver refuse content too
// large for it before reading any.
func writeMultipart(w http.ResponseWriter, c *media.Content, filename string) error {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	io.WriteString(meta, "{}")
	if _, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":        {c.Meta.ContentType},
		"Content-Disposition": {media.Disposition(c.Meta.ContentType, filename)},
	}); err != nil {
		return err
	}
	head := bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return err
	}
	tail := buf.Bytes()

	h := w.Header()
	h.Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	h.Set("Content-Length", strconv.FormatInt(int64(len(head))+c.Meta.Size+int64(len(tail)), 10))
	w.WriteHeader(http.StatusOK)
	w.Write(head)
	if _, err := io.CopyN(w, c.File, c.Meta.Size); err != nil {
		// Headers are sent: all that is left is to cut the answer short, which the receiver
		// notices by the missing bytes and closing delimiter.
		panic(http.ErrAbortHandler)
	}
	w.Write(tail)
	return nil
}

// paramError is a refused request parameter.
type paramError struct{ code, msg string }

func (e paramError) Error() string { return e.msg }

// mediaErrors are the spec's answers to the content repository's errors.
var mediaErrors = []struct {
	err    error
	status int
	code   string
}{
	{media.ErrNotFound, 404, "M_NOT_FOUND"},
	{media.ErrNotYetUploaded, 504, "M_NOT_YET_UPLOADED"},
	{media.ErrInvalidThumbSize, 400, "M_INVALID_PARAM"},
	{media.ErrCannotThumbnail, 400, "M_UNKNOWN"},
	{media.ErrImageTooLarge, 413, "M_TOO_LARGE"},
}

func (h *Media) fail(w http.ResponseWriter, r *http.Request, err error) {
	var pe paramError
	if errors.As(err, &pe) {
		writeError(w, 400, pe.code, pe.msg)
		return
	}
	for _, m := range mediaErrors {
		if errors.Is(err, m.err) {
			writeError(w, m.status, m.code, strings.TrimPrefix(err.Error(), "media: "))
			return
		}
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the requester went away
	}
	h.Log.Error("federation media request failed", "path", r.URL.Path, "origin", transport.Origin(r.Context()), "err", err)
	writeError(w, 500, "M_UNKNOWN", "internal server error")
}
