package push

import (
	"encoding/json"
	"strings"

	"maunium.net/go/mautrix/id"
)

// The server-default rules, in the spec's order, with the legacy body-matching mention
// rules (.m.rule.contains_display_name, .m.rule.roomnotif, .m.rule.contains_user_name) in
// the places spec v1.16 had them: spec v1.17 removed them, but clients still show and toggle
// them, and they stand aside for events with m.mentions, as the spec said they must.
//
// See https://spec.matrix.org/v1.19/client-server-api/#predefined-rules
var defaultRules = map[Kind][]defaultRule{
	Override: {
		{".m.rule.master", false, `[]`, `[]`, ""},
		{".m.rule.suppress_notices", true, `[{"kind":"event_match","key":"content.msgtype","pattern":"m.notice"}]`, `[]`, ""},
		{".m.rule.invite_for_me", true, `[{"key":"type","kind":"event_match","pattern":"m.room.member"},{"key":"content.membership","kind":"event_match","pattern":"invite"},{"key":"state_key","kind":"event_match","pattern":USER_ID}]`,
			`["notify",{"set_tweak":"sound","value":"default"}]`, ""},
		{".m.rule.member_event", true, `[{"key":"type","kind":"event_match","pattern":"m.room.member"}]`, `[]`, ""},
		{".m.rule.is_user_mention", true, `[{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":USER_ID}]`,
			`["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]`, ""},
		{".m.rule.contains_display_name", true, `[{"kind":"contains_display_name"}]`,
			`["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]`, ""},
		{".m.rule.is_room_mention", true, `[{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true},{"kind":"sender_notification_permission","key":"room"}]`,
			`["notify",{"set_tweak":"highlight"}]`, ""},
		{".m.rule.roomnotif", true, `[{"kind":"event_match","key":"content.body","pattern":"@room"},{"kind":"sender_notification_permission","key":"room"}]`,
			`["notify",{"set_tweak":"highlight"}]`, ""},
		{".m.rule.tombstone", true, `[{"kind":"event_match","key":"type","pattern":"m.room.tombstone"},{"kind":"event_match","key":"state_key","pattern":""}]`,
			`["notify",{"set_tweak":"highlight"}]`, ""},
		{".m.rule.reaction", true, `[{"kind":"event_match","key":"type","pattern":"m.reaction"}]`, `[]`, ""},
		{".m.rule.room.server_acl", true, `[{"kind":"event_match","key":"type","pattern":"m.room.server_acl"},{"kind":"event_match","key":"state_key","pattern":""}]`, `[]`, ""},
		{".m.rule.suppress_edits", true, `[{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}]`, `[]`, ""},
	},
	Content: {
		{".m.rule.contains_user_name", true, "", `["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]`, localpartToken},
	},
	Underride: {
		{".m.rule.call", true, `[{"key":"type","kind":"event_match","pattern":"m.call.invite"}]`, `["notify",{"set_tweak":"sound","value":"ring"}]`, ""},
		{".m.rule.encrypted_room_one_to_one", true, `[{"kind":"room_member_count","is":"2"},{"kind":"event_match","key":"type","pattern":"m.room.encrypted"}]`,
			`["notify",{"set_tweak":"sound","value":"default"}]`, ""},
		{".m.rule.room_one_to_one", true, `[{"kind":"room_member_count","is":"2"},{"kind":"event_match","key":"type","pattern":"m.room.message"}]`,
			`["notify",{"set_tweak":"sound","value":"default"}]`, ""},
		{".m.rule.message", true, `[{"kind":"event_match","key":"type","pattern":"m.room.message"}]`, `["notify"]`, ""},
		{".m.rule.encrypted", true, `[{"kind":"event_match","key":"type","pattern":"m.room.encrypted"}]`, `["notify"]`, ""},
	},
}

// Placeholders in defaultRules for what depends on the user: userIDToken stands for the
// user's ID as a JSON string, localpartToken for the localpart in a pattern.
const (
	userIDToken    = "USER_ID"
	localpartToken = "LOCALPART"
)

// defaultRule is a server-default rule: its conditions and actions as JSON, its pattern for
// content rules.
type defaultRule struct {
	id         string
	enabled    bool
	conditions string
	actions    string
	pattern    string
}

// masterRule is the one default rule that ranks above the user's own override rules.
const masterRule = ".m.rule.master"

// legacyMentionRules stand aside for events that carry m.mentions.
//
// See https://spec.matrix.org/v1.7/client-server-api/#user-and-room-mentions
var legacyMentionRules = map[string]bool{
	".m.rule.contains_display_name": true,
	".m.rule.roomnotif":             true,
	".m.rule.contains_user_name":    true,
}

// defaultsFor returns the server-default rules of a kind for a user.
func defaultsFor(kind Kind, user id.UserID) []*Rule {
	quotedBytes, _ := json.Marshal(string(user))
	quoted := string(quotedBytes)
	var out []*Rule
	for _, d := range defaultRules[kind] {
		r := &Rule{RuleID: d.id, Default: true, Enabled: d.enabled}
		if err := json.Unmarshal([]byte(d.actions), &r.Actions); err != nil {
			panic("push: default rule " + d.id + ": " + err.Error())
		}
		if kind.hasConditions() {
			conds := strings.ReplaceAll(d.conditions, userIDToken, quoted)
			if err := json.Unmarshal([]byte(conds), &r.Conditions); err != nil {
				panic("push: default rule " + d.id + ": " + err.Error())
			}
		}
		if kind == Content {
			p := d.pattern
			if p == localpartToken {
				p = user.Localpart()
			}
			r.Pattern = &p
		}
		out = append(out, r)
	}
	return out
}
