package sync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/server/servertest"
	fsync "fyr/server/sync"
)

// elementXList is the list Element X starts with: the top 20 rooms, one event each, and
// the state its room list shows.
const elementXList = `{"conn_id":"room-list","lists":{"all_rooms":{"ranges":[[0,19]],"timeline_limit":1,
	"required_state":[["m.room.name",""],["m.room.encryption",""],["m.room.member","$LAZY"],["m.room.member","$ME"],
	["m.room.topic",""],["m.room.canonical_alias",""],["m.room.power_levels",""],["m.call.member","*"],
	["m.room.join_rules",""],["m.room.tombstone",""],["m.room.create",""],["m.room.history_visibility",""],
	["m.space.parent","*"],["m.space.child","*"]],
	"filters":{"not_room_types":["m.space"]}}},
	"extensions":{"to_device":{"enabled":true},"e2ee":{"enabled":true},"account_data":{"enabled":true},
	"receipts":{"enabled":true},"typing":{"enabled":true}}}`

// slidingSetup makes a reader in 200 rooms with 50 messages each.
func slidingSetup(b *testing.B) (*servertest.Server, id.UserID, string, id.UserID, []id.RoomID) {
	ctx := context.Background()
	s := servertest.Start(b, servertest.OpenRegistration)
	writer, _ := benchUser(b, s, "writer")
	reader, token := benchUser(b, s, "reader")
	const nRooms, nEvents = 200, 50
	roomIDs := make([]id.RoomID, nRooms)
	for i := range nRooms {
		name := fmt.Sprintf("Room %d", i)
		r, err := s.Rooms.CreateRoom(ctx, writer, &rooms.CreateRequest{Preset: "public_chat", Name: &name})
		if err != nil {
			b.Fatal(err)
		}
		roomIDs[i] = r
	}
	parallel(b, nRooms, func(i int) error {
		_, err := s.Rooms.Join(ctx, reader, roomIDs[i], "", nil)
		return err
	})
	parallel(b, nRooms*nEvents, func(i int) error {
		_, err := s.Rooms.Send(ctx, rooms.Sender{User: writer}, roomIDs[i%nRooms], "m.room.message", "", message(i))
		return err
	})
	return s, reader, token, writer, roomIDs
}

// BenchmarkSlidingSyncInitial is Element X's first request for a user in 200 rooms with 50
// messages each: the top 20 rooms with one event and their state, every extension on, over
// HTTP.
func BenchmarkSlidingSyncInitial(b *testing.B) {
	s, _, token, _, _ := slidingSetup(b)
	client := &http.Client{}
	var size int
	for b.Loop() {
		resp, n, err := slidingPost(client, s.URL, token, "", elementXList)
		if err != nil {
			b.Fatal(err)
		}
		if got := len(resp["rooms"].(map[string]any)); got != 20 {
			b.Fatalf("initial sliding sync has %d rooms, want 20", got)
		}
		size = n
	}
	b.ReportMetric(float64(size)/1024, "KiB/sync")
}

// BenchmarkSlidingSyncInitialEngine is BenchmarkSlidingSyncInitial without HTTP and JSON.
func BenchmarkSlidingSyncInitialEngine(b *testing.B) {
	s, reader, _, _, _ := slidingSetup(b)
	var body fsync.SlidingBody
	if err := json.Unmarshal([]byte(elementXList), &body); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		resp, err := s.Sync.SlidingSync(context.Background(), fsync.SlidingRequest{User: reader, Device: "D", Body: body})
		if err != nil || len(resp.Rooms) != 20 {
			b.Fatal(err)
		}
	}
}

// BenchmarkSlidingSyncIncremental is the server's work for one request that finds one new
// message in one of the 200 rooms (it moves to the top of the list), called directly.
func BenchmarkSlidingSyncIncremental(b *testing.B) {
	ctx := context.Background()
	s, reader, _, writer, roomIDs := slidingSetup(b)
	var body fsync.SlidingBody
	if err := json.Unmarshal([]byte(elementXList), &body); err != nil {
		b.Fatal(err)
	}
	req := fsync.SlidingRequest{User: reader, Device: "D", Body: body}
	resp, err := s.Sync.SlidingSync(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		room := roomIDs[i%len(roomIDs)]
		if _, err := s.Rooms.Send(ctx, rooms.Sender{User: writer}, room, "m.room.message", "", message(i)); err != nil {
			b.Fatal(err)
		}
		pos, err := fsync.ParseSlidingPos(resp.Pos)
		if err != nil {
			b.Fatal(err)
		}
		req.Pos = &pos
		b.StartTimer()
		if resp, err = s.Sync.SlidingSync(ctx, req); err != nil {
			b.Fatal(err)
		}
		if rr := resp.Rooms[room]; rr == nil || len(rr.Timeline) != 1 {
			b.Fatalf("the new message is missing: %v", resp.Rooms)
		}
	}
}

func slidingPost(client *http.Client, base, token, pos, body string) (map[string]any, int, error) {
	u := base + "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
	if pos != "" {
		u += "?pos=" + url.QueryEscape(pos)
	}
	req, err := http.NewRequest("POST", u, bytes.NewReader([]byte(body)))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("sliding sync: %d %s", resp.StatusCode, b)
	}
	var m map[string]any
	return m, len(b), json.Unmarshal(b, &m)
}
