package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"fyr/server/media"
)

// defaultMediaWait is the spec's default timeout_ms for content not yet uploaded.
const defaultMediaWait = 20 * time.Second

// limitUploads applies the per-user upload rate limit.
func (a *API) limitUploads(r *http.Request) error {
	m := a.cfg.Load().Media
	if ok, wait := a.limits.allow("upload:"+string(caller(r).UserID), m.UploadsPerSec, m.UploadBurst); !ok {
		e := newErr(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "too many uploads; retry later")
		e.RetryAfter = wait
		return e
	}
	return nil
}

// mediaUpload reads the upload's description from the request; the body streams to disk.
func (a *API) mediaUpload(r *http.Request) (media.Upload, error) {
	if limit := a.cfg.Load().Media.MaxUploadBytes; r.ContentLength > limit {
		return media.Upload{}, newErr(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "the upload is larger than the limit of %d bytes", limit)
	}
	if err := a.limitUploads(r); err != nil {
		return media.Upload{}, err
	}
	return media.Upload{
		Uploader:    caller(r).Localpart,
		ContentType: r.Header.Get("Content-Type"),
		Filename:    r.URL.Query().Get("filename"),
		Body:        r.Body,
	}, nil
}

// upload is POST /_matrix/media/v3/upload.
func (a *API) upload(w http.ResponseWriter, r *http.Request) error {
	u, err := a.mediaUpload(r)
	if err != nil {
		return err
	}
	uri, err := a.media.Upload(r.Context(), u)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]string{"content_uri": uri.String()})
	return nil
}

// createMedia is POST /_matrix/media/v1/create: reserve an mxc:// URI for a later upload.
func (a *API) createMedia(w http.ResponseWriter, r *http.Request) error {
	if err := a.limitUploads(r); err != nil {
		return err
	}
	uri, expires, err := a.media.Create(r.Context(), caller(r).Localpart)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"content_uri": uri.String(), "unused_expires_at": expires})
	return nil
}

// uploadTo is PUT /_matrix/media/v3/upload/{serverName}/{mediaID}.
func (a *API) uploadTo(w http.ResponseWriter, r *http.Request) error {
	u, err := a.mediaUpload(r)
	if err != nil {
		return err
	}
	if err := a.media.UploadTo(r.Context(), r.PathValue("serverName"), r.PathValue("mediaID"), u); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// mediaConfig is GET /_matrix/client/v1/media/config.
func (a *API) mediaConfig(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, 200, map[string]int64{"m.upload.size": a.cfg.Load().Media.MaxUploadBytes})
	return nil
}

// mediaWait reads timeout_ms.
func mediaWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("timeout_ms")
	if v == "" {
		return defaultMediaWait, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, errInvalidParam("timeout_ms must be a non-negative integer")
	}
	return time.Duration(min(ms, int64(media.MaxWait/time.Millisecond))) * time.Millisecond, nil
}

// download is GET /_matrix/client/v1/media/download/{serverName}/{mediaID}[/{fileName}].
func (a *API) download(w http.ResponseWriter, r *http.Request) error {
	wait, err := mediaWait(r)
	if err != nil {
		return err
	}
	c, err := a.media.Open(r.Context(), r.PathValue("serverName"), r.PathValue("mediaID"), wait)
	if err != nil {
		return err
	}
	defer c.File.Close()
	name := c.Meta.Filename
	if n := r.PathValue("fileName"); n != "" {
		name = n
	}
	serveContent(w, r, c, name)
	return nil
}

// thumbnail is GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaID}.
func (a *API) thumbnail(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	width, err1 := strconv.Atoi(q.Get("width"))
	height, err2 := strconv.Atoi(q.Get("height"))
	if err1 != nil || err2 != nil {
		return errInvalidParam("width and height must be integers")
	}
	method := q.Get("method")
	if method == "" {
		method = media.MethodScale
	}
	wait, err := mediaWait(r)
	if err != nil {
		return err
	}
	c, err := a.media.Thumbnail(r.Context(), media.ThumbnailRequest{
		Origin: r.PathValue("serverName"), MediaID: r.PathValue("mediaID"),
		Width: width, Height: height, Method: method, Wait: wait,
	})
	if err != nil {
		return err
	}
	defer c.File.Close()
	serveContent(w, r, c, c.Meta.Filename)
	return nil
}

// previewURL is GET /_matrix/client/v1/media/preview_url?url=…
func (a *API) previewURL(w http.ResponseWriter, r *http.Request) error {
	if !a.cfg.Load().Media.URLPreviews {
		return errUnrecognized(404, "URL previews are disabled on this server")
	}
	if err := a.limitUploads(r); err != nil {
		return err
	}
	target := r.URL.Query().Get("url")
	if target == "" {
		return errMissingParam("url")
	}
	data, err := a.media.Preview(r.Context(), target)
	if err != nil {
		return err
	}
	writeJSON(w, 200, data)
	return nil
}

// legacy wraps a download or thumbnail handler for the deprecated unauthenticated paths:
// frozen (404) unless the operator turned them on, as the spec recommends since v1.12, and
// local media only when allow_remote=false.
func (a *API) legacy(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		cfg := a.cfg.Load()
		if !cfg.Media.Legacy {
			return errNotFound("unauthenticated media downloads are disabled; use /_matrix/client/v1/media")
		}
		// Another server falling back to these paths sets allow_remote=false so that no
		// request travels on from here (the spec requires it of them; this keeps it true).
		if r.URL.Query().Get("allow_remote") == "false" && r.PathValue("serverName") != cfg.ServerName {
			return errNotFound("remote media is not served to this request (allow_remote=false)")
		}
		return h(w, r)
	}
}

// serveContent writes stored content with the headers the spec recommends; http.ServeContent
// handles Range and conditional requests.
func serveContent(w http.ResponseWriter, r *http.Request, c *media.Content, name string) {
	h := w.Header()
	h.Set("Content-Type", c.Meta.ContentType)
	h.Set("Content-Disposition", media.Disposition(c.Meta.ContentType, name))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	// Content never changes under its ID; only the requesting user's client may cache it.
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.UnixMilli(c.Meta.CreatedTS), c.File)
}
