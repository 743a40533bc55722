package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/server/netpolicy"
	"fyr/server/rooms"
	"fyr/storage"
)

// Defaults for GatewayOptions.
const (
	DefaultQueueSize   = 1024
	DefaultWorkers     = 2
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultMaxAttempts = 10
	DefaultTimeout     = 15 * time.Second
	// maxResponseBytes bounds how much of a gateway's answer is read.
	maxResponseBytes = 64 << 10
)

// GatewayOptions configure delivery to push gateways. Zero values mean the defaults.
type GatewayOptions struct {
	// AllowPrivate lets gateways on loopback and private networks be reached; off, only
	// public addresses are (checked on the address dialled, so DNS cannot point a pusher
	// at the box's own LAN).
	AllowPrivate bool
	// QueueSize bounds the notifications waiting for delivery (and retries); more are
	// dropped and logged.
	QueueSize int
	// Workers is how many deliveries run at once.
	Workers int
	// MinBackoff and MaxBackoff bound the wait before a failed delivery is tried again; it
	// doubles with each attempt and is jittered 0.5–1.5×.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts is how often one notification is tried before it is dropped.
	MaxAttempts int
	// Timeout bounds one request to a gateway.
	Timeout time.Duration
}

// gatewayNote is what a push to one user's gateways carries about an event.
type gatewayNote struct {
	user         id.UserID
	eventID      id.EventID
	roomID       id.RoomID
	typ          string
	sender       id.UserID
	senderName   string
	roomName     string
	roomAlias    string
	content      json.RawMessage
	userIsTarget bool
	prio         string
	tweaks       map[string]json.RawMessage
}

// gatewayNotes prepares the notifications of the users who have pushers; their room details
// are read now, while the room is as the event found it.
func (s *Service) gatewayNotes(ctx context.Context, room *rooms.RoomView, eventID id.EventID, p *pdu.PDU, notes []note) []*gatewayNote {
	var out []*gatewayNote
	for _, n := range notes {
		if !s.pushers.has(ctx, n.user) {
			continue
		}
		gn := &gatewayNote{user: n.user, eventID: eventID, roomID: room.ID(), typ: p.Type, sender: p.Sender,
			content: json.RawMessage(p.Content), tweaks: n.actions.Tweaks, prio: "low",
			userIsTarget: p.Type == "m.room.member" && p.StateKey != nil && *p.StateKey == string(n.user)}
		if _, sound := n.actions.Tweaks["sound"]; n.actions.Highlight || sound || p.Type == "m.room.encrypted" {
			gn.prio = "high"
		}
		if len(out) > 0 {
			first := out[0]
			gn.senderName, gn.roomName, gn.roomAlias = first.senderName, first.roomName, first.roomAlias
		} else {
			gn.senderName = room.DisplayName(ctx, p.Sender)
			gn.roomName = gjson.GetBytes(room.StateContent(ctx, "m.room.name", ""), "name").Str
			gn.roomAlias = gjson.GetBytes(room.StateContent(ctx, "m.room.canonical_alias", ""), "alias").Str
		}
		out = append(out, gn)
	}
	return out
}

// gatewayHost is what delivery needs from the Service.
type gatewayHost interface {
	// pushers are a user's pushers.
	pushers(ctx context.Context, user id.UserID) ([]storage.Pusher, error)
	// unread is a user's unread notifications over all their rooms.
	unread(ctx context.Context, user id.UserID) (int, error)
	// rejected deletes a pusher whose pushkey its gateway rejected.
	rejected(ctx context.Context, p storage.Pusher)
}

// serviceHost is the Service as the gateway's host.
type serviceHost struct{ s *Service }

func (h serviceHost) pushers(ctx context.Context, user id.UserID) ([]storage.Pusher, error) {
	return h.s.db.Pushers(ctx, string(user))
}

func (h serviceHost) unread(ctx context.Context, user id.UserID) (int, error) {
	return h.s.db.UnreadTotal(ctx, string(user))
}

func (h serviceHost) rejected(ctx context.Context, p storage.Pusher) {
	if err := h.s.deletePusher(ctx, id.UserID(p.UserID), p.AppID, p.PushKey); err != nil {
		h.s.log.Warn("deleting a pusher its gateway rejected", "user", p.UserID, "app_id", p.AppID, "err", err)
	}
}

// Gateway delivers notifications to push gateways: POST /_matrix/push/v1/notify, one
// request per pusher, with retries and backoff, from a bounded in-memory queue.
// Notifications waiting at shutdown are lost; the unread counts are not.
//
// See https://spec.matrix.org/v1.19/push-gateway-api/#post_matrixpushv1notify
type Gateway struct {
	opt          GatewayOptions
	log          *slog.Logger
	host         gatewayHost
	client       *http.Client
	allowPrivate atomic.Bool
	queue        chan *job
	closed       atomic.Bool
	// rand jitters backoffs.
	randMu sync.Mutex
	rand   *rand.Rand
}

// job is one queued notification: for all of a user's pushers until it is fanned out
// (pusher nil), then for one pusher.
type job struct {
	note    *gatewayNote
	pusher  *storage.Pusher
	unread  int
	attempt int
}

func newGateway(opt GatewayOptions, log *slog.Logger, host gatewayHost) *Gateway {
	if opt.QueueSize <= 0 {
		opt.QueueSize = DefaultQueueSize
	}
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = DefaultMaxAttempts
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	g := &Gateway{opt: opt, log: log, host: host, queue: make(chan *job, opt.QueueSize),
		rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))}
	g.allowPrivate.Store(opt.AllowPrivate)
	dialer := &net.Dialer{Timeout: opt.Timeout, Control: g.checkDial}
	g.client = &http.Client{
		Timeout: opt.Timeout,
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, past the address check
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   opt.Timeout,
			ResponseHeaderTimeout: opt.Timeout,
			MaxIdleConnsPerHost:   4,
		},
		// A gateway answers; it does not send us elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return g
}

// SetAllowPrivate switches whether gateways on loopback and private networks may be reached.
func (g *Gateway) SetAllowPrivate(allow bool) { g.allowPrivate.Store(allow) }

// checkDial refuses addresses that are not public, unless private ones are allowed.
func (g *Gateway) checkDial(network, address string, c syscall.RawConn) error {
	return netpolicy.DialControl(func(a netip.Addr) bool {
		return netpolicy.Public(a) || (g.allowPrivate.Load() && !a.IsUnspecified() && !a.IsMulticast())
	})(network, address, c)
}

// Enqueue queues a notification for the user's pushers; when the queue is full it is dropped.
func (g *Gateway) Enqueue(n *gatewayNote) { g.offer(&job{note: n}) }

func (g *Gateway) offer(j *job) {
	if g.closed.Load() {
		return
	}
	select {
	case g.queue <- j:
	default:
		g.log.Warn("push queue full; notification dropped", "user", j.note.user, "event_id", j.note.eventID)
	}
}

// Run delivers queued notifications until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range g.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-g.queue:
					g.handle(ctx, j)
				}
			}
		}()
	}
	<-ctx.Done()
	g.closed.Store(true)
	wg.Wait()
}

// handle fans a notification out to the user's pushers, or delivers it to one.
func (g *Gateway) handle(ctx context.Context, j *job) {
	if j.pusher == nil {
		ps, err := g.host.pushers(ctx, j.note.user)
		if err != nil {
			g.log.Warn("loading pushers", "user", j.note.user, "err", err)
			return
		}
		unread, err := g.host.unread(ctx, j.note.user)
		if err != nil {
			g.log.Warn("counting unread notifications", "user", j.note.user, "err", err)
		}
		for i := range ps {
			if ps[i].Kind != "http" {
				continue
			}
			g.deliver(ctx, &job{note: j.note, pusher: &ps[i], unread: unread})
		}
		return
	}
	g.deliver(ctx, j)
}

// deliver makes one attempt and schedules the next when it may succeed later.
func (g *Gateway) deliver(ctx context.Context, j *job) {
	j.attempt++
	retry, err := g.deliver1(ctx, j)
	if err == nil {
		return
	}
	log := g.log.With("user", j.note.user, "app_id", j.pusher.AppID, "event_id", j.note.eventID, "attempt", j.attempt, "err", err)
	if !retry || j.attempt >= g.opt.MaxAttempts || ctx.Err() != nil {
		log.Warn("push notification not delivered")
		return
	}
	log.Debug("push notification not delivered yet; will retry")
	time.AfterFunc(g.backoff(j.attempt), func() { g.offer(j) })
}

// backoff is the wait after a number of failed attempts.
func (g *Gateway) backoff(attempts int) time.Duration {
	d := g.opt.MinBackoff << min(attempts-1, 30)
	if d <= 0 || d > g.opt.MaxBackoff {
		d = g.opt.MaxBackoff
	}
	g.randMu.Lock()
	f := 0.5 + g.rand.Float64()
	g.randMu.Unlock()
	return time.Duration(float64(d) * f)
}

// errGateway is a gateway's refusal or failure.
var errGateway = errors.New("push gateway")

// deliver1 sends one notification to one pusher's gateway. retry says whether a later
// attempt may succeed: network failures, 429 and 5xx; not a refused address or another 4xx.
// Pushkeys the gateway rejects lose their pushers.
func (g *Gateway) deliver1(ctx context.Context, j *job) (retry bool, err error) {
	url := gjson.GetBytes(j.pusher.Data, "url").Str
	body, err := json.Marshal(notifyBody(j))
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return !errors.Is(err, netpolicy.ErrRefused), err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	switch {
	case resp.StatusCode/100 == 2:
		for _, k := range gjson.GetBytes(answer, "rejected").Array() {
			if k.Str == j.pusher.PushKey {
				g.log.Info("push gateway rejected a pushkey; deleting its pusher", "user", j.note.user, "app_id", j.pusher.AppID)
				g.host.rejected(ctx, *j.pusher)
			}
		}
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("%w: %s answered %d", errGateway, url, resp.StatusCode)
	default:
		return false, fmt.Errorf("%w: %s answered %d", errGateway, url, resp.StatusCode)
	}
}

// notifyBody is the request body for a job: the full form, or with data.format
// "event_id_only" just the event and room IDs, counts and devices.
func notifyBody(j *job) map[string]any {
	n := j.note
	var data map[string]json.RawMessage
	json.Unmarshal(j.pusher.Data, &data)
	delete(data, "url")
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	tweaks := n.tweaks
	if tweaks == nil {
		tweaks = map[string]json.RawMessage{}
	}
	counts := map[string]int{}
	if j.unread > 0 {
		counts["unread"] = j.unread
	}
	device := map[string]any{"app_id": j.pusher.AppID, "pushkey": j.pusher.PushKey, "pushkey_ts": j.pusher.PushKeyTS,
		"data": data, "tweaks": tweaks}
	out := map[string]any{"event_id": n.eventID, "room_id": n.roomID, "prio": n.prio, "counts": counts,
		"devices": []any{device}}
	if gjson.GetBytes(j.pusher.Data, "format").Str != "event_id_only" {
		out["type"], out["sender"] = n.typ, n.sender
		if len(n.content) > 0 {
			out["content"] = n.content
		}
		if n.senderName != "" {
			out["sender_display_name"] = n.senderName
		}
		if n.roomName != "" {
			out["room_name"] = n.roomName
		}
		if n.roomAlias != "" {
			out["room_alias"] = n.roomAlias
		}
		if n.userIsTarget {
			out["user_is_target"] = true
		}
	}
	return map[string]any{"notification": out}
}
