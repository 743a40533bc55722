package stateres

import (
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestUserLevel(t *testing.T) {
	const u = id.UserID("@u:a.test")
	tests := []struct {
		content string
		want    int64
	}{
		{`{"users":{"@u:a.test":50}}`, 50},
		{`{"users":{"@u:a.test":"75"}}`, 75},
		{`{"users":{"@u:a.test":" 20 "}}`, 20},
		{`{"users":{"@u:a.test":true}}`, 1},
		{`{"users":{"@u:a.test":30.9}}`, 30},
		{`{"users":{"@v:a.test":50},"users_default":10}`, 10},
		{`{"users":{"@u:a.test":"lots"},"users_default":"5"}`, 5},
		{`{"users":{"@u:a.test":null}}`, 0},
		{`{}`, 0},
	}
	for _, tt := range tests {
		if got := userLevel([]byte(tt.content), u); got != tt.want {
			t.Errorf("userLevel(%s) = %d, want %d", tt.content, got, tt.want)
		}
	}
}
