package voip

import (
	"errors"
	"net"
	"net/netip"

	"github.com/pion/turn/v4"
)

// authenticate is pion's AuthHandler: it returns the long-term key for a TURN REST username
// that has not expired and names a user of this server. pion then checks the request's
// MESSAGE-INTEGRITY with it, so a forged password, or another user's password under this
// username, fails there (see onAuth).
func (t *TURN) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	expiry, user, err := checkUsername(username, t.realm, t.now())
	if err == nil && t.active != nil && !t.active(user) {
		err = errInactiveUser
	}
	if err != nil || realm != t.realm {
		t.stats.refusedAuth.Add(1)
		t.log.Debug("TURN credentials refused", "client", src.String(), "username", username, "err", err)
		return nil, false
	}
	return turn.GenerateAuthKey(username, realm, Password(t.keys.Secret(expiry), username)), true
}

var errInactiveUser = errors.New("voip: the user is deactivated")

// onAuth counts requests whose MESSAGE-INTEGRITY did not match.
func (t *TURN) onAuth(src, _ net.Addr, _, username, _, method string, ok bool) {
	if !ok {
		t.stats.refusedAuth.Add(1)
		t.log.Debug("TURN credentials refused: wrong password", "client", src.String(), "username", username, "method", method)
	}
}

// quota is pion's QuotaHandler: a user may hold Limits.Allocations relays at once.
func (t *TURN) quota(username, _ string, src net.Addr) bool {
	_, user, err := ParseUsername(username)
	if err == nil && t.users.mayAllocate(user, t.limits.Load().Allocations) {
		return true
	}
	t.stats.refusedQuota.Add(1)
	t.log.Debug("TURN allocation refused: quota", "client", src.String(), "user", user)
	return false
}

// permit is pion's PermissionHandler: the peer policy decides.
func (t *TURN) permit(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if ok && t.policy.Load().Peer(ip) {
		return true
	}
	t.stats.refusedPeer.Add(1)
	t.log.Debug("TURN peer refused", "client", client.String(), "peer", peer.String())
	return false
}

func (t *TURN) onAllocationCreated(_, _ net.Addr, _, username, _ string, relay net.Addr, _ int) {
	_, user, _ := ParseUsername(username) // checked by authenticate
	u := t.users.allocated(user)
	t.stats.allocations.Add(1)
	t.stats.active.Add(1)
	if ua, ok := relay.(*net.UDPAddr); ok {
		if c := t.relay.conn(ua.Port); c != nil {
			c.user.Store(u)
		}
	}
}

func (t *TURN) onAllocationDeleted(_, _ net.Addr, _, username, _ string) {
	_, user, _ := ParseUsername(username)
	t.users.released(user)
	t.stats.active.Add(-1)
}
