package httpapi_test

import "fyr/server/accounts"

func sharedMAC(secret, nonce, user, password string, admin bool) string {
	return accounts.SharedSecretMAC(secret, nonce, user, password, admin)
}
