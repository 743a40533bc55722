package httpapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
	"fyr/storage"
)

func deviceJSON(d storage.Device) map[string]any {
	out := map[string]any{"device_id": d.ID}
	if d.DisplayName != "" {
		out["display_name"] = d.DisplayName
	}
	if d.LastSeenTS != 0 {
		out["last_seen_ts"] = d.LastSeenTS
	}
	if d.LastSeenIP != "" {
		out["last_seen_ip"] = d.LastSeenIP
	}
	return out
}

// listDevices is GET /devices.
func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	ds, err := a.accounts.Devices(r.Context(), caller(r))
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(ds))
	for i, d := range ds {
		out[i] = deviceJSON(d)
	}
	writeJSON(w, 200, map[string]any{"devices": out})
	return nil
}

// getDevice is GET /devices/{deviceID}.
func (a *API) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := a.accounts.Device(r.Context(), caller(r), id.DeviceID(r.PathValue("deviceID")))
	if err != nil {
		return err
	}
	writeJSON(w, 200, deviceJSON(*d))
	return nil
}

// renameDevice is PUT /devices/{deviceID}. A body without display_name changes nothing.
func (a *API) renameDevice(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	c, deviceID := caller(r), id.DeviceID(r.PathValue("deviceID"))
	var err error
	if req.DisplayName == nil {
		_, err = a.accounts.Device(r.Context(), c, deviceID)
	} else {
		err = a.accounts.RenameDevice(r.Context(), c, deviceID, *req.DisplayName)
	}
	if err != nil {
		return err
	}
	if req.DisplayName != nil && a.e2ee != nil {
		// The name is part of the device's keys as others see them.
		if err := a.e2ee.DeviceRenamed(r.Context(), c.UserID, deviceID); err != nil {
			a.log.Error("announcing a device's new name", "user", c.UserID, "err", err)
		}
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// deleteDevice is DELETE /devices/{deviceID}, behind user-interactive auth.
func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Auth *accounts.AuthData `json:"auth"`
	}
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	c, deviceID := caller(r), id.DeviceID(r.PathValue("deviceID"))
	if _, err := a.accounts.Device(r.Context(), c, deviceID); err != nil {
		return err
	}
	if err := a.reauth(r, "delete_devices", req.Auth); err != nil {
		return err
	}
	if err := a.accounts.DeleteDevices(r.Context(), c, []id.DeviceID{deviceID}); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// maxDeleteDevices bounds one delete_devices request.
const maxDeleteDevices = 1000

// deleteDevices is POST /delete_devices, behind user-interactive auth.
func (a *API) deleteDevices(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Auth    *accounts.AuthData `json:"auth"`
		Devices []id.DeviceID      `json:"devices"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.Devices == nil {
		return errMissingParam("devices")
	}
	if len(req.Devices) > maxDeleteDevices {
		return errInvalidParam("at most 1000 devices per request")
	}
	if err := a.reauth(r, "delete_devices", req.Auth); err != nil {
		return err
	}
	if err := a.accounts.DeleteDevices(r.Context(), caller(r), req.Devices); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}
