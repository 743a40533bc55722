package clock

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// NTPPort is where NTP servers listen.
const NTPPort = "123"

// Errors of Query; each names a reason to distrust the answer.
var (
	ErrKissOfDeath   = errors.New("clock: the NTP server sent a kiss-o'-death (stratum 0): ask it less, or ask another")
	ErrUnsynced      = errors.New("clock: the NTP server says its own clock is not synchronised")
	ErrBogusResponse = errors.New("clock: the NTP response does not answer our request")
)

// Sample is one NTP measurement.
type Sample struct {
	// Offset is how far the server's clock is ahead of ours (negative: behind).
	Offset time.Duration
	// Delay is the round trip, network only.
	Delay time.Duration
	// Stratum is the server's distance from a reference clock (1: it has one).
	Stratum int
}

// ntpEpoch is 1900-01-01, where NTP era 0 starts.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// Query asks one server ("host" or "host:port") for the time, as an SNTP client does (RFC
// 4330, the client side of RFC 5905), measuring with now. The request's transmit timestamp
// is a random nonce the server must echo as its originate timestamp, so a forged answer has
// to see the request first.
func Query(ctx context.Context, server string, now func() time.Time) (Sample, error) {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, NTPPort)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return Sample{}, fmt.Errorf("clock: %w", err)
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := make([]byte, 48)
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, mode 3 (client)
	nonce := req[40:48]
	if _, err := rand.Read(nonce); err != nil {
		return Sample{}, err
	}
	t1 := now()
	if _, err := c.Write(req); err != nil {
		return Sample{}, fmt.Errorf("clock: %w", err)
	}
	resp := make([]byte, 128)
	for {
		n, err := c.Read(resp)
		if err != nil {
			if ctx.Err() != nil {
				return Sample{}, fmt.Errorf("clock: %s: %w", server, ctx.Err())
			}
			return Sample{}, fmt.Errorf("clock: %s: %w", server, err)
		}
		t4 := now()
		if n < 48 {
			continue // not NTP; keep waiting for the answer
		}
		return parseResponse(resp[:n], nonce, t1, t4)
	}
}

// parseResponse checks a server's answer to the request with transmit timestamp nonce,
// sent at t1 and received at t4, and measures the offset and delay.
func parseResponse(b, nonce []byte, t1, t4 time.Time) (Sample, error) {
	li, vn, mode := b[0]>>6, b[0]>>3&7, b[0]&7
	stratum := int(b[1])
	switch {
	case mode != 4 || vn < 3 || vn > 4:
		return Sample{}, fmt.Errorf("%w: mode %d, version %d", ErrBogusResponse, mode, vn)
	case string(b[24:32]) != string(nonce):
		return Sample{}, fmt.Errorf("%w: it echoes another request", ErrBogusResponse)
	case stratum == 0:
		return Sample{}, fmt.Errorf("%w (code %q)", ErrKissOfDeath, b[12:16])
	case li == 3 || stratum > 15:
		return Sample{}, ErrUnsynced
	case binary.BigEndian.Uint64(b[40:48]) == 0:
		return Sample{}, fmt.Errorf("%w: no transmit timestamp", ErrBogusResponse)
	}
	t2 := ntpTime(b[32:40])
	t3 := ntpTime(b[40:48])
	offset := (t2.Sub(t1) + t3.Sub(t4)) / 2
	delay := t4.Sub(t1) - t3.Sub(t2)
	if delay < 0 {
		delay = 0
	}
	return Sample{Offset: offset, Delay: delay, Stratum: stratum}, nil
}

// ntpTime decodes a 64-bit NTP timestamp. Seconds with the top bit clear belong to era 1
// (from 2036), as RFC 4330 section 3 suggests, so the decoding works until 2104.
func ntpTime(b []byte) time.Time {
	sec := binary.BigEndian.Uint32(b[0:4])
	frac := binary.BigEndian.Uint32(b[4:8])
	secs := int64(sec)
	if sec&0x80000000 == 0 {
		secs += 1 << 32
	}
	nanos := (int64(frac) * 1e9) >> 32
	return ntpEpoch.Add(time.Duration(secs) * time.Second).Add(time.Duration(nanos))
}
