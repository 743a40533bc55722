package rooms

import (
	"sync"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// stateEntry is one piece of current state.
type stateEntry struct {
	nid int64
	id  id.EventID
}

// roomState is the cached current state of one room. It is only read or changed under the
// room's lock.
type roomState struct {
	nid         int64
	id          id.RoomID
	version     id.RoomVersion
	state       map[storage.StateKey]stateEntry
	snapshot    int64
	extremities []id.EventID
	maxDepth    int64
	memberships map[id.UserID]string
	// joinedServers counts joined members per server, for fan-out to other servers.
	joinedServers map[string]int
}

func (rs *roomState) membership(u id.UserID) string {
	return rs.memberships[u]
}

// setMembership records a membership change, keeping joinedServers in step.
func (rs *roomState) setMembership(u id.UserID, m string) {
	if rs.memberships[u] == "join" {
		if rs.joinedServers[u.Homeserver()]--; rs.joinedServers[u.Homeserver()] <= 0 {
			delete(rs.joinedServers, u.Homeserver())
		}
	}
	rs.memberships[u] = m
	if m == "join" {
		rs.joinedServers[u.Homeserver()]++
	}
}

// stateCache keeps the current state of recently used rooms.
type stateCache struct {
	mu    sync.Mutex
	max   int
	rooms map[id.RoomID]*roomState
}

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, rooms: map[id.RoomID]*roomState{}}
}

func (c *stateCache) get(room id.RoomID) *roomState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[room]
}

func (c *stateCache) put(rs *roomState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rooms) >= c.max {
		for k := range c.rooms { // evict an arbitrary room; it reloads on next use
			delete(c.rooms, k)
			break
		}
	}
	c.rooms[rs.id] = rs
}

func (c *stateCache) drop(room id.RoomID) {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
}

// eventCache keeps parsed PDUs (as redacted when they are) by NID, in two generations: a
// lookup promotes an old entry, and when the young generation fills up the old one is dropped.
type eventCache struct {
	mu         sync.Mutex
	max        int
	young, old map[id.EventID]*pdu.PDU
}

func newEventCache(max int) *eventCache {
	return &eventCache{max: max, young: map[id.EventID]*pdu.PDU{}, old: map[id.EventID]*pdu.PDU{}}
}

func (c *eventCache) get(nid id.EventID) *pdu.PDU {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.young[nid]; ok {
		return p
	}
	if p, ok := c.old[nid]; ok {
		c.putLocked(nid, p)
		return p
	}
	return nil
}

func (c *eventCache) put(nid id.EventID, p *pdu.PDU) {
	c.mu.Lock()
	c.putLocked(nid, p)
	c.mu.Unlock()
}

func (c *eventCache) putLocked(nid id.EventID, p *pdu.PDU) {
	if len(c.young) >= c.max {
		c.old, c.young = c.young, map[id.EventID]*pdu.PDU{}
	}
	c.young[nid] = p
}

func (c *eventCache) drop(nid id.EventID) {
	c.mu.Lock()
	delete(c.young, nid)
	delete(c.old, nid)
	c.mu.Unlock()
}
