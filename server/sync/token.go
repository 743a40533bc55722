package sync

import (
	"fmt"
	"strconv"
	"strings"
)

// Token is a sync token: where a client stands in everything /sync covers. Clients treat it
// as opaque; it survives restarts because its main part is a position in the storage stream.
//
// Written out it is "s<Pos>" followed by "_<letter><number>" parts for the streams that keep
// their own counters: "s4711", "s4711_t12", "s4711_t12_d4690". It starts like a pagination
// token, so /messages accepts it (rooms.ParseToken reads the "s<Pos>" part).
type Token struct {
	// Pos is the position in the storage stream, which orders room events, memberships and
	// every other stream that is persisted (account data, receipts, to-device messages,
	// presence, device lists).
	Pos int64
	// Typing is the typing stream's serial ("t"): typing notices live in memory only. 0: none.
	Typing int64
	// ToDevice ("d"), when nonzero, is where to-device delivery stopped short of Pos because a
	// response held as many messages as it may; the next sync continues from there.
	ToDevice int64
}

// String writes the token out.
func (t Token) String() string {
	var b strings.Builder
	b.WriteString("s")
	b.WriteString(strconv.FormatInt(t.Pos, 10))
	if t.Typing > 0 {
		b.WriteString("_t")
		b.WriteString(strconv.FormatInt(t.Typing, 10))
	}
	if t.ToDevice > 0 && t.ToDevice < t.Pos {
		b.WriteString("_d")
		b.WriteString(strconv.FormatInt(t.ToDevice, 10))
	}
	return b.String()
}

// ParseToken reads a token written by String. Parts after the first that name a stream this
// server does not know are skipped, so tokens stay readable across versions; anything else
// that is not a well-formed token is ErrInvalidParam.
func ParseToken(s string) (Token, error) {
	bad := func() (Token, error) {
		return Token{}, fmt.Errorf("%w: %q is not a sync token from this server", ErrInvalidParam, s)
	}
	rest, ok := strings.CutPrefix(s, "s")
	if !ok {
		return bad()
	}
	parts := strings.Split(rest, "_")
	var t Token
	var err error
	if t.Pos, err = parseCount(parts[0]); err != nil {
		return bad()
	}
	for _, p := range parts[1:] {
		if len(p) < 2 || p[0] < 'a' || p[0] > 'z' {
			return bad()
		}
		n, err := parseCount(p[1:])
		if err != nil {
			return bad()
		}
		switch p[0] {
		case 't':
			t.Typing = n
		case 'd':
			t.ToDevice = n
		}
	}
	if t.ToDevice > t.Pos {
		return bad()
	}
	return t, nil
}

// parseCount reads a non-negative decimal number of digits only (no sign, no spaces).
func parseCount(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// toDevicePos is where to-device delivery continues from.
func (t Token) toDevicePos() int64 {
	if t.ToDevice > 0 && t.ToDevice < t.Pos {
		return t.ToDevice
	}
	return t.Pos
}
