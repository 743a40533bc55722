package httpapi

import "strings"

// routes is the table of contents of the client API. Client endpoints that existed before
// v1.1 are also served under /r0/, which older clients still call.
func (a *API) routes() {
	a.handle("GET /_matrix/client/versions", a.versions)
	a.handle("GET /.well-known/matrix/client", a.wellKnownClient)
	a.handle("GET /.well-known/matrix/server", a.wellKnownServer)
	a.healthRoutes()

	a.client("GET /login", a.loginFlows)
	a.client("POST /login", a.rateLimited("login", a.login))
	a.client("POST /logout", a.authedExpired(a.devicesGone(a.logout)))
	a.client("POST /logout/all", a.authedExpired(a.devicesGone(a.logoutAll)))
	a.refreshRoutes()
	a.client("POST /register", a.rateLimited("login", a.register))
	a.client("GET /register/available", a.rateLimited("check", a.registerAvailable))
	a.handle("GET /_matrix/client/v1/register/m.login.registration_token/validity", a.rateLimited("check", a.registrationTokenValidity))

	a.client("GET /account/whoami", a.authed(a.whoami))
	a.client("POST /account/password", a.authed(a.devicesGone(a.changePassword)))
	a.client("POST /account/deactivate", a.authed(a.devicesGone(a.deactivate)))
	a.client("GET /capabilities", a.authed(a.capabilities))
	a.client("POST /user/{userID}/openid/request_token", a.authed(a.openIDToken))
	a.client("GET /voip/turnServer", a.rateLimited("turn", a.authed(a.turnServer)))

	a.client("GET /devices", a.authed(a.listDevices))
	a.client("GET /devices/{deviceID}", a.authed(a.getDevice))
	a.client("PUT /devices/{deviceID}", a.authed(a.renameDevice))
	a.client("DELETE /devices/{deviceID}", a.authed(a.devicesGone(a.deleteDevice)))
	a.client("POST /delete_devices", a.authed(a.devicesGone(a.deleteDevices)))

	a.client("GET /profile/{userID}", a.getProfile)
	a.client("GET /profile/{userID}/{key}", a.getProfileField)
	a.client("PUT /profile/{userID}/{key}", a.authed(a.setProfileField))
	a.client("DELETE /profile/{userID}/{key}", a.authed(a.deleteProfileField))

	if a.media != nil {
		a.mediaRoutes()
	}
	if a.rooms != nil {
		a.roomRoutes()
		a.ephemeralRoutes()
		a.directoryRoutes()
		a.relationRoutes()
		a.searchRoutes()
	}
	a.userdataRoutes()
	a.e2eeRoutes()
	a.syncRoutes()
	a.pushRoutes()
	a.slidingSyncRoutes()

	a.handle("GET /_synapse/admin/v1/register", a.sharedSecretNonce)
	a.handle("POST /_synapse/admin/v1/register", a.rateLimited("login", a.sharedSecretRegister))
	a.updateRoutes()
	a.noticeRoutes()
}

// mediaRoutes are the content repository's endpoints: uploads stay under /_matrix/media, and
// downloads moved to the authenticated /_matrix/client/v1/media in spec v1.11.
func (a *API) mediaRoutes() {
	a.handle("POST /_matrix/media/v3/upload", a.authed(a.upload))
	a.handle("POST /_matrix/media/r0/upload", a.authed(a.upload))
	a.handle("PUT /_matrix/media/v3/upload/{serverName}/{mediaID}", a.authed(a.uploadTo))
	a.handle("POST /_matrix/media/v1/create", a.authed(a.createMedia))

	a.handle("GET /_matrix/client/v1/media/config", a.authed(a.mediaConfig))
	a.handle("GET /_matrix/client/v1/media/download/{serverName}/{mediaID}", a.authed(a.download))
	a.handle("GET /_matrix/client/v1/media/download/{serverName}/{mediaID}/{fileName}", a.authed(a.download))
	a.handle("GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaID}", a.authed(a.thumbnail))

	a.handle("GET /_matrix/client/v1/media/preview_url", a.authed(a.previewURL))
	a.handle("GET /_matrix/media/v3/config", a.authed(a.mediaConfig))
	a.handle("GET /_matrix/media/v3/preview_url", a.authed(a.previewURL))
	for _, v := range []string{"v3", "r0"} {
		a.handle("GET /_matrix/media/"+v+"/download/{serverName}/{mediaID}", a.legacy(a.download))
		a.handle("GET /_matrix/media/"+v+"/download/{serverName}/{mediaID}/{fileName}", a.legacy(a.download))
		a.handle("GET /_matrix/media/"+v+"/thumbnail/{serverName}/{mediaID}", a.legacy(a.thumbnail))
	}
}

// client registers a client-server endpoint under /v3/ and /r0/. pattern is "METHOD /path".
func (a *API) client(pattern string, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	a.handle(method+" /_matrix/client/v3"+path, h)
	a.handle(method+" /_matrix/client/r0"+path, h)
}
