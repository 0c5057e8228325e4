package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/deploybot/deploybot/bot"
)

// fakeSlack is the Slack Web API as the adapter sees it: slack-go's
// slacktest server, with the methods deploybot calls recorded.
type fakeSlack struct {
	t   testing.TB
	srv *slacktest.Server

	mu     sync.Mutex
	calls  []apiCall
	nextTS int
	groups []slackgo.UserGroup
	change chan struct{}
	// fail makes the next calls of a method fail: with a Slack error
	// ("not_in_channel"), for "ratelimited" HTTP 429 Retry-After: 1, for
	// "http503" and the like that HTTP status.
	fail map[string][]string
}

// apiCall is one Web API call the fake received.
type apiCall struct {
	Method  string
	Token   string
	Channel string
	TS      string
	User    string
	Text    string
	// Blocks is the message's blocks in readable form (see readBlocks).
	Blocks string
}

func newFakeSlack(t testing.TB) *fakeSlack {
	f := &fakeSlack{t: t, change: make(chan struct{}, 1), fail: map[string][]string{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", f.chat("chat.postMessage"))
		c.Handle("/chat.update", f.chat("chat.update"))
		c.Handle("/chat.postEphemeral", f.chat("chat.postEphemeral"))
		c.Handle("/usergroups.list", f.usergroupsList)
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeSlack) url() string { return f.srv.GetAPIURL() }

func (f *fakeSlack) chat(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := apiCall{
			Method:  method,
			Token:   strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
			Channel: r.Form.Get("channel"),
			TS:      r.Form.Get("ts"),
			User:    r.Form.Get("user"),
			Text:    r.Form.Get("text"),
			Blocks:  readBlocks(f.t, r.Form.Get("blocks")),
		}
		if c.Token == "" {
			c.Token = r.Form.Get("token")
		}
		f.mu.Lock()
		if errs := f.fail[method]; len(errs) > 0 {
			f.fail[method] = errs[1:]
			c.Method += " (failed: " + errs[0] + ")"
			f.calls = append(f.calls, c)
			f.mu.Unlock()
			f.notify()
			if errs[0] == "ratelimited" {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			if code, ok := strings.CutPrefix(errs[0], "http"); ok {
				n, _ := strconv.Atoi(code)
				w.WriteHeader(n) // a 5xx from Slack's edge, no JSON
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": errs[0]})
			return
		}
		if method == "chat.postMessage" {
			f.nextTS++
			c.TS = fmt.Sprintf("1700000000.%06d", f.nextTS)
		}
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		f.notify()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS, "message_ts": c.TS})
	}
}

func (f *fakeSlack) usergroupsList(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	c := apiCall{Method: "usergroups.list", Token: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")}
	if r.Form.Get("include_users") != "true" {
		c.Method += " without include_users"
	}
	if errs := f.fail["usergroups.list"]; len(errs) > 0 {
		f.fail["usergroups.list"] = errs[1:]
		c.Method += " (failed: " + errs[0] + ")"
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": errs[0]})
		return
	}
	f.calls = append(f.calls, c)
	groups := f.groups
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "usergroups": groups})
}

// failNext makes the next calls of method fail with errs, in order.
func (f *fakeSlack) failNext(method string, errs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], errs...)
}

// methods lists the methods called, in order.
func (f *fakeSlack) methods() []string {
	var out []string
	for _, c := range f.all() {
		out = append(out, c.Method)
	}
	return out
}

func (f *fakeSlack) notify() {
	select {
	case f.change <- struct{}{}:
	default:
	}
}

func (f *fakeSlack) all() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiCall(nil), f.calls...)
}

// waitFor polls the recorded calls until ok accepts them.
func (f *fakeSlack) waitFor(what string, ok func([]apiCall) bool) []apiCall {
	f.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		calls := f.all()
		if ok(calls) {
			return calls
		}
		select {
		case <-f.change:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			f.t.Fatalf("waiting for %s; Slack received:\n%s", what, dumpCalls(calls))
		}
	}
}

func dumpCalls(calls []apiCall) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "%s channel=%s ts=%s user=%s\n%s\n", c.Method, c.Channel, c.TS, c.User, c.Blocks)
	}
	return b.String()
}

// hookServer stands in for Slack's response_url endpoints, enforcing their
// limit: five uses per URL. A sixth is refused with 404 used_url and
// counted as a violation.
type hookServer struct {
	t   testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	n          int
	posts      []hookPost
	uses       map[string]int
	violations int
	change     chan struct{}
}

// hookPost is one message posted to a response_url.
type hookPost struct {
	Path            string
	ResponseType    string
	ReplaceOriginal bool
	Blocks          string
}

func newHookServer(t testing.TB) *hookServer {
	h := &hookServer{t: t, uses: map[string]int{}, change: make(chan struct{}, 1)}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

// url returns a fresh response_url.
func (h *hookServer) url() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	return fmt.Sprintf("%s/hooks/%d", h.srv.URL, h.n)
}

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg struct {
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		Blocks          json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.uses[r.URL.Path]++
	if h.uses[r.URL.Path] > hookUses {
		h.violations++
		h.mu.Unlock()
		http.Error(w, "used_url", http.StatusNotFound)
		return
	}
	h.posts = append(h.posts, hookPost{Path: r.URL.Path, ResponseType: msg.ResponseType, ReplaceOriginal: msg.ReplaceOriginal, Blocks: readBlocks(h.t, string(msg.Blocks))})
	h.mu.Unlock()
	select {
	case h.change <- struct{}{}:
	default:
	}
	_, _ = io.WriteString(w, "ok")
}

func (h *hookServer) all() []hookPost {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookPost(nil), h.posts...)
}

// readBlocks renders Block Kit JSON as readable lines, one per block:
// "header: TEXT", "section: TEXT", "actions: confirm=ID[primary,dialog] ...".
func readBlocks(t testing.TB, raw string) string {
	if raw == "" || raw == "null" {
		return ""
	}
	var blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
		Elements []struct {
			ActionID string          `json:"action_id"`
			Value    string          `json:"value"`
			Style    string          `json:"style"`
			Confirm  json.RawMessage `json:"confirm"`
		} `json:"elements"`
	}
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		t.Errorf("blocks are not Block Kit JSON: %v\n%s", err, raw)
		return ""
	}
	var lines []string
	for _, b := range blocks {
		switch {
		case b.Text != nil:
			lines = append(lines, b.Type+": "+b.Text.Text)
		case b.Type == "actions":
			var els []string
			for _, e := range b.Elements {
				var tags []string
				if e.Style != "" {
					tags = append(tags, e.Style)
				}
				if len(e.Confirm) > 0 {
					tags = append(tags, "dialog")
				}
				els = append(els, fmt.Sprintf("%s=%s%v", e.ActionID, e.Value, tags))
			}
			lines = append(lines, "actions: "+strings.Join(els, " "))
		default:
			lines = append(lines, b.Type)
		}
	}
	return strings.Join(lines, "\n")
}

// slackSender acts as Slack towards the adapter's HTTP endpoints: it signs
// what it sends with the app's signing secret.
type slackSender struct {
	t      testing.TB
	base   string
	secret string
	client *http.Client
	n      int
}

// signedRequest builds a request to path signed at ts.
func signedRequest(secret, target string, body []byte, ts time.Time) *http.Request {
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
	sign(req, secret, body, ts)
	return req
}

func sign(req *http.Request, secret string, body []byte, ts time.Time) {
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(headerTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(headerSignature, Sign(secret, ts.Unix(), body))
}

// commandBody is a /deploy slash command's form body.
func commandBody(team, user, name, channel, text, responseURL, trigger string) []byte {
	v := url.Values{
		"token": {"legacy-verification-token"}, "team_id": {team}, "team_domain": {"packit"},
		"channel_id": {channel}, "channel_name": {"deploy"}, "user_id": {user}, "user_name": {name},
		"command": {"/deploy"}, "text": {text}, "response_url": {responseURL}, "trigger_id": {trigger},
		"api_app_id": {"A0DEPLOY"},
	}
	return []byte(v.Encode())
}

// clickBody is a block_actions interaction's form body: user pressed the
// button action (value id) on the message at ts in channel.
func clickBody(team, user, name, channel, ts string, action bot.ActionKind, id, responseURL, trigger string) []byte {
	payload := map[string]any{
		"type":         "block_actions",
		"team":         map[string]any{"id": team, "domain": "packit"},
		"user":         map[string]any{"id": user, "username": name, "name": name, "team_id": team},
		"api_app_id":   "A0DEPLOY",
		"token":        "legacy-verification-token",
		"container":    map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
		"trigger_id":   trigger,
		"channel":      map[string]any{"id": channel, "name": "deploy"},
		"message":      map[string]any{"type": "message", "ts": ts, "text": "request"},
		"response_url": responseURL,
		"actions": []map[string]any{{
			"action_id": string(action), "block_id": "deploybot-actions", "type": "button", "value": id,
			"text": map[string]any{"type": "plain_text", "text": string(action)}, "action_ts": "1700000001.000100",
		}},
	}
	raw, _ := json.Marshal(payload)
	return []byte(url.Values{"payload": {string(raw)}}.Encode())
}

// send posts body to path, signed now, and returns the status and how long
// the ack took.
func (s *slackSender) send(path string, body []byte, header ...string) (int, time.Duration) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.base+path, strings.NewReader(string(body)))
	if err != nil {
		s.t.Fatal(err)
	}
	sign(req, s.secret, body, time.Now())
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	took := time.Since(start)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, took
}

// trigger returns a fresh trigger ID, as Slack makes one per invocation.
func (s *slackSender) trigger() string {
	s.n++
	return fmt.Sprintf("%d.%d.trigger%04d", 1700000000, s.n, s.n)
}

// countingHandler is a Handler that counts events by dedupe key and
// answers each through its responder.
type countingHandler struct {
	mu     sync.Mutex
	byKey  map[string]int
	reqs   []bot.Request
	total  int
	notify chan struct{}
	reply  *bot.Reply
	// work is how long each Handle takes, standing in for the bot's own
	// work (cluster reads).
	work time.Duration
}

func newCountingHandler() *countingHandler {
	return &countingHandler{byKey: map[string]int{}, notify: make(chan struct{}, 1)}
}

func (h *countingHandler) Handle(ctx context.Context, req bot.Request, resp bot.Responder) error {
	h.mu.Lock()
	h.byKey[req.DedupeKey]++
	h.reqs = append(h.reqs, req)
	h.total++
	reply, work := h.reply, h.work
	h.mu.Unlock()
	if work > 0 {
		time.Sleep(work)
	}
	select {
	case h.notify <- struct{}{}:
	default:
	}
	if reply != nil {
		return resp.Respond(ctx, *reply)
	}
	return nil
}

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// waitCount waits until n events were handled.
func (h *countingHandler) waitCount(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for h.count() < n {
		select {
		case <-h.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("handled %d events, want %d", h.count(), n)
		}
	}
}
