package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// bigRoom builds a public room with members joined members and states state events in all
// (members included), once per process.
var bigRoomOnce sync.Once
var bigEngine *rooms.Engine
var bigRoomID id.RoomID

func bigRoom(b *testing.B) (*rooms.Engine, id.RoomID) {
	bigRoomOnce.Do(func() {
		ctx := context.Background()
		e, _ := newEngine(&testing.T{})
		alice := user("alice")
		room, err := e.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "public_chat"})
		if err != nil {
			b.Fatal(err)
		}
		const members, states = 1000, 10000
		for i := range members {
			if _, err := e.Join(ctx, user(fmt.Sprintf("u%d", i)), room, "", nil); err != nil {
				b.Fatal(err)
			}
		}
		a := rooms.Sender{User: alice}
		for i := range states - members {
			if _, err := e.SendState(ctx, a, room, "org.example.sensor", fmt.Sprint(i), json.RawMessage(`{"v":1}`)); err != nil {
				b.Fatal(err)
			}
		}
		for i := range 1000 {
			if _, err := e.Send(ctx, a, room, "m.room.message", "", text(fmt.Sprint("history ", i))); err != nil {
				b.Fatal(err)
			}
		}
		bigEngine, bigRoomID = e, room
	})
	if bigEngine == nil {
		b.Skip("setup failed")
	}
	return bigEngine, bigRoomID
}

// BenchmarkSendBigRoom sends messages into a room with 1,000 members and 10,000 state events.
func BenchmarkSendBigRoom(b *testing.B) {
	e, room := bigRoom(b)
	ctx := context.Background()
	a := rooms.Sender{User: user("alice")}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Send(ctx, a, room, "m.room.message", "", text(fmt.Sprint("bench ", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessages100 reads /messages pages of 100 events as a member.
func BenchmarkMessages100(b *testing.B) {
	e, room := bigRoom(b)
	ctx := context.Background()
	v := rooms.Viewer{User: user("u1")}
	b.ResetTimer()
	for b.Loop() {
		resp, err := e.Messages(ctx, v, room, rooms.MessagesRequest{Backwards: true, Limit: 100})
		if err != nil || len(resp.Chunk) != 100 {
			b.Fatalf("%d events, %v", len(resp.Chunk), err)
		}
	}
}

// BenchmarkMembershipBigRoom changes one member's display name (a membership event) in the
// big room.
func BenchmarkMembershipBigRoom(b *testing.B) {
	e, room := bigRoom(b)
	ctx := context.Background()
	u := user("u7")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c, _ := json.Marshal(map[string]string{"membership": "join", "displayname": fmt.Sprint("u7 #", i)})
		if _, err := e.SendState(ctx, rooms.Sender{User: u}, room, "m.room.member", string(u), c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendSmallRoom is the baseline for BenchmarkSendBigRoom: a fresh two-event room.
// Equal figures mean sending does not depend on the room's size or history.
func BenchmarkSendSmallRoom(b *testing.B) {
	e, _ := newEngine(b)
	ctx := context.Background()
	a := rooms.Sender{User: user("alice")}
	room, err := e.CreateRoom(ctx, a.User, &rooms.CreateRequest{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := e.Send(ctx, a, room, "m.room.message", "", text(fmt.Sprint("bench ", i))); err != nil {
			b.Fatal(err)
		}
	}
}
