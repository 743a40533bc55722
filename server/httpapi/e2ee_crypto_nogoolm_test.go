//go:build !goolm

package httpapi_test

import "testing"

// TestEncryptedConversation needs mautrix's pure-Go Olm, which the goolm build tag selects;
// without it mautrix's crypto package wants libolm through cgo, and Fyr builds without cgo.
func TestEncryptedConversation(t *testing.T) {
	t.Skip("build with -tags goolm (make test does) to run the end-to-end encryption tests against mautrix's crypto")
}

func TestEncryptedConversationAcrossServers(t *testing.T) {
	t.Skip("build with -tags goolm (make test does) to run the end-to-end encryption tests against mautrix's crypto")
}
