package storage

import (
	"context"
	"errors"
)

// Media is the metadata of one mxc:// item.
type Media struct {
	Origin      string
	MediaID     string
	SHA256      []byte // nil while an async upload is pending
	Size        int64
	ContentType string
	Filename    string
	Uploader    string // localpart; "" for remote media
	CreatedTS   int64
	ExpiresTS   int64 // pending uploads: when the reservation lapses
	Quarantined bool
}

// Pending reports whether the item was created but its content not yet uploaded.
func (m *Media) Pending() bool { return m.SHA256 == nil }

// Thumbnail is a generated thumbnail of some content.
type Thumbnail struct {
	SourceSHA256 []byte
	Width        int
	Height       int
	Method       string
	ContentType  string
	Size         int64
}

const mediaColumns = `origin, media_id, sha256, size, content_type, filename, coalesce(uploader, ''), created_ts, coalesce(expires_ts, 0), quarantined`

func scanMedia(row interface{ Scan(...any) error }) (*Media, error) {
	var m Media
	if err := row.Scan(&m.Origin, &m.MediaID, &m.SHA256, &m.Size, &m.ContentType, &m.Filename, &m.Uploader, &m.CreatedTS, &m.ExpiresTS, &m.Quarantined); err != nil {
		return nil, notFound(err)
	}
	return &m, nil
}

// Media returns one item's metadata, or ErrNotFound.
func (db *DB) Media(ctx context.Context, origin, mediaID string) (*Media, error) {
	return scanMedia(db.queryRow(ctx, `SELECT `+mediaColumns+` FROM media WHERE origin = ? AND media_id = ?`, origin, mediaID))
}

// MediaUsage is the total size of content a local user uploaded, and the number of their
// pending (created, not yet uploaded, not expired) uploads at time now.
func (db *DB) MediaUsage(ctx context.Context, localpart string, now int64) (bytes int64, pending int, err error) {
	err = db.queryRow(ctx, `SELECT coalesce(sum(size), 0), coalesce(sum(sha256 IS NULL AND expires_ts > ?), 0)
		FROM media WHERE uploader = ?`, now, localpart).Scan(&bytes, &pending)
	return bytes, pending, err
}

// UsageByUser maps every local uploader to the bytes they store.
func (db *DB) MediaUsageByUser(ctx context.Context) (map[string]int64, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT uploader, sum(size) FROM media WHERE uploader IS NOT NULL GROUP BY uploader`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var u string
		var n int64
		if err := rows.Scan(&u, &n); err != nil {
			return nil, err
		}
		out[u] = n
	}
	return out, rows.Err()
}

// MediaReferences counts the items whose content has this hash.
func (db *DB) MediaReferences(ctx context.Context, sha []byte) (int, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM media WHERE sha256 = ?`, sha).Scan(&n)
	return n, err
}

// Thumbnail returns a stored thumbnail, or ErrNotFound.
func (db *DB) Thumbnail(ctx context.Context, sha []byte, width, height int, method string) (*Thumbnail, error) {
	t := Thumbnail{SourceSHA256: sha, Width: width, Height: height, Method: method}
	err := db.queryRow(ctx, `SELECT content_type, size FROM media_thumbnails
		WHERE sha256 = ? AND width = ? AND height = ? AND method = ?`, sha, width, height, method).Scan(&t.ContentType, &t.Size)
	if err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// ExpiredPendingMedia lists pending uploads whose reservation lapsed before now.
func (db *DB) ExpiredPendingMedia(ctx context.Context, now int64, limit int) ([]Media, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+mediaColumns+` FROM media
		WHERE sha256 IS NULL AND expires_ts <= ? LIMIT ?`, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Media
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, rows.Err()
}

// CreateMedia inserts an item (complete, or pending when SHA256 is nil). ErrExists if the
// ID is taken.
func (tx *Tx) CreateMedia(m Media) error {
	_, err := tx.Exec(`INSERT INTO media (origin, media_id, sha256, size, content_type, filename, uploader, created_ts, expires_ts, quarantined)
		VALUES (?, ?, ?, ?, ?, ?, nullif(?, ''), ?, nullif(?, 0), ?)`,
		m.Origin, m.MediaID, m.SHA256, m.Size, m.ContentType, m.Filename, m.Uploader, m.CreatedTS, m.ExpiresTS, m.Quarantined)
	if isConstraint(err) {
		return ErrExists
	}
	return err
}

// ErrAlreadyUploaded means content was already uploaded to a pending item.
var ErrAlreadyUploaded = errors.New("storage: media already uploaded")

// CompleteMedia fills in the content of a pending item. ErrNotFound if there is no such item,
// ErrAlreadyUploaded if it has content.
func (tx *Tx) CompleteMedia(origin, mediaID string, sha []byte, size int64, contentType, filename string) error {
	var have []byte
	err := tx.QueryRow(`SELECT sha256 FROM media WHERE origin = ? AND media_id = ?`, origin, mediaID).Scan(&have)
	if err != nil {
		return notFound(err)
	}
	if have != nil {
		return ErrAlreadyUploaded
	}
	_, err = tx.Exec(`UPDATE media SET sha256 = ?, size = ?, content_type = ?, filename = ?, expires_ts = NULL
		WHERE origin = ? AND media_id = ?`, sha, size, contentType, filename, origin, mediaID)
	return err
}

// MediaRemoval says what deleting an item left without a reference: the content's hash
// (nil for a pending item), whether other items still use it, and if not, the thumbnails
// whose files may go too.
type MediaRemoval struct {
	SHA256     []byte
	StillUsed  bool
	Thumbnails []Thumbnail
}

// DeleteMedia removes an item's metadata, and its thumbnails' when no other item shares the
// content. ErrNotFound if there is no such item.
func (tx *Tx) DeleteMedia(origin, mediaID string) (*MediaRemoval, error) {
	var r MediaRemoval
	err := tx.QueryRow(`SELECT sha256 FROM media WHERE origin = ? AND media_id = ?`, origin, mediaID).Scan(&r.SHA256)
	if err != nil {
		return nil, notFound(err)
	}
	if _, err := tx.Exec(`DELETE FROM media WHERE origin = ? AND media_id = ?`, origin, mediaID); err != nil {
		return nil, err
	}
	if r.SHA256 == nil {
		return &r, nil
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM media WHERE sha256 = ?`, r.SHA256).Scan(&n); err != nil {
		return nil, err
	}
	if r.StillUsed = n > 0; r.StillUsed {
		return &r, nil
	}
	rows, err := tx.Query(`SELECT width, height, method FROM media_thumbnails WHERE sha256 = ?`, r.SHA256)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		t := Thumbnail{SourceSHA256: r.SHA256}
		if err := rows.Scan(&t.Width, &t.Height, &t.Method); err != nil {
			rows.Close()
			return nil, err
		}
		r.Thumbnails = append(r.Thumbnails, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	_, err = tx.Exec(`DELETE FROM media_thumbnails WHERE sha256 = ?`, r.SHA256)
	return &r, err
}

// SetQuarantined marks an item as quarantined (not served) or releases it.
func (tx *Tx) SetQuarantined(origin, mediaID string, q bool) error {
	return expectOne(tx.Exec(`UPDATE media SET quarantined = ? WHERE origin = ? AND media_id = ?`, q, origin, mediaID))
}

// AddThumbnail records a generated thumbnail; an existing one for the same size wins.
func (tx *Tx) AddThumbnail(t Thumbnail) error {
	_, err := tx.Exec(`INSERT INTO media_thumbnails (sha256, width, height, method, content_type, size)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		t.SourceSHA256, t.Width, t.Height, t.Method, t.ContentType, t.Size)
	return err
}
