package rooms

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

// Limits of the space hierarchy, as the spec asks servers to impose.
const (
	// DefaultHierarchyLimit and MaxHierarchyLimit bound the rooms of one page.
	DefaultHierarchyLimit = 50
	MaxHierarchyLimit     = 50
	// MaxHierarchyDepth bounds how deep a walk goes, also when the client sets no max_depth.
	MaxHierarchyDepth = 50
)

// HierarchyRequest is a query of a space's tree. MaxDepth < 0 means none given; Limit 0
// means DefaultHierarchyLimit.
type HierarchyRequest struct {
	SuggestedOnly bool
	MaxDepth      int
	Limit         int
	From          string
}

// HierarchyRoom is one room of a hierarchy page: its summary and, for spaces, its children.
type HierarchyRoom struct {
	RoomSummary
	ChildrenState []*SpaceChild `json:"children_state"`
}

// SpaceChild is an m.space.child event as stripped state with its origin_server_ts.
type SpaceChild struct {
	Type           string          `json:"type"`
	StateKey       string          `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	Sender         id.UserID       `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
}

// HierarchyResponse is the spec's answer to /hierarchy.
type HierarchyResponse struct {
	Rooms     []*HierarchyRoom `json:"rooms"`
	NextBatch string           `json:"next_batch,omitempty"`
}

// Hierarchy walks a space's tree depth first, children in the spec's order, and returns the
// rooms user may preview (see preview), each once. The children of a room are followed only
// when it is a space the user may preview. Rooms this server does not hold are asked of the
// servers in their m.space.child event's via list, then of the server named in the room ID
// (the only one to ask about a root this server does not hold), over federation's
// /hierarchy, within a budget of requests and time per walk; a room no server answers for
// is left out, and stays in its parent's children_state.
//
// Pages are positions in the walk: a token counts the rooms already returned, and the next
// page walks again and skips them, so tokens need no server-side session; answers from other
// servers are cached for a while, so the pages of one walk ask them once.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidhierarchy
func (e *Engine) Hierarchy(ctx context.Context, user id.UserID, roomID id.RoomID, req HierarchyRequest) (*HierarchyResponse, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultHierarchyLimit
	}
	limit = min(limit, MaxHierarchyLimit)
	maxDepth := req.MaxDepth
	if maxDepth < 0 || maxDepth > MaxHierarchyDepth {
		maxDepth = MaxHierarchyDepth
	}
	tok := hierarchyToken{Room: roomID, Suggested: req.SuggestedOnly, MaxDepth: req.MaxDepth}
	if req.From != "" {
		got, err := parseHierarchyToken(req.From)
		if err != nil {
			return nil, err
		}
		if got.Room != tok.Room {
			return nil, fmt.Errorf("%w: the pagination token belongs to another room's hierarchy", ErrInvalidParam)
		}
		if got.Suggested != tok.Suggested || got.MaxDepth != tok.MaxDepth {
			return nil, fmt.Errorf("%w: suggested_only and max_depth cannot change on paginated requests", ErrInvalidParam)
		}
		tok.Skip = got.Skip
	}

	w := e.newHierarchyWalk(user, req.SuggestedOnly)
	defer w.close()
	if root, err := w.room(ctx, roomID, nil); err != nil {
		return nil, err
	} else if root == nil {
		return nil, fmt.Errorf("%w: you are not allowed to view room %s", ErrForbidden, roomID)
	}

	type queued struct {
		room  id.RoomID
		depth int
		via   []string
	}
	stack := []queued{{roomID, 0, nil}}
	done := map[id.RoomID]bool{}
	resp := &HierarchyResponse{Rooms: []*HierarchyRoom{}}
	walked := 0
	for len(stack) > 0 && len(resp.Rooms) < limit {
		q := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if done[q.room] {
			continue
		}
		done[q.room] = true
		hr, err := w.room(ctx, q.room, q.via)
		if err != nil {
			return nil, err
		}
		if hr == nil {
			continue // unknown, unreachable, or not for this user
		}
		if walked >= tok.Skip {
			resp.Rooms = append(resp.Rooms, hr)
		}
		walked++
		if q.depth < maxDepth {
			for _, c := range slices.Backward(hr.ChildrenState) {
				stack = append(stack, queued{id.RoomID(c.StateKey), q.depth + 1, childVia(c)})
			}
		}
	}
	if len(stack) > 0 {
		tok.Skip = walked
		resp.NextBatch = tok.String()
	}
	return resp, nil
}

// localHierarchyRoom is a room this server holds as user sees it in a hierarchy, or nil when
// they may not preview it; ErrNotFound when this server does not hold it.
func (e *Engine) localHierarchyRoom(ctx context.Context, user id.UserID, roomID id.RoomID, suggestedOnly bool) (*HierarchyRoom, error) {
	ri, err := e.roomInfoByID(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if _, ok, err := e.preview(ctx, ri, user); err != nil || !ok {
		return nil, err
	}
	return e.hierarchyRoom(ctx, ri, suggestedOnly)
}

// hierarchyRoom is a room's summary with, for a space, its children.
func (e *Engine) hierarchyRoom(ctx context.Context, ri *roomInfo, suggestedOnly bool) (*HierarchyRoom, error) {
	hr := &HierarchyRoom{RoomSummary: ri.summary, ChildrenState: []*SpaceChild{}}
	if ri.isSpace() {
		children, err := e.spaceChildren(ctx, ri.nid, suggestedOnly)
		if err != nil {
			return nil, err
		}
		if children != nil {
			hr.ChildrenState = children
		}
	}
	return hr, nil
}

// spaceChildren returns a space's valid m.space.child events (a non-empty via of strings),
// only suggested ones when asked, in the spec's order (see orderChildren).
func (e *Engine) spaceChildren(ctx context.Context, roomNID int64, suggestedOnly bool) ([]*SpaceChild, error) {
	evs, err := e.db.CurrentStateEvents(ctx, roomNID, "m.space.child")
	if err != nil {
		return nil, err
	}
	var out []*SpaceChild
	for _, ev := range evs {
		if ev.RedactedBy != "" || ev.StateKey == nil {
			continue // a redacted child event has no via
		}
		c := &SpaceChild{Type: ev.Type, StateKey: *ev.StateKey, Content: json.RawMessage(gjson.GetBytes(ev.JSON, "content").Raw),
			Sender: id.UserID(ev.Sender), OriginServerTS: gjson.GetBytes(ev.JSON, "origin_server_ts").Int()}
		if validChild(c, suggestedOnly) {
			out = append(out, c)
		}
	}
	orderChildren(out)
	return out, nil
}

// validChild says whether c is an m.space.child event naming a room with a non-empty via of
// strings, and a suggested one when only those are wanted.
func validChild(c *SpaceChild, suggestedOnly bool) bool {
	if c == nil || c.Type != "m.space.child" || !strings.HasPrefix(c.StateKey, "!") {
		return false
	}
	content := gjson.ParseBytes(c.Content)
	return validVia(content.Get("via")) && (!suggestedOnly || content.Get("suggested").Type == gjson.True)
}

// childVia is the via list of a valid m.space.child event.
func childVia(c *SpaceChild) []string {
	var out []string
	for _, v := range gjson.GetBytes(c.Content, "via").Array() {
		out = append(out, v.Str)
	}
	return out
}

// orderChildren sorts children in the spec's order: a valid order key first, by that key,
// then by origin_server_ts, then by room ID.
// See https://spec.matrix.org/v1.19/client-server-api/#ordering-of-children-within-a-space
func orderChildren(children []*SpaceChild) {
	order := func(c *SpaceChild) (string, bool) {
		o := gjson.GetBytes(c.Content, "order")
		return o.Str, o.Type == gjson.String && validOrder(o.Str)
	}
	slices.SortStableFunc(children, func(a, b *SpaceChild) int {
		ao, av := order(a)
		bo, bv := order(b)
		if av != bv {
			if av {
				return -1
			}
			return 1
		}
		if av {
			if c := strings.Compare(ao, bo); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(a.OriginServerTS, b.OriginServerTS); c != 0 {
			return c
		}
		return strings.Compare(a.StateKey, b.StateKey)
	})
}

// validVia: a non-empty array of strings.
func validVia(via gjson.Result) bool {
	if !via.IsArray() || len(via.Array()) == 0 {
		return false
	}
	for _, v := range via.Array() {
		if v.Type != gjson.String {
			return false
		}
	}
	return true
}

// validOrder: at most 50 characters between \x20 and \x7E.
func validOrder(s string) bool {
	if len(s) > 50 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hierarchyToken is a position in a walk: the walk's parameters, which may not change
// between pages, and how many rooms were already returned.
type hierarchyToken struct {
	Room      id.RoomID `json:"r"`
	Suggested bool      `json:"s"`
	MaxDepth  int       `json:"d"`
	Skip      int       `json:"n"`
}

func (t hierarchyToken) String() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseHierarchyToken(s string) (hierarchyToken, error) {
	var t hierarchyToken
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(raw, &t) != nil || t.Skip < 0 {
		return t, fmt.Errorf("%w: unknown pagination token", ErrInvalidParam)
	}
	return t, nil
}
