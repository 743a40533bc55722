package sync

import (
	stdsync "sync"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// DefaultLazyDevices is how many devices' sent member events the lazy-loading cache keeps.
const DefaultLazyDevices = 256

// lazyCache remembers, per device, which member events lazy-loading syncs have sent, so
// that each is sent once (the spec's "redundant membership events"). Every entry carries
// the position of the response that sent it, and counts as known only to a sync from that
// position or later: a client retrying an older token, whose answer it never got, is sent
// the members again. The cache lives in memory; after a restart or an eviction members are
// sent again, which the spec allows.
type lazyCache struct {
	mu         stdsync.Mutex
	maxDevices int
	devices    map[deviceKey]map[id.RoomID]map[id.UserID]sentMember
}

type deviceKey struct {
	user   id.UserID
	device id.DeviceID
}

type sentMember struct {
	nid int64
	// at is the position of the response that carried it.
	at int64
}

func newLazyCache(maxDevices int) *lazyCache {
	return &lazyCache{maxDevices: maxDevices, devices: map[deviceKey]map[id.RoomID]map[id.UserID]sentMember{}}
}

// reset forgets what a device was sent: it starts over with an initial sync.
func (c *lazyCache) reset(user id.UserID, device id.DeviceID) {
	c.mu.Lock()
	delete(c.devices, deviceKey{user, device})
	c.mu.Unlock()
}

// known returns whether a device that syncs from position since holds a member event of
// room. It works on a copy, so the rooms engine may call it from any goroutine.
func (c *lazyCache) known(user id.UserID, device id.DeviceID, room id.RoomID, since int64) func(id.UserID, int64) bool {
	c.mu.Lock()
	sent := map[id.UserID]int64{}
	for u, m := range c.devices[deviceKey{user, device}][room] {
		if m.at <= since {
			sent[u] = m.nid
		}
	}
	c.mu.Unlock()
	return func(u id.UserID, nid int64) bool { return sent[u] == nid && nid != 0 }
}

// record notes the member events among evs as sent to a device in the response at position at.
func (c *lazyCache) record(user id.UserID, device id.DeviceID, room id.RoomID, at int64, evs ...[]*rooms.ClientEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := deviceKey{user, device}
	rs := c.devices[k]
	if rs == nil {
		if len(c.devices) >= c.maxDevices {
			for d := range c.devices { // evict an arbitrary device; it is sent members again
				delete(c.devices, d)
				break
			}
		}
		rs = map[id.RoomID]map[id.UserID]sentMember{}
		c.devices[k] = rs
	}
	members := rs[room]
	if members == nil {
		members = map[id.UserID]sentMember{}
		rs[room] = members
	}
	for _, list := range evs {
		for _, ce := range list {
			if ce.Type != "m.room.member" || ce.StateKey == nil || ce.Stored == nil {
				continue
			}
			u := id.UserID(*ce.StateKey)
			if old, ok := members[u]; ok && old.nid == ce.Stored.NID && old.at <= at {
				continue // keep the earliest response that carried it
			}
			members[u] = sentMember{nid: ce.Stored.NID, at: at}
		}
	}
}
