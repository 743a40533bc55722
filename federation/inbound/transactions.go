// Package inbound is the receiving side of federation: transactions (PUT /send) and, with
// the rooms engine, PDU checks, missing events, backfill, joins, invites and queries.
//
// It is not for authentication (transport.Verifier runs first and puts the origin in the
// context) nor for room logic: PDUs go to a PDUHandler that the rooms engine provides.
package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	"fyr/storage"
)

// Limits from the spec: a transaction holds at most 50 PDUs and 100 EDUs.
const (
	MaxPDUs = 50
	MaxEDUs = 100
	// txnMemory is how long an answered transaction is remembered for retries.
	txnMemory = 24 * time.Hour
)

// PDUHandler processes the PDUs of one transaction, in order. It returns a result per event
// it could place: "" when accepted, else why not. PDUs for rooms this server is not in are
// left out, as the spec allows.
type PDUHandler interface {
	HandlePDUs(ctx context.Context, origin string, pdus []json.RawMessage) map[id.EventID]string
}

// EDUHandler processes one EDU's content from origin. Errors are the handler's to log: an
// EDU is best effort and never fails its transaction.
type EDUHandler func(ctx context.Context, origin string, content json.RawMessage)

// Transactions serves PUT /_matrix/federation/v1/send/{txnID}. Set its fields before serving.
type Transactions struct {
	DB *storage.DB
	// PDUs handles PDUs; nil means this server is in no rooms, so every PDU is for an
	// unknown room and is left out of the answer.
	PDUs PDUHandler
	// EDUs handle EDUs by edu_type; types without a handler are ignored.
	EDUs map[string]EDUHandler
	Log  *slog.Logger
	Now  func() time.Time // nil: time.Now

	mu      sync.Mutex
	origins map[string]*sync.Mutex // one transaction at a time per origin, in arrival order
}

type transaction struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []struct {
		Type    string          `json:"edu_type"`
		Content json.RawMessage `json:"content"`
	} `json:"edus"`
}

func (t *Transactions) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// originLock serialises one origin's transactions: a sender waits for each answer before the
// next, so this costs nothing, and it makes a concurrent retry see the first one's answer.
func (t *Transactions) originLock(origin string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.origins == nil {
		t.origins = map[string]*sync.Mutex{}
	}
	m, ok := t.origins[origin]
	if !ok {
		m = &sync.Mutex{}
		t.origins[origin] = m
	}
	return m
}

func (t *Transactions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	origin, txnID := transport.Origin(ctx), r.PathValue("txnID")
	var txn transaction
	if err := json.NewDecoder(r.Body).Decode(&txn); err != nil {
		writeError(w, 400, "M_NOT_JSON", "the transaction is not valid JSON")
		return
	}
	switch {
	case txn.Origin != origin:
		writeError(w, 403, "M_FORBIDDEN", "the transaction's origin is not the server that signed the request")
		return
	case txn.PDUs == nil:
		writeError(w, 400, "M_BAD_JSON", "the transaction has no pdus array")
		return
	case len(txn.PDUs) > MaxPDUs || len(txn.EDUs) > MaxEDUs:
		writeError(w, 400, "M_BAD_JSON", "a transaction holds at most 50 PDUs and 100 EDUs")
		return
	}
	lock := t.originLock(origin)
	lock.Lock()
	defer lock.Unlock()
	if resp, err := t.DB.InboundTxnResponse(ctx, origin, txnID); err == nil {
		writeJSON(w, resp) // a retry: the same answer, nothing applied twice
		return
	} else if !errors.Is(err, storage.ErrNotFound) {
		t.Log.Error("inbound: look up transaction", "origin", origin, "err", err)
		writeError(w, 500, "M_UNKNOWN", "internal server error")
		return
	}
	results := map[id.EventID]map[string]string{}
	if t.PDUs != nil && len(txn.PDUs) > 0 {
		for evID, problem := range t.PDUs.HandlePDUs(ctx, origin, txn.PDUs) {
			if problem == "" {
				results[evID] = map[string]string{}
			} else {
				results[evID] = map[string]string{"error": problem}
			}
		}
	}
	for _, e := range txn.EDUs {
		if h := t.EDUs[e.Type]; h != nil {
			h(ctx, origin, e.Content)
		}
	}
	resp, _ := json.Marshal(map[string]any{"pdus": results})
	err := t.DB.Write(context.WithoutCancel(ctx), func(tx *storage.Tx) error {
		return tx.RecordInboundTxn(origin, txnID, resp, t.now().UnixMilli())
	})
	if err != nil {
		t.Log.Error("inbound: record transaction", "origin", origin, "err", err)
	}
	writeJSON(w, resp)
}

// Run forgets answered transactions after a day, checking hourly, until ctx ends.
func (t *Transactions) Run(ctx context.Context) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			cutoff := t.now().Add(-txnMemory).UnixMilli()
			if err := t.DB.Write(ctx, func(tx *storage.Tx) error { return tx.ForgetInboundTxns(cutoff) }); err != nil && ctx.Err() == nil {
				t.Log.Warn("inbound: forget old transactions", "err", err)
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, errcode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"errcode": errcode, "error": msg})
}
