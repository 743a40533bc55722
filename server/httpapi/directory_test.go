package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
	"fyr/storage"
)

// makeAdmin turns a registered user into a server admin.
func makeAdmin(t *testing.T, s *servertest.Server, localpart string) {
	t.Helper()
	if err := s.DB.Write(ctx, func(tx *storage.Tx) error { return tx.SetAdmin(localpart, true) }); err != nil {
		t.Fatal(err)
	}
}

// stateContent reads a state event's content as a map.
func stateContent(t *testing.T, c *mautrix.Client, room id.RoomID, typ event.Type, key string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := c.StateEvent(ctx, room, typ, key, &m); err != nil {
		t.Fatalf("state %s %q in %s: %v", typ.Type, key, room, err)
	}
	return m
}

func TestAliasLifecycle(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	admin := s.Register(t, "admin", "correct horse battery")
	makeAdmin(t, s, "admin")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	other := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	server := s.Config.ServerName
	crew := id.RoomAlias("#crew:" + server)

	if _, err := alice.CreateAlias(ctx, crew, room); err != nil {
		t.Fatalf("create alias: %v", err)
	}
	res, err := s.Client(t).ResolveAlias(ctx, crew) // no access token: the spec asks for none
	if err != nil || res.RoomID != room || !slices.Equal(res.Servers, []string{server}) {
		t.Fatalf("resolve = %+v, %v; want %s on [%s]", res, err, room, server)
	}
	list, err := alice.GetAliases(ctx, room)
	if err != nil || !slices.Equal(list.Aliases, []id.RoomAlias{crew}) {
		t.Fatalf("room aliases = %+v, %v", list, err)
	}
	unicode := id.RoomAlias("#老虎Â£я🤨:" + server)
	if _, err := alice.CreateAlias(ctx, unicode, room); err != nil {
		t.Fatalf("unicode alias: %v", err)
	}
	if res, err := alice.ResolveAlias(ctx, unicode); err != nil || res.RoomID != room {
		t.Fatalf("resolve unicode alias = %+v, %v", res, err)
	}

	// Refusals.
	_, err = alice.CreateAlias(ctx, crew, other)
	wantErr(t, "alias taken", err, "M_UNKNOWN", 409)
	_, err = alice.CreateAlias(ctx, "#crew:elsewhere.example", room)
	wantErr(t, "alias of another server", err, "M_INVALID_PARAM", 400)
	_, err = alice.CreateAlias(ctx, "#with space:"+id.RoomAlias(server), room)
	wantErr(t, "alias with a space", err, "M_INVALID_PARAM", 400)
	_, err = alice.CreateAlias(ctx, "crew", room)
	wantErr(t, "not an alias", err, "M_INVALID_PARAM", 400)
	_, err = alice.CreateAlias(ctx, id.RoomAlias("#"+strings.Repeat("x", 260)+":"+server), room)
	wantErr(t, "alias too long", err, "M_INVALID_PARAM", 400)
	_, err = alice.CreateAlias(ctx, "#ghost:"+id.RoomAlias(server), "!ghost:"+id.RoomID(server))
	wantErr(t, "alias for an unknown room", err, "M_NOT_FOUND", 404)
	_, err = bob.CreateAlias(ctx, "#bobs:"+id.RoomAlias(server), room)
	wantErr(t, "alias by a non-member", err, "M_FORBIDDEN", 403)
	_, err = bob.GetAliases(ctx, room)
	wantErr(t, "list aliases as a non-member", err, "M_FORBIDDEN", 403)
	_, err = alice.ResolveAlias(ctx, "#nobody:"+id.RoomAlias(server))
	wantErr(t, "resolve unknown alias", err, "M_NOT_FOUND", 404)
	_, err = alice.ResolveAlias(ctx, "#far:elsewhere.example")
	wantErr(t, "resolve another server's alias", err, "M_UNKNOWN", 502)
	_, err = alice.DeleteAlias(ctx, "#nobody:"+id.RoomAlias(server))
	wantErr(t, "delete unknown alias", err, "M_NOT_FOUND", 404)
	status, body, _ := s.Do(t, "PUT", "/_matrix/client/v3/directory/room/"+url.PathEscape("#x:"+server), alice.AccessToken, strings.NewReader(`{}`))
	if status != 400 || !strings.Contains(string(body), "M_MISSING_PARAM") {
		t.Errorf("alias without room_id: %d %s", status, body)
	}

	// A member without power may not delete another's alias, but may delete their own; the
	// room admin may delete anyone's.
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	_, err = bob.DeleteAlias(ctx, crew)
	wantErr(t, "delete another's alias without power", err, "M_FORBIDDEN", 403)
	bobs := id.RoomAlias("#bobs:" + server)
	if _, err := bob.CreateAlias(ctx, bobs, room); err != nil {
		t.Fatalf("member creates alias: %v", err)
	}
	if res, err := bob.ResolveAlias(ctx, bobs); err != nil || res.RoomID != room {
		t.Fatalf("resolve = %+v, %v", res, err)
	}
	if _, err := bob.DeleteAlias(ctx, bobs); err != nil {
		t.Fatalf("creator deletes own alias: %v", err)
	}
	if _, err := bob.CreateAlias(ctx, bobs, room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.DeleteAlias(ctx, bobs); err != nil {
		t.Fatalf("room admin deletes a member's alias: %v", err)
	}
	_, err = alice.ResolveAlias(ctx, bobs)
	wantErr(t, "resolve deleted alias", err, "M_NOT_FOUND", 404)

	// Deleting the canonical alias takes it out of m.room.canonical_alias.
	spare := id.RoomAlias("#spare:" + server)
	if _, err := alice.CreateAlias(ctx, spare, room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendStateEvent(ctx, room, event.StateCanonicalAlias, "", map[string]any{"alias": crew, "alt_aliases": []id.RoomAlias{crew, spare}}); err != nil {
		t.Fatalf("set canonical alias: %v", err)
	}
	if _, err := alice.DeleteAlias(ctx, crew); err != nil {
		t.Fatalf("delete canonical alias: %v", err)
	}
	ca := stateContent(t, alice, room, event.StateCanonicalAlias, "")
	if _, ok := ca["alias"]; ok || fmt.Sprint(ca["alt_aliases"]) != fmt.Sprint([]any{string(spare)}) {
		t.Errorf("canonical alias after deleting %s = %v", crew, ca)
	}
	// A server admin outside the room may delete any alias; not being in the room, the
	// admin cannot update the canonical alias event, and the alias goes all the same.
	if _, err := admin.DeleteAlias(ctx, spare); err != nil {
		t.Fatalf("admin deletes alias: %v", err)
	}
	_, err = alice.ResolveAlias(ctx, spare)
	wantErr(t, "resolve alias deleted by the admin", err, "M_NOT_FOUND", 404)
	if ca := stateContent(t, alice, room, event.StateCanonicalAlias, ""); fmt.Sprint(ca["alt_aliases"]) != fmt.Sprint([]any{string(spare)}) {
		t.Errorf("canonical alias = %v after the admin's deletion; want it unchanged", ca)
	}
}

func TestAliasDeleteByPower(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: "11", Invite: []id.UserID{bob.UserID}})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	alias := id.RoomAlias("#moderated:" + s.Config.ServerName)
	if _, err := alice.CreateAlias(ctx, alias, room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendStateEvent(ctx, room, event.StatePowerLevels, "", map[string]any{
		"users": map[id.UserID]int{alice.UserID: 100, bob.UserID: 50}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.DeleteAlias(ctx, alias); err != nil {
		t.Fatalf("member with power to set the canonical alias deletes another's alias: %v", err)
	}
}

func TestRoomDirectoryVisibility(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	admin := s.Register(t, "admin", "correct horse battery")
	makeAdmin(t, s, "admin")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	path := "/_matrix/client/v3/directory/list/room/" + url.PathEscape(string(room))
	visibility := func() string {
		t.Helper()
		status, body, _ := s.Do(t, "GET", path, "", nil)
		var v struct{ Visibility string }
		if status != 200 || json.Unmarshal(body, &v) != nil {
			t.Fatalf("get visibility: %d %s", status, body)
		}
		return v.Visibility
	}
	set := func(c *mautrix.Client, body string) (int, string) {
		t.Helper()
		status, b, _ := s.Do(t, "PUT", path, c.AccessToken, strings.NewReader(body))
		return status, string(b)
	}
	if v := visibility(); v != "private" {
		t.Fatalf("new room's visibility = %q", v)
	}
	if status, b := set(alice, `{"visibility":"public"}`); status != 200 || visibility() != "public" {
		t.Fatalf("publish: %d %s, visibility %q", status, b, visibility())
	}
	if status, b := set(bob, `{"visibility":"private"}`); status != 403 || !strings.Contains(b, "M_FORBIDDEN") {
		t.Errorf("non-member unpublishes: %d %s", status, b)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	if status, b := set(bob, `{"visibility":"private"}`); status != 403 || !strings.Contains(b, "M_FORBIDDEN") {
		t.Errorf("member without power unpublishes: %d %s", status, b)
	}
	if status, b := set(alice, `{"visibility":"secret"}`); status != 400 || !strings.Contains(b, "M_INVALID_PARAM") {
		t.Errorf("bad visibility: %d %s", status, b)
	}
	if status, b := set(admin, `{"visibility":"private"}`); status != 200 || visibility() != "private" {
		t.Errorf("admin unpublishes: %d %s", status, b)
	}
	if status, b := set(alice, `{}`); status != 200 || visibility() != "public" {
		t.Errorf("visibility defaults to public: %d %s", status, b)
	}
	ghost := "/_matrix/client/v3/directory/list/room/" + url.PathEscape("!ghost:"+s.Config.ServerName)
	if status, b, _ := s.Do(t, "GET", ghost, "", nil); status != 404 || !strings.Contains(string(b), "M_NOT_FOUND") {
		t.Errorf("unknown room's visibility: %d %s", status, b)
	}
	if status, b, _ := s.Do(t, "PUT", ghost, alice.AccessToken, strings.NewReader(`{}`)); status != 404 {
		t.Errorf("publish unknown room: %d %s", status, b)
	}
}

// publicRoomsResp is the raw /publicRooms answer, to check the fields exactly.
type publicRoomsResp struct {
	Chunk     []map[string]any `json:"chunk"`
	NextBatch string           `json:"next_batch"`
	PrevBatch string           `json:"prev_batch"`
	Total     *int             `json:"total_room_count_estimate"`
}

func TestPublicRoomsPaginationAndFilter(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	server := s.Config.ServerName
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	members := map[id.RoomID]int{}
	var flood []id.RoomID
	for i := range 30 {
		req := &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat", Name: fmt.Sprintf("Room %02d", i),
			RoomAliasName: fmt.Sprintf("room%02d", i)}
		if i%4 == 0 {
			req.Topic = "Flood watch for sector " + fmt.Sprint(i)
		}
		room := mustCreate(t, alice, req)
		if i%4 == 0 {
			flood = append(flood, room)
		}
		members[room] = 1 + i%3
		if i%3 >= 1 {
			if _, err := bob.JoinRoomByID(ctx, room); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 2 {
			if _, err := carol.JoinRoomByID(ctx, room); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Never listed: private rooms, and published rooms nobody could join or read.
	mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Flood private"})
	mustCreate(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "private_chat", Name: "Flood invite-only"})
	space := mustCreate(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat", Name: "Flood space",
		CreationContent: map[string]any{"type": "m.space"}})
	members[space] = 1
	flood = append(flood, space)

	get := func(query string) publicRoomsResp {
		t.Helper()
		status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/publicRooms?"+query, "", nil) // anonymous
		var r publicRoomsResp
		if status != 200 || json.Unmarshal(body, &r) != nil {
			t.Fatalf("GET /publicRooms?%s: %d %s", query, status, body)
		}
		return r
	}
	// Forwards in pages of 7: every room once, largest first, then by room ID.
	var pages []publicRoomsResp
	var all []map[string]any
	since := ""
	for range 10 {
		r := get("limit=7&since=" + url.QueryEscape(since))
		if r.Total == nil || *r.Total != 31 {
			t.Fatalf("total_room_count_estimate = %v, want 31", r.Total)
		}
		if (since == "") != (r.PrevBatch == "") {
			t.Errorf("page %d: prev_batch %q after since %q", len(pages), r.PrevBatch, since)
		}
		pages = append(pages, r)
		all = append(all, r.Chunk...)
		if r.NextBatch == "" {
			break
		}
		since = r.NextBatch
	}
	if len(all) != 31 || len(pages) != 5 {
		t.Fatalf("paged %d rooms in %d pages, want 31 in 5", len(all), len(pages))
	}
	seen := map[string]bool{}
	for i, r := range all {
		roomID := r["room_id"].(string)
		if seen[roomID] {
			t.Fatalf("room %s listed twice", roomID)
		}
		seen[roomID] = true
		if n := int(r["num_joined_members"].(float64)); n != members[id.RoomID(roomID)] {
			t.Errorf("%s: num_joined_members %d, want %d", roomID, n, members[id.RoomID(roomID)])
		}
		if i > 0 {
			prev := all[i-1]
			pn, n := prev["num_joined_members"].(float64), r["num_joined_members"].(float64)
			if pn < n || (pn == n && prev["room_id"].(string) > roomID) {
				t.Errorf("rooms %d and %d out of order", i-1, i)
			}
		}
	}
	// The fields of one entry, exactly.
	for _, r := range all {
		if r["name"] != "Room 00" {
			continue
		}
		want := map[string]any{"room_id": r["room_id"], "name": "Room 00", "topic": "Flood watch for sector 0",
			"canonical_alias": "#room00:" + server, "num_joined_members": float64(1), "world_readable": false,
			"guest_can_join": false, "join_rule": "public"}
		if fmt.Sprint(r) != fmt.Sprint(want) {
			t.Errorf("entry = %v\nwant    %v", r, want)
		}
	}
	// Backwards from the last page's prev_batch gives the same pages in reverse.
	since = pages[len(pages)-1].PrevBatch
	for i := len(pages) - 2; i >= 0; i-- {
		r := get("limit=7&since=" + url.QueryEscape(since))
		if fmt.Sprint(r.Chunk) != fmt.Sprint(pages[i].Chunk) {
			t.Fatalf("page %d backwards differs from forwards", i)
		}
		if (i == 0) != (r.PrevBatch == "") || r.NextBatch == "" {
			t.Errorf("page %d backwards: prev %q next %q", i, r.PrevBatch, r.NextBatch)
		}
		since = r.PrevBatch
	}

	// POST with a filter: a case-insensitive search over name, topic and alias, and room types.
	post := func(body map[string]any) ([]id.RoomID, publicRoomsResp) {
		t.Helper()
		var r publicRoomsResp
		if _, err := bob.MakeRequest(ctx, "POST", bob.BuildClientURL("v3", "publicRooms"), body, &r); err != nil {
			t.Fatalf("POST /publicRooms %v: %v", body, err)
		}
		var ids []id.RoomID
		for _, c := range r.Chunk {
			ids = append(ids, id.RoomID(c["room_id"].(string)))
		}
		slices.Sort(ids)
		return ids, r
	}
	slices.Sort(flood)
	if got, _ := post(map[string]any{"filter": map[string]any{"generic_search_term": "FLOOD"}}); !slices.Equal(got, flood) {
		t.Errorf("search FLOOD = %v, want %v", got, flood)
	}
	if got, _ := post(map[string]any{"filter": map[string]any{"generic_search_term": "#room17"}}); len(got) != 1 {
		t.Errorf("search by alias = %v", got)
	}
	if got, _ := post(map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}}); !slices.Equal(got, []id.RoomID{space}) {
		t.Errorf("room_types [m.space] = %v, want the space", got)
	}
	if got, _ := post(map[string]any{"filter": map[string]any{"room_types": []any{nil}}}); len(got) != 30 || slices.Contains(got, space) {
		t.Errorf("room_types [null] = %d rooms, want the 30 without a type", len(got))
	}
	if got, r := post(map[string]any{"limit": 4, "filter": map[string]any{"generic_search_term": "flood"}}); len(got) != 4 || *r.Total != len(flood) || r.NextBatch == "" {
		t.Errorf("filtered page = %d rooms, total %d, next %q", len(got), *r.Total, r.NextBatch)
	}
	if got, _ := post(map[string]any{"third_party_instance_id": "irc"}); len(got) != 0 {
		t.Errorf("a bridged network's list = %v, want none", got)
	}
	if got, _ := post(map[string]any{"include_all_networks": true, "limit": 0}); len(got) != 31 {
		t.Errorf("include_all_networks = %d rooms", len(got))
	}
	if r := get("server=" + server); len(r.Chunk) != 31 {
		t.Errorf("server=%s lists %d rooms", server, len(r.Chunk))
	}

	// Refusals.
	for _, c := range []struct {
		query  string
		token  string
		status int
		code   string
	}{
		{"since=garbage", "", 400, "M_INVALID_PARAM"},
		{"limit=-1", "", 400, "M_INVALID_PARAM"},
		{"server=elsewhere.example", "", 401, "M_MISSING_TOKEN"},
		{"server=elsewhere.example", bob.AccessToken, 502, "M_UNKNOWN"},
		{"server=bad%2Fname", "", 400, "M_INVALID_PARAM"},
	} {
		status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/publicRooms?"+c.query, c.token, nil)
		if status != c.status || !strings.Contains(string(body), c.code) {
			t.Errorf("GET /publicRooms?%s: %d %s, want %d %s", c.query, status, body, c.status, c.code)
		}
	}
	status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/publicRooms", "", strings.NewReader(`{}`))
	if status != 401 {
		t.Errorf("anonymous POST /publicRooms: %d %s", status, body)
	}
	status, body, _ = s.Do(t, "POST", "/_matrix/client/v3/publicRooms", bob.AccessToken,
		strings.NewReader(`{"include_all_networks":true,"third_party_instance_id":"irc"}`))
	if status != 400 {
		t.Errorf("include_all_networks with a network: %d %s", status, body)
	}
}

func TestSpaceHierarchy(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	server := s.Config.ServerName
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	space := func(name, preset string) id.RoomID {
		return mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: name, Preset: preset, CreationContent: map[string]any{"type": "m.space"}})
	}
	room := func(name, preset string) id.RoomID {
		return mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: name, Preset: preset})
	}
	child := func(parent, c id.RoomID, content map[string]any) {
		t.Helper()
		if _, err := alice.SendStateEvent(ctx, parent, event.StateSpaceChild, string(c), content); err != nil {
			t.Fatal(err)
		}
	}
	via := []string{server}
	// root ─┬─ r1 (suggested)
	//       ├─ sub ─┬─ r3
	//       │       ├─ secret (invite only: not shown to bob)
	//       │       └─ hidden (private space: neither it nor its child shown to bob)
	//       │                └─ r5
	//       ├─ r2 (order "a": first)
	//       └─ gone (child event emptied: not a child)
	root := space("Root", "public_chat")
	r1 := room("R1", "public_chat")
	sub := space("Sub", "public_chat")
	r2 := room("R2", "public_chat")
	r3 := room("R3", "public_chat")
	secret := room("Secret", "private_chat")
	hidden := space("Hidden", "private_chat")
	r5 := room("R5", "public_chat")
	gone := room("Gone", "public_chat")
	child(root, r1, map[string]any{"via": via, "suggested": true})
	child(root, sub, map[string]any{"via": via})
	child(root, r2, map[string]any{"via": via, "order": "a"})
	child(root, gone, map[string]any{"via": via})
	child(root, gone, map[string]any{})
	child(sub, r3, map[string]any{"via": via})
	child(sub, secret, map[string]any{"via": via})
	child(sub, hidden, map[string]any{"via": via})
	child(sub, "!elsewhere:remote.example", map[string]any{"via": []string{"remote.example"}})
	child(hidden, r5, map[string]any{"via": via})
	child(r1, r5, map[string]any{"via": via}) // not a space: its children are not followed

	names := func(rs []*mautrix.ChildRoomsChunk) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	h, err := bob.Hierarchy(ctx, root, nil)
	if err != nil {
		t.Fatalf("hierarchy: %v", err)
	}
	if got, want := names(h.Rooms), []string{"Root", "R2", "R1", "Sub", "R3"}; !slices.Equal(got, want) {
		t.Fatalf("bob's hierarchy = %v, want %v", got, want)
	}
	if h.NextBatch != "" {
		t.Errorf("next_batch %q on the last page", h.NextBatch)
	}
	var rootChildren, subChildren []string
	for _, c := range h.Rooms[0].ChildrenState {
		rootChildren = append(rootChildren, *c.StateKey)
		if c.Type != event.StateSpaceChild || c.Sender != alice.UserID || c.Timestamp == 0 {
			t.Errorf("child event %+v lacks type, sender or origin_server_ts", c)
		}
	}
	for _, c := range h.Rooms[3].ChildrenState {
		subChildren = append(subChildren, *c.StateKey)
	}
	if want := []string{string(r2), string(r1), string(sub)}; !slices.Equal(rootChildren, want) {
		t.Errorf("root's children_state = %v, want %v (order key first, then by time)", rootChildren, want)
	}
	if len(subChildren) != 4 {
		t.Errorf("sub's children_state = %v, want all four children", subChildren)
	}
	if h.Rooms[1].ChildrenState == nil || len(h.Rooms[1].ChildrenState) != 0 {
		t.Errorf("a room's children_state = %v, want []", h.Rooms[1].ChildrenState)
	}
	if h.Rooms[0].RoomType != "m.space" || h.Rooms[0].JoinRule != "public" || h.Rooms[0].NumJoinedMembers != 1 || h.Rooms[0].RoomVersion != "12" {
		t.Errorf("root summary = %+v", h.Rooms[0].PublicRoomInfo)
	}

	// Alice sees her private rooms too.
	h, err = alice.Hierarchy(ctx, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(h.Rooms), []string{"Root", "R2", "R1", "Sub", "R3", "Secret", "Hidden", "R5"}; !slices.Equal(got, want) {
		t.Fatalf("alice's hierarchy = %v, want %v", got, want)
	}

	// Pages of 2 walk the same tree.
	var paged []string
	req := &mautrix.ReqHierarchy{Limit: 2}
	for range 10 {
		h, err := alice.Hierarchy(ctx, root, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Rooms) > 2 {
			t.Fatalf("page of %d rooms with limit 2", len(h.Rooms))
		}
		paged = append(paged, names(h.Rooms)...)
		if h.NextBatch == "" {
			break
		}
		req.From = h.NextBatch
	}
	if want := []string{"Root", "R2", "R1", "Sub", "R3", "Secret", "Hidden", "R5"}; !slices.Equal(paged, want) {
		t.Errorf("paged hierarchy = %v, want %v", paged, want)
	}

	one := 1
	h, err = alice.Hierarchy(ctx, root, &mautrix.ReqHierarchy{MaxDepth: &one})
	if err != nil || !slices.Equal(names(h.Rooms), []string{"Root", "R2", "R1", "Sub"}) {
		t.Errorf("max_depth 1 = %v, %v", names(h.Rooms), err)
	}
	h, err = alice.Hierarchy(ctx, root, &mautrix.ReqHierarchy{SuggestedOnly: true})
	if err != nil || !slices.Equal(names(h.Rooms), []string{"Root", "R1"}) || len(h.Rooms[0].ChildrenState) != 1 {
		t.Errorf("suggested_only = %v, %v", names(h.Rooms), err)
	}

	// Refusals.
	first, err := alice.Hierarchy(ctx, root, &mautrix.ReqHierarchy{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.Hierarchy(ctx, root, &mautrix.ReqHierarchy{From: first.NextBatch, SuggestedOnly: true})
	wantErr(t, "changed suggested_only while paging", err, "M_INVALID_PARAM", 400)
	_, err = alice.Hierarchy(ctx, root, &mautrix.ReqHierarchy{From: first.NextBatch, MaxDepth: &one})
	wantErr(t, "changed max_depth while paging", err, "M_INVALID_PARAM", 400)
	_, err = alice.Hierarchy(ctx, sub, &mautrix.ReqHierarchy{From: first.NextBatch})
	wantErr(t, "another room's token", err, "M_INVALID_PARAM", 400)
	_, err = alice.Hierarchy(ctx, root, &mautrix.ReqHierarchy{From: "garbage"})
	wantErr(t, "bad token", err, "M_INVALID_PARAM", 400)
	_, err = bob.Hierarchy(ctx, hidden, nil)
	wantErr(t, "private space", err, "M_FORBIDDEN", 403)
	_, err = bob.Hierarchy(ctx, "!ghost:"+id.RoomID(server), nil)
	wantErr(t, "unknown space", err, "M_FORBIDDEN", 403)
	for _, q := range []string{"limit=0", "max_depth=-1", "suggested_only=maybe"} {
		status, body, _ := s.Do(t, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(string(root))+"/hierarchy?"+q, bob.AccessToken, nil)
		if status != 400 || !strings.Contains(string(body), "M_INVALID_PARAM") {
			t.Errorf("hierarchy?%s: %d %s", q, status, body)
		}
	}
	// Bob joins the private space once invited, and then sees it.
	if _, err := alice.InviteUser(ctx, hidden, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	h, err = bob.Hierarchy(ctx, root, nil)
	if err != nil || !slices.Equal(names(h.Rooms), []string{"Root", "R2", "R1", "Sub", "R3", "Hidden", "R5"}) {
		t.Errorf("bob's hierarchy once invited to Hidden = %v, %v", names(h.Rooms), err)
	}
}

func TestRestrictedRoomInHierarchyAndSummary(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	space := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Space", Preset: "public_chat", CreationContent: map[string]any{"type": "m.space"}})
	restricted := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Members only", InitialState: []*event.Event{{
		Type: event.StateJoinRules, StateKey: new(string),
		Content: event.Content{Raw: map[string]any{"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}}}},
	}}})
	if _, err := alice.SendStateEvent(ctx, space, event.StateSpaceChild, string(restricted), map[string]any{"via": []string{s.Config.ServerName}}); err != nil {
		t.Fatal(err)
	}
	h, err := bob.Hierarchy(ctx, space, nil)
	if err != nil || len(h.Rooms) != 1 {
		t.Fatalf("before joining the space bob sees %d rooms, %v; want the space only", len(h.Rooms), err)
	}
	_, err = bob.GetRoomSummary(ctx, string(restricted))
	wantErr(t, "summary of a restricted room for an outsider", err, "M_NOT_FOUND", 404)
	if _, err := bob.JoinRoomByID(ctx, space); err != nil {
		t.Fatal(err)
	}
	h, err = bob.Hierarchy(ctx, space, nil)
	if err != nil || len(h.Rooms) != 2 || h.Rooms[1].RoomID != restricted {
		t.Fatalf("after joining the space bob sees %v, %v", h, err)
	}
	sum, err := bob.GetRoomSummary(ctx, string(restricted))
	if err != nil || sum.JoinRule != "restricted" || !slices.Equal(sum.AllowedRoomIDs, []id.RoomID{space}) || sum.Membership != "leave" {
		t.Fatalf("summary = %+v, %v", sum, err)
	}
}

func TestRoomSummary(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	server := s.Config.ServerName
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	public := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Town hall", Topic: "Water levels",
		RoomAliasName: "townhall", InitialState: []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
			Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}}})
	private := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Crisis team"})

	// The spec's path, as a client that knows v1.15 calls it, and anonymously.
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v1/room_summary/"+url.PathEscape("#townhall:"+server), "", nil)
	var anon map[string]any
	if status != 200 || json.Unmarshal(body, &anon) != nil {
		t.Fatalf("anonymous summary: %d %s", status, body)
	}
	want := map[string]any{"room_id": string(public), "name": "Town hall", "topic": "Water levels", "canonical_alias": "#townhall:" + server,
		"num_joined_members": float64(1), "world_readable": false, "guest_can_join": false, "join_rule": "public",
		"encryption": "m.megolm.v1.aes-sha2", "room_version": "12"}
	if fmt.Sprint(anon) != fmt.Sprint(want) {
		t.Errorf("anonymous summary = %v\nwant %v", anon, want)
	}
	status, body, _ = s.Do(t, "GET", "/_matrix/client/v1/room_summary/"+url.PathEscape(string(private)), "", nil)
	if status != 404 || !strings.Contains(string(body), "M_NOT_FOUND") {
		t.Errorf("anonymous summary of a private room: %d %s", status, body)
	}
	status, _, _ = s.Do(t, "GET", "/_matrix/client/v1/room_summary/"+url.PathEscape(string(public)), "bogus", nil)
	if status != 401 {
		t.Errorf("summary with a bad token: %d", status)
	}

	// The unstable path (mautrix without /versions) with a user's membership.
	sum, err := alice.GetRoomSummary(ctx, string(private))
	if err != nil || sum.Name != "Crisis team" || sum.Membership != "join" || sum.JoinRule != "invite" {
		t.Fatalf("alice's summary of her private room = %+v, %v", sum, err)
	}
	_, err = bob.GetRoomSummary(ctx, string(private))
	wantErr(t, "summary of a private room for an outsider", err, "M_NOT_FOUND", 404)
	if _, err := alice.InviteUser(ctx, private, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if sum, err := bob.GetRoomSummary(ctx, string(private)); err != nil || sum.Membership != "invite" {
		t.Errorf("invited bob's summary = %+v, %v", sum, err)
	}
	if sum, err := bob.GetRoomSummary(ctx, string(public)); err != nil || sum.Membership != "leave" {
		t.Errorf("outsider's summary of a public room = %+v, %v", sum, err)
	}
	_, err = bob.GetRoomSummary(ctx, "#nowhere:"+server)
	wantErr(t, "unknown alias", err, "M_NOT_FOUND", 404)
	_, err = bob.GetRoomSummary(ctx, "!ghost:"+server)
	wantErr(t, "unknown room", err, "M_NOT_FOUND", 404)
	_, err = bob.GetRoomSummary(ctx, "!far:remote.example")
	wantErr(t, "another server's room", err, "M_UNKNOWN", 502)
}

func TestMutualRooms(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	var shared []id.RoomID
	for range 3 {
		r := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
		shared = append(shared, r)
	}
	mustCreate(t, alice, &mautrix.ReqCreateRoom{})                              // alice alone
	left := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"}) // bob leaves
	if _, err := bob.JoinRoomByID(ctx, left); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.LeaveRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	slices.Sort(shared)
	resp, err := alice.GetMutualRooms(ctx, bob.UserID)
	if err != nil || !slices.Equal(resp.Joined, shared) || resp.Count != 3 || resp.NextBatch != "" {
		t.Fatalf("mutual rooms = %+v, %v; want %v", resp, err, shared)
	}
	// The unstable path answers the same.
	var unstable mautrix.RespMutualRooms
	u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"unstable", "uk.half-shot.msc2666", "user", "mutual_rooms"}, map[string]string{"user_id": string(bob.UserID)})
	if _, err := alice.MakeRequest(ctx, "GET", u, nil, &unstable); err != nil || !slices.Equal(unstable.Joined, shared) {
		t.Errorf("unstable mutual rooms = %+v, %v", unstable, err)
	}
	if resp, err := alice.GetMutualRooms(ctx, "@nobody:"+id.UserID(s.Config.ServerName)); err != nil || len(resp.Joined) != 0 {
		t.Errorf("mutual rooms with nobody = %+v, %v", resp, err)
	}
	_, err = alice.GetMutualRooms(ctx, alice.UserID)
	wantErr(t, "mutual rooms with oneself", err, "M_INVALID_PARAM", 400)
	_, err = alice.GetMutualRooms(ctx, "not a user")
	wantErr(t, "mutual rooms with a non-user", err, "M_INVALID_PARAM", 400)
	_, err = alice.GetMutualRooms(ctx, bob.UserID, mautrix.ReqMutualRooms{From: "garbage!"})
	wantErr(t, "bad token", err, "M_INVALID_PARAM", 400)
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v1/mutual_rooms", alice.AccessToken, nil)
	if status != 400 || !strings.Contains(string(body), "M_MISSING_PARAM") {
		t.Errorf("mutual rooms without user_id: %d %s", status, body)
	}
	versions, err := alice.Versions(ctx)
	if err != nil || !versions.UnstableFeatures["uk.half-shot.msc2666.query_mutual_rooms"] {
		t.Errorf("/versions does not announce mutual rooms: %+v, %v", versions, err)
	}
}

// upgradeRoom calls POST /rooms/{roomId}/upgrade.
func upgradeRoom(c *mautrix.Client, room id.RoomID, body map[string]any) (id.RoomID, error) {
	var resp struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	_, err := c.MakeRequest(ctx, "POST", c.BuildClientURL("v3", "rooms", room, "upgrade"), body, &resp)
	return resp.ReplacementRoom, err
}

func TestRoomUpgrade(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	server := s.Config.ServerName
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	dave := s.Register(t, "dave", "correct horse battery")
	erin := s.Register(t, "erin", "correct horse battery")
	for _, c := range []struct{ from, to id.RoomVersion }{{"10", "12"}, {"11", "12"}, {"10", "11"}, {"1", "12"}, {"12", "2"}} {
		t.Run("v"+string(c.from)+"-v"+string(c.to), func(t *testing.T) {
			local := "up" + string(c.from) + string(c.to)
			alias := "#" + local + ":" + server
			old := mustCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: c.from, Preset: "public_chat", Visibility: "public",
				Name: "Dispatch", Topic: "Road closures", RoomAliasName: local,
				InitialState: []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
					Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}}})
			for _, u := range []*mautrix.Client{bob, carol, dave} {
				if _, err := u.JoinRoomByID(ctx, old); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := alice.BanUser(ctx, old, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "spam"}); err != nil {
				t.Fatal(err)
			}
			pl := stateContent(t, alice, old, event.StatePowerLevels, "")
			pl["users"].(map[string]any)[string(bob.UserID)] = 50
			if _, err := alice.SendStateEvent(ctx, old, event.StatePowerLevels, "", pl); err != nil {
				t.Fatal(err)
			}

			// Refusals: no power, a version this server does not know, no version at all.
			_, err := upgradeRoom(bob, old, map[string]any{"new_version": c.to})
			wantErr(t, "upgrade without power", err, "M_FORBIDDEN", 403)
			_, err = upgradeRoom(carol, old, map[string]any{"new_version": c.to})
			wantErr(t, "upgrade by a banned user", err, "M_FORBIDDEN", 403)
			_, err = upgradeRoom(alice, old, map[string]any{"new_version": "13"})
			wantErr(t, "upgrade to v13", err, "M_UNSUPPORTED_ROOM_VERSION", 400)
			_, err = upgradeRoom(alice, old, map[string]any{})
			wantErr(t, "upgrade without a version", err, "M_MISSING_PARAM", 400)

			newRoom, err := upgradeRoom(alice, old, map[string]any{"new_version": c.to})
			if err != nil || newRoom == "" || newRoom == old {
				t.Fatalf("upgrade: %q, %v", newRoom, err)
			}

			// The old room: tombstone, locked down, no longer listed, aliases gone.
			tomb, err := alice.FullStateEvent(ctx, old, event.StateTombstone, "")
			if err != nil || tomb.Content.Raw["replacement_room"] != string(newRoom) || tomb.Sender != alice.UserID {
				t.Fatalf("tombstone = %+v, %v", tomb, err)
			}
			oldPL := stateContent(t, alice, old, event.StatePowerLevels, "")
			if oldPL["events_default"].(float64) < 50 || oldPL["invite"].(float64) < 50 {
				t.Errorf("old room's power levels not restricted: %v", oldPL)
			}
			if ca := stateContent(t, alice, old, event.StateCanonicalAlias, ""); ca["alias"] != nil {
				t.Errorf("old room still advertises %v", ca["alias"])
			}
			_, err = dave.SendText(ctx, old, "still here?")
			wantErr(t, "talk in the old room", err, "M_FORBIDDEN", 403)
			_, err = dave.InviteUser(ctx, old, &mautrix.ReqInviteUser{UserID: erin.UserID})
			wantErr(t, "invite in the old room", err, "M_FORBIDDEN", 403)
			if _, err := bob.SendText(ctx, old, "moderators still can"); err != nil {
				t.Errorf("moderator talks in the old room: %v", err)
			}
			if v, _ := s.Rooms.RoomVisibility(ctx, old); v != "private" {
				t.Errorf("old room's directory visibility = %s", v)
			}
			if v, _ := s.Rooms.RoomVisibility(ctx, newRoom); v != "public" {
				t.Errorf("new room's directory visibility = %s", v)
			}
			if res, err := bob.ResolveAlias(ctx, id.RoomAlias(alias)); err != nil || res.RoomID != newRoom {
				t.Errorf("alias resolves to %+v, %v; want the new room", res, err)
			}
			if list, err := alice.GetAliases(ctx, old); err != nil || len(list.Aliases) != 0 {
				t.Errorf("old room's aliases = %+v, %v", list, err)
			}

			// The new room: predecessor, copied state, power, bans, alias.
			create := stateContent(t, alice, newRoom, event.StateCreate, "")
			pred, _ := create["predecessor"].(map[string]any)
			if pred["room_id"] != string(old) || create["room_version"] != string(c.to) {
				t.Errorf("create = %v", create)
			}
			if c.to == "12" {
				if _, ok := pred["event_id"]; ok {
					t.Errorf("v12 predecessor has an event_id: %v", pred)
				}
			} else if pred["event_id"] != string(tomb.ID) {
				t.Errorf("predecessor.event_id = %v, want the tombstone %s", pred["event_id"], tomb.ID)
			}
			for typ, want := range map[event.Type]string{
				event.StateRoomName:          "map[name:Dispatch]",
				event.StateJoinRules:         "map[join_rule:public]",
				event.StateEncryption:        "map[algorithm:m.megolm.v1.aes-sha2]",
				event.StateCanonicalAlias:    "map[alias:" + alias + "]",
				event.StateHistoryVisibility: "map[history_visibility:shared]",
			} {
				if got := fmt.Sprint(stateContent(t, alice, newRoom, typ, "")); got != want {
					t.Errorf("new room's %s = %s, want %s", typ.Type, got, want)
				}
			}
			if topic := stateContent(t, alice, newRoom, event.StateTopic, ""); topic["topic"] != "Road closures" {
				t.Errorf("new room's topic = %v", topic)
			}
			users := stateContent(t, alice, newRoom, event.StatePowerLevels, "")["users"].(map[string]any)
			_, aliceListed := users[string(alice.UserID)]
			if users[string(bob.UserID)] != float64(50) || aliceListed != (c.to != "12") {
				t.Errorf("new room's power users = %v (v%s creators are not listed)", users, c.to)
			}
			if m := stateContent(t, alice, newRoom, event.StateMember, string(carol.UserID)); m["membership"] != "ban" || m["reason"] != "spam" {
				t.Errorf("carol in the new room = %v, want banned", m)
			}
			if m := stateContent(t, alice, newRoom, event.StateMember, string(alice.UserID)); m["membership"] != "join" {
				t.Errorf("alice in the new room = %v", m)
			}
			if _, err := bob.JoinRoomByID(ctx, newRoom); err != nil {
				t.Errorf("bob joins the new room: %v", err)
			}
			_, err = carol.JoinRoomByID(ctx, newRoom)
			wantErr(t, "banned user joins the new room", err, "M_FORBIDDEN", 403)
			if _, err := alice.SendText(ctx, newRoom, "carry on"); err != nil {
				t.Errorf("talk in the new room: %v", err)
			}
		})
	}
	_, err := upgradeRoom(alice, "!ghost:"+id.RoomID(server), map[string]any{"new_version": "12"})
	wantErr(t, "upgrade unknown room", err, "M_NOT_FOUND", 404)
}

func TestRoomUpgradeRaisesAndRestoresPower(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	old := mustCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: "11", Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Bob may send tombstones (60) but the room's encryption state needs 100.
	if _, err := alice.SendStateEvent(ctx, old, event.StatePowerLevels, "", map[string]any{
		"users":  map[id.UserID]int{alice.UserID: 100, bob.UserID: 60},
		"events": map[string]int{"m.room.tombstone": 60, "m.room.encryption": 100, "m.room.power_levels": 60},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendStateEvent(ctx, old, event.StateEncryption, "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}); err != nil {
		t.Fatal(err)
	}
	newRoom, err := upgradeRoom(bob, old, map[string]any{"new_version": "11"})
	if err != nil {
		t.Fatalf("upgrade by a moderator: %v", err)
	}
	if enc := stateContent(t, bob, newRoom, event.StateEncryption, ""); enc["algorithm"] != "m.megolm.v1.aes-sha2" {
		t.Errorf("encryption not copied: %v", enc)
	}
	users := stateContent(t, bob, newRoom, event.StatePowerLevels, "")["users"].(map[string]any)
	if users[string(bob.UserID)] != float64(60) || users[string(alice.UserID)] != float64(100) {
		t.Errorf("power after the upgrade = %v, want bob back at 60", users)
	}
}

func TestSpaceUpgradeKeepsChildrenAndCreators(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	space := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Region", CreationContent: map[string]any{"type": "m.space"}})
	child := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Depot"})
	if _, err := alice.SendStateEvent(ctx, space, event.StateSpaceChild, string(child), map[string]any{"via": []string{s.Config.ServerName}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, space); err != nil {
		t.Fatal(err)
	}
	newSpace, err := upgradeRoom(alice, space, map[string]any{"new_version": "12", "additional_creators": []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	create := stateContent(t, alice, newSpace, event.StateCreate, "")
	if create["type"] != "m.space" || fmt.Sprint(create["additional_creators"]) != fmt.Sprint([]any{string(bob.UserID)}) {
		t.Errorf("new space's create = %v", create)
	}
	h, err := alice.Hierarchy(ctx, newSpace, nil)
	if err != nil || len(h.Rooms) != 2 || h.Rooms[1].RoomID != child {
		t.Errorf("new space's hierarchy = %+v, %v", h, err)
	}
	_, err = upgradeRoom(alice, space, map[string]any{"new_version": "12", "additional_creators": []string{"not a user"}})
	wantErr(t, "bad additional creator", err, "M_INVALID_PARAM", 400)
}

// BenchmarkPublicRooms lists the first page of a directory of 300 published rooms, and
// searches it, as a client's room directory dialog does.
func BenchmarkPublicRooms(b *testing.B) {
	s := servertest.Start(b, servertest.OpenRegistration)
	alice := s.Register(b, "alice", "correct horse battery")
	for i := range 300 {
		if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat",
			Name: fmt.Sprintf("Room %d", i), Topic: "Topic of room " + fmt.Sprint(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("page", func(b *testing.B) {
		for b.Loop() {
			if r, err := alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 20}); err != nil || len(r.Chunk) != 20 {
				b.Fatalf("%v, %v", r, err)
			}
		}
	})
	b.Run("search", func(b *testing.B) {
		body := map[string]any{"limit": 20, "filter": map[string]any{"generic_search_term": "room 29"}}
		for b.Loop() {
			var r mautrix.RespPublicRooms
			if _, err := alice.MakeRequest(ctx, "POST", alice.BuildClientURL("v3", "publicRooms"), body, &r); err != nil || len(r.Chunk) != 11 {
				b.Fatalf("%d rooms, %v", len(r.Chunk), err)
			}
		}
	})
}
