package httpapi_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// Every room version this server knows can be created and used: createRoom, messages both
// ways, a state change and a redaction (Complement's TestRoomCreate does the same for each).
func TestCreateRoomEveryVersion(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	caps, err := alice.Capabilities(ctx)
	if err != nil || caps.RoomVersions == nil {
		t.Fatalf("capabilities: %+v %v", caps, err)
	}
	server := s.Config.ServerName
	eventIDs := map[string]*regexp.Regexp{
		"named":   regexp.MustCompile(`^\$[A-Za-z0-9]+:` + regexp.QuoteMeta(server) + `$`),
		"base64":  regexp.MustCompile(`^\$[A-Za-z0-9+/]{43}$`),
		"urlsafe": regexp.MustCompile(`^\$[A-Za-z0-9_-]{43}$`),
	}
	for n := 1; n <= 12; n++ {
		v := id.RoomVersion(fmt.Sprint(n))
		t.Run("v"+string(v), func(t *testing.T) {
			if caps.RoomVersions.Available[string(v)] != "stable" {
				t.Fatalf("capabilities list version %s as %q", v, caps.RoomVersions.Available[string(v)])
			}
			format := "urlsafe"
			switch v {
			case id.RoomV1, id.RoomV2:
				format = "named"
			case id.RoomV3:
				format = "base64"
			}
			room := mustCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: v, Preset: "public_chat", Name: "Version " + string(v),
				Topic: "every version"})
			var create event.CreateEventContent
			if err := alice.StateEvent(ctx, room, event.StateCreate, "", &create); err != nil || create.RoomVersion != v {
				t.Fatalf("create event room_version %q, %v", create.RoomVersion, err)
			}
			if _, err := bob.JoinRoomByID(ctx, room); err != nil {
				t.Fatalf("bob joins: %v", err)
			}
			hello, err := alice.SendText(ctx, room, "hello bob")
			if err != nil {
				t.Fatalf("alice sends: %v", err)
			}
			reply, err := bob.SendText(ctx, room, "hello alice")
			if err != nil {
				t.Fatalf("bob sends: %v", err)
			}
			topic, err := alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "changed"})
			if err != nil {
				t.Fatalf("alice changes the topic: %v", err)
			}
			red, err := alice.RedactEvent(ctx, room, reply.EventID)
			if err != nil {
				t.Fatalf("alice redacts bob's message: %v", err)
			}
			for _, x := range []id.EventID{hello.EventID, reply.EventID, topic.EventID, red.EventID} {
				if !eventIDs[format].MatchString(string(x)) {
					t.Fatalf("event ID %s is not of the %s format of room version %s", x, format, v)
				}
			}
			var got event.TopicEventContent
			if err := bob.StateEvent(ctx, room, event.StateTopic, "", &got); err != nil || got.Topic != "changed" {
				t.Fatalf("bob reads the topic: %q %v", got.Topic, err)
			}
			ev, err := bob.GetEvent(ctx, room, reply.EventID)
			if err != nil || len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil {
				t.Fatalf("redacted message: %v %v", ev, err)
			}
			ev, err = bob.GetEvent(ctx, room, red.EventID)
			if err != nil || ev.Redacts != reply.EventID {
				t.Fatalf("the redaction: %+v %v", ev, err)
			}
			if _, err := alice.SendText(ctx, room, "after"); err != nil {
				t.Fatalf("send after the redaction: %v", err)
			}
		})
	}
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: "13"})
	if code, status := servertest.ErrCode(err); code != "M_UNSUPPORTED_ROOM_VERSION" || status != 400 {
		t.Fatalf("createRoom in version 13: %s %d", code, status)
	}
}
