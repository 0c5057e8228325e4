package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/deploybot/deploybot/bot/slack"
	"github.com/deploybot/deploybot/config"
)

// serveDemo runs `deploybot serve --demo` in this process with cfg written
// to a file (nil: the embedded default), the environment env and stderr
// (nil: discarded), on a free loopback port; it returns the address once
// serve listens and stops serve when the test ends.
func serveDemo(t *testing.T, cfg *config.Config, env map[string]string, stderr io.Writer, extra ...string) string {
	t.Helper()
	args := []string{"--demo", "--listen", "127.0.0.1:0", "--log-level", "warn"}
	if cfg != nil {
		raw, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "deploybot.yaml")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	if stderr == nil {
		stderr = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, append(args, extra...), func(k string) string { return env[k] }, io.Discard, stderr, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start within 30s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return addr
}

// slackCommandRequest is a /deploy slash command to addr as Slack sends it,
// signed now with the test's signing secret.
func slackCommandRequest(addr, user, text, responseURL, trigger string) *http.Request {
	body := url.Values{"team_id": {"T0PACKIT"}, "user_id": {user}, "user_name": {strings.ToLower(user)}, "channel_id": {"C0DEPLOY"},
		"command": {"/deploy"}, "text": {text}, "response_url": {responseURL}, "trigger_id": {trigger}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/slack/commands", strings.NewReader(body))
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Slack-Signature", slack.Sign(slackSecret, ts, []byte(body)))
	return req
}
