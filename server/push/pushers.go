package push

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"

	"fyr/server/netpolicy"
	"fyr/storage"
)

// Limits on pushers from the spec.
const (
	MaxAppIDChars    = 64
	MaxPushKeyBytes  = 512
	notifyPathSuffix = "/_matrix/push/v1/notify"
)

// Pusher is one of a user's pushers as GET /pushers lists it.
type Pusher struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// PusherRequest is a checked body of POST /pushers/set.
type PusherRequest struct {
	Pusher
	// Delete is kind null: the pusher goes.
	Delete bool
	// Append keeps other users' pushers with the same app ID and pushkey.
	Append bool
}

// ParsePusherRequest reads and checks the body of POST /pushers/set: kind, app_id and
// pushkey are required (ErrMissingParam), and unless kind is null so are app_display_name,
// device_display_name, lang and data. Only kind "http" is offered, and its data.url must be
// an http or https URL whose path ends in /_matrix/push/v1/notify (ErrInvalidParam).
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3pushersset
func ParsePusherRequest(body []byte) (*PusherRequest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%w: the body must be a JSON object", ErrBadJSON)
	}
	var req PusherRequest
	var missing []string
	str := func(key string, into *string, required bool) error {
		v, ok := raw[key]
		if !ok || string(v) == "null" {
			if required {
				missing = append(missing, key)
			}
			return nil
		}
		if err := json.Unmarshal(v, into); err != nil {
			return fmt.Errorf("%w: %s must be a string", ErrBadJSON, key)
		}
		return nil
	}
	kind, ok := raw["kind"]
	switch {
	case !ok:
		missing = append(missing, "kind")
	case string(kind) == "null":
		req.Delete = true
	default:
		if err := json.Unmarshal(kind, &req.Kind); err != nil {
			return nil, fmt.Errorf("%w: kind must be a string or null", ErrBadJSON)
		}
	}
	full := !req.Delete
	for _, f := range []struct {
		key      string
		into     *string
		required bool
	}{
		{"app_id", &req.AppID, true}, {"pushkey", &req.PushKey, true},
		{"app_display_name", &req.AppDisplayName, full}, {"device_display_name", &req.DeviceDisplayName, full},
		{"lang", &req.Lang, full}, {"profile_tag", &req.ProfileTag, false},
	} {
		if err := str(f.key, f.into, f.required); err != nil {
			return nil, err
		}
	}
	if d, ok := raw["data"]; ok {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(d, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("%w: data must be an object", ErrBadJSON)
		}
		req.Data = d
	} else if full {
		missing = append(missing, "data")
	}
	if a, ok := raw["append"]; ok && json.Unmarshal(a, &req.Append) != nil {
		return nil, fmt.Errorf("%w: append must be a boolean", ErrBadJSON)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing parameters: %s", ErrMissingParam, strings.Join(missing, ", "))
	}
	if utf8.RuneCountInString(req.AppID) > MaxAppIDChars || req.AppID == "" {
		return nil, fmt.Errorf("%w: app_id must be 1 to %d characters", ErrInvalidParam, MaxAppIDChars)
	}
	if len(req.PushKey) > MaxPushKeyBytes || req.PushKey == "" {
		return nil, fmt.Errorf("%w: pushkey must be 1 to %d bytes", ErrInvalidParam, MaxPushKeyBytes)
	}
	if req.Delete {
		return &req, nil
	}
	switch req.Kind {
	case "http":
	case "email":
		return nil, fmt.Errorf("%w: this server does not send email notifications", ErrInvalidParam)
	default:
		return nil, fmt.Errorf("%w: unknown pusher kind %q", ErrInvalidParam, req.Kind)
	}
	var data struct {
		URL *string `json:"url"`
	}
	if err := json.Unmarshal(req.Data, &data); err != nil {
		return nil, fmt.Errorf("%w: data.url must be a string", ErrBadJSON)
	}
	if data.URL == nil {
		return nil, fmt.Errorf("%w: http pushers need data.url", ErrMissingParam)
	}
	if err := checkGatewayURL(*data.URL); err != nil {
		return nil, err
	}
	return &req, nil
}

// checkGatewayURL checks a push gateway URL's form: http or https, a host, and a path ending
// in /_matrix/push/v1/notify. Whether its address may be reached is checked when it is
// dialled.
func checkGatewayURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: data.url must be an http or https URL", ErrInvalidParam)
	}
	if !strings.HasSuffix(u.Path, notifyPathSuffix) {
		return fmt.Errorf("%w: data.url must have a path ending in %s", ErrInvalidParam, notifyPathSuffix)
	}
	return nil
}

// SetPusher creates, replaces or (kind null) deletes a user's pusher, as POST /pushers/set
// asks. device is the device whose access token set it: the pusher goes when the device
// does. A gateway given by an address that may not be reached (loopback or private, unless
// allowed) is refused at once (ErrInvalidParam); one given by name is checked when dialled.
func (s *Service) SetPusher(ctx context.Context, user id.UserID, device id.DeviceID, req *PusherRequest) error {
	if req.Delete {
		return s.deletePusher(ctx, user, req.AppID, req.PushKey)
	}
	if err := s.checkGatewayAddress(req.Data); err != nil {
		return err
	}
	p := storage.Pusher{UserID: string(user), AppID: req.AppID, PushKey: req.PushKey, Kind: req.Kind,
		AppDisplayName: req.AppDisplayName, DeviceDisplayName: req.DeviceDisplayName, ProfileTag: req.ProfileTag,
		Lang: req.Lang, Data: req.Data, DeviceID: string(device), PushKeyTS: s.opt.Now().Unix()}
	err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.SetPusher(p, req.Append) })
	if err != nil {
		return err
	}
	s.pushers.changed(ctx)
	return nil
}

// checkGatewayAddress refuses a gateway URL whose host is an IP address delivery would
// refuse to dial, or "localhost", while private addresses are not allowed.
func (s *Service) checkGatewayAddress(data json.RawMessage) error {
	if s.gateway.allowPrivate.Load() {
		return nil
	}
	var d struct {
		URL string `json:"url"`
	}
	json.Unmarshal(data, &d)
	u, err := url.Parse(d.URL)
	if err != nil {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); (err == nil && !netpolicy.Public(a)) || strings.EqualFold(host, "localhost") {
		return fmt.Errorf("%w: push gateways on loopback or private addresses are not allowed on this server", ErrInvalidParam)
	}
	return nil
}

// Pushers lists a user's pushers.
func (s *Service) Pushers(ctx context.Context, user id.UserID) ([]Pusher, error) {
	ps, err := s.db.Pushers(ctx, string(user))
	if err != nil {
		return nil, err
	}
	out := make([]Pusher, len(ps))
	for i, p := range ps {
		out[i] = Pusher{PushKey: p.PushKey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: p.Data}
	}
	return out, nil
}

// DevicesDeleted deletes the pushers of a user's devices that are gone (logout, device
// deletion), as Synapse does: a logged-out phone should stop ringing.
func (s *Service) DevicesDeleted(ctx context.Context, user id.UserID) error {
	var n int64
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		n, err = tx.DeletePushersOfGoneDevices(string(user), user.Localpart())
		return err
	})
	if err == nil && n > 0 {
		s.pushers.changed(ctx)
	}
	return err
}

func (s *Service) deletePusher(ctx context.Context, user id.UserID, appID, pushKey string) error {
	var deleted bool
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		deleted, err = tx.DeletePusher(string(user), appID, pushKey)
		return err
	})
	if err == nil && deleted {
		s.pushers.changed(ctx)
	}
	return err
}

// pusherUsers knows which users have pushers, so that evaluation prepares gateway
// notifications only for them without a query per event. It is loaded on first use and
// reloaded after every change.
type pusherUsers struct {
	db     *storage.DB
	mu     sync.Mutex
	loaded bool
	users  map[id.UserID]bool
}

func (p *pusherUsers) has(ctx context.Context, u id.UserID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.loaded {
		p.loadLocked(ctx)
	}
	return p.users[u]
}

// changed reloads the set after a pusher was set or deleted.
func (p *pusherUsers) changed(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loadLocked(ctx)
}

func (p *pusherUsers) loadLocked(ctx context.Context) {
	users, err := p.db.PusherUsers(ctx)
	if err != nil {
		p.loaded = false // try again next time
		return
	}
	p.users = make(map[id.UserID]bool, len(users))
	for _, u := range users {
		p.users[id.UserID(u)] = true
	}
	p.loaded = true
}
