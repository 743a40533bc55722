package setup

import (
	"context"
	"errors"
	"os"

	"fyr/server/accounts"
	"fyr/storage"
)

// DBAdmins is Admins over the homeserver's database file, opened for each call: the page
// runs before fyr serve, so nothing else holds it.
type DBAdmins struct {
	// Path is the database file (config.Config.DatabasePath).
	Path string
}

var _ Admins = DBAdmins{}

// HasAdmin reports whether the database has an active admin; a missing database has none.
func (d DBAdmins) HasAdmin(ctx context.Context) (bool, error) {
	if _, err := os.Stat(d.Path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	db, err := storage.Open(ctx, d.Path, storage.Options{ReadConns: 1})
	if err != nil {
		return false, err
	}
	defer db.Close()
	return db.HasAdmin(ctx)
}

// CreateAdmin binds the database to serverName and creates the admin as fyr user add --admin
// does.
func (d DBAdmins) CreateAdmin(ctx context.Context, serverName, name, password string) error {
	db, err := storage.Open(ctx, d.Path, storage.Options{ReadConns: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.BindServerName(ctx, serverName); err != nil {
		if errors.Is(err, storage.ErrServerNameChanged) {
			return &FieldError{Field: "server_name", Msg: "The database on this box belongs to another server name: " + err.Error()}
		}
		return err
	}
	acc := accounts.New(db, serverName)
	localpart, err := acc.LocalpartOf(name)
	if err != nil {
		return &FieldError{Field: "admin", Msg: "Use lower-case letters, digits and . _ = - / only: " + err.Error()}
	}
	_, err = acc.Register(ctx, accounts.NewAccount{Localpart: localpart, Password: password, Admin: true, InhibitLogin: true})
	switch {
	case errors.Is(err, accounts.ErrUserInUse):
		return &FieldError{Field: "admin", Msg: "That account exists already; pick another name."}
	case errors.Is(err, accounts.ErrInvalidUsername):
		return &FieldError{Field: "admin", Msg: "Use lower-case letters, digits and . _ = - / only."}
	}
	return err
}
