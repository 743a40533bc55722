package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"fyr/federation/keys"
	"fyr/server"
)

const keygenUsage = `Usage: fyr keygen [--data-dir DIR] [--config FILE]

Rotates this server's federation signing key: signing.key in the data directory gets a new
key with a new key ID, and the old key's public half is appended to old_signing.keys with
expired_ts set to now. The key server (/_matrix/key/v2/server) then lists the old key under
old_verify_keys, so events it signed keep verifying on other servers.

Restart fyr serve afterwards: a running server keeps signing with the key it started with.
Servers that cached the old key may trust it for new signatures until their copy expires
(at most seven days), so after a leak rotate at once. The first key is created by fyr serve;
keygen refuses to run without one. Other settings come from the configuration file and FYR_
environment variables, as for fyr serve.

Examples:
  fyr keygen --data-dir /var/lib/fyr && systemctl restart fyr
  FYR_DATA_DIR=/var/lib/fyr fyr keygen
`

// runKeygen is `fyr keygen`.
func runKeygen(_ context.Context, args []string) error {
	return keygen(args, os.Stdout, time.Now())
}

// keygen rotates the signing key of the data directory the arguments name and reports the
// new and retired key IDs on out.
func keygen(args []string, out io.Writer, now time.Time) error {
	fset := flag.NewFlagSet("fyr keygen", flag.ContinueOnError)
	fset.Usage = func() { fmt.Fprint(fset.Output(), keygenUsage) }
	data := addDataFlags(fset)
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 0 {
		fset.Usage()
		return fmt.Errorf("%w: fyr keygen takes no arguments; try: fyr keygen --data-dir DIR", errUsage)
	}
	cfg, err := data.load()
	if err != nil {
		return err
	}
	keyPath := filepath.Join(cfg.DataDir, server.SigningKeyFile)
	oldPath := filepath.Join(cfg.DataDir, server.OldKeysFile)
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no signing key at %s: check --data-dir, or run fyr serve once to create the first key", keyPath)
	}
	next, retired, err := keys.Rotate(keyPath, oldPath, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "new signing key %s\nretired %s, still published as an old key (%s)\nrestart fyr serve to sign with the new key\n",
		next.ID, retired.ID, oldPath)
	return nil
}
