package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"fyr/storage"
)

const checkUsage = `Usage: fyr check [--data-dir DIR] [--config FILE]

Checks the database for damage with SQLite's integrity_check and prints "ok" or every
problem found; the exit status is 1 if there is any. It never migrates or repairs the
database, and it may run while fyr serve does. A Fyr box runs it at boot after a power cut.
A damaged database is best replaced by its latest backup.

Examples:
  fyr check --data-dir /var/lib/fyr
`

// runCheck is `fyr check`.
func runCheck(ctx context.Context, args []string) error {
	return check(ctx, args, os.Stdout)
}

func check(ctx context.Context, args []string, out io.Writer) error {
	fset := flag.NewFlagSet("fyr check", flag.ContinueOnError)
	fset.Usage = func() { fmt.Fprint(fset.Output(), checkUsage) }
	data := addDataFlags(fset)
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 0 {
		fset.Usage()
		return fmt.Errorf("%w: fyr check takes no arguments; try: fyr check --data-dir DIR", errUsage)
	}
	cfg, err := data.load()
	if err != nil {
		return err
	}
	path := cfg.DatabasePath()
	problems, err := storage.CheckIntegrity(ctx, path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(out, p)
		}
		return fmt.Errorf("integrity_check found %d problems in %s; restore the latest backup", len(problems), path)
	}
	fmt.Fprintf(out, "integrity_check: ok (%s)\n", path)
	return nil
}
