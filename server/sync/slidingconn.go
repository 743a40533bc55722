package sync

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// ErrUnknownPos is a pos this server does not (or no longer) know: the connection expired,
// the server restarted, or the pos belongs to another connection. The API answers 400
// M_UNKNOWN_POS and the client starts the connection again.
var ErrUnknownPos = errors.New("sync: unknown position")

// Defaults for sliding sync connections.
const (
	// DefaultSlidingIdle is how long a connection lives without a request.
	DefaultSlidingIdle = 30 * time.Minute
	// DefaultSlidingConnsPerDevice is how many connections (conn_ids) a device may keep;
	// a new one beyond it ends the least recently used.
	DefaultSlidingConnsPerDevice = 10
	// DefaultSlidingConns bounds the connections of all users together.
	DefaultSlidingConns = 10000
	// maxStatesPerConn is how many positions of one connection are kept: the one the
	// client last used, and responses it may not have received yet.
	maxStatesPerConn = 4
	// maxLazyMembers is how many lazy-loaded member events are remembered per room and
	// connection; beyond it some are forgotten and may be sent again.
	maxLazyMembers = 100
)

// SlidingPos is a sliding sync pos: a sync token and the connection position it answered.
// Written out it is the token followed by "_c<position>", e.g. "s4711_t12_c3"; it starts
// like a pagination token, so /messages accepts it as the MSC says.
type SlidingPos struct {
	Token
	// Conn is the connection position: which of the connection's states the client holds.
	Conn int64
}

// String writes the pos out.
func (p SlidingPos) String() string {
	return p.Token.String() + "_c" + strconv.FormatInt(p.Conn, 10)
}

// ParseSlidingPos reads a pos written by String; anything else is ErrInvalidParam.
func ParseSlidingPos(s string) (SlidingPos, error) {
	bad := fmt.Errorf("%w: %q is not a sliding sync pos from this server", ErrInvalidParam, s)
	t, err := ParseToken(s)
	if err != nil || t.ToDevice != 0 {
		return SlidingPos{}, bad
	}
	p := SlidingPos{Token: t}
	for _, part := range strings.Split(s, "_")[1:] {
		if part[0] == 'c' {
			p.Conn, _ = parseCount(part[1:])
		}
	}
	if p.Conn <= 0 {
		return SlidingPos{}, bad
	}
	return p, nil
}

// connState is what a connection had sent when it answered one pos: which rooms, with which
// config, and how far. It is immutable once stored; the next response makes a new one that
// shares the rooms it did not touch.
type connState struct {
	// issued is the token of the pos this state was handed out with.
	issued Token
	rooms  map[id.RoomID]*sentRoom
	// index is the user's rooms as of issued, when the connection has lists or subscriptions.
	index *roomIndex
}

// sentRoom is what a connection has sent of one room.
type sentRoom struct {
	// behind is 0 while the client has all of the room up to the state's token; otherwise
	// the room changed while out of the client's window and the client has it up to behind
	// only (Synapse's "previously sent").
	behind int64
	// limit and spec are the config the client holds the room with.
	limit int
	spec  *stateSpec
	// membership and memberNID are the user's membership (and its event) last sent.
	membership string
	memberNID  int64
	isDM       bool
	// members are the member events (user → event NID) the client holds, for lazy loading.
	members map[id.UserID]int64
}

func (s *connState) clone() *connState {
	return &connState{rooms: maps.Clone(s.rooms), index: s.index}
}

type connKey struct {
	user   id.UserID
	device id.DeviceID
	conn   string
}

type slidingConn struct {
	lastUsed time.Time
	// states by connection position; positions only grow.
	states map[int64]*connState
}

// slidingConns keeps the connections in memory. Connections are cheap to lose: a client whose
// pos is unknown starts again. It is safe for concurrent use.
type slidingConns struct {
	mu        stdsync.Mutex
	now       func() time.Time
	idle      time.Duration
	perDevice int
	max       int
	// next is the next connection position; seeded from the clock so that a pos from
	// before a restart is never mistaken for one of after it.
	next  int64
	conns map[connKey]*slidingConn
	// swept is when idle connections were last looked for.
	swept time.Time
}

func newSlidingConns(now func() time.Time) *slidingConns {
	return &slidingConns{now: now, idle: DefaultSlidingIdle, perDevice: DefaultSlidingConnsPerDevice,
		max: DefaultSlidingConns, next: now().UnixMilli(), conns: map[connKey]*slidingConn{}}
}

// begin returns the state a request continues from: empty for a new connection (which
// replaces any with the same key), or the state of pos. The client holds that state, so the
// connection's other states are dropped: a retry of pos is answered from pos again.
func (c *slidingConns) begin(k connKey, pos *SlidingPos) (*connState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expireLocked(now)
	if pos == nil {
		delete(c.conns, k)
		return &connState{rooms: map[id.RoomID]*sentRoom{}}, nil
	}
	conn := c.conns[k]
	if conn == nil || now.Sub(conn.lastUsed) > c.idle {
		delete(c.conns, k)
		return nil, ErrUnknownPos
	}
	st := conn.states[pos.Conn]
	if st == nil || st.issued.Pos != pos.Pos || st.issued.Typing != pos.Typing {
		return nil, ErrUnknownPos
	}
	conn.lastUsed = now
	for p := range conn.states {
		if p != pos.Conn {
			delete(conn.states, p)
		}
	}
	return st, nil
}

// commit stores the state a response leads to and returns its connection position.
func (c *slidingConns) commit(k connKey, st *connState) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	conn := c.conns[k]
	if conn == nil {
		c.makeRoomLocked(k)
		conn = &slidingConn{states: map[int64]*connState{}}
		c.conns[k] = conn
	}
	conn.lastUsed = now
	c.next++
	conn.states[c.next] = st
	for len(conn.states) > maxStatesPerConn {
		oldest := int64(-1)
		for p := range conn.states {
			if oldest < 0 || p < oldest {
				oldest = p
			}
		}
		delete(conn.states, oldest)
	}
	return c.next
}

// makeRoomLocked ends connections so that one more fits: the device's least recently used
// beyond its limit, and the least recently used of all beyond the total.
func (c *slidingConns) makeRoomLocked(k connKey) {
	var device []connKey
	for o := range c.conns {
		if o.user == k.user && o.device == k.device {
			device = append(device, o)
		}
	}
	for len(device) >= c.perDevice {
		i := c.lruLocked(device)
		delete(c.conns, device[i])
		device = append(device[:i], device[i+1:]...)
	}
	for len(c.conns) >= c.max {
		all := make([]connKey, 0, len(c.conns))
		for o := range c.conns {
			all = append(all, o)
		}
		delete(c.conns, all[c.lruLocked(all)])
	}
}

func (c *slidingConns) lruLocked(keys []connKey) int {
	best := 0
	for i, k := range keys {
		if c.conns[k].lastUsed.Before(c.conns[keys[best]].lastUsed) {
			best = i
		}
	}
	return best
}

// expireLocked ends the connections idle for longer than c.idle, looking at most once a
// minute; an expired connection found in between is refused by begin all the same.
func (c *slidingConns) expireLocked(now time.Time) {
	if now.Sub(c.swept) < time.Minute {
		return
	}
	c.swept = now
	for k, conn := range c.conns {
		if now.Sub(conn.lastUsed) > c.idle {
			delete(c.conns, k)
		}
	}
}

// count is how many connections are kept (for tests and metrics).
func (c *slidingConns) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}
