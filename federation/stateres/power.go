package stateres

import (
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// creatorPower is the power of a room creator in room version 12: above any integer a
// power_levels event can hold.
const creatorPower = math.MaxInt64

var (
	keyCreate = StateKey{Type: event.StateCreate.Type}
	keyPower  = StateKey{Type: event.StatePowerLevels.Type}
)

// isPowerEvent says whether ev is a power event: a state event that may take away someone's
// ability to do something. See the v2 definitions: power_levels and join_rules events, and
// kicks and bans (a leave or ban whose sender is not its target). Like Synapse and ruma, we
// count the create event too, and only the state key "" of the room-wide types.
func isPowerEvent(ev *pdu.PDU) bool {
	if ev.StateKey == nil {
		return false
	}
	switch ev.Type {
	case event.StatePowerLevels.Type, event.StateJoinRules.Type, event.StateCreate.Type:
		return *ev.StateKey == ""
	case event.StateMember.Type:
		m := gjson.GetBytes(ev.Content, "membership").Str
		return (m == string(event.MembershipLeave) || m == string(event.MembershipBan)) && *ev.StateKey != ev.Sender.String()
	}
	return false
}

// isCreator says whether user is a creator of the room in room version 12: the sender of the
// create event or one of its additional_creators.
func isCreator(create *pdu.PDU, user id.UserID) bool {
	if create == nil {
		return false
	}
	if create.Sender == user {
		return true
	}
	found := false
	gjson.GetBytes(create.Content, "additional_creators").ForEach(func(_, v gjson.Result) bool {
		found = v.Type == gjson.String && v.Str == user.String()
		return !found
	})
	return found
}

// senderPower is the power level of n's sender as its own auth events say, which orders power
// events in step 1 (the reverse topological power ordering). In room version 12 a creator's
// power is infinite; without a power_levels auth event, the creator has 100 and everyone else 0.
func (s *v2res) senderPower(n int32) int64 {
	g := s.g
	ev := g.ev(n)
	create := s.create
	if !s.createByRoomID {
		if c := g.authOf(n, keyCreate, false); c != -1 {
			create = g.ev(c)
		}
	}
	if s.privileged && isCreator(create, ev.Sender) {
		return creatorPower
	}
	if pl := g.authOf(n, keyPower, false); pl != -1 {
		return userLevel(g.ev(pl).Content, ev.Sender)
	}
	if create != nil && !s.privileged {
		creator := create.Sender.String()
		if g.version.CreatorInContent() {
			creator = gjson.GetBytes(create.Content, "creator").Str
		}
		if creator == ev.Sender.String() {
			return 100
		}
	}
	return 0
}

// userLevel reads a user's level from power_levels content: users[user], else users_default,
// else 0. Values are read the way Python's int() reads them, as Synapse does here in every
// room version: from room version 10 the auth rules only let integers through anyway.
func userLevel(content []byte, user id.UserID) int64 {
	var lvl gjson.Result
	gjson.GetBytes(content, "users").ForEach(func(k, v gjson.Result) bool {
		if k.Str == user.String() {
			lvl = v
			return false
		}
		return true
	})
	if n, ok := pythonInt(lvl); ok {
		return n
	}
	if n, ok := pythonInt(gjson.GetBytes(content, "users_default")); ok {
		return n
	}
	return 0
}

func pythonInt(v gjson.Result) (int64, bool) {
	switch v.Type {
	case gjson.Number:
		return v.Int(), true
	case gjson.True:
		return 1, true
	case gjson.False:
		return 0, true
	case gjson.String:
		n, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64)
		return n, err == nil
	}
	return 0, false
}
