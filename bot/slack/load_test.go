package slack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store/bolt"
)

// prepared is a signed request ready to fire.
type prepared struct {
	path   string
	body   []byte
	header http.Header
}

// loadRequests makes n distinct signed slash commands and, for the first
// retries of them, a redelivery: same event (trigger ID), fresh signature,
// X-Slack-Retry-Num set, as Slack sends it.
func loadRequests(prefix string, n, retries int) []prepared {
	now := time.Now()
	var out []prepared
	for i := range n {
		body := commandBody(testTeam, fmt.Sprintf("U%06d", i), "user", testChannel, "status prod", fmt.Sprintf("https://hooks.slack.test/commands/%d", i), fmt.Sprintf("%s.%d", prefix, i))
		out = append(out, prepared{path: "/slack/commands", body: body, header: signedHeader(body, now)})
		if i < retries {
			h := signedHeader(body, now.Add(time.Second))
			h.Set(headerRetryNum, "1")
			h.Set("X-Slack-Retry-Reason", "http_timeout")
			out = append(out, prepared{path: "/slack/commands", body: body, header: h})
		}
	}
	return out
}

func signedHeader(body []byte, at time.Time) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set(headerTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(headerSignature, Sign(testSecret, at.Unix(), body))
	return h
}

// fire sends every request at once (each on its own goroutine, released
// together) and returns the ack latencies and the statuses seen. The
// connections are opened beforehand: 2,200 simultaneous TCP handshakes
// overflow the kernel's SYN backlog and would measure its 1 s retransmit
// timer, not the handler.
func fire(t *testing.T, base string, reqs []prepared) ([]time.Duration, map[int]int) {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: len(reqs), MaxIdleConns: len(reqs), IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	var warm sync.WaitGroup
	for range reqs {
		warm.Add(1)
		go func() {
			defer warm.Done()
			resp, err := client.Get(base + "/warm-up")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
	}
	warm.Wait()
	lat := make([]time.Duration, len(reqs))
	status := make([]int, len(reqs))
	errs := make([]error, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+p.path, strings.NewReader(string(p.body)))
			if err != nil {
				errs[i] = err
				return
			}
			req.Header = p.header.Clone()
			<-start
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			lat[i], status[i] = time.Since(t0), resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	codes := map[int]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		codes[status[i]]++
	}
	return lat, codes
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// TestLoad2000 fires 2,000 signed slash commands (and 200 of Slack's
// retries of them) at once at the adapter over loopback, next to a bare
// net/http handler under the same load, and checks that every command was
// acknowledged in time and handed to the bot exactly once.
//
// It runs twice: with the adapter's in-memory dedupe, and with the durable
// inbox on the embedded database (store/bolt), where each ack waits for its
// event to be committed (group commit, inbox.go).
func TestLoad2000(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inbox func(t *testing.T) bot.Inbox
	}{
		{name: "in memory"},
		{name: "durable inbox on bbolt", inbox: func(t *testing.T) bot.Inbox {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.inbox != nil {
				opts = append(opts, WithInbox(tc.inbox(t)))
			}
			load2000(t, opts...)
		})
	}
}

func load2000(t *testing.T, opts ...Option) {
	const n, retries = 2000, 200
	h := newCountingHandler()
	// Each event keeps a worker busy as long as the bot reading a cluster
	// would; the 2,000 take 32 workers about 3 s, far longer than the acks.
	h.work = 50 * time.Millisecond
	a, err := New(h, append([]Option{WithSigningSecret(testSecret), WithLogger(slog.New(slog.DiscardHandler)), WithQueue(n + retries)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	mux := http.NewServeMux()
	a.Routes(mux)
	ours := httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(ours.Close)
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(bare.Close)
	for _, s := range []*httptest.Server{ours, bare} {
		if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
			t.Fatalf("server at %s, want loopback", s.URL)
		}
	}

	// A first, smaller burst at each server warms up what a long-running
	// server has warm (goroutine stacks, buffers, the heap), so neither
	// measured burst pays for being first.
	const warm = 500
	warmReqs := loadRequests("warm", warm, 0)
	fire(t, bare.URL, warmReqs)
	fire(t, ours.URL, warmReqs)
	reqs := loadRequests("load", n, retries)
	began := time.Now()
	bareLat, bareCodes := fire(t, bare.URL, reqs)
	ourLat, ourCodes := fire(t, ours.URL, reqs)
	// Every ack is back while most events still wait for a worker: the ack
	// never waits for the bot.
	handledAtAck := h.count() - warm
	if ourCodes[http.StatusOK] != len(reqs) || bareCodes[http.StatusOK] != len(reqs) {
		t.Fatalf("statuses: deploybot %v, bare %v; want %d × 200", ourCodes, bareCodes, len(reqs))
	}
	h.waitCount(t, warm+n)
	a.Close() // drains the queue: anything still to come is counted now

	lost, duplicated := 0, 0
	h.mu.Lock()
	for i := range n {
		switch c := h.byKey[fmt.Sprintf("command/load.%d", i)]; {
		case c == 0:
			lost++
		case c > 1:
			duplicated += c - 1
		}
	}
	total := h.total
	h.mu.Unlock()

	slices.Sort(bareLat)
	slices.Sort(ourLat)
	row := func(name string, l []time.Duration) string {
		return fmt.Sprintf("%-22s %8d %10s %10s %10s", name, len(l), percentile(l, .5).Round(time.Microsecond), percentile(l, .99).Round(time.Microsecond), l[len(l)-1].Round(time.Microsecond))
	}
	ratio := func(p float64) float64 {
		return float64(percentile(ourLat, p)) / float64(percentile(bareLat, p))
	}
	st := a.Stats()
	t.Logf("ack latency, %d concurrent signed slash commands (%d distinct, %d Slack retries) over 127.0.0.1:\n"+
		"%-22s %8s %10s %10s %10s\n%s\n%s\n"+
		"ratio to bare: p50 %.2f×, p99 %.2f×; %d of %d events handled when the last ack returned; handled %d events (%d distinct measured + %d warm-up), lost %d, duplicated %d; adapter stats %+v; took %s",
		len(reqs), n, retries,
		"handler", "requests", "p50", "p99", "max",
		row("bare net/http", bareLat), row("deploybot slack", ourLat),
		ratio(.5), ratio(.99), handledAtAck, n, total, n, warm, lost, duplicated, st, time.Since(began).Round(time.Millisecond))

	if lost != 0 || duplicated != 0 || total != warm+n {
		t.Errorf("lost %d, duplicated %d, handled %d; want 0, 0, %d", lost, duplicated, total, warm+n)
	}
	if st.Enqueued != warm+n || st.Duplicates != retries || st.Rejected != 0 || st.Overloaded != 0 {
		t.Errorf("stats %+v, want %d enqueued and %d duplicates", st, warm+n, retries)
	}
	if handledAtAck >= n {
		t.Errorf("all %d events were handled before the last ack returned; the ack waits for the bot", handledAtAck)
	}
}

// BenchmarkAck measures the HTTP ack path alone: verify the signature,
// check for replays, parse the slash command, dedupe and enqueue.
func BenchmarkAck(b *testing.B) {
	a, err := New(handlerFunc(func(context.Context, bot.Request, bot.Responder) error { return nil }),
		WithSigningSecret(testSecret), WithLogger(slog.New(slog.DiscardHandler)), WithQueue(1<<16))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	mux := http.NewServeMux()
	a.Routes(mux)
	now := time.Now()
	bodies := make([][]byte, b.N)
	headers := make([]http.Header, b.N)
	for i := range b.N {
		bodies[i] = commandBody(testTeam, "U0ALICE", "alice", testChannel, "status prod", "https://hooks.slack.test/commands/1", fmt.Sprintf("bench.%d.%d", now.UnixNano(), i))
		headers[i] = signedHeader(bodies[i], now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(string(bodies[i])))
		req.Header = headers[i]
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	b.StopTimer()
	if st := a.Stats(); st.Overloaded > 0 {
		b.ReportMetric(float64(st.Overloaded), "overloaded")
	}
}
