// Package accounts owns users, devices, access tokens, passwords, registration and
// user-interactive authentication (UIA): everything that decides who a request comes from.
//
// It is not for HTTP: handlers in server/httpapi decode requests, call a Service method and
// map its sentinel errors to the spec's error codes.
package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Errors returned by Service methods; httpapi maps each to a spec error.
var (
	ErrInvalidUsername   = errors.New("accounts: invalid username")
	ErrUserInUse         = errors.New("accounts: user ID already taken")
	ErrForbidden         = errors.New("accounts: invalid username or password")
	ErrUnknownToken      = errors.New("accounts: unknown access token")
	ErrTokenExpired      = errors.New("accounts: access token expired")
	ErrPasswordTooLong   = fmt.Errorf("accounts: password longer than %d bytes", MaxPasswordBytes)
	ErrInvalidRegToken   = errors.New("accounts: registration token invalid, used up or expired")
	ErrUserDeactivated   = errors.New("accounts: user is deactivated")
	ErrNotFound          = errors.New("accounts: not found")
	ErrInvalidParam      = errors.New("accounts: invalid parameter")
	ErrNotLocal          = errors.New("accounts: user is not on this server")
	ErrSharedSecretUnset = errors.New("accounts: shared-secret registration is disabled")
)

// Service implements account operations on top of storage. Create it with New; it is safe
// for concurrent use.
type Service struct {
	db         *storage.DB
	serverName string
	// now is the clock that token expiry, UIA sessions and nonces are measured by (SetClock).
	now atomic.Pointer[func() time.Time]

	uia    *uiaStore
	nonces *nonceStore
	seen   seenTracker

	remoteProfile RemoteProfile // nil: remote profiles are not found
	// profileChanged hears about display name and avatar changes (OnProfileChange).
	profileChanged func(user id.UserID)
	// reserved are the localparts of the server's own accounts (Reserve, system.go).
	reserved map[string]bool
}

// New returns a Service for the server called serverName.
func New(db *storage.DB, serverName string) *Service {
	s := &Service{db: db, serverName: serverName}
	s.SetClock(time.Now)
	s.uia = newUIAStore(s.clock)
	s.nonces = newNonceStore(s.clock)
	return s
}

// SetClock replaces the clock that access token expiry, UIA sessions and other timeouts are
// measured by; tests use it to let time pass without sleeping. It is safe to call while the
// Service is in use.
func (s *Service) SetClock(now func() time.Time) { s.now.Store(&now) }

func (s *Service) clock() time.Time { return (*s.now.Load())() }

func (s *Service) nowMS() int64 { return s.clock().UnixMilli() }

// ServerName is the name users of this server have after the colon.
func (s *Service) ServerName() string { return s.serverName }

// UserID returns the full user ID of a local user.
func (s *Service) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, s.serverName)
}

// Caller is the authenticated user and device behind a request.
type Caller struct {
	UserID    id.UserID
	Localpart string
	DeviceID  id.DeviceID
	Admin     bool
}

// Session is what a successful registration, login or refresh hands the client.
type Session struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	AccessToken string // empty with inhibit_login
	// RefreshToken renews AccessToken through Refresh; empty unless the client asked for one.
	RefreshToken string
	// ExpiresIn is the lifetime of AccessToken; 0: it never expires.
	ExpiresIn time.Duration
}

// Authenticate resolves an access token to its caller, and notes that the caller's device
// was used from ip (written within SeenFlushInterval; see Run). An unknown token gives
// ErrUnknownToken, an expired one ErrTokenExpired. The first use of a token from Refresh
// revokes the refresh token that was exchanged for it.
func (s *Service) Authenticate(ctx context.Context, token, ip string) (*Caller, error) {
	return s.authenticate(ctx, token, ip, false)
}

// AuthenticateExpired is Authenticate that also accepts an expired access token, as logout
// does: a client may end a session whose token has run out without refreshing it first.
func (s *Service) AuthenticateExpired(ctx context.Context, token, ip string) (*Caller, error) {
	return s.authenticate(ctx, token, ip, true)
}

func (s *Service) authenticate(ctx context.Context, token, ip string, allowExpired bool) (*Caller, error) {
	o, err := s.db.TokenOwner(ctx, HashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrUnknownToken
	}
	if err != nil {
		return nil, err
	}
	if o.ExpiresTS != 0 && s.nowMS() >= o.ExpiresTS && !allowExpired {
		return nil, ErrTokenExpired
	}
	if o.PendingRefresh != nil {
		if err := s.finishRefresh(ctx, o.PendingRefresh); err != nil {
			return nil, err
		}
	}
	s.noteSeen(o.Localpart, o.DeviceID, ip)
	return &Caller{UserID: s.UserID(o.Localpart), Localpart: o.Localpart, DeviceID: o.DeviceID, Admin: o.Admin}, nil
}

// Active reports whether userID is an existing, not deactivated, local account.
func (s *Service) Active(ctx context.Context, userID id.UserID) bool {
	localpart, server, err := userID.Parse()
	if err != nil || server != s.serverName {
		return false
	}
	u, err := s.db.User(ctx, localpart)
	return err == nil && !u.Deactivated
}

// LocalpartOf accepts a bare localpart or a full user ID of this server, as login and UIA
// identifiers may carry either, and returns the lower-cased localpart.
func (s *Service) LocalpartOf(user string) (string, error) {
	if strings.HasPrefix(user, "@") {
		localpart, server, err := id.UserID(user).Parse()
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalidParam, err)
		}
		if server != s.serverName {
			return "", ErrNotLocal
		}
		user = localpart
	}
	return strings.ToLower(user), nil
}

// ValidateLocalpart checks a localpart for a new account against the spec's grammar for user
// IDs ([a-z0-9._=/+-], total length at most 255 bytes).
func (s *Service) ValidateLocalpart(localpart string) error {
	if localpart == "" {
		return fmt.Errorf("%w: the username is empty", ErrInvalidUsername)
	}
	for _, c := range localpart {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("._=-/+", c)
		if !ok {
			return fmt.Errorf("%w: %q may only contain a-z, 0-9 and . _ = - / +", ErrInvalidUsername, localpart)
		}
	}
	if n := len(s.UserID(localpart)); n > 255 {
		return fmt.Errorf("%w: the user ID would be %d bytes, over the limit of 255", ErrInvalidUsername, n)
	}
	return nil
}

// Available reports whether a localpart can be registered: ErrInvalidUsername or
// ErrUserInUse when not.
func (s *Service) Available(ctx context.Context, localpart string) error {
	if err := s.ValidateLocalpart(localpart); err != nil {
		return err
	}
	if s.reserved[localpart] {
		return fmt.Errorf("%w: %s is reserved for the server", ErrUserInUse, localpart)
	}
	_, err := s.db.User(ctx, localpart)
	switch {
	case err == nil:
		return ErrUserInUse
	case errors.Is(err, storage.ErrNotFound):
		return nil
	default:
		return err
	}
}

// NewAccount describes an account to create.
type NewAccount struct {
	Localpart    string // already lower-cased; empty: a random one is chosen
	Password     string // empty: no password login
	Admin        bool
	RegToken     string // when set, one use of it is counted in the same transaction
	InhibitLogin bool   // create no device or token
	DeviceID     id.DeviceID
	DeviceName   string
	IP           string
	// TokenLifetime, when positive, makes the access token expire after it and comes with a
	// refresh token (the client sent refresh_token: true); 0: the token never expires.
	TokenLifetime time.Duration
}

// Register creates an account, and unless InhibitLogin, a device and access token for it.
func (s *Service) Register(ctx context.Context, a NewAccount) (*Session, error) {
	if a.Localpart == "" {
		a.Localpart = strings.ToLower(string(newDeviceID()))
	}
	if err := s.ValidateLocalpart(a.Localpart); err != nil {
		return nil, err
	}
	if s.reserved[a.Localpart] {
		return nil, fmt.Errorf("%w: %s is reserved for the server", ErrUserInUse, a.Localpart)
	}
	var hash string
	if a.Password != "" {
		if len(a.Password) > MaxPasswordBytes {
			return nil, ErrPasswordTooLong
		}
		var err error
		if hash, err = HashPassword(a.Password); err != nil {
			return nil, err
		}
	}
	sess := &Session{UserID: s.UserID(a.Localpart)}
	clock := s.clock()
	now := clock.UnixMilli()
	var toks tokens
	if !a.InhibitLogin {
		sess.DeviceID = a.DeviceID
		if sess.DeviceID == "" {
			sess.DeviceID = newDeviceID()
		}
		toks = newTokens(a.TokenLifetime, clock)
		toks.fill(sess)
	}
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		admin := a.Admin
		if a.RegToken != "" {
			t, err := tx.UseRegistrationToken(HashToken(a.RegToken), now)
			if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrTokenUsedUp) {
				return ErrInvalidRegToken
			}
			if err != nil {
				return err
			}
			admin = admin || t.GrantsAdmin
		}
		if err := tx.CreateUser(storage.User{Localpart: a.Localpart, PasswordHash: hash, Admin: admin, CreatedTS: now}); err != nil {
			if errors.Is(err, storage.ErrExists) {
				return ErrUserInUse
			}
			return err
		}
		// A new account is named after its localpart until the user picks a name, as on
		// Synapse: member lists and mentions then show something readable.
		name, _ := json.Marshal(a.Localpart)
		if err := tx.SetProfileField(a.Localpart, "displayname", name); err != nil {
			return err
		}
		if a.InhibitLogin {
			return nil
		}
		return s.addDevice(tx, a.Localpart, sess.DeviceID, a.DeviceName, a.IP, toks, now)
	})
	if err != nil {
		return nil, err
	}
	return sess, nil
}

func (s *Service) addDevice(tx *storage.Tx, localpart string, deviceID id.DeviceID, name, ip string, toks tokens, now int64) error {
	if err := tx.CreateDevice(localpart, storage.Device{ID: deviceID, DisplayName: name, CreatedTS: now, LastSeenTS: now, LastSeenIP: ip}); err != nil {
		return err
	}
	return toks.store(tx, localpart, deviceID, now)
}

// CheckPassword verifies a local user's password. Unknown users, deactivated users and wrong
// passwords all give ErrForbidden after the same amount of work.
func (s *Service) CheckPassword(ctx context.Context, localpart, password string) error {
	if len(password) > MaxPasswordBytes {
		return ErrForbidden
	}
	u, err := s.db.User(ctx, localpart)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	hash := dummyHash
	if u != nil && !u.Deactivated && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok, err := VerifyPassword(hash, password)
	if err != nil {
		return fmt.Errorf("verify password of %q: %w", localpart, err)
	}
	if !ok || hash == dummyHash {
		return ErrForbidden
	}
	return nil
}

// Login describes a password login.
type Login struct {
	User       string // localpart or user ID, any case
	Password   string
	DeviceID   id.DeviceID // empty: a new device
	DeviceName string
	IP         string
	// TokenLifetime, when positive, makes the access token expire after it and comes with a
	// refresh token (the client sent refresh_token: true); 0: the token never expires.
	TokenLifetime time.Duration
}

// Login checks a password and creates (or takes over) a device with a new access token.
func (s *Service) Login(ctx context.Context, l Login) (*Session, error) {
	localpart, err := s.LocalpartOf(l.User)
	if errors.Is(err, ErrNotLocal) || errors.Is(err, ErrInvalidParam) {
		return nil, ErrForbidden
	}
	if err != nil {
		return nil, err
	}
	if err := s.CheckPassword(ctx, localpart, l.Password); err != nil {
		return nil, err
	}
	sess := &Session{UserID: s.UserID(localpart), DeviceID: l.DeviceID}
	if sess.DeviceID == "" {
		sess.DeviceID = newDeviceID()
	}
	clock := s.clock()
	toks := newTokens(l.TokenLifetime, clock)
	toks.fill(sess)
	now := clock.UnixMilli()
	if err := s.db.Write(ctx, func(tx *storage.Tx) error {
		return s.addDevice(tx, localpart, sess.DeviceID, l.DeviceName, l.IP, toks, now)
	}); err != nil {
		return nil, err
	}
	return sess, nil
}

// Logout deletes the caller's device and so its access and refresh tokens.
func (s *Service) Logout(ctx context.Context, c *Caller) error {
	return s.db.Write(ctx, func(tx *storage.Tx) error {
		return tx.DeleteDevices(c.Localpart, []id.DeviceID{c.DeviceID})
	})
}

// LogoutAll deletes every device of the caller.
func (s *Service) LogoutAll(ctx context.Context, c *Caller) error {
	return s.db.Write(ctx, func(tx *storage.Tx) error {
		return tx.DeleteDevicesExcept(c.Localpart, "")
	})
}

// ChangePassword sets a new password. With logoutDevices, every device but the caller's is
// logged out, in the same transaction.
func (s *Service) ChangePassword(ctx context.Context, c *Caller, password string, logoutDevices bool) error {
	if len(password) > MaxPasswordBytes {
		return ErrPasswordTooLong
	}
	if password == "" {
		return fmt.Errorf("%w: new_password is empty", ErrInvalidParam)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return s.db.Write(ctx, func(tx *storage.Tx) error {
		if err := tx.SetPassword(c.Localpart, hash); err != nil {
			return err
		}
		if logoutDevices {
			return tx.DeleteDevicesExcept(c.Localpart, c.DeviceID)
		}
		return nil
	})
}

// SetPassword sets a user's password without knowing the old one (the operator's CLI).
func (s *Service) SetPassword(ctx context.Context, localpart, password string) error {
	return s.ChangePassword(ctx, &Caller{Localpart: localpart}, password, true)
}

// Deactivate closes an account for good.
func (s *Service) Deactivate(ctx context.Context, localpart string) error {
	return s.db.Write(ctx, func(tx *storage.Tx) error { return tx.Deactivate(localpart) })
}

// Devices lists the caller's devices.
func (s *Service) Devices(ctx context.Context, c *Caller) ([]storage.Device, error) {
	return s.db.Devices(ctx, c.Localpart)
}

// Device returns one of the caller's devices, or ErrNotFound.
func (s *Service) Device(ctx context.Context, c *Caller, deviceID id.DeviceID) (*storage.Device, error) {
	d, err := s.db.Device(ctx, c.Localpart, deviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	return d, err
}

// MaxDeviceNameBytes bounds a device's display name.
const MaxDeviceNameBytes = 256

// RenameDevice sets the display name of one of the caller's devices.
func (s *Service) RenameDevice(ctx context.Context, c *Caller, deviceID id.DeviceID, name string) error {
	if len(name) > MaxDeviceNameBytes {
		return fmt.Errorf("%w: display_name is longer than %d bytes", ErrInvalidParam, MaxDeviceNameBytes)
	}
	err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.SetDeviceName(c.Localpart, deviceID, name) })
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// DeleteDevices logs out the given devices of the caller; unknown IDs are ignored.
func (s *Service) DeleteDevices(ctx context.Context, c *Caller, ids []id.DeviceID) error {
	return s.db.Write(ctx, func(tx *storage.Tx) error { return tx.DeleteDevices(c.Localpart, ids) })
}
