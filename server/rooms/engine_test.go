package rooms_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/server/rooms"
	"fyr/storage"
)

const server = "test.local"

func newEngine(tb testing.TB) (*rooms.Engine, *storage.DB) {
	tb.Helper()
	dir := tb.TempDir()
	db, err := storage.Open(context.Background(), filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	key, _, err := keys.LoadOrCreate(filepath.Join(dir, "signing.key"))
	if err != nil {
		tb.Fatal(err)
	}
	return rooms.New(db, rooms.Options{ServerName: server, Key: key}), db
}

func user(name string) id.UserID { return id.UserID("@" + name + ":" + server) }

func text(body string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	return b
}

func must[T any](tb testing.TB) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

// visibleBodies pages backwards through everything a user may see.
func visibleBodies(t *testing.T, e *rooms.Engine, u id.UserID, room id.RoomID) []string {
	t.Helper()
	resp, err := e.Messages(context.Background(), rooms.Viewer{User: u}, room, rooms.MessagesRequest{Backwards: true, Limit: 100})
	if err != nil {
		t.Fatalf("messages as %s: %v", u, err)
	}
	var out []string
	for i := len(resp.Chunk) - 1; i >= 0; i-- {
		var c struct{ Body string }
		json.Unmarshal(resp.Chunk[i].Content, &c)
		if c.Body != "" {
			out = append(out, c.Body)
		}
	}
	return out
}

func TestHistoryVisibility(t *testing.T) {
	ctx := context.Background()
	alice, bob := user("alice"), user("bob")
	for _, tc := range []struct {
		history string
		want    string
	}{
		{"world_readable", "[before invite after invite after join]"},
		{"shared", "[before invite after invite after join]"},
		{"invited", "[after invite after join]"},
		{"joined", "[after join]"},
	} {
		t.Run(tc.history, func(t *testing.T) {
			e, _ := newEngine(t)
			room := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "private_chat"}))
			a := rooms.Sender{User: alice}
			must[id.EventID](t)(e.SendState(ctx, a, room, "m.room.history_visibility", "", json.RawMessage(fmt.Sprintf(`{"history_visibility":%q}`, tc.history))))
			must[id.EventID](t)(e.Send(ctx, a, room, "m.room.message", "", text("before invite")))
			if err := e.Invite(ctx, alice, room, rooms.MemberChange{Target: bob}); err != nil {
				t.Fatal(err)
			}
			must[id.EventID](t)(e.Send(ctx, a, room, "m.room.message", "", text("after invite")))
			must[id.RoomID](t)(e.Join(ctx, bob, room, "", nil))
			must[id.EventID](t)(e.Send(ctx, a, room, "m.room.message", "", text("after join")))
			if got := fmt.Sprint(visibleBodies(t, e, bob, room)); got != tc.want {
				t.Fatalf("bob sees %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRestrictedJoinAndKnock(t *testing.T) {
	ctx := context.Background()
	e, _ := newEngine(t)
	alice, bob, carol := user("alice"), user("bob"), user("carol")
	a := rooms.Sender{User: alice}
	space := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "public_chat"}))
	room := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "private_chat"}))
	must[id.EventID](t)(e.SendState(ctx, a, room, "m.room.join_rules", "",
		json.RawMessage(fmt.Sprintf(`{"join_rule":"knock_restricted","allow":[{"type":"m.room_membership","room_id":%q}]}`, space))))

	// Bob is in none of the allowed rooms: refused.
	if _, err := e.Join(ctx, bob, room, "", nil); !errors.Is(err, rooms.ErrForbidden) {
		t.Fatalf("restricted join without membership: %v", err)
	}
	must[id.RoomID](t)(e.Join(ctx, bob, space, "", nil))
	must[id.RoomID](t)(e.Join(ctx, bob, room, "", nil))
	if m, _ := e.Membership(ctx, bob, room); m != "join" {
		t.Fatalf("bob's membership after restricted join = %q", m)
	}
	// Carol knocks; Alice accepts by inviting; Carol joins.
	must[id.RoomID](t)(e.Knock(ctx, carol, room, "let me in"))
	if m, _ := e.Membership(ctx, carol, room); m != "knock" {
		t.Fatalf("carol's membership after knocking = %q", m)
	}
	if err := e.Invite(ctx, alice, room, rooms.MemberChange{Target: carol}); err != nil {
		t.Fatalf("accept knock: %v", err)
	}
	must[id.RoomID](t)(e.Join(ctx, carol, room, "", nil))
	// Knocking on an invite-only room is refused.
	private := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "private_chat"}))
	if _, err := e.Knock(ctx, carol, private, ""); !errors.Is(err, rooms.ErrForbidden) {
		t.Fatalf("knock on invite-only room: %v", err)
	}
}

func TestKickBanUnban(t *testing.T) {
	ctx := context.Background()
	e, _ := newEngine(t)
	alice, bob := user("alice"), user("bob")
	room := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "public_chat"}))
	must[id.RoomID](t)(e.Join(ctx, bob, room, "", nil))
	if err := e.Kick(ctx, bob, room, rooms.MemberChange{Target: alice}); !errors.Is(err, rooms.ErrForbidden) {
		t.Fatalf("bob kicks the creator: %v", err)
	}
	if err := e.Kick(ctx, alice, room, rooms.MemberChange{Target: bob, Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	must[id.RoomID](t)(e.Join(ctx, bob, room, "", nil))
	if err := e.Ban(ctx, alice, room, rooms.MemberChange{Target: bob}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Join(ctx, bob, room, "", nil); !errors.Is(err, rooms.ErrForbidden) {
		t.Fatalf("banned user joins: %v", err)
	}
	if err := e.Unban(ctx, alice, room, rooms.MemberChange{Target: user("carol")}); !errors.Is(err, rooms.ErrForbidden) {
		t.Fatalf("unban of a user who is not banned: %v", err)
	}
	if err := e.Unban(ctx, alice, room, rooms.MemberChange{Target: bob}); err != nil {
		t.Fatal(err)
	}
	must[id.RoomID](t)(e.Join(ctx, bob, room, "", nil))
	if err := e.Forget(ctx, bob, room); !errors.Is(err, rooms.ErrStillMember) {
		t.Fatalf("forget while joined: %v", err)
	}
}

func TestNothingPersistedWhenAuthFails(t *testing.T) {
	ctx := context.Background()
	e, db := newEngine(t)
	alice := user("alice")
	room := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{}))
	before := must[int64](t)(db.StreamPos(ctx))
	if _, err := e.Send(ctx, rooms.Sender{User: user("mallory")}, room, "m.room.message", "", text("hi")); !errors.Is(err, rooms.ErrForbidden) {
		t.Fatalf("stranger sends: %v", err)
	}
	if after := must[int64](t)(db.StreamPos(ctx)); after != before {
		t.Fatalf("stream moved from %d to %d on a refused event", before, after)
	}
}

// Setting the same state twice gives the first event back and adds nothing to the room;
// other content, or a sender not allowed to set it, is not mistaken for a repeat.
func TestSetStateTwiceIsIdempotent(t *testing.T) {
	ctx := context.Background()
	e, db := newEngine(t)
	alice := user("alice")
	a := rooms.Sender{User: alice}
	room := must[id.RoomID](t)(e.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "public_chat"}))
	first := must[id.EventID](t)(e.SendState(ctx, a, room, "org.example.state", "", json.RawMessage(`{"a":1,"b":[2]}`)))
	before := must[int64](t)(db.StreamPos(ctx))
	again := must[id.EventID](t)(e.SendState(ctx, a, room, "org.example.state", "", json.RawMessage(`{ "b":[2], "a":1 }`)))
	if again != first {
		t.Fatalf("the same state twice gave %s then %s", first, again)
	}
	if after := must[int64](t)(db.StreamPos(ctx)); after != before {
		t.Errorf("a repeated state event moved the stream from %d to %d", before, after)
	}
	if changed := must[id.EventID](t)(e.SendState(ctx, a, room, "org.example.state", "", json.RawMessage(`{"a":2}`))); changed == first {
		t.Error("new content was taken for a repeat")
	}
	must[id.RoomID](t)(e.JoinVia(ctx, user("bob"), room, nil, "", nil))
	if _, err := e.SendState(ctx, rooms.Sender{User: user("bob")}, room, "org.example.state", "", json.RawMessage(`{"a":2}`)); !errors.Is(err, rooms.ErrForbidden) {
		t.Errorf("bob repeating state he may not set: %v, want ErrForbidden", err)
	}
}
