package mediafetch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
)

// ErrMalformed means an answer is not the multipart/mixed the spec describes: a JSON object,
// then the content or a Location.
var ErrMalformed = errors.New("mediafetch: malformed multipart answer")

// Bounds on what a peer can make us hold in memory while parsing.
const (
	// MaxMetadataBytes bounds the first part, the JSON metadata (today always {}).
	MaxMetadataBytes = 64 << 10
	// MaxPreambleBytes bounds everything before the content begins: the first part and both
	// parts' headers. Go's MIME header reader alone would accept 10 MiB of headers.
	MaxPreambleBytes = 1 << 20
)

// Multipart is a parsed answer of GET /_matrix/federation/v1/media/download or /thumbnail.
//
// See https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1mediadownloadmediaid
type Multipart struct {
	// Metadata is the first part, a JSON object.
	Metadata json.RawMessage
	// Location, if not empty, is an absolute http(s) URL where the content is, and Content
	// is nil.
	Location string
	// ContentType and Filename come from the second part's Content-Type and
	// Content-Disposition headers; either may be empty.
	ContentType string
	Filename    string
	// Content streams the second part's bytes. It ends with io.EOF only once the answer's
	// closing delimiter has been read, so a truncated answer, or one with a third part, ends
	// in an error and can be refused as a whole.
	Content io.Reader
}

// ParseMultipart reads the metadata and the headers of the content part from body, an answer
// whose Content-Type header is contentType, and leaves the content to be streamed from
// Content. The caller closes body when done with Content.
func ParseMultipart(contentType string, body io.Reader) (*Multipart, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.EqualFold(mediaType, "multipart/mixed") {
		return nil, fmt.Errorf("%w: Content-Type %q is not multipart/mixed", ErrMalformed, contentType)
	}
	boundary := params["boundary"]
	if boundary == "" || len(boundary) > 70 { // RFC 2046 section 5.1.1
		return nil, fmt.Errorf("%w: boundary of %d bytes", ErrMalformed, len(boundary))
	}
	budget := &budgetReader{r: body, left: MaxPreambleBytes}
	mr := multipart.NewReader(budget, boundary)
	meta, err := mr.NextRawPart()
	if err != nil {
		return nil, malformed("first part", err)
	}
	raw, err := io.ReadAll(io.LimitReader(meta, MaxMetadataBytes+1))
	if err != nil {
		return nil, malformed("metadata", err)
	}
	var obj map[string]json.RawMessage
	if len(raw) > MaxMetadataBytes || json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, fmt.Errorf("%w: metadata is not a JSON object of at most %d bytes", ErrMalformed, MaxMetadataBytes)
	}
	part, err := mr.NextRawPart()
	if err != nil {
		return nil, malformed("second part", err)
	}
	budget.lift()
	m := &Multipart{Metadata: raw, ContentType: part.Header.Get("Content-Type"), Filename: Filename(part.Header.Get("Content-Disposition"))}
	if loc := part.Header.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%w: Location %q is not an absolute http(s) URL", ErrMalformed, loc)
		}
		m.Location = u.String()
		return m, nil
	}
	m.Content = &contentReader{part: part, mr: mr}
	return m, nil
}

// malformed wraps a parse error; the end of the input where a part should be is one too.
func malformed(what string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}

// Filename returns the file name a Content-Disposition header gives (decoding RFC 2231's
// filename*), or "".
func Filename(disposition string) string {
	if disposition == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return ""
	}
	return params["filename"]
}

// contentReader is the content part; at its end it checks that the answer ends too.
type contentReader struct {
	part *multipart.Part
	mr   *multipart.Reader
	// err, once set, is returned from every Read.
	err error
}

func (c *contentReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.part.Read(p)
	switch {
	case err == io.EOF:
		switch _, next := c.mr.NextRawPart(); {
		case next == io.EOF:
			c.err = io.EOF
		case next == nil:
			c.err = fmt.Errorf("%w: more than two parts", ErrMalformed)
		default:
			c.err = malformed("closing delimiter", next)
		}
	case err != nil:
		c.err = err
	}
	return n, c.err
}

// budgetReader fails once more than left bytes are read, until lift.
type budgetReader struct {
	r      io.Reader
	left   int64
	lifted bool
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.lifted {
		return b.r.Read(p)
	}
	if b.left <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes before the content", ErrMalformed, MaxPreambleBytes)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *budgetReader) lift() { b.lifted = true }
