package boottest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// client speaks just enough of the client-server API for the boot tests.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 30 * time.Second}}
}

// do sends a JSON request and decodes a 200 answer into out; anything else is an error.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// login signs in with a password.
func (c *client) login(ctx context.Context, user, password string) error {
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	err := c.do(ctx, "POST", "/_matrix/client/v3/login", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user},
		"password":   password,
	}, &resp)
	if err != nil {
		return err
	}
	c.token = resp.AccessToken
	return nil
}

func (c *client) createRoom(ctx context.Context) (string, error) {
	var resp struct {
		RoomID string `json:"room_id"`
	}
	err := c.do(ctx, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "private_chat"}, &resp)
	return resp.RoomID, err
}

func (c *client) send(ctx context.Context, roomID, txn, text string) (string, error) {
	var resp struct {
		EventID string `json:"event_id"`
	}
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s", url.PathEscape(roomID), url.PathEscape(txn))
	err := c.do(ctx, "PUT", path, map[string]string{"msgtype": "m.text", "body": text}, &resp)
	return resp.EventID, err
}

// event fetches one event and returns its body text.
func (c *client) event(ctx context.Context, roomID, eventID string) (string, error) {
	var resp struct {
		Content struct {
			Body string `json:"body"`
		} `json:"content"`
	}
	path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/event/%s", url.PathEscape(roomID), url.PathEscape(eventID))
	err := c.do(ctx, "GET", path, nil, &resp)
	return resp.Content.Body, err
}
