package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Sender identifies who sends a client event, and from which device (for transaction IDs).
type Sender struct {
	User   id.UserID
	Device id.DeviceID
}

// Send sends a message event. A repeated txnID from the same device returns the first
// event's ID without sending again.
func (e *Engine) Send(ctx context.Context, from Sender, roomID id.RoomID, typ, txnID string, content json.RawMessage) (id.EventID, error) {
	scope := "send/" + string(roomID) + "/" + typ
	if txnID != "" {
		if prev, err := e.db.TxnEvent(ctx, string(from.User), string(from.Device), scope, txnID); err == nil {
			return id.EventID(prev), nil
		}
	}
	if typ == "m.room.redaction" {
		return "", fmt.Errorf("%w: send redactions with the /redact endpoint", ErrInvalidParam)
	}
	d := draft{sender: from.User, typ: typ, content: content, txnDevice: from.Device, txnID: txnID, txnScope: scope}
	ev, err := e.sendDraft(ctx, roomID, d, e.relationCheck(ctx))
	if err != nil && txnID != "" {
		// A concurrent request with the same transaction ID may have won.
		if prev, err2 := e.db.TxnEvent(ctx, string(from.User), string(from.Device), scope, txnID); err2 == nil {
			return id.EventID(prev), nil
		}
	}
	return ev, err
}

// SendState sets a piece of room state.
func (e *Engine) SendState(ctx context.Context, from Sender, roomID id.RoomID, typ, stateKey string, content json.RawMessage) (id.EventID, error) {
	switch typ {
	case "m.room.create":
		return "", fmt.Errorf("%w: a room's create event cannot be replaced", ErrForbidden)
	case "m.room.member":
		m := gjson.GetBytes(content, "membership").Str
		if m == "" {
			return "", fmt.Errorf("%w: membership is missing", ErrBadJSON)
		}
		if m == "join" && stateKey == string(from.User) {
			// A join through the state API is a join: it gets the same checks (restricted
			// rooms, federation) and the server, not the client, names any authoriser.
			var extra map[string]json.RawMessage
			if err := json.Unmarshal(content, &extra); err != nil {
				return "", fmt.Errorf("%w: %v", ErrBadJSON, err)
			}
			delete(extra, "membership")
			delete(extra, "join_authorised_via_users_server")
			return e.rejoin(ctx, from.User, roomID, extra)
		}
	case "m.room.canonical_alias":
		if err := e.checkCanonicalAlias(ctx, roomID, content); err != nil {
			return "", err
		}
	case "m.room.server_acl":
		if err := e.checkACLContent(content); err != nil {
			return "", err
		}
	}
	sk := stateKey
	return e.sendDraft(ctx, roomID, draft{sender: from.User, typ: typ, stateKey: &sk, content: content}, func(rs *roomState, d *draft) error {
		if typ == "m.room.power_levels" {
			pl, err := e.powerLevels(ctx, rs)
			if err != nil {
				return err
			}
			if err := checkPowerLevelsShape(rs, d, pl.creators); err != nil {
				return err
			}
			return checkPowerLevels(rs, d)
		}
		return nil
	})
}

// Redact redacts an event, idempotently per transaction ID.
func (e *Engine) Redact(ctx context.Context, from Sender, roomID id.RoomID, target id.EventID, txnID string, content json.RawMessage) (id.EventID, error) {
	scope := "redact/" + string(roomID) + "/" + string(target)
	if txnID != "" {
		if prev, err := e.db.TxnEvent(ctx, string(from.User), string(from.Device), scope, txnID); err == nil {
			return id.EventID(prev), nil
		}
	}
	if len(content) == 0 {
		content = json.RawMessage(`{}`)
	}
	ev, err := e.db.EventByID(ctx, string(target))
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%w: no event %s", ErrNotFound, target)
	} else if err != nil {
		return "", err
	}
	d := draft{sender: from.User, typ: "m.room.redaction", content: content, redacts: target, txnDevice: from.Device, txnID: txnID, txnScope: scope}
	return e.sendDraft(ctx, roomID, d, func(rs *roomState, _ *draft) error {
		if ev.RoomNID != rs.nid {
			return fmt.Errorf("%w: no event %s in this room", ErrNotFound, target)
		}
		if id.UserID(ev.Sender) == from.User {
			return nil
		}
		// Redacting someone else's event needs the redact power level.
		pl, err := e.powerLevels(ctx, rs)
		if err != nil {
			return err
		}
		if pl.user(from.User) < pl.level("redact", 50) {
			return fmt.Errorf("%w: you need power level %d to redact other users' events", ErrForbidden, pl.level("redact", 50))
		}
		return nil
	})
}

// sendDraft builds, authorises and persists one local event under the room's lock. check,
// when set, runs against the current state before building.
func (e *Engine) sendDraft(ctx context.Context, roomID id.RoomID, d draft, check func(*roomState, *draft) error) (id.EventID, error) {
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return "", err
	}
	if check != nil {
		if err := check(rs, &d); err != nil {
			return "", err
		}
	}
	b, err := e.build(ctx, rs, d)
	if err != nil {
		return "", err
	}
	if same := e.sameState(ctx, rs, &d); same != "" {
		return same, nil
	}
	if _, err := e.persist(ctx, rs, []*built{b}, nil); err != nil {
		return "", err
	}
	return b.id, nil
}

// sameState returns the current state event that d would only repeat (same key, sender and
// content), or "". Setting state twice is idempotent, as in Synapse: the second request
// gets the first event's ID and the room gets no new event. It is asked after the event was
// authorised, so a sender who may not set the state still hears so.
func (e *Engine) sameState(ctx context.Context, rs *roomState, d *draft) id.EventID {
	if d.stateKey == nil || d.typ == "m.room.member" {
		return ""
	}
	cur, ok := rs.state[storage.StateKey{Type: d.typ, StateKey: *d.stateKey}]
	if !ok {
		return ""
	}
	ev, err := e.db.EventByNID(ctx, cur.nid)
	if err != nil || ev.Sender != string(d.sender) || ev.RedactedBy != "" {
		return ""
	}
	had, err1 := canonicaljson.CanonicalJSON([]byte(gjson.GetBytes(ev.JSON, "content").Raw))
	want, err2 := canonicaljson.CanonicalJSON(d.content)
	if err1 != nil || err2 != nil || !bytes.Equal(had, want) {
		return ""
	}
	return cur.id
}

// checkCanonicalAlias makes sure the aliases a room advertises point at it (the spec's
// M_BAD_ALIAS), for aliases on this server.
func (e *Engine) checkCanonicalAlias(ctx context.Context, roomID id.RoomID, content json.RawMessage) error {
	var c struct {
		Alias      *string  `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	aliases := c.AltAliases
	if c.Alias != nil && *c.Alias != "" {
		aliases = append(aliases, *c.Alias)
	}
	for _, a := range aliases {
		if !validAlias(a) {
			return fmt.Errorf("%w: %q is not a room alias", ErrInvalidParam, a)
		}
		if !strings.HasSuffix(a, ":"+e.opt.ServerName) {
			continue
		}
		got, err := e.db.AliasByName(ctx, a)
		if err != nil || got.RoomID != string(roomID) {
			return fmt.Errorf("%w: %s does not point at this room", ErrBadAlias, a)
		}
	}
	return nil
}

// ErrBadAlias is M_BAD_ALIAS: an advertised alias that does not point at the room.
var ErrBadAlias = errors.New("rooms: bad alias")

func validAlias(a string) bool {
	local, server, ok := strings.Cut(strings.TrimPrefix(a, "#"), ":")
	return strings.HasPrefix(a, "#") && ok && local != "" && server != "" && len(a) <= 255
}

// rejoin sends a join for a user through the state API: a new join, or a change of a
// joined member's profile.
func (e *Engine) rejoin(ctx context.Context, user id.UserID, roomID id.RoomID, extra map[string]json.RawMessage) (id.EventID, error) {
	unlock := e.lock(roomID)
	rs, err := e.loadRoom(ctx, roomID)
	if err == nil && rs.membership(user) == "join" {
		defer unlock()
		content := map[string]any{"membership": "join"}
		for k, v := range extra {
			content[k] = v
		}
		raw, _ := json.Marshal(content)
		sk := string(user)
		b, err := e.build(ctx, rs, draft{sender: user, typ: "m.room.member", stateKey: &sk, content: raw})
		if err != nil {
			return "", err
		}
		if _, err := e.persist(ctx, rs, []*built{b}, nil); err != nil {
			return "", err
		}
		return b.id, nil
	}
	unlock()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	var reason string
	if r, ok := extra["reason"]; ok {
		json.Unmarshal(r, &reason)
		delete(extra, "reason")
	}
	if _, err := e.JoinVia(ctx, user, roomID, nil, reason, extra); err != nil {
		return "", err
	}
	m, err := e.db.RoomByID(ctx, string(roomID))
	if err != nil {
		return "", err
	}
	_, nid, err := e.db.Membership(ctx, m.NID, string(user))
	if err != nil {
		return "", err
	}
	ids, err := e.db.EventIDsByNID(ctx, []int64{nid})
	if err != nil {
		return "", err
	}
	return id.EventID(ids[nid]), nil
}
