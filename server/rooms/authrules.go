package rooms

import (
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Auth failures of the rules eventauth leaves out, numbered as the room versions number them.
var (
	errAliasesNoStateKey  = eventauth.AuthFailError{Index: "4.1", Message: "m.room.aliases event has no state key"}
	errAliasesOtherServer = eventauth.AuthFailError{Index: "4.2", Message: "m.room.aliases state key is not the sender's server"}
	errRedactOtherServer  = eventauth.AuthFailError{Index: "11.3", Message: "sender may not redact another server's events without the redact power level"}
)

// authorize runs the room version's auth rules on p: mautrix's eventauth, and the two rules
// of old room versions it leaves out:
//
//   - m.room.aliases (versions 1 to 5, rule 4): allowed if and only if its state key is the
//     sender's server, whatever the sender's membership and power;
//   - m.room.redaction (versions 1 and 2, rule 11): the sender needs the redact level, or an
//     event ID of the same server as the redacted event's.
//
// authEvents and getEvents are as eventauth.Authorize takes them.
// See https://spec.matrix.org/v1.19/rooms/v1/#authorization-rules
func (e *Engine) authorize(version id.RoomVersion, p *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc) error {
	return authorize(version, p, authEvents, getEvents, e.keyFunc)
}

// authorize is Engine.authorize with the keys from getKey, in eventauth.Authorize's shape
// (stateres.Resolver.Authorize).
func authorize(version id.RoomVersion, p *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error {
	if p.Type == "m.room.member" && !version.RestrictedJoins() && gjson.GetBytes(p.Content, authoriserKey).Exists() {
		// The authorising server means nothing before restricted joins (room version 8),
		// but eventauth checks its signature (rule 5.2) in every version.
		q := p.Clone()
		q.Content = withoutKey(p.Content, authoriserKey)
		p = q
	}
	err := eventauth.Authorize(version, p, authEvents, getEvents, getKey)
	if p.Type == "m.room.aliases" && version.SpecialCasedAliasesAuth() {
		// Rules 1 to 3 (create, auth events, m.federate) still hold; what eventauth checks
		// after them does not apply to aliases.
		if err != nil && !pastAliasesRule(err) {
			return err
		}
		switch {
		case p.StateKey == nil:
			return errAliasesNoStateKey
		case *p.StateKey != p.Sender.Homeserver():
			return errAliasesOtherServer
		}
		return nil
	}
	if err != nil {
		return err
	}
	if p.Type == "m.room.redaction" && redactionsInAuthRules(version) {
		return authorizeRedaction(version, p, authEvents, getEvents)
	}
	return nil
}

// pastAliasesRule says whether eventauth refused an event by a rule that comes after the
// aliases rule (membership, power), rather than by the create, auth-event or federation
// rules before it. eventauth numbers rules as room version 3 and later do, where the aliases
// rule is gone: 1 create, 2 room ID, 3 auth events, 4 m.federate, 5 on.
func pastAliasesRule(err error) bool {
	var afe eventauth.AuthFailError
	if !errors.As(err, &afe) {
		return false
	}
	if afe.Index == "?" {
		return true // unparseable power levels: rules 6 and later read them
	}
	major, _, _ := strings.Cut(afe.Index, ".")
	n, convErr := strconv.Atoi(major)
	return convErr == nil && n >= 5
}

// authorizeRedaction is rule 11 of room versions 1 and 2, for a redaction that passed the
// other rules.
func authorizeRedaction(version id.RoomVersion, p *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc) error {
	if authEvents == nil {
		got, err := getEvents(p.AuthEvents)
		if err != nil {
			return fmt.Errorf("%w: %w", eventauth.ErrFailedToGetAuthEvents, err)
		}
		authEvents = got
	}
	var create, levels *pdu.PDU
	for _, a := range authEvents {
		if a == nil || a.StateKey == nil || *a.StateKey != "" {
			continue
		}
		switch a.Type {
		case "m.room.create":
			create = a
		case "m.room.power_levels":
			levels = a
		}
	}
	pl := powerLevels{}
	if levels != nil {
		pl.raw = gjson.ParseBytes(levels.Content)
	} else if create != nil {
		// Without power levels the room's creator has 100.
		creator := create.Sender
		if version.CreatorInContent() {
			creator = id.UserID(gjson.GetBytes(create.Content, "creator").Str)
		}
		pl.raw = gjson.Parse(fmt.Sprintf(`{"users":{%q:100}}`, creator))
	}
	// 11.1: the redact level allows any redaction.
	if pl.user(p.Sender) >= pl.level("redact", 50) {
		return nil
	}
	// A redaction that names no event redacts nothing (Synapse lets it pass).
	if p.Redacts == nil {
		return nil
	}
	// 11.2: a server may redact its own events.
	if eventIDServer(*p.Redacts) == eventIDServer(p.InternalMeta.EventID) {
		return nil
	}
	return errRedactOtherServer
}

// authoriserKey names the server that authorised a restricted join.
const authoriserKey = "join_authorised_via_users_server"

// withoutKey is a JSON object without one key (the object itself if it cannot be parsed).
func withoutKey(obj jsontext.Value, key string) jsontext.Value {
	o, err := parseObject(obj)
	if err != nil {
		return obj
	}
	delete(o, key)
	out, err := jsonv2.Marshal(o)
	if err != nil {
		return obj
	}
	return out
}
