package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"fyr/federation/transport"
)

// TransportSender sends transactions with the federation client: PUT
// /_matrix/federation/v1/send/{txnId}. A failed attempt also drops the connections to the
// destination, so the retry dials afresh instead of waiting on a connection a cut left dead.
func TransportSender(c *transport.Client, origin string, now func() time.Time) Sender {
	return &transportSender{c: c, origin: origin, now: now}
}

type transportSender struct {
	c      *transport.Client
	origin string
	now    func() time.Time
}

type transaction struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []json.RawMessage `json:"edus,omitempty"`
}

func (s *transportSender) SendTransaction(ctx context.Context, dest, txnID string, pdus, edus []json.RawMessage) error {
	if pdus == nil {
		pdus = []json.RawMessage{}
	}
	txn := transaction{Origin: s.origin, OriginServerTS: s.now().UnixMilli(), PDUs: pdus, EDUs: edus}
	err := s.c.Do(ctx, dest, "PUT", "/_matrix/federation/v1/send/"+url.PathEscape(txnID), txn, nil)
	if err != nil && !permanent(err) {
		s.c.Reconnect(dest)
	}
	return classify(err)
}

// permanent reports a failure that retrying cannot fix: a transaction that cannot even be
// signed (one bad item would otherwise hold up the whole queue behind it, forever), or a
// refusal with a 4xx other than 408 and 429.
func permanent(err error) bool {
	if errors.Is(err, transport.ErrUnsendable) {
		return true
	}
	var re *transport.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 &&
		re.StatusCode != 408 && re.StatusCode != 429
}

func classify(err error) error {
	if err != nil && permanent(err) {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return err
}
