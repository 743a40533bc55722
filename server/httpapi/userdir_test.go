package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

func TestUserDirectorySearch(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	eve := s.Register(t, "eve", "correct horse battery")
	dave := s.Register(t, "dave", "correct horse battery")
	if err := alice.SetDisplayName(ctx, "Alice Cooper"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAvatarURL(ctx, id.MustParseContentURI("mxc://localhost/alice")); err != nil {
		t.Fatal(err)
	}
	// Alice is in a public room; Bob and Alice share a private one where Alice goes by a
	// room-specific name; Dave and Eve share a private room.
	mustCreate(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat"})
	private := mustCreate(t, bob, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{alice.UserID}})
	if _, err := alice.JoinRoomByID(ctx, private); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendStateEvent(ctx, private, event.StateMember, string(alice.UserID),
		map[string]any{"membership": "join", "displayname": "Freddy"}); err != nil {
		t.Fatal(err)
	}
	shared := mustCreate(t, dave, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{eve.UserID}})
	if _, err := eve.JoinRoomByID(ctx, shared); err != nil {
		t.Fatal(err)
	}

	search := func(c *mautrix.Client, term string) []id.UserID {
		t.Helper()
		resp, err := c.SearchUserDirectory(ctx, term, 0)
		if err != nil {
			t.Fatalf("search %q: %v", term, err)
		}
		var ids []id.UserID
		for _, r := range resp.Results {
			ids = append(ids, r.UserID)
		}
		return ids
	}
	for _, c := range []struct {
		who  *mautrix.Client
		term string
		want []id.UserID
	}{
		{eve, "Alice Cooper", []id.UserID{alice.UserID}},
		{eve, "alice", []id.UserID{alice.UserID}},
		{eve, "cooper", []id.UserID{alice.UserID}},
		{eve, "@alice", []id.UserID{alice.UserID}},
		{eve, string(alice.UserID), []id.UserID{alice.UserID}},
		{eve, "Freddy", nil},
		{bob, "Freddy", nil},
		{bob, "alice", []id.UserID{alice.UserID}},
		// Bob is only in a private room: Eve cannot find him, and he does not find himself.
		{eve, "bob", nil},
		{bob, "bob", nil},
		{eve, "dave", []id.UserID{dave.UserID}},
		{alice, "dave", nil},
		// Alice is in a public room, so she finds herself.
		{alice, "alice", []id.UserID{alice.UserID}},
		{eve, "nobody", nil},
		{eve, "", nil},
	} {
		if got := search(c.who, c.term); !slices.Equal(got, c.want) {
			t.Errorf("%s searches %q: %v, want %v", c.who.UserID, c.term, got, c.want)
		}
	}

	// The response's shape, with the profile's fields.
	status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/user_directory/search", eve.AccessToken, strings.NewReader(`{"search_term":"ali"}`))
	if want := `{"limited":false,"results":[{"user_id":"@alice:localhost","display_name":"Alice Cooper","avatar_url":"mxc://localhost/alice"}]}`; status != 200 || string(body) != want {
		t.Errorf("search response: %d %s, want %s", status, body, want)
	}
	status, body, _ = s.Do(t, "POST", "/_matrix/client/v3/user_directory/search", eve.AccessToken, strings.NewReader(`{"search_term":"zzz"}`))
	if want := `{"limited":false,"results":[]}`; status != 200 || string(body) != want {
		t.Errorf("empty search response: %d %s, want %s", status, body, want)
	}

	// A profile change shows at once.
	if err := alice.SetDisplayName(ctx, "Vincent Furnier"); err != nil {
		t.Fatal(err)
	}
	if got := search(eve, "cooper"); got != nil {
		t.Errorf("the old name still finds alice: %v", got)
	}
	if got := search(eve, "vincent"); !slices.Equal(got, []id.UserID{alice.UserID}) {
		t.Errorf("the new name finds %v", got)
	}

	// limit cuts the results and says so.
	public := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for i := range 5 {
		c := s.Register(t, fmt.Sprintf("member%d", i), "correct horse battery")
		if _, err := c.JoinRoomByID(ctx, public); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := eve.SearchUserDirectory(ctx, "member", 3)
	if err != nil || len(resp.Results) != 3 || !resp.Limited {
		t.Errorf("search with limit 3: %+v, %v", resp, err)
	}
	if resp, err := eve.SearchUserDirectory(ctx, "member", 0); err != nil || len(resp.Results) != 5 || resp.Limited {
		t.Errorf("search with the default limit: %+v, %v", resp, err)
	}

	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"no search term", `{"limit":5}`, 400, "M_MISSING_PARAM"},
		{"search term not a string", `{"search_term":5}`, 400, "M_BAD_JSON"},
		{"limit not a number", `{"search_term":"a","limit":"x"}`, 400, "M_BAD_JSON"},
		{"no body", ``, 400, "M_NOT_JSON"},
	} {
		status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/user_directory/search", eve.AccessToken, strings.NewReader(c.body))
		wantStatus(t, c.name, status, body, c.status, c.code)
	}
	status, body, _ = s.Do(t, "POST", "/_matrix/client/v3/user_directory/search", "", strings.NewReader(`{"search_term":"a"}`))
	wantStatus(t, "no token", status, body, 401, "M_MISSING_TOKEN")
	var limited struct {
		Results []json.RawMessage `json:"results"`
	}
	status, body, _ = s.Do(t, "POST", "/_matrix/client/v3/user_directory/search", eve.AccessToken, strings.NewReader(`{"search_term":"member","limit":1000}`))
	if json.Unmarshal(body, &limited); status != 200 || len(limited.Results) != 5 {
		t.Errorf("a large limit: %d %s", status, body)
	}
}
