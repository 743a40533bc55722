package httpapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
)

// getProfile is GET /profile/{userID}: every field.
func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	p, err := a.accounts.Profile(r.Context(), id.UserID(r.PathValue("userID")))
	if err != nil {
		return err
	}
	writeJSON(w, 200, p)
	return nil
}

// getProfileField is GET /profile/{userID}/{key}.
func (a *API) getProfileField(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := accounts.ValidProfileKey(key); err != nil {
		return err
	}
	p, err := a.accounts.Profile(r.Context(), id.UserID(r.PathValue("userID")))
	if err != nil {
		return err
	}
	v, ok := p[key]
	if !ok {
		return errNotFound("the profile has no field " + key)
	}
	writeJSON(w, 200, map[string]json.RawMessage{key: v})
	return nil
}

// ownProfile checks that the caller is changing their own profile.
func ownProfile(r *http.Request) error {
	if id.UserID(r.PathValue("userID")) != caller(r).UserID {
		return errForbidden("you can only change your own profile")
	}
	return nil
}

// setProfileField is PUT /profile/{userID}/{key} with {key: value}.
func (a *API) setProfileField(w http.ResponseWriter, r *http.Request) error {
	if err := ownProfile(r); err != nil {
		return err
	}
	key := r.PathValue("key")
	if err := accounts.ValidProfileKey(key); err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	v, ok := body[key]
	if !ok {
		return errMissingParam(key)
	}
	if err := a.accounts.SetProfileField(r.Context(), caller(r).Localpart, key, v); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// deleteProfileField is DELETE /profile/{userID}/{key}.
func (a *API) deleteProfileField(w http.ResponseWriter, r *http.Request) error {
	if err := ownProfile(r); err != nil {
		return err
	}
	if err := a.accounts.DeleteProfileField(r.Context(), caller(r).Localpart, r.PathValue("key")); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}
