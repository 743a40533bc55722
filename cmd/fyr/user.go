package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"fyr/server/accounts"
	"fyr/storage"
)

const userUsage = `Usage: fyr user add [--admin] [--password-file FILE] [--data-dir DIR] [--config FILE] NAME

Creates an account on this server's database; the server may be running. Without
--password-file a random password is generated and printed once. FILE "-" reads the
password from standard input. Other settings (server name, database) come from the
configuration file and FYR_ environment variables, as for fyr serve.

Examples:
  fyr user add --admin alice
  echo "$PASSWORD" | fyr user add --password-file - bob
`

// runUser is `fyr user add`.
func runUser(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprint(os.Stderr, userUsage)
		return fmt.Errorf("%w: try: fyr user add NAME", errUsage)
	}
	fs := flag.NewFlagSet("fyr user add", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), userUsage) }
	admin := fs.Bool("admin", false, "make the account a server admin")
	passwordFile := fs.String("password-file", "", "read the password from this file (- for standard input)")
	data := addDataFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: give exactly one NAME, e.g. fyr user add alice", errUsage)
	}
	cfg, err := data.load()
	if err != nil {
		return err
	}
	password, generated, err := readPassword(*passwordFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	db, err := storage.Open(ctx, cfg.DatabasePath(), storage.Options{ReadConns: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.BindServerName(ctx, cfg.ServerName); err != nil {
		return err
	}
	acc := accounts.New(db, cfg.ServerName)
	acc.Reserve(cfg.Notices.Localpart)
	localpart, err := acc.LocalpartOf(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	sess, err := acc.Register(ctx, accounts.NewAccount{Localpart: localpart, Password: password, Admin: *admin, InhibitLogin: true})
	if errors.Is(err, accounts.ErrUserInUse) {
		return fmt.Errorf("%s is taken; pick another name", acc.UserID(localpart))
	}
	if err != nil {
		return err
	}
	role := "user"
	if *admin {
		role = "admin"
	}
	fmt.Printf("created %s %s\n", role, sess.UserID)
	if generated {
		fmt.Printf("password: %s\n(shown once; change it after signing in)\n", password)
	}
	return nil
}

// readPassword reads the password from file ("-" is stdin), or generates one.
func readPassword(file string) (password string, generated bool, err error) {
	if file == "" {
		return accounts.NewSecret()[:20], true, nil
	}
	var b []byte
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, accounts.MaxPasswordBytes+2))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return "", false, fmt.Errorf("read password: %w", err)
	}
	password = strings.TrimRight(string(b), "\r\n")
	if password == "" {
		return "", false, errors.New("the password file is empty")
	}
	if len(password) > accounts.MaxPasswordBytes {
		return "", false, fmt.Errorf("the password is longer than %d bytes", accounts.MaxPasswordBytes)
	}
	return password, false, nil
}
