package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// sign returns Slack's v0 request signature of body sent at timestamp (Unix
// seconds): "v0=" + hex(HMAC-SHA256(secret, "v0:timestamp:body")), the
// X-Slack-Signature header. Copied from bot/slack.Sign, as hack/slack-sign
// uses it; sign_test.go checks the two agree.
func sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", timestamp)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// fakeSlack stands in for slack.com: the Web API (every call answers
// {"ok":true}) and the response_url every slash command carries. Both count
// what arrives.
type fakeSlack struct {
	secret   string
	api      *httptest.Server
	hooks    *httptest.Server
	apiCalls atomic.Int64
	replies  atomic.Int64
}

func newFakeSlack() (*fakeSlack, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("making a signing secret: %w", err)
	}
	s := &fakeSlack{secret: hex.EncodeToString(raw)}
	s.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.apiCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	s.hooks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.replies.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	return s, nil
}

func (s *fakeSlack) close() {
	s.api.Close()
	s.hooks.Close()
}

// env is what deploybot needs to serve Slack over HTTP against the fake:
// the signing secret and the Web API URL. There is no SLACK_BOT_TOKEN, so
// every answer goes through the command's response_url (with --demo the
// code needs none: no environment announces in a Slack channel).
func (s *fakeSlack) env() []string {
	return []string{"SLACK_SIGNING_SECRET=" + s.secret, "SLACK_API_URL=" + s.api.URL + "/api/"}
}

// answers is how many messages deploybot has sent so far, either way.
func (s *fakeSlack) answers() int64 { return s.replies.Load() + s.apiCalls.Load() }

// Slack IDs of the fake workspace.
const (
	teamID    = "T0FOOTPRINT"
	channelID = "C0FOOTPRINT"
	userID    = "U0FOOTPRINT"
)

// loadResult is what sending the slash commands saw.
type loadResult struct {
	sent    int
	answers int64         // messages deploybot sent back
	took    time.Duration // from the first command to the last answer
}

// sendCommands posts n signed `/deploy text` slash commands to the bot's
// /slack/commands from workers goroutines, each command with its own
// trigger_id and response_url, then waits (at most timeout) until the fake
// Slack has received at least n answers and no more have arrived for half a
// second. Every command must be accepted (200 with an empty body; a busy
// bot answers 200 with a JSON body).
func sendCommands(ctx context.Context, b *bot, s *fakeSlack, run, text string, n, workers int, timeout time.Duration) (loadResult, error) {
	target := "http://" + b.addr + "/slack/commands"
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	before := s.answers()
	start := time.Now()

	var next atomic.Int64
	var mu sync.Mutex
	var refused int
	var firstRefusal string
	refuse := func(why string) {
		mu.Lock()
		defer mu.Unlock()
		if refused == 0 {
			firstRefusal = why
		}
		refused++
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				form := url.Values{
					"token":        {"footprint"},
					"team_id":      {teamID},
					"team_domain":  {"footprint"},
					"channel_id":   {channelID},
					"channel_name": {"deploy"},
					"user_id":      {userID},
					"user_name":    {"footprint"},
					"command":      {"/deploy"},
					"text":         {text},
					"response_url": {s.hooks.URL + "/hooks/" + run + "/" + strconv.Itoa(i)},
					"trigger_id":   {run + "." + strconv.Itoa(i)},
				}
				body := []byte(form.Encode())
				ts := time.Now().Unix()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
				if err != nil {
					refuse(err.Error())
					continue
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
				req.Header.Set("X-Slack-Signature", sign(s.secret, ts, body))
				resp, err := client.Do(req)
				if err != nil {
					refuse(fmt.Sprintf("command %d: %v", i, err))
					continue
				}
				answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK || len(bytes.TrimSpace(answer)) > 0 {
					refuse(fmt.Sprintf("command %d: %s %s", i, resp.Status, bytes.TrimSpace(answer)))
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return loadResult{}, fmt.Errorf("sending slash commands: %w", err)
	}
	if refused > 0 {
		return loadResult{}, fmt.Errorf("%d of %d slash commands were not accepted by %s; the first: %s", refused, n, target, firstRefusal)
	}

	// Wait for the answers, then for quiet.
	deadline := start.Add(timeout)
	lastCount, lastChange := s.answers(), time.Now()
	for {
		if err := b.exited(); err != nil {
			return loadResult{}, fmt.Errorf("waiting for the answers to %d slash commands: %w", n, err)
		}
		got := s.answers()
		if got != lastCount {
			lastCount, lastChange = got, time.Now()
		}
		if got-before >= int64(n) && time.Since(lastChange) >= 500*time.Millisecond {
			return loadResult{sent: n, answers: got - before, took: lastChange.Sub(start)}, nil
		}
		if time.Now().After(deadline) {
			if got-before >= int64(n) {
				// Answers kept coming: quiet never came, but all are there.
				return loadResult{sent: n, answers: got - before, took: time.Since(start)}, nil
			}
			return loadResult{}, fmt.Errorf("only %d answers to %d slash commands arrived within %v; the end of deploybot's log (%s):\n%s",
				got-before, n, timeout, b.logPath, b.logTail(20))
		}
		select {
		case <-ctx.Done():
			return loadResult{}, fmt.Errorf("waiting for the answers to the slash commands: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
