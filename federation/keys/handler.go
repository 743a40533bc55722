package keys

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Limits on notary queries, which anyone may send.
const (
	MaxQueryServers   = 100     // servers in one POST /_matrix/key/v2/query
	MaxQueryBodyBytes = 1 << 16 // its body
)

// Routes registers the key server and the notary on mux (the federation listener's):
//
//	GET  /_matrix/key/v2/server               this server's keys, self-signed
//	GET  /_matrix/key/v2/query/{serverName}   one server's keys, notarised
//	POST /_matrix/key/v2/query                several servers' keys, notarised
//
// None of them needs authentication. See https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys
func (r *Ring) Routes(mux *http.ServeMux) {
	mux.Handle("GET /_matrix/key/v2/server", r.serve(r.serveServer))
	mux.Handle("GET /_matrix/key/v2/query/{serverName}", r.serve(r.serveQueryOne))
	mux.Handle("POST /_matrix/key/v2/query", r.serve(r.serveQuery))
}

// serve adapts a handler that returns an error: a mautrix.RespError is written as it is,
// anything else is logged and answered 500 M_UNKNOWN.
func (r *Ring) serve(h func(w http.ResponseWriter, req *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		err := h(w, req)
		if err == nil {
			return
		}
		var resp mautrix.RespError
		if !errors.As(err, &resp) {
			r.opts.Log.Error("key API", "method", req.Method, "path", req.URL.Path, "err", err)
			resp = mautrix.MUnknown.WithMessage("internal error")
		}
		resp.Write(w)
	})
}

func (r *Ring) serveServer(w http.ResponseWriter, req *http.Request) error {
	js, err := r.local.Response(r.now())
	if err != nil {
		return err
	}
	return writeJSON(w, json.RawMessage(js))
}

// queryResponse is the body both notary endpoints answer with.
type queryResponse struct {
	ServerKeys []json.RawMessage `json:"server_keys"`
}

func (r *Ring) serveQueryOne(w http.ResponseWriter, req *http.Request) error {
	serverName := req.PathValue("serverName")
	if !id.ValidateServerName(serverName) {
		return mautrix.MInvalidParam.WithMessage("%q is not a server name", serverName)
	}
	minValid := r.now()
	if s := req.URL.Query().Get("minimum_valid_until_ts"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return mautrix.MInvalidParam.WithMessage("minimum_valid_until_ts is not an integer")
		}
		minValid = time.UnixMilli(ms)
	}
	keys, err := r.Query(req.Context(), serverName, nil, minValid)
	if err != nil {
		return err
	}
	return writeJSON(w, queryResponse{ServerKeys: keys})
}

// queryRequest is the body of POST /_matrix/key/v2/query.
type queryRequest struct {
	ServerKeys map[string]map[id.KeyID]struct {
		MinimumValidUntilTS int64 `json:"minimum_valid_until_ts"`
	} `json:"server_keys"`
}

func (r *Ring) serveQuery(w http.ResponseWriter, req *http.Request) error {
	var body queryRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, MaxQueryBodyBytes)).Decode(&body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return mautrix.MTooLarge.WithMessage("request body is larger than %d bytes", MaxQueryBodyBytes)
		}
		return mautrix.MBadJSON.WithMessage("request body is not a key query: %v", err)
	}
	if body.ServerKeys == nil {
		return mautrix.MBadJSON.WithMessage("server_keys is missing")
	}
	if len(body.ServerKeys) > MaxQueryServers {
		return mautrix.MInvalidParam.WithMessage("at most %d servers per query", MaxQueryServers)
	}
	type query struct {
		serverName string
		keyIDs     []id.KeyID
		minValid   time.Time
	}
	now := r.now()
	queries := make([]query, 0, len(body.ServerKeys))
	for serverName, criteria := range body.ServerKeys {
		if !id.ValidateServerName(serverName) {
			return mautrix.MInvalidParam.WithMessage("%q is not a server name", serverName)
		}
		q := query{serverName: serverName, minValid: now}
		for keyID, c := range criteria {
			q.keyIDs = append(q.keyIDs, keyID)
			if t := time.UnixMilli(c.MinimumValidUntilTS); c.MinimumValidUntilTS != 0 && t.After(q.minValid) {
				q.minValid = t
			}
		}
		queries = append(queries, q)
	}
	results := make([][]json.RawMessage, len(queries))
	errs := make([]error, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Go(func() { results[i], errs[i] = r.Query(req.Context(), q.serverName, q.keyIDs, q.minValid) })
	}
	wg.Wait()
	resp := queryResponse{ServerKeys: []json.RawMessage{}}
	for i := range results {
		if errs[i] != nil {
			return errs[i]
		}
		resp.ServerKeys = append(resp.ServerKeys, results[i]...)
	}
	return writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(b)
	return err
}
