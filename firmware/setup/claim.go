package setup

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strings"
)

// claimAlphabet leaves out 0, O, 1 and I, which people misread on a console.
const claimAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// claimLen is the code's length: 8 characters of 32 are 40 bits, far beyond what the
// limit on wrong codes lets anyone try.
const claimLen = 8

// NewClaimCode returns a fresh code to print on the console, as XXXX-XXXX.
func NewClaimCode() string {
	b := make([]byte, claimLen)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("setup: no randomness: %v", err)) // crypto/rand does not fail on Linux
	}
	for i := range b {
		b[i] = claimAlphabet[int(b[i])%len(claimAlphabet)] // 256 is a multiple of 32: no bias
	}
	return string(b[:4]) + "-" + string(b[4:])
}

// normalizeClaim forgives case, spaces and dashes.
func normalizeClaim(s string) string {
	s = strings.ToUpper(s)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

// checkClaim compares a typed code with the real one in constant time.
func checkClaim(typed, code string) bool {
	want := normalizeClaim(code)
	return want != "" && subtle.ConstantTimeCompare([]byte(normalizeClaim(typed)), []byte(want)) == 1
}

// Banner is what the console shows while setup waits: where to go and the claim code.
func Banner(code string, urls ...string) string {
	var b strings.Builder
	b.WriteString("\n  This Fyr box is not set up yet. On a computer on the same network, open\n\n")
	for _, u := range urls {
		fmt.Fprintf(&b, "      %s\n", u)
	}
	fmt.Fprintf(&b, "\n  and enter this claim code:\n\n      %s\n\n", code)
	return b.String()
}
