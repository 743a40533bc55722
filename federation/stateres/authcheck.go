package stateres

import (
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// eventauthAuthorize runs the room version's auth rules on ev against authEvents, the events
// picked for its auth event selection. A panic inside the rules, which only malformed events
// from other servers could cause, counts as a refusal rather than taking the server down.
func eventauthAuthorize(version id.RoomVersion, ev *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("auth rules panicked: %v", p)
		}
	}()
	return eventauth.Authorize(version, ev, authEvents, getEvents, getKey)
}

// noKeys stands in for a missing Resolver.GetKey.
func noKeys(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
	return "", time.Time{}, ErrNoGetKey
}

func isNoKeys(err error) bool {
	return errors.Is(err, ErrNoGetKey)
}

// heap is a binary min-heap of indices under less.
type heap struct {
	items []int32
	less  func(a, b int32) bool
}

func (h *heap) len() int { return len(h.items) }

func (h *heap) push(x int32) {
	h.items = append(h.items, x)
	i := len(h.items) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(h.items[i], h.items[parent]) {
			break
		}
		h.items[i], h.items[parent] = h.items[parent], h.items[i]
		i = parent
	}
}

func (h *heap) pop() int32 {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h.items) && h.less(h.items[l], h.items[m]) {
			m = l
		}
		if r < len(h.items) && h.less(h.items[r], h.items[m]) {
			m = r
		}
		if m == i {
			return top
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
