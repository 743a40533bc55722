package server_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	"fyr/server/servertest"
)

// fedErr is the errcode and status of another server's refusal.
func fedErr(err error) (code string, status int) {
	var re *transport.ResponseError
	if errors.As(err, &re) {
		return re.ErrCode, re.StatusCode
	}
	return "", 0
}

func TestPublicRoomsAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	var listed []id.RoomID
	for _, name := range []string{"Flood watch", "Radio net"} {
		resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, resp.RoomID)
	}
	if _, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "hs2's own"}); err != nil {
		t.Fatal(err)
	}

	resp, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "hs1.test"})
	if err != nil {
		t.Fatalf("bob lists hs1's rooms: %v", err)
	}
	var got []id.RoomID
	for _, r := range resp.Chunk {
		got = append(got, r.RoomID)
	}
	slices.Sort(got)
	slices.Sort(listed)
	if !slices.Equal(got, listed) || resp.TotalRoomCountEstimate != 2 {
		t.Fatalf("hs1's rooms seen from hs2: %v (total %d), want %v", got, resp.TotalRoomCountEstimate, listed)
	}

	// Paging and filtering go through to hs1.
	page, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "hs1.test", Limit: 1})
	if err != nil || len(page.Chunk) != 1 || page.NextBatch == "" {
		t.Fatalf("first page of one: %+v, %v", page, err)
	}
	next, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "hs1.test", Limit: 1, Since: page.NextBatch})
	if err != nil || len(next.Chunk) != 1 || next.Chunk[0].RoomID == page.Chunk[0].RoomID {
		t.Fatalf("second page of one: %+v, %v", next, err)
	}
	var filtered mautrix.RespPublicRooms
	_, err = bob.MakeRequest(ctx, "POST", bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "publicRooms"}, map[string]string{"server": "hs1.test"}),
		map[string]any{"filter": map[string]any{"generic_search_term": "radio"}}, &filtered)
	if err != nil || len(filtered.Chunk) != 1 || filtered.Chunk[0].Name != "Radio net" {
		t.Fatalf("hs1's rooms matching \"radio\": %+v, %v", filtered.Chunk, err)
	}

	// Asking another server needs an account.
	status, body, _ := hs2.Do(t, "GET", "/_matrix/client/v3/publicRooms?server=hs1.test", "", nil)
	if status != 401 {
		t.Errorf("anonymous /publicRooms?server=hs1.test: %d %s, want 401", status, body)
	}

	// An unreachable server is a clear 502.
	hs1.Stop(t)
	_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "hs1.test"})
	if code, status := servertest.ErrCode(err); code != "M_UNKNOWN" || status != 502 {
		t.Fatalf("listing a stopped server's rooms: %s %d (%v), want M_UNKNOWN 502", code, status, err)
	}
}

func TestSpaceHierarchyAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	create := func(req *mautrix.ReqCreateRoom) id.RoomID {
		t.Helper()
		resp, err := alice.CreateRoom(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.RoomID
	}
	space := create(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "County",
		CreationContent: map[string]any{"type": "m.space"}})
	public := create(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Ops"})
	private := create(&mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Command"})
	for _, child := range []id.RoomID{public, private} {
		if _, err := alice.SendStateEvent(ctx, space, event.StateSpaceChild, string(child), map[string]any{"via": []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
	}
	// A space bob has not joined, in a room version whose IDs name their server.
	outer := create(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Region", RoomVersion: "11",
		CreationContent: map[string]any{"type": "m.space"}})
	if _, err := alice.SendStateEvent(ctx, outer, event.StateSpaceChild, string(space), map[string]any{"via": []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}

	if _, err := bob.JoinRoom(ctx, string(space), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
	names := func(resp *mautrix.RespHierarchy) []string {
		var out []string
		for _, r := range resp.Rooms {
			out = append(out, r.Name)
		}
		return out
	}
	// hs2 holds the space; the child rooms are only on hs1.
	resp, err := bob.Hierarchy(ctx, space, nil)
	if err != nil {
		t.Fatalf("bob's hierarchy of the space: %v", err)
	}
	if got, want := names(resp), []string{"County", "Ops"}; !slices.Equal(got, want) {
		t.Fatalf("bob sees %q, want %q", got, want)
	}
	if n := len(resp.Rooms[0].ChildrenState); n != 2 {
		t.Errorf("the space lists %d children, want both", n)
	}
	// hs2 holds none of these; it asks the server in the root's room ID.
	resp, err = bob.Hierarchy(ctx, outer, nil)
	if err != nil {
		t.Fatalf("bob's hierarchy of a space only hs1 holds: %v", err)
	}
	if got, want := names(resp), []string{"Region", "County", "Ops"}; !slices.Equal(got, want) {
		t.Fatalf("bob sees %q, want %q", got, want)
	}

	// The resident side: hs1 tells hs2 which child it may not see, and refuses that room.
	var fedResp struct {
		Room struct {
			RoomID id.RoomID `json:"room_id"`
		} `json:"room"`
		Children []struct {
			RoomID id.RoomID `json:"room_id"`
		} `json:"children"`
		Inaccessible []id.RoomID `json:"inaccessible_children"`
	}
	if err := hs2.FedClient.Do(ctx, "hs1.test", "GET", "/_matrix/federation/v1/hierarchy/"+string(space), nil, &fedResp); err != nil {
		t.Fatal(err)
	}
	if fedResp.Room.RoomID != space || len(fedResp.Children) != 1 || fedResp.Children[0].RoomID != public ||
		!slices.Equal(fedResp.Inaccessible, []id.RoomID{private}) {
		t.Fatalf("hs1's /hierarchy answer: %+v", fedResp)
	}
	err = hs2.FedClient.Do(ctx, "hs1.test", "GET", "/_matrix/federation/v1/hierarchy/"+string(private), nil, nil)
	if code, status := fedErr(err); status != 404 || code != "M_NOT_FOUND" {
		t.Fatalf("/hierarchy of a private room hs2 has no part in: %d %s (%v), want 404 M_NOT_FOUND", status, code, err)
	}
}
