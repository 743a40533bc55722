package watchdog

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// HTTPHealth returns a probe that GETs url and succeeds on a 200 answer: the homeserver's
// GET /health. The caller's context bounds each probe.
func HTTPHealth(url string) func(ctx context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
