package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
)

const backupAlg = "m.megolm_backup.v1.curve25519-aes-sha2"

func sessionKey(verified bool, first, forwarded int64, tag string) e2ee.SessionKey {
	return e2ee.SessionKey{IsVerified: verified, FirstMessageIndex: first, ForwardedCount: forwarded,
		SessionData: json.RawMessage(fmt.Sprintf(`{"ciphertext":%q}`, tag))}
}

func TestBackupVersions(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := user("alice")
	if _, err := v.e.Backup(ctx, alice, ""); !errors.Is(err, e2ee.ErrNotFound) {
		t.Fatalf("current backup before any: %v, want ErrNotFound", err)
	}
	v1 := must(v.e.CreateBackup(ctx, alice, backupAlg, json.RawMessage(`{"public_key":"a"}`)))(t)
	v2 := must(v.e.CreateBackup(ctx, alice, backupAlg, json.RawMessage(`{"public_key":"b"}`)))(t)
	if v1 == v2 {
		t.Fatalf("two backups got version %s", v1)
	}
	cur := must(v.e.Backup(ctx, alice, ""))(t)
	if cur.Version != v2 || string(cur.AuthData) != `{"public_key":"b"}` || cur.Count != 0 || cur.Etag == "" {
		t.Errorf("current backup = %+v", cur)
	}
	if _, err := v.e.Backup(ctx, user("bob"), v2); !errors.Is(err, e2ee.ErrNotFound) {
		t.Errorf("bob reads alice's backup: %v", err)
	}

	for _, tc := range []struct {
		name                     string
		version, body, algorithm string
		auth                     json.RawMessage
		want                     error
	}{
		{"other algorithm", v2, "", "m.other", json.RawMessage(`{}`), e2ee.ErrInvalidParam},
		{"body version differs", v2, v1, backupAlg, json.RawMessage(`{}`), e2ee.ErrInvalidParam},
		{"unknown version", "99", "", backupAlg, json.RawMessage(`{}`), e2ee.ErrNotFound},
		{"not a version", "abc", "", backupAlg, json.RawMessage(`{}`), e2ee.ErrNotFound},
		{"no auth_data", v2, "", backupAlg, nil, e2ee.ErrMissingParam},
		{"auth_data not an object", v2, "", backupAlg, json.RawMessage(`"x"`), e2ee.ErrBadJSON},
	} {
		if err := v.e.UpdateBackup(ctx, alice, tc.version, tc.body, tc.algorithm, tc.auth); !errors.Is(err, tc.want) {
			t.Errorf("update, %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := v.e.CreateBackup(ctx, alice, "", json.RawMessage(`{}`)); !errors.Is(err, e2ee.ErrMissingParam) {
		t.Errorf("create without algorithm: %v", err)
	}
	if err := v.e.UpdateBackup(ctx, alice, v2, v2, backupAlg, json.RawMessage(`{"public_key":"c"}`)); err != nil {
		t.Fatal(err)
	}
	if got := must(v.e.Backup(ctx, alice, v2))(t); string(got.AuthData) != `{"public_key":"c"}` {
		t.Errorf("auth_data after update = %s", got.AuthData)
	}

	// Deleting the current backup makes the previous one current; deleting twice succeeds;
	// a version that never was is not found; versions are not reused.
	if err := v.e.DeleteBackup(ctx, alice, v2); err != nil {
		t.Fatal(err)
	}
	if err := v.e.DeleteBackup(ctx, alice, v2); err != nil {
		t.Errorf("deleting a deleted backup: %v", err)
	}
	if err := v.e.DeleteBackup(ctx, alice, "42"); !errors.Is(err, e2ee.ErrNotFound) {
		t.Errorf("deleting a backup that never was: %v", err)
	}
	if _, err := v.e.Backup(ctx, alice, v2); !errors.Is(err, e2ee.ErrNotFound) {
		t.Errorf("reading a deleted backup: %v", err)
	}
	if got := must(v.e.Backup(ctx, alice, ""))(t); got.Version != v1 {
		t.Errorf("current after deleting %s = %s, want %s", v2, got.Version, v1)
	}
	if v3 := must(v.e.CreateBackup(ctx, alice, backupAlg, json.RawMessage(`{}`)))(t); v3 == v2 || v3 == v1 {
		t.Errorf("a new backup reused version %s", v3)
	}
}

func TestBackupKeys(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	alice := user("alice")
	old := must(v.e.CreateBackup(ctx, alice, backupAlg, json.RawMessage(`{}`)))(t)
	ver := must(v.e.CreateBackup(ctx, alice, backupAlg, json.RawMessage(`{}`)))(t)
	room := id.RoomID("!room:" + server)
	put := func(k e2ee.SessionKey) *e2ee.BackupUpdate {
		t.Helper()
		return must(v.e.PutBackupKeys(ctx, alice, ver, e2ee.BackupKeys{room: {"S": k}}))(t)
	}
	stored := func() string {
		t.Helper()
		ks := must(v.e.BackupKeys(ctx, alice, ver, room, "S"))(t)
		return string(ks[room]["S"].SessionData)
	}

	first := put(sessionKey(false, 5, 1, "start"))
	if first.Count != 1 {
		t.Fatalf("count after the first key = %d", first.Count)
	}
	// The spec's replacement rules, each against the key stored at that point.
	for _, tc := range []struct {
		name    string
		key     e2ee.SessionKey
		replace bool
	}{
		{"unverified, later index", sessionKey(false, 6, 0, "a"), false},
		{"unverified, same index, more forwarded", sessionKey(false, 5, 2, "b"), false},
		{"identical metadata", sessionKey(false, 5, 1, "c"), false},
		{"unverified, same index, fewer forwarded", sessionKey(false, 5, 0, "d"), true},
		{"unverified, earlier index", sessionKey(false, 3, 9, "e"), true},
		{"verified beats unverified even with a later index", sessionKey(true, 9, 9, "f"), true},
		{"unverified never beats verified", sessionKey(false, 0, 0, "g"), false},
		{"verified, earlier index", sessionKey(true, 1, 9, "h"), true},
	} {
		before := stored()
		etag := must(v.e.Backup(ctx, alice, ver))(t).Etag
		res := put(tc.key)
		after := stored()
		if replaced := after != before; replaced != tc.replace {
			t.Errorf("%s: replaced = %v, want %v (stored %s)", tc.name, replaced, tc.replace, after)
		}
		if (res.Etag != etag) != tc.replace {
			t.Errorf("%s: etag %s -> %s, should change only with the keys", tc.name, etag, res.Etag)
		}
		if res.Count != 1 {
			t.Errorf("%s: count = %d", tc.name, res.Count)
		}
	}

	// Writes go to the current version only.
	_, err := v.e.PutBackupKeys(ctx, alice, old, e2ee.BackupKeys{room: {"T": sessionKey(false, 0, 0, "x")}})
	var wrong *e2ee.WrongVersionError
	if !errors.As(err, &wrong) || wrong.Current != ver {
		t.Errorf("writing to an old version: %v, want WrongVersionError{%s}", err, ver)
	}
	if _, err := v.e.PutBackupKeys(ctx, alice, "77", e2ee.BackupKeys{room: {"T": sessionKey(false, 0, 0, "x")}}); !errors.Is(err, e2ee.ErrNotFound) {
		t.Errorf("writing to a version that never was: %v", err)
	}
	if _, err := v.e.PutBackupKeys(ctx, alice, ver, e2ee.BackupKeys{room: {"T": {SessionData: json.RawMessage(`"x"`)}}}); !errors.Is(err, e2ee.ErrBadJSON) {
		t.Errorf("session_data not an object: %v", err)
	}
	// Reads at every level, deletes at every level.
	put2 := must(v.e.PutBackupKeys(ctx, alice, ver, e2ee.BackupKeys{room: {"T": sessionKey(false, 0, 0, "t")}, "!other:x": {"U": sessionKey(false, 0, 0, "u")}}))(t)
	if put2.Count != 3 {
		t.Errorf("count = %d, want 3", put2.Count)
	}
	if all := must(v.e.BackupKeys(ctx, alice, ver, "", ""))(t); len(all) != 2 || len(all[room]) != 2 {
		t.Errorf("all keys = %v", all)
	}
	if none := must(v.e.BackupKeys(ctx, alice, ver, "!empty:x", ""))(t); len(none) != 0 {
		t.Errorf("keys of a room without any = %v", none)
	}
	if _, err := v.e.BackupKeys(ctx, alice, ver, room, "NOPE"); !errors.Is(err, e2ee.ErrNotFound) {
		t.Errorf("one missing session: %v", err)
	}
	if _, err := v.e.BackupKeys(ctx, alice, "77", "", ""); !errors.Is(err, e2ee.ErrNotFound) {
		t.Errorf("keys of a version that never was: %v", err)
	}
	if res := must(v.e.DeleteBackupKeys(ctx, alice, ver, room, "S"))(t); res.Count != 2 || res.Etag == put2.Etag {
		t.Errorf("after deleting one session: %+v", res)
	}
	if res := must(v.e.DeleteBackupKeys(ctx, alice, ver, room, ""))(t); res.Count != 1 {
		t.Errorf("after deleting a room: %+v", res)
	}
	if res := must(v.e.DeleteBackupKeys(ctx, alice, ver, "", ""))(t); res.Count != 0 {
		t.Errorf("after deleting everything: %+v", res)
	}
	if _, err := v.e.DeleteBackupKeys(ctx, alice, "77", "", ""); !errors.Is(err, e2ee.ErrNotFound) {
		t.Errorf("deleting keys of a version that never was: %v", err)
	}
}
