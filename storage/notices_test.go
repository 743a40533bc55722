package storage_test

import (
	"context"
	"errors"
	"testing"

	"fyr/storage"
)

func TestSystemUser(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	if err := db.BindServerName(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	create := func(localpart, purpose string) (bool, error) {
		var created bool
		err := db.Write(ctx, func(tx *storage.Tx) error {
			var err error
			created, err = tx.CreateSystemUser(localpart, purpose, []byte(`"Server notices"`), 1)
			return err
		})
		return created, err
	}
	if created, err := create("notices", "server_notices"); err != nil || !created {
		t.Fatalf("CreateSystemUser(notices) = %v, %v; want created", created, err)
	}
	if created, err := create("notices", "server_notices"); err != nil || created {
		t.Fatalf("CreateSystemUser(notices) again = %v, %v; want kept", created, err)
	}
	if _, err := create("notices", "other"); !errors.Is(err, storage.ErrNotSystemUser) {
		t.Fatalf("CreateSystemUser(notices, other purpose) = %v, want ErrNotSystemUser", err)
	}
	if err := db.Write(ctx, func(tx *storage.Tx) error {
		return tx.CreateUser(storage.User{Localpart: "alice", CreatedTS: 1})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := create("alice", "server_notices"); !errors.Is(err, storage.ErrNotSystemUser) {
		t.Fatalf("CreateSystemUser(alice) over an ordinary account = %v, want ErrNotSystemUser", err)
	}
	if is, err := db.IsSystemUser(ctx, "notices"); err != nil || !is {
		t.Errorf("IsSystemUser(notices) = %v, %v; want true", is, err)
	}
	if is, err := db.IsSystemUser(ctx, "alice"); err != nil || is {
		t.Errorf("IsSystemUser(alice) = %v, %v; want false", is, err)
	}
	u, err := db.User(ctx, "notices")
	if err != nil || u.PasswordHash != "" || u.Admin {
		t.Fatalf("User(notices) = %+v, %v; want an account without password or admin rights", u, err)
	}
	p, err := db.Profile(ctx, "notices")
	if err != nil || string(p["displayname"]) != `"Server notices"` {
		t.Errorf("Profile(notices) = %s, %v", p["displayname"], err)
	}

	// Alice shares a public room with the notices user and searches for it.
	testRoom(t, db, "!pub:x", "public", "shared", map[string]string{"@alice:x": "join", "@notices:x": "join"})
	for _, term := range []string{"notices", "server"} {
		found, err := db.SearchUserDirectory(ctx, "@alice:x", []string{term}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 0 {
			t.Errorf("SearchUserDirectory(%q) = %+v, want nobody", term, found)
		}
	}
}

func TestNoticeRoomsAndTxns(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	if _, err := db.NoticeRoom(ctx, "@a:x", "@notices:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("NoticeRoom before any = %v, want ErrNotFound", err)
	}
	set := func(user, sender, room string) {
		t.Helper()
		if err := db.Write(ctx, func(tx *storage.Tx) error { return tx.SetNoticeRoom(user, sender, room, 1) }); err != nil {
			t.Fatal(err)
		}
	}
	set("@a:x", "@notices:x", "!one:x")
	set("@a:x", "@other:x", "!two:x")
	set("@a:x", "@notices:x", "!three:x")
	for _, c := range []struct{ user, sender, want string }{
		{"@a:x", "@notices:x", "!three:x"},
		{"@a:x", "@other:x", "!two:x"},
	} {
		if got, err := db.NoticeRoom(ctx, c.user, c.sender); err != nil || got != c.want {
			t.Errorf("NoticeRoom(%s, %s) = %q, %v; want %q", c.user, c.sender, got, err, c.want)
		}
	}
	for _, c := range []struct {
		room, user string
		want       bool
	}{
		{"!three:x", "@a:x", true},
		{"!two:x", "@a:x", true},
		{"!one:x", "@a:x", false},
		{"!three:x", "@b:x", false},
	} {
		if got, err := db.IsNoticeRoomOf(ctx, c.room, c.user); err != nil || got != c.want {
			t.Errorf("IsNoticeRoomOf(%s, %s) = %v, %v; want %v", c.room, c.user, got, err, c.want)
		}
	}

	if _, err := db.NoticeTxn(ctx, "@admin:x", "DEV", "1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("NoticeTxn before any = %v, want ErrNotFound", err)
	}
	for _, ev := range []string{"$first", "$second"} {
		if err := db.Write(ctx, func(tx *storage.Tx) error { return tx.AddNoticeTxn("@admin:x", "DEV", "1", ev, 1) }); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := db.NoticeTxn(ctx, "@admin:x", "DEV", "1"); err != nil || got != "$first" {
		t.Errorf("NoticeTxn = %q, %v; want the first event", got, err)
	}
	if _, err := db.NoticeTxn(ctx, "@admin:x", "OTHER", "1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("NoticeTxn from another device = %v, want ErrNotFound", err)
	}
}
