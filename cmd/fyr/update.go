package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"fyr/firmware/slots"
	"fyr/firmware/update"
	"fyr/server/config"
	"fyr/server/httpapi"
)

const updateUsage = `Usage: fyr update COMMAND [flags] [ARGS]

On a Fyr box (Raspberry Pi with tryboot, or UEFI with systemd-boot):
  apply BUNDLE      verify a signed bundle and write it into the inactive slot; the next
                    reboot tries it, and the box keeps it once the homeserver stays healthy
  status            show both slots, the installed version and any trial
  bless             keep the running trial now, without waiting for the supervisor
  rollback          give the running trial up; the next reboot returns to the old slot

Anywhere:
  verify BUNDLE     check a bundle's signature and every file's SHA-256, writing nothing
  keygen NAME       make a signing key: NAME.key (private, keep it offline) and NAME.pub
  sign [flags] DIR  sign every file under DIR into a bundle (make bundle calls this)

Box commands take --data-dir and --config as fyr serve does: the updater keeps its state in
<data dir>/update/, and trusts the keys built into this binary plus any PEM public keys in
<data dir>/update/trusted_keys.pem. "-" as BUNDLE reads standard input.

Examples:
  fyr update keygen release-2026
  fyr update sign --key release-2026.key --version 7 --label 2026.11.1 \
      --board raspberrypi,4-model-b -o fyr-7.bundle dist/slot
  fyr update verify --keys release-2026.pub fyr-7.bundle
  fyr update apply fyr-7.bundle
  curl -X POST -H "Authorization: Bearer $ADMIN_TOKEN" --data-binary @fyr-7.bundle \
      https://box.local/_fyr/admin/v1/update
`

// runUpdate is `fyr update`.
func runUpdate(ctx context.Context, args []string) error {
	return updateCmd(ctx, args, os.Stdout)
}

func updateCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, updateUsage)
		return fmt.Errorf("%w: fyr update needs a command; try: fyr update status", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "apply", "status", "bless", "rollback":
		return updateBox(ctx, cmd, rest, out)
	case "verify":
		return updateVerify(rest, out)
	case "keygen":
		return updateKeygen(rest, out)
	case "sign":
		return updateSign(rest, out)
	case "help", "-h", "--help":
		fmt.Fprint(out, updateUsage)
		return nil
	}
	fmt.Fprint(os.Stderr, updateUsage)
	return fmt.Errorf("%w: unknown command fyr update %s; try: fyr update status", errUsage, cmd)
}

// updateBox runs the commands that act on this box's slots.
func updateBox(ctx context.Context, cmd string, args []string, out io.Writer) error {
	fset := flag.NewFlagSet("fyr update "+cmd, flag.ContinueOnError)
	fset.Usage = func() { fmt.Fprint(fset.Output(), updateUsage) }
	data := addDataFlags(fset)
	root := fset.String("root", "/", "the system root under which the boot loader's files are found (for tests)")
	reason := fset.String("reason", "rolled back by hand", "why, for rollback")
	if err := fset.Parse(args); err != nil {
		return err
	}
	wantArgs := 0
	if cmd == "apply" {
		wantArgs = 1
	}
	if fset.NArg() != wantArgs {
		fset.Usage()
		return fmt.Errorf("%w: fyr update %s takes %d argument(s)", errUsage, cmd, wantArgs)
	}
	cfg, err := data.load()
	if err != nil {
		return err
	}
	m, err := appliance(cfg, *root, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	switch cmd {
	case "apply":
		return updateApply(ctx, m, fset.Arg(0), out)
	case "bless":
		if err := m.Bless(ctx); err != nil {
			return err
		}
		fmt.Fprintln(out, "blessed: every later boot starts this slot")
		return nil
	case "rollback":
		if err := m.Rollback(ctx, *reason); err != nil {
			return err
		}
		fmt.Fprintln(out, "trial given up: reboot to return to the old slot")
		return nil
	}
	return updateStatus(ctx, m, out)
}

// appliance builds the updater of the box whose system root is root, with its state in
// the data directory. Where no Fyr boot loader is found the error wraps
// slots.ErrNoBootloader.
func appliance(cfg *config.Config, root string, log *slog.Logger) (*update.Manager, error) {
	m, err := update.Detect(root, filepath.Join(cfg.DataDir, "update"), cfg.DatabasePath(), log)
	if errors.Is(err, slots.ErrNoBootloader) {
		return nil, fmt.Errorf("%w: fyr update runs on a Fyr box", err)
	}
	return m, err
}

func openBundle(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(name)
}

func updateApply(ctx context.Context, m *update.Manager, name string, out io.Writer) error {
	f, err := openBundle(name)
	if err != nil {
		return err
	}
	defer f.Close()
	inst, err := m.Apply(ctx, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "installed %s into slot %s (signed by key %s)\nthe next reboot tries it; the box keeps it once the homeserver has stayed healthy\n",
		inst.Manifest.Name(), inst.Slot, inst.KeyID)
	return nil
}

func updateStatus(ctx context.Context, m *update.Manager, out io.Writer) error {
	st, bs, err := m.Status(ctx)
	if err != nil {
		return err
	}
	running := "slot " + string(bs.Booted)
	if bs.Trial {
		running += ", on trial"
	}
	fmt.Fprintf(out, "boot loader  %s\nboard        %s\nrunning      %s\ninstalled    version %d (the next bundle must be newer)\n",
		m.Loader.Name(), m.Board, running, st.Installed)
	for _, s := range []slots.Slot{slots.A, slots.B} {
		ss, ok := st.Slots[s]
		switch {
		case !ok:
			fmt.Fprintf(out, "slot %s       as shipped\n", s)
		case ss.Version == 0:
			fmt.Fprintf(out, "slot %s       %s\n", s, ss.Status)
		default:
			fmt.Fprintf(out, "slot %s       %s, version %d %s\n", s, ss.Status, ss.Version, ss.Label)
		}
	}
	if t := st.Trial; t != nil {
		phase := "armed: the next reboot tries it"
		switch {
		case t.Abandoned != "":
			phase = "given up (" + t.Abandoned + "): reboot to return to slot " + string(t.From)
		case t.Started:
			phase = "running; the supervisor blesses it once the homeserver has stayed healthy"
		case t.Rebooting:
			phase = "rebooting into it"
		}
		fmt.Fprintf(out, "trial        version %d in slot %s, %s\n", t.Version, t.Slot, phase)
	}
	if st.Last != "" {
		fmt.Fprintf(out, "last         %s\n", st.Last)
	}
	fmt.Fprintf(out, "keys         %s\n", strings.Join(m.Keys.IDs(), ", "))
	return nil
}

func updateVerify(args []string, out io.Writer) error {
	fset := flag.NewFlagSet("fyr update verify", flag.ContinueOnError)
	fset.Usage = func() { fmt.Fprint(fset.Output(), updateUsage) }
	keysFile := fset.String("keys", "", "PEM public keys to trust besides the built-in ones")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		fset.Usage()
		return fmt.Errorf("%w: give one BUNDLE, e.g. fyr update verify --keys release.pub fyr-7.bundle", errUsage)
	}
	keys, err := update.LoadKeyring(*keysFile)
	if err != nil {
		return err
	}
	if keys.Len() == 0 {
		return errors.New("no trusted keys: this binary has none built in; pass --keys FILE.pub")
	}
	f, err := openBundle(fset.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := update.Verify(f, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "good: %s for %s, %d files, %d bytes\n", m.Name(), strings.Join(m.Boards, ", "), len(m.Files), m.Size())
	return nil
}

func updateKeygen(args []string, out io.Writer) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(os.Stderr, updateUsage)
		return fmt.Errorf("%w: give one NAME, e.g. fyr update keygen release-2026", errUsage)
	}
	priv, pub, err := update.GenerateKey()
	if err != nil {
		return err
	}
	keyFile, pubFile := args[0]+".key", args[0]+".pub"
	for _, f := range []string{keyFile, pubFile} {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s exists; pick another NAME rather than overwrite a key", f)
		}
	}
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
		return err
	}
	pubs, err := update.ParsePublicKeys(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (private: keep it offline) and %s\nkey ID %s\nfor the binary's built-in keys: UPDATE_KEYS=%s\n",
		keyFile, pubFile, update.KeyID(pubs[0]), base64.StdEncoding.EncodeToString(pubs[0]))
	return nil
}

func updateSign(args []string, out io.Writer) error {
	fset := flag.NewFlagSet("fyr update sign", flag.ContinueOnError)
	fset.Usage = func() { fmt.Fprint(fset.Output(), updateUsage) }
	keyFile := fset.String("key", "", "PEM ed25519 private key (from fyr update keygen)")
	version := fset.Uint64("version", 0, "bundle version: above every version the boxes have installed")
	label := fset.String("label", "", "version people read, e.g. 2026.11.1")
	output := fset.String("o", "", "bundle file to write")
	var boards []string
	fset.Func("board", "a board the bundle runs on, e.g. raspberrypi,4-model-b or uefi-amd64 (repeat the flag for more)",
		func(s string) error { boards = append(boards, s); return nil })
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 1 || *keyFile == "" || *version == 0 || *output == "" || len(boards) == 0 {
		fset.Usage()
		return fmt.Errorf("%w: fyr update sign needs --key, --version, --board, -o and one DIR", errUsage)
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := update.ParsePrivateKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	dir := fset.Arg(0)
	fsys := os.DirFS(dir)
	var names []string
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file; a bundle carries only files", filepath.Join(dir, p))
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.Create(*output)
	if err != nil {
		return err
	}
	m := update.Manifest{Version: *version, Label: *label, Boards: boards}
	if err := update.Write(f, m, fsys, names, key); err != nil {
		f.Close()
		os.Remove(*output)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s: version %d, %d files, signed by key %s\n", *output, *version, len(names), update.KeyID(key.Public().(ed25519.PublicKey)))
	return nil
}

// applianceBoot is fyr serve's part in updates. On a Fyr box it runs the updater's boot step
// before the database opens (a snapshot before this version first migrates it, or the
// restore after a failed trial) and returns the updater for the admin endpoint; elsewhere it
// returns nil.
func applianceBoot(ctx context.Context, cfg *config.Config, log *slog.Logger) (*update.Manager, error) {
	m, err := appliance(cfg, "/", log)
	if errors.Is(err, slots.ErrNoBootloader) {
		log.Debug("not a Fyr box: system updates are off", "why", err)
		return nil, nil
	}
	if err != nil {
		log.Error("system updates are off", "err", err)
		return nil, nil
	}
	rep, err := m.Boot(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case rep.RebootNow:
		return nil, errors.New("the update on trial was given up before it touched the database; reboot to return to the old slot")
	case rep.RolledBack != nil:
		log.Warn("a system update failed its trial and was rolled back; the database is as it was before it", "version", rep.RolledBack.Version)
	case rep.Trial != nil:
		log.Info("running a system update on trial; it is kept once the homeserver has stayed healthy", "version", rep.Trial.Version, "slot", rep.Trial.Slot)
	}
	return m, nil
}

// boxUpdater serves the admin endpoint's uploads with firmware/update.
type boxUpdater struct{ m *update.Manager }

func (b boxUpdater) MaxBundleBytes() int64 { return update.MaxBundleBytes }

func (b boxUpdater) ApplyUpdate(ctx context.Context, r io.Reader) (httpapi.UpdateResult, error) {
	inst, err := b.m.Apply(ctx, r)
	switch {
	case errors.Is(err, update.ErrRefused):
		return httpapi.UpdateResult{}, fmt.Errorf("%w: %w", httpapi.ErrUpdateRefused, err)
	case errors.Is(err, update.ErrTrialRunning):
		return httpapi.UpdateResult{}, fmt.Errorf("%w: %w", httpapi.ErrUpdateBusy, err)
	case err != nil:
		return httpapi.UpdateResult{}, err
	}
	return httpapi.UpdateResult{Version: inst.Manifest.Version, Label: inst.Manifest.Label, Slot: string(inst.Slot), KeyID: inst.KeyID}, nil
}
