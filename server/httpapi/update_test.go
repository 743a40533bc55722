package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"fyr/server/httpapi"
	"fyr/server/servertest"
)

// fakeUpdater records the bundles it is given and answers with err, or with the size it read.
type fakeUpdater struct {
	mu    sync.Mutex
	got   []string
	err   error
	limit int64
}

func (f *fakeUpdater) MaxBundleBytes() int64 { return f.limit }

func (f *fakeUpdater) ApplyUpdate(_ context.Context, r io.Reader) (httpapi.UpdateResult, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return httpapi.UpdateResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, string(b))
	if f.err != nil {
		return httpapi.UpdateResult{}, f.err
	}
	return httpapi.UpdateResult{Version: uint64(len(b)), Slot: "b", KeyID: "k1"}, nil
}

func TestUpdateUpload(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	admin := s.Register(t, "admin", "pw")
	makeAdmin(t, s, "admin")
	user := s.Register(t, "user", "pw")
	const path = "/_fyr/admin/v1/update"
	upload := func(token string, body io.Reader) (int, string, string) {
		t.Helper()
		status, b, _ := s.Do(t, "POST", path, token, body, "Content-Type", "application/octet-stream")
		var e struct{ Errcode, Error string }
		json.Unmarshal(b, &e)
		return status, e.Errcode, string(b)
	}

	if status, code, _ := upload(admin.AccessToken, strings.NewReader("bundle")); status != 404 || code != "M_UNRECOGNIZED" {
		t.Errorf("upload to a server that is no box = %d %s, want 404 M_UNRECOGNIZED", status, code)
	}

	up := &fakeUpdater{limit: 1000}
	s.SetUpdater(up)
	if status, code, _ := upload("", strings.NewReader("bundle")); status != 401 || code != "M_MISSING_TOKEN" {
		t.Errorf("upload without a token = %d %s, want 401 M_MISSING_TOKEN", status, code)
	}
	if status, code, _ := upload(user.AccessToken, strings.NewReader("bundle")); status != 403 || code != "M_FORBIDDEN" {
		t.Errorf("upload by a non-admin = %d %s, want 403 M_FORBIDDEN", status, code)
	}
	status, _, body := upload(admin.AccessToken, strings.NewReader("bundle"))
	var res httpapi.UpdateResult
	if err := json.Unmarshal([]byte(body), &res); status != 200 || err != nil || res.Version != 6 || res.Slot != "b" || !res.RebootRequired {
		t.Errorf("upload by an admin = %d %s, want 200 with the result and reboot_required", status, body)
	}
	if len(up.got) != 1 || up.got[0] != "bundle" {
		t.Errorf("the updater got %q", up.got)
	}

	big := strings.Repeat("x", 5000)
	if status, code, _ := upload(admin.AccessToken, strings.NewReader(big)); status != 413 || code != "M_TOO_LARGE" {
		t.Errorf("oversized upload = %d %s, want 413 M_TOO_LARGE", status, code)
	}
	// Without a Content-Length the limit is enforced while streaming.
	chunked := io.MultiReader(strings.NewReader(big[:2500]), strings.NewReader(big[2500:]))
	if status, code, _ := upload(admin.AccessToken, chunked); status != 413 || code != "M_TOO_LARGE" {
		t.Errorf("oversized chunked upload = %d %s, want 413 M_TOO_LARGE", status, code)
	}

	up.err = fmt.Errorf("%w: update: the bundle is not newer than the installed version: 5", httpapi.ErrUpdateRefused)
	if status, code, body := upload(admin.AccessToken, strings.NewReader("old")); status != 400 || code != "M_INVALID_PARAM" || !strings.Contains(body, "not newer") {
		t.Errorf("refused bundle = %d %s %s, want 400 M_INVALID_PARAM naming the reason", status, code, body)
	}
	up.err = fmt.Errorf("%w: a trial is running", httpapi.ErrUpdateBusy)
	if status, _, _ := upload(admin.AccessToken, strings.NewReader("next")); status != 409 {
		t.Errorf("upload during a trial = %d, want 409", status)
	}
	up.err = errors.New("disk on fire")
	if status, code, body := upload(admin.AccessToken, strings.NewReader("x")); status != 500 || strings.Contains(body, "fire") {
		t.Errorf("internal failure = %d %s %s, want 500 without the cause", status, code, body)
	}
}
