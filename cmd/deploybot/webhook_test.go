package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

const (
	distributionToken = "8d2f6a1c4e9b7035"
	githubHookSecret  = "It's a Secret to Everybody"
)

// TestNewWebhooks pins how the environment chooses the sources served.
func TestNewWebhooks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "quay-token")
	if err := os.WriteFile(file, []byte("q-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string // the sources served, "none", or the start of an error
	}{
		{name: "no secret: not served", want: "none"},
		{name: "one source", env: map[string]string{"DEPLOYBOT_WEBHOOK_SECRET_DISTRIBUTION": "t"}, want: "distribution"},
		{name: "from a file", env: map[string]string{"DEPLOYBOT_WEBHOOK_SECRET_QUAY_FILE": file}, want: "quay"},
		{name: "every source", env: map[string]string{"DEPLOYBOT_WEBHOOK_SECRET_DISTRIBUTION": "a", "DEPLOYBOT_WEBHOOK_SECRET_QUAY": "b",
			"DEPLOYBOT_WEBHOOK_SECRET_DOCKERHUB": "c", "DEPLOYBOT_WEBHOOK_SECRET_GITHUB": "d", "DEPLOYBOT_WEBHOOK_SECRET_HARBOR": "e"},
			want: "distribution quay dockerhub github harbor"},
		{name: "both set", env: map[string]string{"DEPLOYBOT_WEBHOOK_SECRET_QUAY": "x", "DEPLOYBOT_WEBHOOK_SECRET_QUAY_FILE": file},
			want: "both DEPLOYBOT_WEBHOOK_SECRET_QUAY and DEPLOYBOT_WEBHOOK_SECRET_QUAY_FILE are set"},
		{name: "file missing", env: map[string]string{"DEPLOYBOT_WEBHOOK_SECRET_HARBOR_FILE": filepath.Join(dir, "nope")},
			want: "reading DEPLOYBOT_WEBHOOK_SECRET_HARBOR_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(examples.Packit)
			if err != nil {
				t.Fatal(err)
			}
			st := store.NewMemory()
			b := bot.New(cfg, nil, nil, st, nil)
			defer b.Close()
			srv, err := newWebhooks(cfg, func(k string) string { return tt.env[k] }, b, st, slog.New(slog.DiscardHandler))
			got := "none"
			switch {
			case err != nil:
				got = err.Error()
			case srv != nil:
				var names []string
				for _, s := range srv.Sources() {
					names = append(names, string(s))
				}
				got = strings.Join(names, " ")
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestServeRegistryWebhooks: `serve --demo` with webhook secrets answers
// POST /registry/webhooks/{source} for exactly those sources: a forged
// notification 401, a genuine one 202 and then acted on (the log says what
// the push did to prod: a heads-up, prod imports by hand), a GitHub ping
// 200, a GET 405 and a source without a secret 404.
func TestServeRegistryWebhooks(t *testing.T) {
	logs := &lockedBuffer{}
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks = &config.Webhooks{DistributionHost: "quay.io"}
	addr := serveDemo(t, cfg, map[string]string{
		"SLACK_SIGNING_SECRET":                  slackSecret,
		"DEPLOYBOT_WEBHOOK_SECRET_DISTRIBUTION": distributionToken,
		"DEPLOYBOT_WEBHOOK_SECRET_GITHUB":       githubHookSecret,
	}, logs, "--log-level", "info")
	body, err := os.ReadFile("../../webhook/testdata/distribution-tagged-push.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(source string, body []byte, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+webhook.Path+source, bytes.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, answer := post("distribution", body, map[string]string{"Authorization": "Bearer guessed"}); code != 401 {
		t.Fatalf("forged: %d %q", code, answer)
	}
	if code, answer := post("distribution", body, map[string]string{"Authorization": "Bearer " + distributionToken}); code != 202 || !strings.Contains(answer, "quay.io/packit/packit-worker:prod") {
		t.Fatalf("genuine: %d %q", code, answer)
	}
	poll.Until(t, 20*time.Second, "the push's outcome in the log", func() (bool, string) {
		l := logs.String()
		return strings.Contains(l, `"msg":"registry push"`) && strings.Contains(l, `"env":"prod","service":"packit-worker"`) && strings.Contains(l, `"did":"heads-up"`), l
	})
	if strings.Contains(logs.String(), distributionToken) {
		t.Error("the log holds the webhook token")
	}
	ping := []byte(`{"zen":"Design for failure.","hook_id":1}`)
	if code, answer := post("github", ping, map[string]string{"X-GitHub-Event": "ping", webhook.SignatureHeader: webhook.Sign(githubHookSecret, ping)}); code != 200 || !strings.Contains(answer, "ping") {
		t.Fatalf("ping: %d %q", code, answer)
	}
	if code, answer := post("quay", []byte(`{}`), map[string]string{"Authorization": "Bearer " + distributionToken}); code != 404 {
		t.Fatalf("unconfigured source: %d %q", code, answer)
	}
	resp, err := http.Get("http://" + addr + webhook.Path + "distribution")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d, want 405", resp.StatusCode)
	}
}
