package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/slack"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/internal/poll"
)

// lockedBuffer is serve's log output, written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveSlackWith runs `serve --demo` with Slack over HTTP and the given http
// limits until the test ends, and returns its address and its log.
func serveSlackWith(t *testing.T, limits config.HTTP) (string, *lockedBuffer) {
	t.Helper()
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Slack = &config.Slack{Mode: "http"}
	cfg.HTTP = limits
	logs := &lockedBuffer{}
	return serveDemo(t, cfg, map[string]string{"SLACK_SIGNING_SECRET": slackSecret}, logs), logs
}

// openFDs counts this process's open file descriptors: the server's and
// the test's own sockets alike.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors here: %v", err)
	}
	return len(entries)
}

// drip writes data one byte every interval until it is all written or the
// connection fails, as a slow client does.
func drip(conn net.Conn, data string, interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < len(data); i++ {
		if _, err := conn.Write([]byte{data[i]}); err != nil {
			return
		}
		select {
		case <-tick.C:
		case <-stop:
			return
		}
	}
}

// slackCommand is a signed slash command as Slack sends it.
func slackCommand(text string) string {
	body := url.Values{"team_id": {"T0PACKIT"}, "user_id": {"U0NOBODY"}, "channel_id": {"C0DEPLOY"},
		"command": {"/deploy"}, "text": {text}, "response_url": {"http://127.0.0.1:1/hook"}, "trigger_id": {"t1"}}.Encode()
	ts := time.Now().Unix()
	return "POST /slack/commands HTTP/1.1\r\nHost: deploybot\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"X-Slack-Request-Timestamp: " + strconv.FormatInt(ts, 10) + "\r\nX-Slack-Signature: " + slack.Sign(slackSecret, ts, []byte(body)) + "\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

const healthz = "GET /healthz HTTP/1.1\r\nHost: deploybot\r\n\r\n"

// The limits TestServeCutsSlowAndIdleConnections runs with: short, and each
// different, so that when a connection is cut shows which limit cut it.
var testLimits = config.HTTP{
	ReadHeaderTimeout: config.Duration{Duration: 1 * time.Second},
	BodyTimeout:       config.Duration{Duration: 2 * time.Second},
	ReadTimeout:       config.Duration{Duration: 4 * time.Second},
	WriteTimeout:      config.Duration{Duration: 5 * time.Second},
	IdleTimeout:       config.Duration{Duration: 1500 * time.Millisecond},
}

// TestServeCutsSlowAndIdleConnections opens 100 connections per kind of
// slow or idle client against the server `serve` builds, each sending one
// byte every 3 seconds where it sends anything: every connection is closed
// by the server within the limit that applies (no signature needed to be
// cut), and the process's file descriptors return to where they were.
func TestServeCutsSlowAndIdleConnections(t *testing.T) {
	addr, _ := serveSlackWith(t, testLimits)
	const conns = 100
	const byteEvery = 3 * time.Second
	headers := "POST /slack/commands HTTP/1.1\r\nHost: deploybot\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
	tests := []struct {
		name string
		// client acts as the client up to the moment the limit starts to
		// count, which it returns; then it holds the connection open,
		// dripping whatever it still has to send.
		client func(t *testing.T, conn net.Conn, r *bufio.Reader, stop <-chan struct{}) time.Time
		limit  time.Duration
	}{
		{name: "connects and sends nothing", limit: testLimits.ReadHeaderTimeout.Duration,
			client: func(*testing.T, net.Conn, *bufio.Reader, <-chan struct{}) time.Time { return time.Now() }},
		{name: "sends its headers one byte every 3s", limit: testLimits.ReadHeaderTimeout.Duration,
			client: func(_ *testing.T, conn net.Conn, _ *bufio.Reader, stop <-chan struct{}) time.Time {
				start := time.Now()
				go drip(conn, headers, byteEvery, stop)
				return start
			}},
		{name: "sends its body one byte every 3s", limit: testLimits.BodyTimeout.Duration,
			client: func(t *testing.T, conn net.Conn, _ *bufio.Reader, stop <-chan struct{}) time.Time {
				if _, err := io.WriteString(conn, headers); err != nil {
					t.Error(err)
				}
				start := time.Now()
				go drip(conn, strings.Repeat("x", 100), byteEvery, stop)
				return start
			}},
		{name: "keeps its connection idle after a request", limit: testLimits.IdleTimeout.Duration,
			client: func(t *testing.T, conn net.Conn, r *bufio.Reader, _ <-chan struct{}) time.Time {
				if _, err := io.WriteString(conn, healthz); err != nil {
					t.Error(err)
					return time.Now()
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Error(err)
					return time.Now()
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Close {
					t.Errorf("GET /healthz: %s, close %v; want 200 on a kept-alive connection", resp.Status, resp.Close)
				}
				return time.Now()
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := openFDs(t)
			stop := make(chan struct{})
			cut := make([]time.Duration, conns)
			var wg sync.WaitGroup
			opened := make(chan struct{}, conns)
			for i := range conns {
				wg.Go(func() {
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						t.Errorf("dial: %v", err)
						opened <- struct{}{}
						return
					}
					defer conn.Close()
					r := bufio.NewReader(conn)
					start := tc.client(t, conn, r, stop)
					opened <- struct{}{}
					// The server answers a cut-off request (400 for a body
					// that did not arrive) or not; either way it then closes.
					_ = conn.SetReadDeadline(start.Add(tc.limit + 3*time.Second))
					_, err = io.Copy(io.Discard, r)
					cut[i] = time.Since(start)
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						cut[i] = -1 // still open
					}
				})
			}
			for range conns {
				<-opened
			}
			// The server accepts them a moment later: the peak, for the log.
			peak := openFDs(t)
			for deadline := time.Now().Add(time.Second); peak < before+2*conns && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				peak = max(peak, openFDs(t))
			}
			wg.Wait()
			close(stop)

			stillOpen := 0
			for _, d := range cut {
				if d < 0 {
					stillOpen++
				}
			}
			if stillOpen > 0 {
				t.Fatalf("%d of %d connections still open %v after the %v limit began", stillOpen, conns, tc.limit+3*time.Second, tc.limit)
			}
			first, last := slices.Min(cut), slices.Max(cut)
			if first < tc.limit/2 || last > tc.limit+1500*time.Millisecond {
				t.Errorf("connections cut after %v to %v, want each within the %v limit (give or take scheduling)", first, last, tc.limit)
			}
			var after int
			poll.Until(t, 5*time.Second, "the file descriptors to return to where they were", func() (bool, string) {
				after = openFDs(t)
				return after <= before, fmt.Sprintf("%d open, %d before", after, before)
			})
			t.Logf("%d connections cut after %v to %v (limit %v); file descriptors %d before, %d with them open, %d after",
				conns, first.Round(time.Millisecond), last.Round(time.Millisecond), tc.limit, before, peak, after)
		})
	}
}

// TestServeAnswersWithinTheLimits: the limits leave ordinary clients alone.
// A signed slash command on a kept-alive connection is answered, and so is
// the next one on the same connection after a pause shorter than the idle
// timeout but longer than the body timeout, so the body deadline of the
// first request does not cut the second.
func TestServeAnswersWithinTheLimits(t *testing.T) {
	limits := testLimits
	// Far from the pause either way, so a loaded machine cannot flip it.
	limits.BodyTimeout = config.Duration{Duration: 500 * time.Millisecond}
	limits.IdleTimeout = config.Duration{Duration: 10 * time.Second}
	addr, _ := serveSlackWith(t, limits)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for i, pause := range []time.Duration{0, 1500 * time.Millisecond} {
		time.Sleep(pause) // the pause is what is tested
		if _, err := io.WriteString(conn, slackCommand("help")); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d on the same connection: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("request %d: %s, close %v; want 200 on a kept-alive connection", i+1, resp.Status, resp.Close)
		}
	}
}

// TestServeConnectionLimit: with maxConnections held by idle keep-alive
// clients, a further client is not served (it waits in the listen backlog)
// until one of them closes; then it is, and reaching the limit is logged.
func TestServeConnectionLimit(t *testing.T) {
	const limit = 4
	limits := testLimits
	limits.IdleTimeout = config.Duration{Duration: time.Minute} // the held connections stay
	limits.MaxConnections = limit
	addr, logs := serveSlackWith(t, limits)

	get := func(conn net.Conn, r *bufio.Reader, wait time.Duration) error {
		if _, err := io.WriteString(conn, healthz); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	}
	var held []net.Conn
	for i := range limit {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := get(conn, bufio.NewReader(conn), 10*time.Second); err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, limit, err)
		}
		held = append(held, conn)
	}

	extra, err := net.Dial("tcp", addr) // the kernel completes the handshake
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	r := bufio.NewReader(extra)
	var ne net.Error
	if err := get(extra, r, 500*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection %d with %d held: %v, want no answer while the limit is reached", limit+1, limit, err)
	}
	_ = held[0].Close()
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("connection %d after one of the %d closed: %v, want it served", limit+1, limit, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("connection %d: %s", limit+1, resp.Status)
	}
	if n := strings.Count(logs.String(), "HTTP connection limit reached"); n != 1 {
		t.Errorf("%d log lines about the limit, want 1:\n%s", n, logs.String())
	}
}
