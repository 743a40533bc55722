package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"fyr/server/servertest"
)

// TestPushAcrossServers: events from another server notify local users as local events do,
// in the same /sync as the event, and an invite over federation reaches the invitee's push
// gateway.
func TestPushAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	dave := hs2.Register(t, "dave", "correct horse battery")

	var mu sync.Mutex
	var pushed []map[string]any
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &body)
		mu.Lock()
		pushed = append(pushed, body["notification"].(map[string]any))
		mu.Unlock()
		io.WriteString(w, `{"rejected":[]}`)
	}))
	defer gw.Close()
	next := *hs2.Config
	next.Push.AllowPrivate = true
	hs2.Reload(&next)
	kind := mautrix.PusherKindHTTP
	if err := dave.SetPusher(ctx, &mautrix.Pusher{Kind: &kind, AppID: "org.example.fyr", PushKey: "dave", AppDisplayName: "Fyr",
		DeviceDisplayName: "Phone", Language: "en", Data: mautrix.PusherData{"url": gw.URL + "/_matrix/push/v1/notify"}}); err != nil {
		t.Fatal(err)
	}

	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "pushed"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	if _, err := bob.JoinRoom(ctx, "#pushed:hs1.test", nil); err != nil {
		t.Fatalf("bob joins over federation: %v", err)
	}
	sync := mautrix.ReqSync{}
	first, err := bob.FullSyncRequest(ctx, sync)
	if err != nil {
		t.Fatal(err)
	}
	sync.Since = first.NextBatch

	sent, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "bob, over here",
		"m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	if err != nil {
		t.Fatal(err)
	}
	var counts *mautrix.UnreadNotificationCounts
	waitFor(t, "the mention on hs2", func() bool {
		sync.Timeout = 5000
		r, err := bob.FullSyncRequest(ctx, sync)
		if err != nil {
			t.Fatal(err)
		}
		sync.Since = r.NextBatch
		jr := r.Rooms.Join[room]
		if jr == nil {
			return false
		}
		for _, ev := range jr.Timeline.Events {
			if ev.ID == sent.EventID {
				counts = jr.UnreadNotifications
				return true
			}
		}
		return false
	})
	if counts == nil || counts.NotificationCount != 1 || counts.HighlightCount != 1 {
		t.Errorf("bob's counts with the remote mention = %+v, want 1 and 1", counts)
	}

	// Dave is invited from hs1 to a room hs2 is not in: the invite reaches hs2 alone, as an
	// outlier, and still notifies him.
	resp, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room = resp.RoomID
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: dave.UserID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dave's invite at his gateway", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range pushed {
			if n["type"] == "m.room.member" && n["room_id"] == string(room) && n["user_is_target"] == true {
				return true
			}
		}
		return false
	})
	// Once he joins, the invite is read.
	if _, err := dave.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	r, err := dave.FullSyncRequest(ctx, mautrix.ReqSync{})
	if err != nil {
		t.Fatal(err)
	}
	if jr := r.Rooms.Join[room]; jr == nil || jr.UnreadNotifications == nil || jr.UnreadNotifications.NotificationCount != 0 {
		t.Errorf("dave after joining: %+v", jr)
	}
}
