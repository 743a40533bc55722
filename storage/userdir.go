package storage

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"unicode"
)

// DirectoryUser is one result of a user directory search.
type DirectoryUser struct {
	UserID string
	// DisplayName and AvatarURL are the user's profile; "" when unset.
	DisplayName string
	AvatarURL   string
}

// userDirectorySearch finds local users whose user ID or display name has words starting with
// each term, among those the searcher may see: users who share a joined room with the
// searcher, and users joined to a room whose join rule is public or whose history is
// world-readable. The searcher finds themself only through such a room, as in Synapse.
// Candidates come from the full-text index in rank order (bm25), and each is checked through
// the member index and primary-key lookups of its rooms' join rule and history visibility
// until the limit is reached, so the cost grows with the matches read, not with the server's
// users or rooms. The caller stops reading at the limit; there is no LIMIT clause.
const userDirectorySearch = `
SELECT d.rank, d.user_id, coalesce(d.display_name, ''), coalesce(a.value ->> '$', '')
FROM user_directory(?1) d
JOIN users u ON u.rowid = d.rowid
LEFT JOIN profile_fields a ON a.localpart = u.localpart AND a.field = 'avatar_url'
WHERE u.deactivated = 0 AND EXISTS (
	SELECT 1 FROM current_state m
	WHERE m.type = 'm.room.member' AND m.state_key = d.user_id AND m.membership = 'join' AND (
		(d.user_id != ?2 AND EXISTS (SELECT 1 FROM current_state s
			WHERE s.room_nid = m.room_nid AND s.type = 'm.room.member' AND s.state_key = ?2 AND s.membership = 'join'))
		OR EXISTS (SELECT 1 FROM current_state j JOIN events e ON e.event_nid = j.event_nid
			WHERE j.room_nid = m.room_nid AND j.type = 'm.room.join_rules' AND j.state_key = ''
				AND CAST(e.json AS TEXT) ->> '$.content.join_rule' = 'public')
		OR EXISTS (SELECT 1 FROM current_state h JOIN events e ON e.event_nid = h.event_nid
			WHERE h.room_nid = m.room_nid AND h.type = 'm.room.history_visibility' AND h.state_key = ''
				AND CAST(e.json AS TEXT) ->> '$.content.history_visibility' = 'world_readable')))
ORDER BY d.rank`

// maxDirectoryTies bounds how many rows past the limit a search reads to order equally good
// matches by their profiles: every row read costs a visibility check.
const maxDirectoryTies = 50

// SearchUserDirectory returns up to limit local users visible to searcher whose user ID or
// display name has, for every term, a word starting with it (case and diacritics ignored),
// best matches first and, among equal matches, users with a display name, then with an
// avatar. Terms are split
// into words as the index splits names, so "@alice:example.org" is three words; terms with no
// letters or digits are ignored, and no terms at all find nobody.
func (db *DB) SearchUserDirectory(ctx context.Context, searcher string, terms []string, limit int) ([]DirectoryUser, error) {
	var phrases []string
	for _, t := range terms {
		if strings.IndexFunc(t, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) < 0 {
			continue
		}
		// A quoted phrase is tokenised like the indexed text, and may contain anything;
		// the trailing * makes its last word a prefix.
		phrases = append(phrases, `"`+strings.ReplaceAll(t, `"`, `""`)+`"*`)
	}
	if len(phrases) == 0 || limit <= 0 {
		return nil, nil
	}
	rows, err := db.read.QueryContext(ctx, userDirectorySearch, strings.Join(phrases, " "), searcher)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DirectoryUser
	var ranks []float64
	for rows.Next() {
		var u DirectoryUser
		var rank float64
		if err := rows.Scan(&rank, &u.UserID, &u.DisplayName, &u.AvatarURL); err != nil {
			return nil, err
		}
		// Rows come best first; past the limit, read on only through the last rank's ties
		// (up to maxDirectoryTies of them), so that the order among them does not depend on
		// where the limit falls.
		if len(out) >= limit && (rank != ranks[len(ranks)-1] || len(out) >= limit+maxDirectoryTies) {
			break
		}
		out = append(out, u)
		ranks = append(ranks, rank)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Among equally good matches, users with a display name, then with an avatar, first.
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(ranks[a], ranks[b]),
			cmp.Compare(boolInt(out[a].DisplayName == ""), boolInt(out[b].DisplayName == "")),
			cmp.Compare(boolInt(out[a].AvatarURL == ""), boolInt(out[b].AvatarURL == "")))
	})
	sorted := make([]DirectoryUser, 0, limit)
	for _, j := range idx[:min(limit, len(idx))] {
		sorted = append(sorted, out[j])
	}
	return sorted, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
