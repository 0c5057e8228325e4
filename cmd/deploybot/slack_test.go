package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slack"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/store"
)

const slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// TestNewSlackAdapter pins how the environment and the config's slack
// section choose whether and how Slack runs.
func TestNewSlackAdapter(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "signing-secret")
	if err := os.WriteFile(secretFile, []byte(slackSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		slack *config.Slack
		// announce makes prod announce scheduled imports in a Slack channel.
		announce bool
		// want is "none" (not configured), "http" (endpoints answer), "socket"
		// (no endpoints), or the start of an error.
		want string
	}{
		{name: "nothing configured", want: "none"},
		{name: "signing secret: HTTP mode", env: map[string]string{"SLACK_SIGNING_SECRET": slackSecret}, want: "http"},
		{name: "signing secret from a file", env: map[string]string{"SLACK_SIGNING_SECRET_FILE": secretFile}, want: "http"},
		{name: "secret and file both set", env: map[string]string{"SLACK_SIGNING_SECRET": "x", "SLACK_SIGNING_SECRET_FILE": secretFile},
			want: "both SLACK_SIGNING_SECRET and SLACK_SIGNING_SECRET_FILE are set"},
		{name: "secret file missing", env: map[string]string{"SLACK_SIGNING_SECRET_FILE": filepath.Join(dir, "nope")}, want: "reading SLACK_SIGNING_SECRET_FILE"},
		{name: "slack section without a secret", slack: &config.Slack{}, want: "slack (mode http) needs the app's signing secret"},
		{name: "socket mode", slack: &config.Slack{Mode: "socket"}, env: map[string]string{"SLACK_APP_TOKEN": "xapp-1", "SLACK_BOT_TOKEN": "xoxb-1"}, want: "socket"},
		{name: "socket mode without an app token", slack: &config.Slack{Mode: "socket"}, env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"},
			want: "slack (mode socket) needs an app-level token"},
		{name: "bot token alone is not enough for HTTP mode", env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}, want: "slack (mode http) needs the app's signing secret"},
		{name: "scheduled announcements in Slack need a bot token", env: map[string]string{"SLACK_SIGNING_SECRET": slackSecret}, announce: true,
			want: "environment prod announces scheduled imports in Slack channel C0DEPLOY, which needs SLACK_BOT_TOKEN"},
		{name: "scheduled announcements with a bot token", env: map[string]string{"SLACK_SIGNING_SECRET": slackSecret, "SLACK_BOT_TOKEN": "xoxb-1"}, announce: true, want: "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse(examples.Packit)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Slack = tc.slack
			if tc.announce {
				prod, _ := cfg.Env("prod")
				prod.Channel = &config.ChannelRef{Platform: "slack", ID: "C0DEPLOY"}
			}
			b := bot.New(cfg, nil, nil, store.NewMemory(), nil)
			defer b.Close()
			env := adapterEnv{cfg: cfg, bot: b, log: slog.New(slog.DiscardHandler), getenv: func(k string) string { return tc.env[k] }}
			ad, err := newSlackAdapter(env)
			got := "none"
			switch {
			case err != nil:
				got = err.Error()
			case ad != nil:
				defer ad.(*slack.Adapter).Close()
				mux := http.NewServeMux()
				ad.Routes(mux)
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader("text=status")))
				switch rec.Code {
				case http.StatusUnauthorized: // unsigned: the endpoint is there and verifies
					got = "http"
				case http.StatusNotFound:
					got = "socket"
				default:
					got = "status " + strconv.Itoa(rec.Code)
				}
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want %q…", got, tc.want)
			}
		})
	}
}

// hookCatcher is a stand-in response_url that keeps what it receives.
type hookCatcher struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []string // response_type + block texts
}

func newHookCatcher(t *testing.T) *hookCatcher {
	h := &hookCatcher{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			ResponseType string `json:"response_type"`
			Blocks       []struct {
				Text *struct {
					Text string `json:"text"`
				} `json:"text"`
			} `json:"blocks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		parts := []string{msg.ResponseType}
		for _, b := range msg.Blocks {
			if b.Text != nil {
				parts = append(parts, b.Text.Text)
			}
		}
		h.mu.Lock()
		h.msgs = append(h.msgs, strings.Join(parts, "\n"))
		h.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookCatcher) wait(t *testing.T, want string) string {
	t.Helper()
	var found string
	poll.Until(t, 30*time.Second, "a response_url message containing "+want, func() (bool, string) {
		h.mu.Lock()
		msgs := append([]string(nil), h.msgs...)
		h.mu.Unlock()
		for _, m := range msgs {
			if strings.Contains(m, want) {
				found = m
				return true, ""
			}
		}
		return false, "got:\n" + strings.Join(msgs, "\n--\n")
	})
	return found
}

// TestServeSlackDemo runs `deploybot serve --demo` with only a signing
// secret, as the README's curl walk-through does, and answers hand-signed
// slash commands through their response_url: an unmapped user is told how
// to be mapped, a mapped one gets the demo cluster's status.
func TestServeSlackDemo(t *testing.T) {
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identities.Users = append(cfg.Identities.Users, config.UserMapping{Platform: "slack", ID: "T0PACKIT/U0ALICE", User: "alice", Groups: []string{"packit-devs"}})
	cfg.Channels = append(cfg.Channels, config.Channel{Platform: "slack", ID: "C0DEPLOY", Env: "prod"})
	cfg.Slack = &config.Slack{Mode: "http"}
	addr := serveDemo(t, cfg, map[string]string{"SLACK_SIGNING_SECRET": slackSecret}, nil, "--demo-tick", "10ms")

	hooks := newHookCatcher(t)
	command := func(user, text, trigger string) int {
		resp, err := http.DefaultClient.Do(slackCommandRequest(addr, user, text, hooks.srv.URL+"/"+trigger, trigger))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}

	if code := command("U0NOBODY", "whoami", "t1"); code != http.StatusOK {
		t.Fatalf("signed whoami: status %d", code)
	}
	who := hooks.wait(t, "not mapped")
	if !strings.HasPrefix(who, "ephemeral\n") || !strings.Contains(who, `id: "T0PACKIT/U0NOBODY"`) {
		t.Errorf("whoami of an unmapped user:\n%s\nwant a private reply naming the ID to map", who)
	}
	// C0DEPLOY names prod as its environment, so "status" alone means prod.
	if code := command("U0ALICE", "status", "t2"); code != http.StatusOK {
		t.Fatalf("signed status: status %d", code)
	}
	status := hooks.wait(t, "packit-worker")
	if !strings.HasPrefix(status, "in_channel\n") || !strings.Contains(status, "status prod (namespace packit--prod)") ||
		!strings.Contains(status, "statefulset/packit-worker-long-running") {
		t.Errorf("status in C0DEPLOY:\n%s\nwant prod's status from the demo cluster, in the channel", status)
	}

	// Unsigned, the same request is refused.
	resp, err := http.Post("http://"+addr+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("team_id=T0PACKIT&user_id=U0ALICE&channel_id=C0DEPLOY&text=status"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned command: status %d, want 401", resp.StatusCode)
	}
}
