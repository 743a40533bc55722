// Command fyr is the Fyr Matrix homeserver: one binary with its subcommands.
//
//	fyr serve [flags]           run the homeserver
//	fyr user add [flags] NAME   create an account (works while the server runs)
//	fyr keygen [flags]          rotate the signing key, keeping the old one for verification
//	fyr update COMMAND          signed A/B system updates on a Fyr box (apply, status, sign …)
//	fyr check [flags]           check the database for damage
//	fyr version                 print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"fyr/firmware/initd"
)

// version is stamped by `make release` with -ldflags "-X main.version=…".
var version = "dev"

const usage = `Fyr is a Matrix homeserver for the edge of the network.

Usage:
  fyr serve [flags]            run the homeserver (fyr serve -h lists every setting)
  fyr user add [flags] NAME    create an account; --admin makes it a server admin
  fyr keygen [flags]           rotate the federation signing key, keeping the old one for verification
  fyr update COMMAND           signed system updates on a Fyr box: apply, status, verify, sign (fyr update help)
  fyr check [flags]            check the database for damage (SQLite integrity_check)
  fyr version                  print the version

Examples:
  fyr serve --data-dir /var/lib/fyr --server-name example.org
  fyr user add --admin alice
`

func main() {
	// On a box the kernel starts fyr as PID 1 with no command: it is the init. In a
	// container, `fyr serve` may be PID 1 too, and then it serves.
	if initd.IsPID1() && (len(os.Args) < 2 || !commands[os.Args[1]]) {
		initd.Main(initd.Config{Version: version}) // never returns
	}
	if err := run(context.Background(), os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fyr:", err)
		}
		os.Exit(exitCode(err))
	}
}

// commands are the subcommands run understands.
var commands = map[string]bool{"serve": true, "user": true, "keygen": true, "update": true, "check": true,
	"version": true, "--version": true, "-version": true, "help": true, "-h": true, "--help": true}

// errUsage marks a command line the user must fix.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("%w: no command given; try: fyr serve", errUsage)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest)
	case "user":
		return runUser(ctx, rest)
	case "keygen":
		return runKeygen(ctx, rest)
	case "update":
		return runUpdate(ctx, rest)
	case "check":
		return runCheck(ctx, rest)
	case "version", "--version", "-version":
		fmt.Println("fyr", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("%w: unknown command %q; try: fyr serve", errUsage, cmd)
	}
}
