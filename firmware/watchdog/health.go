package watchdog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// HTTPHealth returns a probe that GETs each of urls in turn and succeeds on the first 200
// answer: the homeserver's GET /health, e.g. over http:// and https:// on the same loopback
// port, since the operator may turn TLS on for the client port. Certificates are not
// checked: the probe asks whether the process answers, not who it is, and it only ever
// talks to loopback. The caller's context bounds each probe.
func HTTPHealth(urls ...string) func(ctx context.Context) error {
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	}}
	return func(ctx context.Context) error {
		var errs []error
		for _, url := range urls {
			err := get(ctx, client, url)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
}

func get(ctx context.Context, client *http.Client, url string) error {
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
