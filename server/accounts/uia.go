package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Auth types this server offers in user-interactive authentication.
const (
	AuthPassword          = "m.login.password"
	AuthDummy             = "m.login.dummy"
	AuthRegistrationToken = "m.login.registration_token"
)

// UIA sessions are kept in memory: they live for minutes, and a restart that forgets them only
// makes a client start its flow again.
const (
	uiaSessionTTL   = 15 * time.Minute
	uiaMaxSessions  = 10_000
	uiaSessionBytes = 24
)

// ErrUnknownSession means the client named a UIA session that does not exist (any more), or
// that belongs to another operation.
var ErrUnknownSession = errors.New("accounts: unknown user-interactive auth session")

// Identifier is the spec's identifier object, as login and m.login.password carry it. Only
// m.id.user is supported; the deprecated top-level "user" field is its fallback.
type Identifier struct {
	Type string `json:"type"`
	User string `json:"user"`
}

// UserOf returns the user named by an identifier, or by the deprecated "user" field when
// there is no identifier.
func UserOf(ident *Identifier, legacyUser string) (string, error) {
	if ident == nil {
		return legacyUser, nil
	}
	if ident.Type != "m.id.user" {
		return "", fmt.Errorf("%w: identifier type %q is not supported; use m.id.user", ErrInvalidParam, ident.Type)
	}
	return ident.User, nil
}

// AuthData is the "auth" object of a request under user-interactive authentication.
type AuthData struct {
	Type       string      `json:"type"`
	Session    string      `json:"session"`
	Identifier *Identifier `json:"identifier"`
	User       string      `json:"user"` // deprecated form of identifier
	Password   string      `json:"password"`
	Token      string      `json:"token"`
}

// Flows is the set of stage sequences that each complete an authentication.
type Flows [][]string

// Challenge tells the client what is left to do: the spec's 401 response body. Err, if set,
// says why the last attempted stage failed.
type Challenge struct {
	Flows     Flows
	Params    map[string]any
	Session   string
	Completed []string
	Err       error
}

// Error makes a Challenge usable as an error.
func (c *Challenge) Error() string {
	if c.Err != nil {
		return "user-interactive auth required: " + c.Err.Error()
	}
	return "user-interactive auth required"
}

// UIA describes one operation protected by user-interactive auth.
type UIA struct {
	Op    string // what the session is for, e.g. "register" or "delete_devices"
	Flows Flows
	// Localpart is the user who must prove their identity for m.login.password; empty for
	// registration, where no user exists yet.
	Localpart string
}

// Completion is what a finished authentication proved.
type Completion struct {
	RegToken string // the registration token that passed m.login.registration_token
}

type uiaSession struct {
	op        string
	localpart string
	completed []string
	regToken  string
	expires   time.Time
}

type uiaStore struct {
	mu       sync.Mutex
	clock    func() time.Time
	sessions map[string]*uiaSession
}

func newUIAStore(clock func() time.Time) *uiaStore {
	return &uiaStore{clock: clock, sessions: map[string]*uiaSession{}}
}

// Interactive runs one step of user-interactive auth for op. It returns the Completion when a
// flow is complete, or a *Challenge (as the error) when the client must do more. A nil auth
// starts a session. Other errors are the caller's to report (ErrUnknownSession, storage).
//
// The session is consumed on completion: a finished session cannot authorise a second request.
func (s *Service) Interactive(ctx context.Context, op UIA, auth *AuthData) (*Completion, error) {
	st := s.uia
	if auth == nil {
		return nil, st.challenge(op, st.create(op), nil)
	}
	var sess *uiaSession
	sessionID := auth.Session
	if sessionID == "" {
		sessionID = st.create(op)
	}
	st.mu.Lock()
	sess = st.sessions[sessionID]
	st.mu.Unlock()
	if sess == nil || sess.op != op.Op || sess.localpart != op.Localpart || st.clock().After(sess.expires) {
		return nil, ErrUnknownSession
	}
	if !offered(op.Flows, auth.Type) {
		return nil, st.challenge(op, sessionID, fmt.Errorf("%w: auth type %q is not offered here", ErrForbidden, auth.Type))
	}
	regToken, err := s.stage(ctx, op, auth)
	if err != nil {
		if errors.Is(err, ErrForbidden) || errors.Is(err, ErrInvalidRegToken) {
			return nil, st.challenge(op, sessionID, err)
		}
		return nil, err
	}
	st.mu.Lock()
	if !slices.Contains(sess.completed, auth.Type) {
		sess.completed = append(sess.completed, auth.Type)
	}
	if regToken != "" {
		sess.regToken = regToken
	}
	done := flowDone(op.Flows, sess.completed)
	if done {
		delete(st.sessions, sessionID)
	}
	st.mu.Unlock()
	if !done {
		return nil, st.challenge(op, sessionID, nil)
	}
	return &Completion{RegToken: sess.regToken}, nil
}

// ErrWrongUser means a user proved to be someone other than the account being acted on.
var ErrWrongUser = errors.New("accounts: authenticated as a different user")

// stage checks one stage's credentials, returning the registration token it validated.
func (s *Service) stage(ctx context.Context, op UIA, auth *AuthData) (string, error) {
	switch auth.Type {
	case AuthDummy:
		return "", nil
	case AuthPassword:
		user, err := UserOf(auth.Identifier, auth.User)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrForbidden, err)
		}
		localpart, err := s.LocalpartOf(user)
		if err != nil {
			return "", ErrForbidden
		}
		if err := s.CheckPassword(ctx, localpart, auth.Password); err != nil {
			return "", err
		}
		if localpart != op.Localpart {
			return "", ErrWrongUser
		}
		return "", nil
	case AuthRegistrationToken:
		if err := s.RegistrationTokenValid(ctx, auth.Token); err != nil {
			return "", err
		}
		return auth.Token, nil
	}
	return "", fmt.Errorf("%w: auth type %q is not supported", ErrForbidden, auth.Type)
}

func offered(flows Flows, authType string) bool {
	for _, f := range flows {
		if slices.Contains(f, authType) {
			return true
		}
	}
	return false
}

func flowDone(flows Flows, completed []string) bool {
	for _, f := range flows {
		all := true
		for _, stage := range f {
			all = all && slices.Contains(completed, stage)
		}
		if all {
			return true
		}
	}
	return false
}

// create starts a session and returns its ID.
func (st *uiaStore) create(op UIA) string {
	id := newSecret(uiaSessionBytes)
	now := st.clock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.sessions) >= uiaMaxSessions {
		for k, s := range st.sessions {
			if now.After(s.expires) {
				delete(st.sessions, k)
			}
		}
	}
	if len(st.sessions) >= uiaMaxSessions {
		// Still full of live sessions: drop an arbitrary one rather than grow without bound.
		for k := range st.sessions {
			delete(st.sessions, k)
			break
		}
	}
	st.sessions[id] = &uiaSession{op: op.Op, localpart: op.Localpart, expires: now.Add(uiaSessionTTL)}
	return id
}

func (st *uiaStore) challenge(op UIA, sessionID string, err error) *Challenge {
	c := &Challenge{Flows: op.Flows, Params: map[string]any{}, Session: sessionID, Err: err, Completed: []string{}}
	st.mu.Lock()
	if s := st.sessions[sessionID]; s != nil {
		c.Completed = slices.Clone(s.completed)
	}
	st.mu.Unlock()
	return c
}
