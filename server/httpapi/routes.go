package httpapi

import "strings"

// routes is the table of contents of the client API. Client endpoints that existed before
// v1.1 are also served under /r0/, which older clients still call.
func (a *API) routes() {
	a.handle("GET /_matrix/client/versions", a.versions)
	a.handle("GET /.well-known/matrix/client", a.wellKnownClient)
	a.handle("GET /.well-known/matrix/server", a.wellKnownServer)

	a.client("GET /login", a.loginFlows)
	a.client("POST /login", a.rateLimited("login", a.login))
	a.client("POST /logout", a.authed(a.logout))
	a.client("POST /logout/all", a.authed(a.logoutAll))
	a.client("POST /register", a.rateLimited("login", a.register))
	a.client("GET /register/available", a.rateLimited("check", a.registerAvailable))
	a.handle("GET /_matrix/client/v1/register/m.login.registration_token/validity", a.rateLimited("check", a.registrationTokenValidity))

	a.client("GET /account/whoami", a.authed(a.whoami))
	a.client("POST /account/password", a.authed(a.changePassword))
	a.client("POST /account/deactivate", a.authed(a.deactivate))
	a.client("GET /capabilities", a.authed(a.capabilities))

	a.client("GET /devices", a.authed(a.listDevices))
	a.client("GET /devices/{deviceID}", a.authed(a.getDevice))
	a.client("PUT /devices/{deviceID}", a.authed(a.renameDevice))
	a.client("DELETE /devices/{deviceID}", a.authed(a.deleteDevice))
	a.client("POST /delete_devices", a.authed(a.deleteDevices))

	a.client("GET /profile/{userID}", a.getProfile)
	a.client("GET /profile/{userID}/{key}", a.getProfileField)
	a.client("PUT /profile/{userID}/{key}", a.authed(a.setProfileField))
	a.client("DELETE /profile/{userID}/{key}", a.authed(a.deleteProfileField))

	a.handle("GET /_synapse/admin/v1/register", a.sharedSecretNonce)
	a.handle("POST /_synapse/admin/v1/register", a.rateLimited("login", a.sharedSecretRegister))
}

// client registers a client-server endpoint under /v3/ and /r0/. pattern is "METHOD /path".
func (a *API) client(pattern string, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	a.handle(method+" /_matrix/client/v3"+path, h)
	a.handle(method+" /_matrix/client/r0"+path, h)
}
