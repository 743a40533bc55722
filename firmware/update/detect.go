package update

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"fyr/firmware/slots"
)

// TrustedKeysFile holds an operator's extra update keys (PEM public keys), in the updater's
// directory; the keys built into the binary are trusted as well.
const TrustedKeysFile = "trusted_keys.pem"

// Detect returns the Manager of the system whose root is root ("" means "/"), keeping its
// state in dir (<data dir>/update) and snapshotting the database file db. It finds the boot
// loader with slots.Detect and trusts BuiltinKeys plus dir's TrustedKeysFile. On a machine
// that is no Fyr box, or whose boot loader did not start a Fyr slot, the error wraps
// slots.ErrNoBootloader: system updates are off there, which is no fault.
func Detect(root, dir, db string, log *slog.Logger) (*Manager, error) {
	bl, err := slots.Detect(root)
	if err != nil {
		return nil, err
	}
	if _, err := bl.Status(); err != nil {
		return nil, fmt.Errorf("%w: the %s boot loader did not start a Fyr slot: %v", slots.ErrNoBootloader, bl.Name(), err)
	}
	keys, err := LoadKeyring(filepath.Join(dir, TrustedKeysFile))
	if err != nil {
		return nil, err
	}
	return &Manager{Dir: dir, Board: Board(root), Keys: keys, Loader: bl, DB: db, Log: log}, nil
}
