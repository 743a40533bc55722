package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"maunium.net/go/mautrix/id"
)

// RoomReceiptSource is a ReceiptSource that can also answer for some rooms only, which
// sliding sync asks for the rooms of its window; without it, sliding sync reads the receipts
// of every room the user is in and keeps those it needs.
type RoomReceiptSource interface {
	// RoomReceipts is Receipts for the given rooms only; the caller has checked that the
	// user is joined to them.
	RoomReceipts(ctx context.Context, user id.UserID, rooms []id.RoomID, since, to int64) (map[id.RoomID]json.RawMessage, error)
}

// slidingExt computes a response's extensions. Extensions about rooms cover the rooms in the
// ranges of the lists (and the subscriptions) they name. For a room the response sends whole
// they carry its current data (receipts only for its timeline's events and the user's own);
// for a room that fell behind, what changed since then; for the others, what changed since
// the pos.
type slidingExt struct {
	e      *Engine
	req    *SlidingRequest
	cfg    *slidingConfig
	set    *roomSet
	resp   *SlidingResponse
	plans  []*slidingPlan
	inList map[string][]id.RoomID
	from   *Token
	to     Token
	// sent is what the connection had sent before this response.
	sent map[id.RoomID]*sentRoom
	// touched are the rooms whose receipts or account data changed since from: those the
	// client was not sent fall behind.
	touched map[id.RoomID]bool
}

func (x *slidingExt) build(ctx context.Context) error {
	ext := x.cfg.ext
	if ext.ToDevice != nil && enabled(ext.ToDevice.Enabled) {
		if err := x.toDevice(ctx); err != nil {
			return fmt.Errorf("to-device: %w", err)
		}
	}
	if ext.E2EE != nil && enabled(ext.E2EE.Enabled) {
		if err := x.e2ee(ctx); err != nil {
			return fmt.Errorf("e2ee: %w", err)
		}
	}
	if ext.AccountData != nil && enabled(ext.AccountData.Enabled) {
		if err := x.accountData(ctx, ext.AccountData); err != nil {
			return fmt.Errorf("account data: %w", err)
		}
	}
	if ext.Receipts != nil && enabled(ext.Receipts.Enabled) {
		if err := x.receipts(ctx, ext.Receipts); err != nil {
			return fmt.Errorf("receipts: %w", err)
		}
	}
	if ext.Typing != nil && enabled(ext.Typing.Enabled) {
		if err := x.typing(ctx, ext.Typing); err != nil {
			return fmt.Errorf("typing: %w", err)
		}
	}
	return nil
}

// scope are the rooms a room extension covers.
func (x *slidingExt) scope(re *RoomExtension) map[id.RoomID]bool {
	out := map[id.RoomID]bool{}
	for _, l := range x.cfg.lists {
		if covers(re.Lists, l.name) {
			for _, r := range x.inList[l.name] {
				out[r] = true
			}
		}
	}
	for r := range x.cfg.subs {
		if x.set.all[r] != nil && covers(re.Rooms, string(r)) {
			out[r] = true
		}
	}
	return out
}

// split sorts the rooms of scope this response computes: sent whole (fresh), or since an
// older position than the pos (behind).
func (x *slidingExt) split(scope map[id.RoomID]bool) (fresh map[id.RoomID]bool, behind map[id.RoomID]int64) {
	fresh, behind = map[id.RoomID]bool{}, map[id.RoomID]int64{}
	for _, p := range x.plans {
		switch {
		case !scope[p.ur.id]:
		case p.initial || p.expanded:
			fresh[p.ur.id] = true
		case p.prev.behind > 0:
			behind[p.ur.id] = p.prev.behind
		}
	}
	return fresh, behind
}

func (x *slidingExt) toDevice(ctx context.Context) error {
	since := x.cfg.toDeviceSince
	res := &ToDeviceResult{NextBatch: strconv.FormatInt(max(since, x.to.Pos), 10), Events: []json.RawMessage{}}
	x.resp.Extensions.ToDevice = res
	src := x.e.opt.ToDevice
	if src == nil || since > x.to.Pos {
		return nil
	}
	limit := DefaultToDeviceLimit
	if l := x.cfg.ext.ToDevice.Limit; l != nil {
		limit = min(*l, DefaultToDeviceLimit)
	}
	evs, reached, err := src.ToDevice(ctx, x.req.User, x.req.Device, since, x.to.Pos, limit)
	if err != nil {
		return err
	}
	res.NextBatch = strconv.FormatInt(reached, 10)
	if len(evs) > 0 {
		res.Events = evs
	}
	return nil
}

func (x *slidingExt) e2ee(ctx context.Context) error {
	res := &E2EEResult{DeviceOneTimeKeysCount: map[string]int{}}
	x.resp.Extensions.E2EE = res
	if s := x.e.opt.Keys; s != nil {
		counts, fallback, err := s.KeyCounts(ctx, x.req.User, x.req.Device)
		if err != nil {
			return err
		}
		for alg, n := range counts {
			if n > 0 {
				res.DeviceOneTimeKeysCount[alg] = n
			}
		}
		res.DeviceUnusedFallbackKeyTypes = append([]string{}, fallback...)
	}
	if s := x.e.opt.DeviceLists; s != nil && x.from != nil {
		changed, left, err := s.DeviceLists(ctx, x.req.User, x.from.Pos, x.to.Pos)
		if err != nil {
			return err
		}
		if len(changed) > 0 || len(left) > 0 {
			res.DeviceLists = &DeviceLists{Changed: changed, Left: left}
		}
	}
	return nil
}

func (x *slidingExt) accountData(ctx context.Context, re *RoomExtension) error {
	res := &AccountDataResult{Global: []json.RawMessage{}, Rooms: map[id.RoomID][]json.RawMessage{}}
	x.resp.Extensions.AccountData = res
	src := x.e.opt.AccountData
	if src == nil {
		return nil
	}
	scope := x.scope(re)
	fresh, behind := x.split(scope)
	var since int64
	if x.from != nil {
		since = x.from.Pos
	}
	global, rooms, err := src.AccountData(ctx, x.req.User, since, x.to.Pos)
	if err != nil {
		return err
	}
	if len(global) > 0 {
		res.Global = global
	}
	for r, evs := range rooms {
		x.touched[r] = true
		if scope[r] && len(evs) > 0 {
			res.Rooms[r] = evs
		}
	}
	if x.from != nil && len(fresh)+len(behind) > 0 {
		// Rooms new to the client get all their account data (a room behind gets all of it
		// too: a little more than what changed, and one read).
		_, all, err := src.AccountData(ctx, x.req.User, 0, x.to.Pos)
		if err != nil {
			return err
		}
		for r, evs := range all {
			if _, b := behind[r]; (fresh[r] || b) && len(evs) > 0 {
				res.Rooms[r] = evs
			}
		}
	}
	return nil
}

func (x *slidingExt) receipts(ctx context.Context, re *RoomExtension) error {
	res := &RoomEventsResult{Rooms: map[id.RoomID]json.RawMessage{}}
	x.resp.Extensions.Receipts = res
	if x.e.opt.Receipts == nil {
		return nil
	}
	scope := x.scope(re)
	fresh, behind := x.split(scope)
	if x.from != nil {
		// What changed since from in the rooms of the window, and in the other rooms the
		// client has (those fall behind).
		var rooms []id.RoomID
		for r, ur := range x.set.all {
			_, b := behind[r]
			if ur.m.Membership == "join" && !fresh[r] && !b && (scope[r] || x.sent[r] != nil && x.sent[r].behind == 0) {
				rooms = append(rooms, r)
			}
		}
		live, err := x.roomReceipts(ctx, rooms, x.from.Pos)
		if err != nil {
			return err
		}
		for r, ev := range live {
			x.touched[r] = true
			if scope[r] {
				res.Rooms[r] = ev
			}
		}
	}
	for r, since := range behind {
		got, err := x.roomReceipts(ctx, []id.RoomID{r}, since)
		if err != nil {
			return err
		}
		if ev, ok := got[r]; ok {
			res.Rooms[r] = ev
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	ids := make([]id.RoomID, 0, len(fresh))
	for r := range fresh {
		ids = append(ids, r)
	}
	got, err := x.roomReceipts(ctx, ids, 0)
	if err != nil {
		return err
	}
	for r, ev := range got {
		// A room sent whole gets the receipts of the events in its timeline, and the
		// user's own (MSC3960), not every receipt ever sent in it.
		keep := map[string]bool{}
		if rr := x.resp.Rooms[r]; rr != nil {
			for _, ce := range rr.Timeline {
				keep[string(ce.EventID)] = true
			}
		}
		if f := filterReceipts(ev, keep, x.req.User); f != nil {
			res.Rooms[r] = f
		}
	}
	return nil
}

// roomReceipts reads the receipts that changed in (since, to] in those of rooms the user is
// joined to.
func (x *slidingExt) roomReceipts(ctx context.Context, rooms []id.RoomID, since int64) (map[id.RoomID]json.RawMessage, error) {
	joined := rooms[:0:0]
	for _, r := range rooms {
		if ur := x.set.all[r]; ur != nil && ur.m.Membership == "join" {
			joined = append(joined, r)
		}
	}
	rooms = joined
	if len(rooms) == 0 {
		return nil, nil
	}
	if rs, ok := x.e.opt.Receipts.(RoomReceiptSource); ok {
		return rs.RoomReceipts(ctx, x.req.User, rooms, since, x.to.Pos)
	}
	all, err := x.e.opt.Receipts.Receipts(ctx, x.req.User, since, x.to.Pos)
	if err != nil {
		return nil, err
	}
	out := map[id.RoomID]json.RawMessage{}
	for _, r := range rooms {
		if ev, ok := all[r]; ok {
			out[r] = ev
		}
	}
	return out, nil
}

// filterReceipts keeps the receipts of an m.receipt event that are for the events in keep
// or by self; nil when none is left.
func filterReceipts(raw json.RawMessage, keep map[string]bool, self id.UserID) json.RawMessage {
	var ev struct {
		Type    string                                              `json:"type"`
		Content map[string]map[string]map[id.UserID]json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &ev) != nil {
		return nil
	}
	for eventID, byType := range ev.Content {
		if keep[eventID] {
			continue
		}
		for typ, byUser := range byType {
			for u := range byUser {
				if u != self {
					delete(byUser, u)
				}
			}
			if len(byUser) == 0 {
				delete(byType, typ)
			}
		}
		if len(byType) == 0 {
			delete(ev.Content, eventID)
		}
	}
	if len(ev.Content) == 0 {
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	return b
}

func (x *slidingExt) typing(ctx context.Context, re *RoomExtension) error {
	res := &RoomEventsResult{Rooms: map[id.RoomID]json.RawMessage{}}
	x.resp.Extensions.Typing = res
	src := x.e.opt.Typing
	if src == nil {
		return nil
	}
	scope := x.scope(re)
	fresh, behind := x.split(scope)
	for r := range behind {
		fresh[r] = true // typing is not kept: a room behind gets who types now
	}
	if x.from != nil && x.from.Typing != x.to.Typing {
		since := x.from.Typing
		if since > x.to.Typing {
			since = 0
		}
		live, err := src.Typing(ctx, x.req.User, since, x.to.Typing)
		if err != nil {
			return err
		}
		for r, ev := range live {
			if scope[r] && !fresh[r] {
				res.Rooms[r] = ev
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	now, err := src.Typing(ctx, x.req.User, 0, x.to.Typing)
	if err != nil {
		return err
	}
	for r, ev := range now {
		if fresh[r] {
			res.Rooms[r] = ev
		}
	}
	return nil
}
