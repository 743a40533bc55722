package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"fyr/server/push"
)

// pushRoutes are the push module's endpoints: push rules, pushers and the list of
// notifications. See https://spec.matrix.org/v1.19/client-server-api/#push-notifications
func (a *API) pushRoutes() {
	if a.push == nil {
		return
	}
	// One pattern per method takes every push rule path, so that each malformed one (no
	// scope, an unknown kind, an empty rule ID) gets the spec's 400 rather than a 404.
	a.client("GET /pushrules/{path...}", a.authed(a.getPushRules))
	a.client("PUT /pushrules/{path...}", a.authed(a.putPushRule))
	a.client("DELETE /pushrules/{path...}", a.authed(a.deletePushRule))
	a.client("GET /pushers", a.authed(a.getPushers))
	a.client("POST /pushers/set", a.authed(a.setPusher))
	a.client("GET /notifications", a.authed(a.getNotifications))
}

// rulePath is a path under /pushrules/: the whole ruleset (all), the global ruleset, or a
// rule, possibly with an attribute ("enabled" or "actions").
type rulePath struct {
	all, global bool
	kind        push.Kind
	ruleID      string
	attr        string
}

// parseRulePath reads a /pushrules/ path. Rule IDs are taken from the escaped path, so a
// room or user ID with an encoded slash stays one segment.
func parseRulePath(r *http.Request) (rulePath, error) {
	esc := r.URL.EscapedPath()
	rest := esc[strings.Index(esc, "/pushrules/")+len("/pushrules/"):]
	if rest == "" {
		return rulePath{all: true}, nil
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return rulePath{}, errInvalidParam("the push rule path is not properly escaped")
		}
		segs[i] = u
	}
	if segs[0] != "global" {
		return rulePath{}, errInvalidParam("unknown push rule scope " + strconv.Quote(segs[0]) + "; the only scope is global")
	}
	switch {
	case len(segs) == 1:
		return rulePath{}, errInvalidParam("the global ruleset is at /pushrules/global/, with a trailing slash")
	case len(segs) == 2 && segs[1] == "":
		return rulePath{global: true}, nil
	case len(segs) > 4:
		return rulePath{}, errInvalidParam("unknown push rule path")
	}
	kind, err := push.ParseKind(segs[1])
	if err != nil {
		return rulePath{}, err
	}
	if len(segs) < 3 || segs[2] == "" {
		return rulePath{}, errInvalidParam("the push rule ID is missing")
	}
	p := rulePath{kind: kind, ruleID: segs[2]}
	if len(segs) == 4 {
		if segs[3] != "enabled" && segs[3] != "actions" {
			return rulePath{}, errInvalidParam("unknown push rule attribute " + strconv.Quote(segs[3]) + "; it is enabled or actions")
		}
		p.attr = segs[3]
	}
	return p, nil
}

// getPushRules is GET /pushrules/, /pushrules/global/, /pushrules/global/{kind}/{ruleId} and
// its /enabled and /actions.
func (a *API) getPushRules(w http.ResponseWriter, r *http.Request) error {
	p, err := parseRulePath(r)
	if err != nil {
		return err
	}
	user := caller(r).UserID
	if p.all || p.global {
		rs, err := a.push.Rules(r.Context(), user)
		if err != nil {
			return err
		}
		if p.all {
			writeJSON(w, 200, map[string]any{"global": rs})
		} else {
			writeJSON(w, 200, rs)
		}
		return nil
	}
	rule, err := a.push.Rule(r.Context(), user, p.kind, p.ruleID)
	if err != nil {
		return err
	}
	switch p.attr {
	case "enabled":
		writeJSON(w, 200, map[string]bool{"enabled": rule.Enabled})
	case "actions":
		writeJSON(w, 200, map[string]any{"actions": rule.Actions})
	default:
		writeJSON(w, 200, rule)
	}
	return nil
}

// putPushRule is PUT /pushrules/global/{kind}/{ruleId} (with the before and after query
// parameters) and its /enabled and /actions.
func (a *API) putPushRule(w http.ResponseWriter, r *http.Request) error {
	p, err := parseRulePath(r)
	if err != nil {
		return err
	}
	if p.all || p.global {
		return errInvalidParam("name a rule: /pushrules/global/{kind}/{ruleId}")
	}
	body, err := a.decodeObject(w, r)
	if err != nil {
		return err
	}
	ctx, user := r.Context(), caller(r).UserID
	switch p.attr {
	case "enabled":
		var req struct {
			Enabled *bool `json:"enabled"`
		}
		if err := decodeBytes(body, &req); err != nil {
			return err
		}
		if req.Enabled == nil {
			return errMissingParam("enabled")
		}
		err = a.push.SetEnabled(ctx, user, p.kind, p.ruleID, *req.Enabled)
	case "actions":
		actions, perr := push.ParseActions(body)
		if perr != nil {
			return perr
		}
		err = a.push.SetActions(ctx, user, p.kind, p.ruleID, actions)
	default:
		nr, perr := push.ParseNewRule(p.kind, body)
		if perr != nil {
			return perr
		}
		q := r.URL.Query()
		err = a.push.PutRule(ctx, user, p.kind, p.ruleID, nr, q.Get("before"), q.Get("after"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// deletePushRule is DELETE /pushrules/global/{kind}/{ruleId}.
func (a *API) deletePushRule(w http.ResponseWriter, r *http.Request) error {
	p, err := parseRulePath(r)
	if err != nil {
		return err
	}
	if p.all || p.global || p.attr != "" {
		return errInvalidParam("only a rule can be deleted: /pushrules/global/{kind}/{ruleId}")
	}
	if err := a.push.DeleteRule(r.Context(), caller(r).UserID, p.kind, p.ruleID); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// getPushers is GET /pushers.
func (a *API) getPushers(w http.ResponseWriter, r *http.Request) error {
	ps, err := a.push.Pushers(r.Context(), caller(r).UserID)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []push.Pusher{}
	}
	writeJSON(w, 200, map[string]any{"pushers": ps})
	return nil
}

// setPusher is POST /pushers/set.
func (a *API) setPusher(w http.ResponseWriter, r *http.Request) error {
	body, err := a.decodeObject(w, r)
	if err != nil {
		return err
	}
	req, err := push.ParsePusherRequest(body)
	if err != nil {
		return err
	}
	c := caller(r)
	if err := a.push.SetPusher(r.Context(), c.UserID, c.DeviceID, req); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// getNotifications is GET /notifications.
func (a *API) getNotifications(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errInvalidParam("limit must be an integer")
		}
		limit = n
	}
	page, err := a.push.Notifications(r.Context(), caller(r).UserID, q.Get("from"), limit, q.Get("only") == "highlight")
	if err != nil {
		return err
	}
	writeJSON(w, 200, page)
	return nil
}
