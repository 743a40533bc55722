package rooms

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"fmt"
	"maps"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"
)

// The engine works on one shape of event, mautrix's *pdu.PDU, whose prev_events and
// auth_events are event IDs and whose InternalMeta.EventID is the event's ID. Room versions
// 1 and 2 send events in another shape: the event carries its own ID (event_id,
// $opaque:server) and references other events as [event ID, {"sha256": reference hash}]
// pairs. For those versions a PDU also keeps the JSON it was decoded from, its wire form,
// in InternalMeta.Extra: that JSON is what is hashed, signed, stored and served, exactly as
// it came, while the PDU is what the auth rules and state resolution read.
//
// Hashes, signatures and redaction of the wire form are worked out on the JSON itself, not
// on a Go struct, so that an event from another server is checked byte for byte as it was
// signed (a struct would, for one, turn an empty hashes object {} into {"sha256":""}).
// See https://spec.matrix.org/v1.19/rooms/v1/#event-format and
// https://spec.matrix.org/v1.19/server-server-api/#validating-hashes-and-signatures-on-received-events

// wireKey is where a room version 1 or 2 PDU keeps its wire form in InternalMeta.Extra.
const wireKey = "fyr.wire"

func init() {
	// eventauth (rule 5.3.1, the creator's first join) and stateres read event IDs through
	// GetEventID, which can only know a room version 1 or 2 event's ID from InternalMeta:
	// every PDU the engine hands them carries its ID there.
	pdu.UseInternalMetaForGetEventID = true
}

// jsonObject is a JSON object whose values are kept as they are.
type jsonObject = map[string]jsontext.Value

func parseObject(raw []byte) (jsonObject, error) {
	var obj jsonObject
	if err := jsonv2.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return obj, nil
}

func marshalCanonical(v any) ([]byte, error) {
	raw, err := canonicaljson.Marshal(v)
	return []byte(raw), err
}

// decodePDU parses an event in its room version's shape, without unsigned. In room versions
// 1 and 2 its ID comes with it (InternalMeta.EventID) and its wire form is kept; from
// version 3 the caller works the ID out when it needs it (GetEventID).
func decodePDU(version id.RoomVersion, raw []byte) (*pdu.PDU, error) {
	if !namedEventIDs(version) {
		var p pdu.PDU
		if err := jsonv2.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		p.Unsigned = nil
		return &p, nil
	}
	obj, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	delete(obj, "unsigned")
	wire, err := marshalCanonical(obj)
	if err != nil {
		return nil, err
	}
	var v pdu.RoomV1PDU
	if err := jsonv2.Unmarshal(wire, &v); err != nil {
		return nil, err
	}
	if !validNamedEventID(v.EventID) {
		return nil, fmt.Errorf("event_id %q is not $opaque:server", v.EventID)
	}
	p := &pdu.PDU{
		AuthEvents: refEventIDs(v.AuthEvents), Content: v.Content, Depth: v.Depth, Hashes: v.Hashes,
		OriginServerTS: v.OriginServerTS, PrevEvents: refEventIDs(v.PrevEvents), Redacts: v.Redacts,
		RoomID: v.RoomID, Sender: v.Sender, Signatures: v.Signatures, StateKey: v.StateKey, Sticky: v.Sticky,
		Type: v.Type, Unknown: v.Unknown, DeprecatedPrevState: v.DeprecatedPrevState,
		DeprecatedOrigin: v.DeprecatedOrigin, DeprecatedMembership: v.DeprecatedMembership,
		InternalMeta: pdu.InternalMeta{EventID: v.EventID, Extra: map[string]any{wireKey: wire}},
	}
	return p, nil
}

func refEventIDs(refs []pdu.V1EventReference) []id.EventID {
	out := make([]id.EventID, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

// wireJSON is an event as other servers see it, in canonical JSON: the PDU itself from room
// version 3, the kept wire form in versions 1 and 2.
func wireJSON(version id.RoomVersion, p *pdu.PDU) ([]byte, error) {
	if !namedEventIDs(version) {
		return marshalCanonical(p)
	}
	if w, ok := p.InternalMeta.Extra[wireKey].([]byte); ok {
		return w, nil
	}
	return nil, fmt.Errorf("event %s has no room version %s form", p.InternalMeta.EventID, version)
}

func wireObject(version id.RoomVersion, p *pdu.PDU) (jsonObject, error) {
	w, err := wireJSON(version, p)
	if err != nil {
		return nil, err
	}
	return parseObject(w)
}

// refIDs reads the event IDs an event's JSON references in field (prev_events or
// auth_events), in either shape: bare IDs, or [ID, hashes] pairs.
func refIDs(raw []byte, field string) []id.EventID {
	var out []id.EventID
	for _, r := range gjson.GetBytes(raw, field).Array() {
		if r.IsArray() {
			r = r.Get("0")
		}
		if r.Type == gjson.String {
			out = append(out, id.EventID(r.Str))
		}
	}
	return out
}

// v1RedactionKeys are the top-level keys the redaction algorithm of room versions 1 and 2
// keeps. See https://spec.matrix.org/v1.19/rooms/v1/#redactions
var v1RedactionKeys = []string{"event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
	"signatures", "depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts", "membership"}

// redactV1 is a room version 1 or 2 event's JSON put through the redaction algorithm.
func redactV1(obj jsonObject, version id.RoomVersion) jsonObject {
	out := jsonObject{}
	for _, k := range v1RedactionKeys {
		if v, ok := obj[k]; ok {
			out[k] = v
		}
	}
	typ := gjson.ParseBytes(obj["type"]).Str
	out["content"] = pdu.RedactContent(typ, obj["content"], version)
	return out
}

// signingInputV1 is what a signature covers and the reference hash hashes: the redacted
// event without signatures and unsigned, in canonical JSON.
func signingInputV1(obj jsonObject, version id.RoomVersion) ([]byte, error) {
	red := redactV1(obj, version)
	delete(red, "signatures")
	delete(red, "unsigned")
	return marshalCanonical(red)
}

// contentHashV1 is the sha256 of the whole event without unsigned, signatures and hashes.
func contentHashV1(obj jsonObject) ([32]byte, error) {
	c := maps.Clone(obj)
	delete(c, "unsigned")
	delete(c, "signatures")
	delete(c, "hashes")
	raw, err := marshalCanonical(c)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(raw), nil
}

// redactPDU returns p as redacted; p is not changed.
func redactPDU(version id.RoomVersion, p *pdu.PDU) (*pdu.PDU, error) {
	if !namedEventIDs(version) {
		return p.Clone().Redact(version), nil
	}
	obj, err := wireObject(version, p)
	if err != nil {
		return nil, err
	}
	raw, err := marshalCanonical(redactV1(obj, version))
	if err != nil {
		return nil, err
	}
	q, err := decodePDU(version, raw)
	if err != nil {
		return nil, err
	}
	q.InternalMeta.Rejected = p.InternalMeta.Rejected
	return q, nil
}

// contentHashOK checks an event's content hash.
func contentHashOK(version id.RoomVersion, p *pdu.PDU) bool {
	if !namedEventIDs(version) {
		return p.VerifyContentHash()
	}
	obj, err := wireObject(version, p)
	if err != nil || p.Hashes == nil {
		return false
	}
	sum, err := contentHashV1(obj)
	return err == nil && bytes.Equal(sum[:], p.Hashes.SHA256)
}

// verifySignature checks that server signed the event with a key we can find. A signature
// from a key we cannot find is skipped; a wrong signature from a known key fails.
func (e *Engine) verifySignature(version id.RoomVersion, p *pdu.PDU, server string) error {
	if !namedEventIDs(version) {
		return p.VerifySignature(version, server, e.keyFunc)
	}
	sigs := p.Signatures[server]
	if len(sigs) == 0 {
		return fmt.Errorf("no signatures from %s", server)
	}
	obj, err := wireObject(version, p)
	if err != nil {
		return err
	}
	msg, err := signingInputV1(obj, version)
	if err != nil {
		return err
	}
	var skipped []error
	verified := false
	for keyID, sig := range sigs {
		key, _, err := e.keyFunc(server, keyID, time.UnixMilli(p.OriginServerTS))
		if err != nil || key == "" {
			skipped = append(skipped, fmt.Errorf("key %s of %s: %v", keyID, server, err))
			continue
		}
		if err := signutil.VerifyJSONCanonical(key, sig, msg); err != nil {
			return fmt.Errorf("signature of %s with %s: %w", server, keyID, err)
		}
		verified = true
	}
	if !verified {
		return fmt.Errorf("no verifiable signature from %s: %v", server, skipped)
	}
	return nil
}

// verifyServers checks the signatures every event needs: its sender's server's and, in room
// versions 1 and 2, that of the server its ID names where that is another one.
// See https://spec.matrix.org/v1.19/server-server-api/#validating-hashes-and-signatures-on-received-events
func (e *Engine) verifyServers(version id.RoomVersion, p *pdu.PDU) error {
	if err := e.verifySignature(version, p, p.Sender.Homeserver()); err != nil {
		return err
	}
	if namedEventIDs(version) {
		if s := eventIDServer(p.InternalMeta.EventID); s != p.Sender.Homeserver() {
			if err := e.verifySignature(version, p, s); err != nil {
				return fmt.Errorf("the server that named the event: %w", err)
			}
		}
	}
	return nil
}

// signPDU adds this server's signature to another server's event (an invite it
// countersigns, a restricted join it authorises) and returns it.
func (e *Engine) signPDU(version id.RoomVersion, p *pdu.PDU) (*pdu.PDU, error) {
	if !namedEventIDs(version) {
		q := p.Clone()
		q.Signatures = make(map[string]map[id.KeyID]string, len(p.Signatures)+1)
		for server, sigs := range p.Signatures {
			if sigs != nil {
				q.Signatures[server] = maps.Clone(sigs)
			}
		}
		if err := q.Sign(version, e.opt.ServerName, e.opt.Key.ID, e.opt.Key.Private); err != nil {
			return nil, err
		}
		return q, nil
	}
	obj, err := wireObject(version, p)
	if err != nil {
		return nil, err
	}
	if err := e.addSignatureV1(obj, version); err != nil {
		return nil, err
	}
	raw, err := marshalCanonical(obj)
	if err != nil {
		return nil, err
	}
	q, err := decodePDU(version, raw)
	if err != nil {
		return nil, err
	}
	q.InternalMeta.Rejected = p.InternalMeta.Rejected
	return q, nil
}

// addSignatureV1 signs a room version 1 or 2 event's JSON in place, keeping the signatures
// already on it.
func (e *Engine) addSignatureV1(obj jsonObject, version id.RoomVersion) error {
	msg, err := signingInputV1(obj, version)
	if err != nil {
		return err
	}
	sigs := map[string]map[string]jsontext.Value{}
	if raw, ok := obj["signatures"]; ok {
		if err := jsonv2.Unmarshal(raw, &sigs); err != nil {
			return fmt.Errorf("signatures: %w", err)
		}
	}
	if sigs[e.opt.ServerName] == nil {
		sigs[e.opt.ServerName] = map[string]jsontext.Value{}
	}
	sig, _ := jsonv2.Marshal(base64.RawStdEncoding.EncodeToString(ed25519.Sign(e.opt.Key.Private, msg)))
	sigs[e.opt.ServerName][string(e.opt.Key.ID)] = sig
	obj["signatures"], err = jsonv2.Marshal(sigs)
	return err
}

// refHashes are the hashes objects with which room version 1 and 2 events reference others,
// by event ID (from another server's template; missing ones are worked out from our copies).
type refHashes map[id.EventID]jsontext.Value

// seal hashes, signs and names a new event of this server, and returns it with its wire
// form. In room versions 1 and 2 the event gets a fresh ID, $random:ourserver, and its
// references their reference hashes.
func (e *Engine) seal(ctx context.Context, version id.RoomVersion, p *pdu.PDU, refs refHashes) (*pdu.PDU, []byte, error) {
	if !namedEventIDs(version) {
		p.InternalMeta.EventID = ""
		if err := p.FillContentHash(); err != nil {
			return nil, nil, err
		}
		if err := p.Sign(version, e.opt.ServerName, e.opt.Key.ID, e.opt.Key.Private); err != nil {
			return nil, nil, err
		}
		raw, err := marshalCanonical(p)
		if err != nil {
			return nil, nil, err
		}
		evID, err := p.GetEventID(version)
		if err != nil {
			return nil, nil, err
		}
		p.InternalMeta.EventID = evID
		return p, raw, nil
	}
	base := p.Clone()
	base.Hashes, base.Signatures, base.Unsigned = nil, nil, nil
	obj, err := e.v1Object(ctx, version, base, refs)
	if err != nil {
		return nil, nil, err
	}
	obj["event_id"], _ = jsonv2.Marshal("$" + randomString(24) + ":" + e.opt.ServerName)
	sum, err := contentHashV1(obj)
	if err != nil {
		return nil, nil, err
	}
	obj["hashes"], _ = jsonv2.Marshal(map[string]string{"sha256": b64(sum[:])})
	if err := e.addSignatureV1(obj, version); err != nil {
		return nil, nil, err
	}
	raw, err := marshalCanonical(obj)
	if err != nil {
		return nil, nil, err
	}
	q, err := decodePDU(version, raw)
	if err != nil {
		return nil, nil, err
	}
	return q, raw, nil
}

// v1Object is p's JSON with its references as room version 1 and 2 pairs and no event_id.
func (e *Engine) v1Object(ctx context.Context, version id.RoomVersion, p *pdu.PDU, refs refHashes) (jsonObject, error) {
	plain := p.Clone()
	plain.InternalMeta = pdu.InternalMeta{}
	raw, err := jsonv2.Marshal(plain)
	if err != nil {
		return nil, err
	}
	obj, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	for field, ids := range map[string][]id.EventID{"prev_events": p.PrevEvents, "auth_events": p.AuthEvents} {
		pairs := make([][2]jsontext.Value, 0, len(ids))
		for _, x := range ids {
			h, ok := refs[x]
			if !ok {
				if h, err = e.referenceHash(ctx, version, x); err != nil {
					return nil, err
				}
			}
			xj, _ := jsonv2.Marshal(x)
			pairs = append(pairs, [2]jsontext.Value{xj, h})
		}
		if obj[field], err = jsonv2.Marshal(pairs); err != nil {
			return nil, err
		}
	}
	delete(obj, "event_id")
	return obj, nil
}

// referenceHash is the hashes object that references one of our events in room versions
// 1 and 2: {"sha256": its reference hash}.
func (e *Engine) referenceHash(ctx context.Context, version id.RoomVersion, evID id.EventID) (jsontext.Value, error) {
	ps, err := e.pdus(ctx, version, []id.EventID{evID})
	if err != nil {
		return nil, err
	}
	if ps[0] == nil {
		return nil, fmt.Errorf("%w: referenced event %s is unknown", ErrNotFound, evID)
	}
	obj, err := wireObject(version, ps[0])
	if err != nil {
		return nil, err
	}
	msg, err := signingInputV1(obj, version)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(msg)
	return jsonv2.Marshal(map[string]string{"sha256": b64(sum[:])})
}

// decodeTemplate parses the unsigned event make_join, make_leave or make_knock answered,
// with the hashes its references carry in room versions 1 and 2. The template's event_id,
// if any, is dropped: the event we make from it gets our own.
func decodeTemplate(version id.RoomVersion, raw []byte) (*pdu.PDU, refHashes, error) {
	if !namedEventIDs(version) {
		var p pdu.PDU
		err := jsonv2.Unmarshal(raw, &p)
		return &p, nil, err
	}
	obj, err := parseObject(raw)
	if err != nil {
		return nil, nil, err
	}
	refs := refHashes{}
	for _, field := range []string{"prev_events", "auth_events"} {
		var pairs [][2]jsontext.Value
		if err := jsonv2.Unmarshal(obj[field], &pairs); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", field, err)
		}
		ids := make([]id.EventID, 0, len(pairs))
		for _, pair := range pairs {
			var x id.EventID
			if err := jsonv2.Unmarshal(pair[0], &x); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
			ids = append(ids, x)
			refs[x] = pair[1]
		}
		obj[field], _ = jsonv2.Marshal(ids)
	}
	delete(obj, "event_id")
	plain, err := jsonv2.Marshal(obj)
	if err != nil {
		return nil, nil, err
	}
	var p pdu.PDU
	if err := jsonv2.Unmarshal(plain, &p); err != nil {
		return nil, nil, err
	}
	return &p, refs, nil
}

// templateJSON is the unsigned template of a membership event that make_join, make_leave
// and make_knock answer, in the room version's shape (without event_id in versions 1 and
// 2: the joining server names the event).
func (e *Engine) templateJSON(ctx context.Context, version id.RoomVersion, p *pdu.PDU) ([]byte, error) {
	if !namedEventIDs(version) {
		return jsonv2.Marshal(p)
	}
	obj, err := e.v1Object(ctx, version, p, nil)
	if err != nil {
		return nil, err
	}
	return jsonv2.Marshal(obj)
}

// sameEvent says whether two copies of an event differ at most in their signatures.
func sameEvent(a, b []byte) bool {
	strip := func(raw []byte) []byte {
		obj, err := parseObject(raw)
		if err != nil {
			return nil
		}
		delete(obj, "signatures")
		delete(obj, "unsigned")
		out, _ := marshalCanonical(obj)
		return out
	}
	x, y := strip(a), strip(b)
	return x != nil && bytes.Equal(x, y)
}
