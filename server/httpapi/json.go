package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// writeJSON sends v with status. Content-Type is exactly application/json: some clients
// (and Complement) compare it literally.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = 500, []byte(`{"errcode":"M_UNKNOWN","error":"internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// readBody reads a request body within the configured limit.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := a.cfg.Load().Client.MaxBodyBytes
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, newErr(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "request body is larger than %d bytes", limit)
	}
	if err != nil {
		return nil, newErr(400, "M_UNKNOWN", "could not read request body")
	}
	return body, nil
}

// decode reads a JSON object into v. An empty body counts as {} when emptyOK. Malformed JSON,
// and invalid UTF-8 are M_NOT_JSON; valid JSON that is not an object, or has fields of the
// wrong type, is M_BAD_JSON.
// Unknown fields are ignored, as the spec's extensibility requires of servers.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return errNotJSON("request body is empty; expected a JSON object")
	}
	return decodeBytes(body, v)
}

func decodeBytes(body []byte, v any) error {
	if !utf8.Valid(body) {
		return errNotJSON("request body is not valid UTF-8")
	}
	if !json.Valid(body) {
		return errNotJSON("request body is not valid JSON")
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); t[0] != '{' {
		return errBadJSON("request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return errBadJSON(fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value))
		}
		return errBadJSON(err.Error())
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "ptr":
		return "an object"
	default:
		return "a number"
	}
}
