package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Slack IDs of the fake workspace; the probe's config maps U0ALICE to the
// demo's alice (packit-devs: may import stg).
const (
	slackTeam    = "T0FAULTS"
	slackChannel = "C0FAULTS"
	slackAlice   = "U0ALICE"
	slackNobody  = "U0NOBODY"
)

// slackSign is Slack's v0 request signature (bot/slack.Sign):
// "v0=" + hex(HMAC-SHA256(secret, "v0:timestamp:body")).
func slackSign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", timestamp)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// call is one request a fake platform received.
type call struct {
	at     time.Time
	method string // chat.postMessage, chat.update, response_url, webhook edit, ...
	path   string
	ts     string // Slack: the message timestamp (chat.update's, or the one postMessage got)
	text   string // the message's plain text
	fault  string // "" when answered normally, else 429, 500 or hang
}

// recorder keeps the calls of one fake and lets the probe wait for one.
type recorder struct {
	mu     sync.Mutex
	calls  []call
	change chan struct{}
}

func newRecorder() *recorder { return &recorder{change: make(chan struct{}, 1)} }

func (r *recorder) add(c call) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	select {
	case r.change <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// waitFor waits until ok finds a call, at most timeout; the zero call and
// false when none came.
func (r *recorder) waitFor(ctx context.Context, timeout time.Duration, ok func(call) bool) (call, bool) {
	deadline := time.After(timeout)
	seen := 0
	for {
		calls := r.all()
		for _, c := range calls[seen:] {
			if ok(c) {
				return c, true
			}
		}
		seen = len(calls)
		select {
		case <-r.change:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return call{}, false
		case <-ctx.Done():
			return call{}, false
		}
	}
}

// faults is a fault schedule: from start, each phase answers every call it
// applies to with its fault until its end, then the API recovers.
type faults struct {
	mu     sync.Mutex
	start  time.Time
	phases []phase
	// applies says which calls the schedule hits (by method name).
	applies func(method string) bool
}

type phase struct {
	fault string // 429, 500, hang
	until time.Duration
}

// defaultPhases: 429 with Retry-After: 2, then 500s, then answers that hang
// longer than the bot's 15 s client timeout, then recovery.
func defaultPhases(scale time.Duration) []phase {
	return []phase{{"429", 6 * scale}, {"500", 12 * scale}, {"hang", 28 * scale}}
}

// begin starts the schedule now.
func (f *faults) begin(phases []phase, applies func(string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.start, f.phases, f.applies = time.Now(), phases, applies
}

// window is when the schedule started and when the API recovers.
func (f *faults) window() (time.Time, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.phases) == 0 {
		return time.Time{}, time.Time{}
	}
	return f.start, f.start.Add(f.phases[len(f.phases)-1].until)
}

// current is the fault due for method now and when its phase ends.
func (f *faults) current(method string) (string, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applies == nil || !f.applies(method) {
		return "", time.Time{}
	}
	el := time.Since(f.start)
	for _, p := range f.phases {
		if el < p.until {
			return p.fault, f.start.Add(p.until)
		}
	}
	return "", time.Time{}
}

// inject answers r with the fault due, if any, and reports whether it did.
// A hanging answer waits until the client gives up or the phase ends, then
// answers 503. Discord-style 429s carry retry_after in the body too.
func (f *faults) inject(w http.ResponseWriter, r *http.Request, method string) string {
	fault, end := f.current(method)
	switch fault {
	case "429":
		w.Header().Set("Retry-After", "2")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited","message":"You are being rate limited.","retry_after":2,"global":false}`)
	case "500":
		http.Error(w, "internal error", http.StatusInternalServerError)
	case "hang":
		t := time.NewTimer(time.Until(end))
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		t.Stop()
		http.Error(w, "upstream timed out", http.StatusServiceUnavailable)
	}
	return fault
}

// fakeSlack stands in for slack.com: the Web API and the response_urls.
type fakeSlack struct {
	secret string
	api    *httptest.Server
	hooks  *httptest.Server
	rec    *recorder
	faults faults

	mu     sync.Mutex
	nextTS int
}

func newFakeSlack() (*fakeSlack, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("making a signing secret: %w", err)
	}
	s := &fakeSlack{secret: hex.EncodeToString(raw), rec: newRecorder()}
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	s.hooks = httptest.NewServer(http.HandlerFunc(s.serveHook))
	return s, nil
}

func (s *fakeSlack) close() {
	s.api.CloseClientConnections()
	s.hooks.CloseClientConnections()
	s.api.Close()
	s.hooks.Close()
}

func (s *fakeSlack) serveAPI(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	c := call{at: time.Now(), method: method, path: r.URL.Path, ts: r.Form.Get("ts"), text: withBlocks(r.Form.Get("text"), []byte(r.Form.Get("blocks")))}
	if c.fault = s.faults.inject(w, r, method); c.fault != "" {
		s.rec.add(c)
		return
	}
	if method == "chat.postMessage" {
		s.mu.Lock()
		s.nextTS++
		c.ts = fmt.Sprintf("1800000000.%06d", s.nextTS)
		s.mu.Unlock()
	}
	s.rec.add(c)
	w.Header().Set("Content-Type", "application/json")
	switch method {
	case "usergroups.list":
		_, _ = io.WriteString(w, `{"ok":true,"usergroups":[]}`)
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.Form.Get("channel"), "ts": c.ts, "message_ts": c.ts})
	}
}

func (s *fakeSlack) serveHook(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	_ = json.Unmarshal(body, &msg)
	c := call{at: time.Now(), method: "response_url", path: r.URL.Path, text: withBlocks(msg.Text, msg.Blocks)}
	if c.fault = s.faults.inject(w, r, "response_url"); c.fault != "" {
		s.rec.add(c)
		return
	}
	s.rec.add(c)
	_, _ = io.WriteString(w, "ok")
}

// env is the environment of a serve process talking to this fake; with a
// bot token the request messages go through chat.postMessage/chat.update.
func (s *fakeSlack) env(botToken bool) []string {
	env := []string{"SLACK_SIGNING_SECRET=" + s.secret, "SLACK_API_URL=" + s.api.URL + "/api/"}
	if botToken {
		env = append(env, "SLACK_BOT_TOKEN=xoxb-faults-probe")
	}
	return env
}

// hookURL is a fresh response_url for one event.
func (s *fakeSlack) hookURL(name string) string { return s.hooks.URL + "/hooks/" + name }

// post sends a signed body to path and returns the status and answer.
func (s *fakeSlack) post(ctx context.Context, client *http.Client, addr, path string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", fmt.Errorf("building the request: %w", err)
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Slack-Signature", slackSign(s.secret, ts, body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("posting to %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	return resp.StatusCode, strings.TrimSpace(string(answer)), nil
}

// commandBody is a /deploy slash command's form body.
func (s *fakeSlack) commandBody(user, text, trigger string) []byte {
	return []byte(url.Values{
		"team_id": {slackTeam}, "team_domain": {"faults"}, "channel_id": {slackChannel}, "channel_name": {"deploy"},
		"user_id": {user}, "user_name": {strings.ToLower(strings.TrimPrefix(user, "U0"))}, "command": {"/deploy"},
		"text": {text}, "response_url": {s.hookURL(trigger)}, "trigger_id": {trigger},
	}.Encode())
}

// command sends a signed slash command; it must be acknowledged with an
// empty 200.
func (s *fakeSlack) command(ctx context.Context, addr, user, text, trigger string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	code, answer, err := s.post(ctx, client, addr, "/slack/commands", s.commandBody(user, text, trigger))
	if err != nil {
		return fmt.Errorf("/deploy %s: %w", text, err)
	}
	if code != http.StatusOK || answer != "" {
		return fmt.Errorf("/deploy %s: answered %d %q", text, code, answer)
	}
	return nil
}

// click sends a signed block_actions click of alice on the button action
// of request id, on the message at ts.
func (s *fakeSlack) click(ctx context.Context, addr, action, id, ts, trigger string) error {
	payload, err := json.Marshal(map[string]any{
		"type":         "block_actions",
		"team":         map[string]any{"id": slackTeam, "domain": "faults"},
		"user":         map[string]any{"id": slackAlice, "username": "alice", "name": "alice", "team_id": slackTeam},
		"api_app_id":   "A0FAULTS",
		"container":    map[string]any{"type": "message", "message_ts": ts, "channel_id": slackChannel, "is_ephemeral": false},
		"trigger_id":   trigger,
		"channel":      map[string]any{"id": slackChannel, "name": "deploy"},
		"message":      map[string]any{"type": "message", "ts": ts, "text": "request"},
		"response_url": s.hookURL(trigger),
		"actions": []map[string]any{{
			"action_id": action, "block_id": "deploybot-actions", "type": "button", "value": id,
			"text": map[string]any{"type": "plain_text", "text": action}, "action_ts": "1800000001.000100",
		}},
	})
	if err != nil {
		return fmt.Errorf("encoding the click: %w", err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	code, answer, err := s.post(ctx, client, addr, "/slack/interactions", []byte(url.Values{"payload": {string(payload)}}.Encode()))
	if err != nil {
		return fmt.Errorf("clicking %s on #%s: %w", action, id, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("clicking %s on #%s: answered %d %q", action, id, code, answer)
	}
	return nil
}

// withBlocks is a message's fallback text followed by every text of its
// Block Kit blocks (where the body of most replies is).
func withBlocks(text string, blocks []byte) string {
	var v any
	if len(blocks) == 0 || json.Unmarshal(blocks, &v) != nil {
		return text
	}
	var b strings.Builder
	b.WriteString(text)
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if t, ok := v["text"].(string); ok {
				b.WriteString("\n" + t)
			}
			for k, x := range v {
				if k != "text" || !isString(x) {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return b.String()
}

func isString(v any) bool { _, ok := v.(string); return ok }

// requestIDRE finds a request ID in a message's text.
var requestIDRE = regexp.MustCompile(`#([a-z0-9]{10})\b`)

// requestID is the first request ID in text, or "".
func requestID(text string) string {
	if m := requestIDRE.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

// firstLine is the first non-empty line of s, clipped.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return clip(l, 110)
		}
	}
	return ""
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
