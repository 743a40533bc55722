package media

import (
	"mime"
	"strings"
)

// inlineTypes may be shown in a browser; anything else is served as an attachment. This is
// the spec's list of types that cannot carry script.
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true, "application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// Disposition is the Content-Disposition header for content of this type served under this
// file name ("" for none): inline for the spec's safe types, attachment otherwise, with the
// name encoded as RFC 6266 allows.
//
// See https://spec.matrix.org/v1.19/client-server-api/#serving-inline-content
func Disposition(contentType, filename string) string {
	base, _, _ := mime.ParseMediaType(contentType)
	disposition := "attachment"
	if inlineTypes[strings.ToLower(base)] {
		disposition = "inline"
	}
	if filename == "" {
		return disposition
	}
	if d := mime.FormatMediaType(disposition, map[string]string{"filename": filename}); d != "" {
		return d
	}
	return "attachment" // a name mime cannot encode
}
