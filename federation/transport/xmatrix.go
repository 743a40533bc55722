package transport

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

// X-Matrix request authentication.
// See https://spec.matrix.org/v1.19/server-server-api/#request-authentication
//
// The header type and its formatting are mautrix's federation.XMatrixAuth. Parsing and the
// signed JSON are ours: mautrix's ParseXMatrixAuth does not unescape quoted values or accept
// a scheme in another case, and its signed-request type is unexported and tags content
// `omitempty`, which under Go 1.27's encoding/json v2 canonicalisation drops an empty-object
// body ({}), so its signature would not match one from Synapse for a PUT with body {}.

// signedRequest is the JSON object whose signature goes in the X-Matrix header.
type signedRequest struct {
	Method      string          `json:"method"`
	URI         string          `json:"uri"`
	Origin      string          `json:"origin"`
	Destination string          `json:"destination"`
	Content     json.RawMessage `json:"content,omitzero"`
}

// canonical returns the canonical JSON that is signed.
func (s *signedRequest) canonical() ([]byte, error) {
	b, err := canonicaljson.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("canonical request json: %w", err)
	}
	return b, nil
}

// SignRequest signs a request from origin to destination with key (whose ID is keyID) and
// returns its Authorization header. uri is the request target as sent, from /_matrix on, with
// the query string; content is the JSON body, or nil for a request without one (GET).
func SignRequest(key ed25519.PrivateKey, keyID id.KeyID, origin, destination, method, uri string, content json.RawMessage) (federation.XMatrixAuth, error) {
	msg, err := (&signedRequest{Method: method, URI: uri, Origin: origin, Destination: destination, Content: content}).canonical()
	if err != nil {
		return federation.XMatrixAuth{}, err
	}
	return federation.XMatrixAuth{
		Origin:      origin,
		Destination: destination,
		KeyID:       keyID,
		Signature:   base64.RawStdEncoding.EncodeToString(ed25519.Sign(key, msg)),
	}, nil
}

// VerifyRequest checks auth's signature over a request received by destination (this
// server's name: the header's destination is checked by the caller, and an absent one means
// us). It returns ErrBadSignature if the signature does not verify with pub.
func VerifyRequest(pub ed25519.PublicKey, auth federation.XMatrixAuth, destination, method, uri string, content json.RawMessage) error {
	sig, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(auth.Signature, "="))
	if err != nil || len(sig) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return ErrBadSignature
	}
	msg, err := (&signedRequest{Method: method, URI: uri, Origin: auth.Origin, Destination: destination, Content: content}).canonical()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// ParseXMatrix parses one Authorization header value with the X-Matrix scheme, as RFC 9110
// section 11.4 and the spec describe it: the scheme in any case, parameter names in any case
// and order, values as tokens or quoted strings with backslash escapes, and (for older
// servers) colons in unquoted values. Unknown parameters are ignored; origin, key and sig are
// required, destination is optional.
func ParseXMatrix(header string) (federation.XMatrixAuth, error) {
	var auth federation.XMatrixAuth
	scheme, params, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "X-Matrix") {
		return auth, errors.New("not an X-Matrix authorization")
	}
	seen := map[string]bool{}
	s := strings.TrimLeft(params, " \t")
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return auth, fmt.Errorf("malformed parameter %q", s)
		}
		name := strings.ToLower(strings.TrimRight(s[:eq], " \t"))
		if strings.ContainsAny(name, " \t,\"") {
			return auth, fmt.Errorf("malformed parameter name %q", name)
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var value string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i, closed := 1, false
			for ; i < len(s); i++ {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				} else if c == '"' {
					closed = true
					break
				} else {
					b.WriteByte(c)
				}
			}
			if !closed {
				return auth, fmt.Errorf("unterminated quoted value for %s", name)
			}
			value, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			value, s = s[:end], s[end:]
		}
		s = strings.TrimLeft(s, " \t")
		if s != "" {
			if s[0] != ',' {
				return auth, fmt.Errorf("expected ',' after %s", name)
			}
			s = strings.TrimLeft(s[1:], " \t")
		}
		if seen[name] {
			return auth, fmt.Errorf("parameter %s given twice", name)
		}
		seen[name] = true
		switch name {
		case "origin":
			auth.Origin = value
		case "destination":
			auth.Destination = value
		case "key":
			auth.KeyID = id.KeyID(value)
		case "sig":
			auth.Signature = value
		}
	}
	if auth.Origin == "" || auth.KeyID == "" || auth.Signature == "" {
		return auth, errors.New("origin, key and sig are required")
	}
	return auth, nil
}
