package keys_test

import (
	"context"
	"encoding/json/jsontext"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

func signedPDU(t *testing.T, a *remote, rv id.RoomVersion, ts time.Time) *pdu.PDU {
	t.Helper()
	p := &pdu.PDU{
		Type:           "m.room.message",
		Sender:         id.UserID("@alice:" + a.name),
		RoomID:         id.RoomID("!room:" + a.name),
		Content:        jsontext.Value(`{"body":"hello","msgtype":"m.text"}`),
		OriginServerTS: ts.UnixMilli(),
		Depth:          3,
		AuthEvents:     []id.EventID{},
		PrevEvents:     []id.EventID{},
	}
	if err := p.Sign(rv, a.name, a.key.ID, a.key.Private); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKeyFuncVerifiesPDUs runs mautrix's PDU signature check against the Ring.
func TestKeyFuncVerifiesPDUs(t *testing.T) {
	ctx := context.Background()
	c, n := newClock(), newNet()
	a := newRemote(t, "a.test", c)
	stranger := newRemote(t, "a.test", c) // same name, a key a.test never published
	n.Handle("a.test", a)
	ring, _ := newRing(t, "me.test", n, c)
	keyFunc := ring.KeyFunc(ctx)
	late := t0.Add(8 * 24 * time.Hour) // past the cached key's seven days

	tampered := signedPDU(t, a, id.RoomV11, t0)
	tampered.Depth++

	if err := signedPDU(t, a, id.RoomV11, t0).VerifySignature(id.RoomV11, "a.test", keyFunc); err != nil {
		t.Fatalf("VerifySignature(v11, fresh key): %v", err)
	}
	n.SetDown("a.test", true)
	tests := []struct {
		name    string
		pdu     *pdu.PDU
		rv      id.RoomVersion
		wantErr bool
	}{
		{"v11 within validity", signedPDU(t, a, id.RoomV11, t0.Add(time.Hour)), id.RoomV11, false},
		{"v11 after validity", signedPDU(t, a, id.RoomV11, late), id.RoomV11, true},
		{"v4 ignores validity", signedPDU(t, a, id.RoomV4, late), id.RoomV4, false},
		{"unknown key", signedPDU(t, stranger, id.RoomV11, t0), id.RoomV11, true},
		{"tampered", tampered, id.RoomV11, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.pdu.VerifySignature(tt.rv, "a.test", keyFunc)
			if (err != nil) != tt.wantErr {
				t.Errorf("VerifySignature = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
