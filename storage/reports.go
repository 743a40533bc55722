package storage

import (
	"context"
	"database/sql"
)

// Report is one report of an event, a room or a user, for this server's admins.
type Report struct {
	ID int64
	// Kind is "event", "room" or "user".
	Kind     string
	Reporter string
	// RoomID is set for event and room reports, EventID for event reports.
	RoomID  string
	EventID string
	// TargetUser is the reported user, or for event reports the event's sender.
	TargetUser string
	Reason     string
	// Score is the deprecated score of an event report, -100 to 0; nil when not given.
	Score      *int
	ReceivedTS int64
}

// AddReport stores a report and returns its ID.
func (tx *Tx) AddReport(r Report) (int64, error) {
	res, err := tx.Exec(`INSERT INTO reports (kind, reporter, room_id, event_id, target_user, reason, score, received_ts)
		VALUES (?, ?, nullif(?, ''), nullif(?, ''), nullif(?, ''), ?, ?, ?)`,
		r.Kind, r.Reporter, r.RoomID, r.EventID, r.TargetUser, r.Reason, r.Score, r.ReceivedTS)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// Reports lists the reports of one kind, newest first, skipping offset of them, with the
// number of reports of that kind in all.
func (db *DB) Reports(ctx context.Context, kind string, offset, limit int) ([]Report, int, error) {
	var total int
	if err := db.queryRow(ctx, `SELECT count(*) FROM reports WHERE kind = ?`, kind).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT report_id, kind, reporter, coalesce(room_id, ''), coalesce(event_id, ''),
			coalesce(target_user, ''), reason, score, received_ts
		FROM reports WHERE kind = ? ORDER BY report_id DESC LIMIT ? OFFSET ?`, kind, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Report
	for rows.Next() {
		var r Report
		var score sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Kind, &r.Reporter, &r.RoomID, &r.EventID, &r.TargetUser, &r.Reason, &score, &r.ReceivedTS); err != nil {
			return nil, 0, err
		}
		if score.Valid {
			s := int(score.Int64)
			r.Score = &s
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}
