package keys

import (
	"context"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// DeviceListChanges answers sync's device_lists (and GET /keys/changes) for user between
// two stream positions, since < pos <= upto: changed lists users sharing a room with user
// (and user) whose devices or cross-signing keys changed, plus users who came to share a
// room with user; left lists users who no longer share any room with user. Both are sorted.
//
// See https://spec.matrix.org/v1.19/client-server-api/#e2e-extensions-to-sync
func (e *Engine) DeviceListChanges(ctx context.Context, user id.UserID, since, upto int64) (changed, left []id.UserID, err error) {
	return e.db.DeviceListChanges(ctx, user, since, upto)
}

// DeviceDeleted forgets a deleted device's keys, one-time and fallback keys, signatures and
// to-device inbox, and, if it had published keys, tells everyone sharing a room with user
// that their device list changed. Call it after every path that deletes a device (logout,
// logout/all, delete_devices, password change with logout, deactivation); a device that
// never had keys costs one empty write.
func (e *Engine) DeviceDeleted(ctx context.Context, user id.UserID, device id.DeviceID) error {
	outbox := e.getOutbox()
	var pos int64
	var dests []string
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		had, err := tx.DeleteDeviceE2EE(user, device)
		if err != nil || !had {
			return err
		}
		if pos, err = tx.RecordDeviceListChange(user, ""); err != nil {
			return err
		}
		dests, err = e.announce(tx, outbox, user, []deviceChange{{device: device, deleted: true}}, false)
		return err
	})
	if err != nil {
		return err
	}
	e.notifySharing(ctx, pos, user)
	notifyOutbox(outbox, dests)
	return nil
}

// DevicesDeleted is DeviceDeleted for every device of user that no longer exists, for paths
// that delete devices without naming them (logout/all, deactivation).
func (e *Engine) DevicesDeleted(ctx context.Context, user id.UserID) error {
	outbox := e.getOutbox()
	var pos int64
	var dests []string
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		gone, err := tx.DeletedDevicesWithE2EE(user)
		if err != nil {
			return err
		}
		var changes []deviceChange
		for _, d := range gone {
			had, err := tx.DeleteDeviceE2EE(user, d)
			if err != nil {
				return err
			}
			if had {
				changes = append(changes, deviceChange{device: d, deleted: true})
			}
		}
		if len(changes) == 0 {
			return nil
		}
		if pos, err = tx.RecordDeviceListChange(user, ""); err != nil {
			return err
		}
		dests, err = e.announce(tx, outbox, user, changes, false)
		return err
	})
	if err != nil {
		return err
	}
	e.notifySharing(ctx, pos, user)
	notifyOutbox(outbox, dests)
	return nil
}

// KeyChanges answers GET /keys/changes: DeviceListChanges from one stream position up to
// another, or up to now when to is 0.
//
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3keyschanges
func (e *Engine) KeyChanges(ctx context.Context, user id.UserID, from, to int64) (changed, left []id.UserID, err error) {
	if to == 0 {
		if to, err = e.db.StreamPos(ctx); err != nil {
			return nil, nil, err
		}
	}
	return e.db.DeviceListChanges(ctx, user, from, to)
}
