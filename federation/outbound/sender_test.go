package outbound

import (
	"errors"
	"fmt"
	"testing"

	"fyr/federation/transport"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err      error
		rejected bool
	}{
		{&transport.ResponseError{StatusCode: 400, ErrCode: "M_BAD_JSON"}, true},
		{&transport.ResponseError{StatusCode: 403}, true},
		{&transport.ResponseError{StatusCode: 408}, false},
		{&transport.ResponseError{StatusCode: 429}, false},
		{&transport.ResponseError{StatusCode: 500}, false},
		{&transport.ResponseError{StatusCode: 502}, false},
		{errors.New("dial tcp: connection refused"), false},
		{fmt.Errorf("PUT b.test/send/1: %w: sign: too long number", transport.ErrUnsendable), true},
	} {
		if got := errors.Is(classify(tc.err), ErrRejected); got != tc.rejected {
			t.Errorf("classify(%v) rejected = %v, want %v", tc.err, got, tc.rejected)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
