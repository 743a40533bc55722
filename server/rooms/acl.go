package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// serverACL is a room's m.room.server_acl.
type serverACL struct {
	allow, deny []string
	ipLiterals  bool
	set         bool
}

func parseACL(content []byte) serverACL {
	acl := serverACL{ipLiterals: true, set: true}
	c := gjson.ParseBytes(content)
	for _, a := range c.Get("allow").Array() {
		acl.allow = append(acl.allow, a.Str)
	}
	for _, d := range c.Get("deny").Array() {
		acl.deny = append(acl.deny, d.Str)
	}
	if v := c.Get("allow_ip_literals"); v.Exists() {
		acl.ipLiterals = v.Type == gjson.True
	}
	return acl
}

// allows applies the spec's rules: IP literals per allow_ip_literals, then deny, then allow
// (matched without the port, with * and ? globs).
func (acl serverACL) allows(server string) bool {
	if !acl.set {
		return true
	}
	host := server
	if h, _, ok := strings.Cut(server, ":"); ok && !strings.HasPrefix(server, "[") {
		host = h
	} else if strings.HasPrefix(server, "[") {
		host = strings.TrimPrefix(strings.SplitN(server, "]", 2)[0], "[")
	}
	if _, err := netip.ParseAddr(host); err == nil && !acl.ipLiterals {
		return false
	}
	host = strings.ToLower(host)
	for _, d := range acl.deny {
		if globMatch(d, host) {
			return false
		}
	}
	for _, a := range acl.allow {
		if globMatch(a, host) {
			return true
		}
	}
	return false
}

func globMatch(pattern, s string) bool {
	// path.Match treats '[' and '\\' specially; ACL globs only know * and ?.
	pattern = strings.NewReplacer("[", "\\[", "]", "\\]", "\\", "\\\\").Replace(strings.ToLower(pattern))
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// acl returns the room's current server ACL. The caller holds the room's lock.
func (e *Engine) acl(ctx context.Context, rs *roomState) serverACL {
	ev, err := e.stateEvent(ctx, rs, "m.room.server_acl", "")
	if err != nil || ev == nil {
		return serverACL{}
	}
	return parseACL(ev.Content)
}

// ServerAllowed says whether a room's server ACL lets server take part (send events, join,
// read history).
func (e *Engine) ServerAllowed(ctx context.Context, roomID id.RoomID, server string) bool {
	room, err := e.db.RoomByID(ctx, string(roomID))
	if err != nil {
		return true // unknown rooms are refused elsewhere
	}
	ev, err := e.db.CurrentStateEvent(ctx, room.NID, storage.StateKey{Type: "m.room.server_acl"})
	if err != nil {
		return true
	}
	return parseACL([]byte(gjson.GetBytes(ev.JSON, "content").Raw)).allows(server)
}

// checkACLContent refuses a server ACL that would shut this server out of its own room.
func (e *Engine) checkACLContent(content json.RawMessage) error {
	if !parseACL(content).allows(e.opt.ServerName) {
		return fmt.Errorf("%w: this server ACL would ban %s, this room's own server", ErrForbidden, e.opt.ServerName)
	}
	return nil
}
