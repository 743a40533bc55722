package mediafetch_test

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
	"testing"

	"fyr/federation/mediafetch"
)

const boundary = "b0undary"

var contentType = "multipart/mixed; boundary=" + boundary

// answer joins parts (each headers, blank line, body) the way the spec's answer frames them.
func answer(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

const metaPart = "Content-Type: application/json\r\n\r\n{}"

func TestParseMultipart(t *testing.T) {
	for _, tt := range []struct {
		name        string
		contentType string
		body        string
		// wantErr: ParseMultipart fails with ErrMalformed; readErr: reading Content fails.
		wantErr, readErr bool
		want             mediafetch.Multipart
		content          string
	}{
		{name: "content", body: answer(metaPart, "Content-Type: image/png\r\nContent-Disposition: inline; filename=\"a b.png\"\r\n\r\n\x89PNG\r\n--not-the-boundary"),
			want: mediafetch.Multipart{ContentType: "image/png", Filename: "a b.png"}, content: "\x89PNG\r\n--not-the-boundary"},
		{name: "RFC 2231 file name", body: answer(metaPart, "Content-Type: text/plain\r\nContent-Disposition: attachment; filename*=utf-8''%C3%A5r.txt\r\n\r\nhej"),
			want: mediafetch.Multipart{ContentType: "text/plain", Filename: "år.txt"}, content: "hej"},
		{name: "empty content", body: answer(metaPart, "Content-Type: text/plain\r\n\r\n"),
			want: mediafetch.Multipart{ContentType: "text/plain"}, content: ""},
		{name: "metadata without a Content-Type", body: answer("\r\n{\"x\":1}", "\r\nabc"), content: "abc"},
		{name: "location", body: answer(metaPart, "Location: https://cdn.example/x?sig=1\r\n\r\n"),
			want: mediafetch.Multipart{Location: "https://cdn.example/x?sig=1"}},
		{name: "CRLF-free preamble and epilogue are ignored", body: "preamble\r\n" + answer(metaPart, "\r\nabc") + "epilogue", content: "abc"},
		{name: "content type is not multipart", contentType: "application/octet-stream", body: answer(metaPart, "\r\nabc"), wantErr: true},
		{name: "multipart/form-data", contentType: "multipart/form-data; boundary=" + boundary, body: answer(metaPart, "\r\nabc"), wantErr: true},
		{name: "no boundary", contentType: "multipart/mixed", body: answer(metaPart, "\r\nabc"), wantErr: true},
		{name: "boundary over 70 bytes", contentType: "multipart/mixed; boundary=" + strings.Repeat("x", 71), body: answer(metaPart, "\r\nabc"), wantErr: true},
		{name: "wrong boundary", contentType: "multipart/mixed; boundary=other", body: answer(metaPart, "\r\nabc"), wantErr: true},
		{name: "empty body", body: "", wantErr: true},
		{name: "one part", body: answer(metaPart), wantErr: true},
		{name: "metadata not JSON", body: answer("Content-Type: application/json\r\n\r\n{not json", "\r\nabc"), wantErr: true},
		{name: "metadata an array", body: answer("Content-Type: application/json\r\n\r\n[]", "\r\nabc"), wantErr: true},
		{name: "metadata null", body: answer("Content-Type: application/json\r\n\r\nnull", "\r\nabc"), wantErr: true},
		{name: "metadata too large", body: answer("\r\n{\"x\":\""+strings.Repeat("a", mediafetch.MaxMetadataBytes)+"\"}", "\r\nabc"), wantErr: true},
		{name: "headers too large", body: answer(metaPart, strings.Repeat("X-Junk: "+strings.Repeat("j", 1000)+"\r\n", 2000)+"\r\nabc"), wantErr: true},
		{name: "location not absolute", body: answer(metaPart, "Location: /relative\r\n\r\n"), wantErr: true},
		{name: "location not http", body: answer(metaPart, "Location: file:///etc/passwd\r\n\r\n"), wantErr: true},
		{name: "third part", body: answer(metaPart, "\r\nabc", "\r\nmore"), content: "abc", readErr: true},
		{name: "truncated content", body: strings.TrimSuffix(answer(metaPart, "\r\nabcdef"), "\r\n--"+boundary+"--\r\n"), content: "abcdef", readErr: true},
		// The delimiter after the content proves it complete; only the closing "--" is missing.
		{name: "delimiter without the closing dashes", body: "--" + boundary + "\r\n" + metaPart + "\r\n--" + boundary + "\r\n\r\nabc\r\n--" + boundary + "\r\n", content: "abc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = contentType
			}
			m, err := mediafetch.ParseMultipart(ct, strings.NewReader(tt.body))
			if tt.wantErr {
				if !errors.Is(err, mediafetch.ErrMalformed) {
					t.Fatalf("ParseMultipart = %+v, %v; want ErrMalformed", m, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMultipart: %v", err)
			}
			if m.ContentType != tt.want.ContentType || m.Filename != tt.want.Filename || m.Location != tt.want.Location {
				t.Errorf("ParseMultipart = type %q name %q location %q, want %q %q %q",
					m.ContentType, m.Filename, m.Location, tt.want.ContentType, tt.want.Filename, tt.want.Location)
			}
			if tt.want.Location != "" {
				if m.Content != nil {
					t.Error("a Location answer has Content")
				}
				return
			}
			got, err := io.ReadAll(m.Content)
			if string(got) != tt.content {
				t.Errorf("content = %q, want %q", got, tt.content)
			}
			if tt.readErr && err == nil {
				t.Error("reading the content of a malformed answer succeeded")
			}
			if !tt.readErr && err != nil {
				t.Errorf("reading the content: %v", err)
			}
		})
	}
}

// FuzzParseMultipart: whatever a peer sends, parsing neither panics nor hands out content
// that contains the delimiter, and a clean read means the answer was well formed.
//
//	go test -run '^$' -fuzz FuzzParseMultipart -fuzztime 30s ./federation/mediafetch/
func FuzzParseMultipart(f *testing.F) {
	f.Add(contentType, []byte(answer(metaPart, "Content-Type: text/plain\r\n\r\nhello")))
	f.Add(contentType, []byte(answer(metaPart, "Location: https://x.example/y\r\n\r\n")))
	f.Add(contentType, []byte(answer(metaPart, "\r\nabc", "\r\nmore")))
	f.Add(contentType, []byte(answer("\r\n{\"a\":[1,2]}", "Content-Disposition: inline; filename*=utf-8''%C3%A5\r\n\r\n\r\n--x")))
	f.Add("multipart/mixed; boundary=\"a b\"", []byte("--a b\r\n\r\n{}\r\n--a b\r\n\r\nz\r\n--a b--"))
	f.Add(contentType, []byte("--"+boundary+"\r\n\r\n{}\r\n--"+boundary+"\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := mediafetch.ParseMultipart(ct, bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, mediafetch.ErrMalformed) {
				t.Fatalf("ParseMultipart error %v is not ErrMalformed", err)
			}
			return
		}
		if m.Location != "" {
			return
		}
		got, err := io.ReadAll(m.Content)
		if err != nil {
			return
		}
		_, params, _ := mime.ParseMediaType(ct)
		if bytes.Contains(got, []byte("\r\n--"+params["boundary"])) {
			t.Fatalf("content %q contains the delimiter", got)
		}
		if int64(len(got)) > int64(len(body)) {
			t.Fatalf("content of %d bytes from a body of %d", len(got), len(body))
		}
	})
}
