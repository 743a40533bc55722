package sync

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// Limits on a sliding sync request, as Synapse sets them.
const (
	// MaxSlidingLists is how many lists one request may have.
	MaxSlidingLists = 100
	// MaxSlidingListName is the longest list name, in bytes.
	MaxSlidingListName = 64
	// MaxSlidingSubscriptions is how many rooms one request may subscribe to.
	MaxSlidingSubscriptions = 1000
	// MaxConnID is the longest conn_id, in bytes.
	MaxConnID = 256
)

// SlidingRequest is one simplified sliding sync request (MSC4186).
type SlidingRequest struct {
	User   id.UserID
	Device id.DeviceID
	// Pos is where the client's connection stands; nil starts the connection anew.
	Pos *SlidingPos
	// Timeout is how long to wait for something to send (capped at Options.MaxTimeout); it
	// is ignored without Pos.
	Timeout time.Duration
	// SetPresence is "online" (also when empty), "unavailable" or "offline".
	SetPresence string
	Body        SlidingBody
}

// SlidingBody is the request's JSON body. Unknown fields (and unknown extensions) are
// ignored, as the MSC asks.
type SlidingBody struct {
	ConnID string `json:"conn_id"`
	// TxnID, when given, is echoed in the response (the unstable API's way to tell which
	// request an answer is for).
	TxnID             string                          `json:"txn_id"`
	Lists             map[string]SlidingList          `json:"lists"`
	RoomSubscriptions map[id.RoomID]SlidingRoomConfig `json:"room_subscriptions"`
	Extensions        SlidingExtensions               `json:"extensions"`
	// Pos, Timeout and SetPresence may come in the body (the MSC's newer text) rather than
	// the query string (the unstable API); the query string wins.
	Pos         *string `json:"pos"`
	Timeout     *int64  `json:"timeout"`
	SetPresence *string `json:"set_presence"`
}

// SlidingRoomConfig is what to send of a room: a room subscription, and part of a list.
type SlidingRoomConfig struct {
	RequiredState RequiredState `json:"required_state"`
	// TimelineLimit is required; values above MaxTimelineLimit are capped.
	TimelineLimit *int `json:"timeline_limit"`
}

// SlidingList is one list: the user's rooms that pass Filters, in activity order, of which
// the Ranges are sent.
type SlidingList struct {
	SlidingRoomConfig
	// Ranges are inclusive [first, last] index pairs into the list; absent means the whole
	// list, an empty list none of it. Range is the MSC's newer single-range form.
	Ranges  [][]int64       `json:"ranges"`
	Range   []int64         `json:"range"`
	Filters *SlidingFilters `json:"filters"`
}

// SlidingFilters narrow a list; every filter set must pass. See MSC4186 SlidingRoomFilter.
type SlidingFilters struct {
	IsDM        *bool       `json:"is_dm"`
	Spaces      []id.RoomID `json:"spaces"`
	IsEncrypted *bool       `json:"is_encrypted"`
	// IsInvite is the unstable name of IsInvited.
	IsInvite  *bool `json:"is_invite"`
	IsInvited *bool `json:"is_invited"`
	// RoomTypes and NotRoomTypes hold create event types; null stands for rooms without one.
	RoomTypes    []*string `json:"room_types"`
	NotRoomTypes []*string `json:"not_room_types"`
	Tags         []string  `json:"tags"`
	NotTags      []string  `json:"not_tags"`
}

// SlidingExtensions configure the extensions; each is off unless enabled.
type SlidingExtensions struct {
	ToDevice    *ToDeviceExtension `json:"to_device"`
	E2EE        *ExtensionToggle   `json:"e2ee"`
	AccountData *RoomExtension     `json:"account_data"`
	Receipts    *RoomExtension     `json:"receipts"`
	Typing      *RoomExtension     `json:"typing"`
}

// ExtensionToggle is an extension with nothing to configure but whether it is on.
type ExtensionToggle struct {
	Enabled *bool `json:"enabled"`
}

// ToDeviceExtension is the to-device extension (MSC3885).
type ToDeviceExtension struct {
	Enabled *bool `json:"enabled"`
	// Since is the next_batch of the previous response: messages up to it were received.
	Since *string `json:"since"`
	// Limit caps the messages per response (at most DefaultToDeviceLimit).
	Limit *int `json:"limit"`
}

// RoomExtension is an extension about rooms (account data, receipts, typing): it covers the
// rooms in the ranges of Lists and the subscribed Rooms; "*" means all, absent means "*".
type RoomExtension struct {
	Enabled *bool     `json:"enabled"`
	Lists   *[]string `json:"lists"`
	Rooms   *[]string `json:"rooms"`
}

// slidingConfig is a request's body checked and resolved for its user.
type slidingConfig struct {
	connID string
	// lists are in name order, so that responses do not depend on map order.
	lists []*listConfig
	subs  map[id.RoomID]roomConfig
	ext   SlidingExtensions
	// toDeviceSince is the to-device extension's since, 0 without one.
	toDeviceSince int64
}

// roomConfig is what to send of a room, combined over the rules it matches.
type roomConfig struct {
	limit int
	spec  *stateSpec
}

// union combines two configs: the larger timeline and the union of the state.
func (c roomConfig) union(o roomConfig) roomConfig {
	return roomConfig{limit: max(c.limit, o.limit), spec: c.spec.union(o.spec)}
}

type listConfig struct {
	name string
	roomConfig
	// ranges nil means the whole list.
	ranges  [][2]int
	filters *SlidingFilters
}

// resolve checks a request and resolves it for its user. Bad values are ErrInvalidParam.
func (b *SlidingBody) resolve(user id.UserID) (*slidingConfig, error) {
	bad := func(format string, args ...any) (*slidingConfig, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidParam}, args...)...)
	}
	if len(b.ConnID) > MaxConnID {
		return bad("conn_id is longer than %d bytes", MaxConnID)
	}
	if len(b.Lists) > MaxSlidingLists {
		return bad("at most %d lists", MaxSlidingLists)
	}
	if len(b.RoomSubscriptions) > MaxSlidingSubscriptions {
		return bad("at most %d room subscriptions", MaxSlidingSubscriptions)
	}
	cfg := &slidingConfig{connID: b.ConnID, subs: map[id.RoomID]roomConfig{}, ext: b.Extensions}
	for name, l := range b.Lists {
		if name == "" || len(name) > MaxSlidingListName {
			return bad("list names must be 1 to %d bytes", MaxSlidingListName)
		}
		rc, err := l.SlidingRoomConfig.resolve(user, "lists."+name)
		if err != nil {
			return nil, err
		}
		lc := &listConfig{name: name, roomConfig: rc, filters: l.Filters}
		ranges := l.Ranges
		if l.Range != nil {
			ranges = append(ranges, l.Range)
		}
		if ranges != nil {
			lc.ranges = [][2]int{}
		}
		for _, r := range ranges {
			if len(r) != 2 || r[0] < 0 || r[1] < r[0] {
				return bad("lists.%s: a range is [first, last] with 0 <= first <= last", name)
			}
			lc.ranges = append(lc.ranges, [2]int{int(min(r[0], 1<<31)), int(min(r[1], 1<<31))})
		}
		cfg.lists = append(cfg.lists, lc)
	}
	slices.SortFunc(cfg.lists, func(a, b *listConfig) int { return strings.Compare(a.name, b.name) })
	for roomID, sub := range b.RoomSubscriptions {
		if !strings.HasPrefix(string(roomID), "!") {
			return bad("room_subscriptions: %q is not a room ID", roomID)
		}
		rc, err := sub.resolve(user, "room_subscriptions."+string(roomID))
		if err != nil {
			return nil, err
		}
		cfg.subs[roomID] = rc
	}
	if td := b.Extensions.ToDevice; td != nil {
		if td.Since != nil {
			n, err := parseCount(*td.Since)
			if err != nil {
				return bad("extensions.to_device.since: %q is not a to-device token from this server", *td.Since)
			}
			cfg.toDeviceSince = n
		}
		if td.Limit != nil && *td.Limit < 1 {
			return bad("extensions.to_device.limit must be at least 1")
		}
	}
	return cfg, nil
}

func (c *SlidingRoomConfig) resolve(user id.UserID, where string) (roomConfig, error) {
	if c.TimelineLimit == nil {
		return roomConfig{}, fmt.Errorf("%w: %s: timeline_limit is required", ErrInvalidParam, where)
	}
	if *c.TimelineLimit < 0 {
		return roomConfig{}, fmt.Errorf("%w: %s: timeline_limit must not be negative", ErrInvalidParam, where)
	}
	return roomConfig{limit: min(*c.TimelineLimit, MaxTimelineLimit), spec: newStateSpec(c.RequiredState, user)}, nil
}

// enabled says whether an extension is on.
func enabled(b *bool) bool { return b != nil && *b }

// covers says whether a room extension covers a list or subscribed room ("*" or named).
func covers(names *[]string, name string) bool {
	if names == nil {
		return true
	}
	return slices.Contains(*names, "*") || slices.Contains(*names, name)
}

// ParseSlidingTimeout reads the timeout query parameter (milliseconds).
func ParseSlidingTimeout(s string) (time.Duration, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		ms = -1
	}
	return SlidingTimeout(ms)
}

// SlidingTimeout checks a timeout in milliseconds; the engine caps it further.
func SlidingTimeout(ms int64) (time.Duration, error) {
	if ms < 0 {
		return 0, fmt.Errorf("%w: timeout must be a non-negative integer number of milliseconds", ErrInvalidParam)
	}
	return time.Duration(min(ms, int64(time.Hour/time.Millisecond))) * time.Millisecond, nil
}
