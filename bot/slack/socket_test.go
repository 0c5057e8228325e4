package slack

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack/socketmode"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
)

// envelope is a Socket Mode request as Slack sends it over the WebSocket.
func envelope(t *testing.T, id, typ string, payload json.RawMessage, retry int) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"envelope_id": id, "type": typ, "payload": payload,
		"accepts_response_payload": typ == "slash_commands", "retry_attempt": retry, "retry_reason": map[bool]string{true: "timeout"}[retry > 0],
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSocketMode connects to slacktest's WebSocket through
// apps.connections.open with the app token, receives a slash command, its
// redelivery and a click, acknowledges every envelope, hands each event to
// the bot once, and answers through the Web API.
func TestSocketMode(t *testing.T) {
	f := newFakeSlack(t)
	acks := make(chan string, 16)
	go func() {
		// slacktest hands what the client writes (our acks) to SeenFeed.
		for m := range f.srv.SeenFeed {
			var ack struct {
				EnvelopeID string `json:"envelope_id"`
			}
			if json.Unmarshal([]byte(m), &ack) == nil && ack.EnvelopeID != "" {
				acks <- ack.EnvelopeID
			}
		}
	}()
	h := newCountingHandler()
	h.reply = &bot.Reply{Output: commands.Output{Private: true, Sections: []commands.Section{{Lines: []string{"You are alice."}}}}}
	a, err := New(h, WithMode(ModeSocket), WithAppToken("xapp-test"), WithBotToken("xoxb-test"), WithAPIURL(f.url()),
		WithLogger(testLogger(t)), WithSocketModeOptions(socketmode.OptionPingInterval(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})

	// The Socket Mode payload of a slash command is its HTTP form as JSON.
	form, _ := url.ParseQuery(string(commandBody(testTeam, "U0ALICE", "alice", testChannel, "whoami", "https://hooks.slack.test/commands/1", "sock.1")))
	cmd := map[string]string{}
	for k := range form {
		cmd[k] = form.Get(k)
	}
	cmdJSON, _ := json.Marshal(cmd)
	click, _ := url.ParseQuery(string(clickBody(testTeam, "U0BOB", "bob", testChannel, "1700000000.000001", bot.ActionApprove, "k3xq9v2m1p", "https://hooks.slack.test/actions/1", "sock.2")))
	f.srv.SendToWebsocket(envelope(t, "env-1", "slash_commands", cmdJSON, 0))
	f.srv.SendToWebsocket(envelope(t, "env-2", "slash_commands", cmdJSON, 1)) // Slack's redelivery
	f.srv.SendToWebsocket(envelope(t, "env-3", "interactive", json.RawMessage(click.Get("payload")), 0))

	acked := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(acked) < 3 {
		select {
		case id := <-acks:
			acked[id] = true
		case <-deadline:
			t.Fatalf("acknowledged %v, want env-1, env-2 and env-3", acked)
		}
	}
	h.waitCount(t, 2)
	f.waitFor("two private replies", func(calls []apiCall) bool {
		n := 0
		for _, c := range calls {
			if c.Method == "chat.postEphemeral" && strings.Contains(c.Blocks, "You are alice.") {
				n++
			}
		}
		return n == 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil // for the cleanup

	h.mu.Lock()
	defer h.mu.Unlock()
	want := map[string]int{"command/sock.1": 1, "action/sock.2": 1}
	for k, n := range want {
		if h.byKey[k] != n {
			t.Errorf("event %s handled %d times, want %d (all: %v)", k, h.byKey[k], n, h.byKey)
		}
	}
	for _, r := range h.reqs {
		if r.Platform != Name || !strings.HasPrefix(r.User.ID, testTeam+"/U0") || r.Channel != testChannel {
			t.Errorf("request %+v: want platform slack, user TEAM/USER, channel %s", r, testChannel)
		}
		if r.Action != nil && (r.Action.Kind != bot.ActionApprove || r.Action.RequestID != "k3xq9v2m1p") {
			t.Errorf("click became %+v", *r.Action)
		}
	}
	if st := a.Stats(); st.Duplicates != 1 {
		t.Errorf("stats %+v, want the redelivery counted as a duplicate", st)
	}
}
