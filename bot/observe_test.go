package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/store"
)

// fakeMetrics records every call the bot makes to its Metrics.
type fakeMetrics struct {
	mu             sync.Mutex
	requests       []string // "platform command outcome"
	acks           []string
	rollouts       []string // "env action outcome"
	rolloutTimes   []time.Duration
	platformErrors []string
}

func (m *fakeMetrics) Request(platform, command, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, platform+" "+command+" "+outcome)
}

func (m *fakeMetrics) Ack(platform string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks = append(m.acks, platform+" "+d.String())
}

func (m *fakeMetrics) Rollout(env, action, outcome string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rollouts = append(m.rollouts, env+" "+action+" "+outcome)
	m.rolloutTimes = append(m.rolloutTimes, d)
}

func (m *fakeMetrics) PlatformError(platform, op string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.platformErrors = append(m.platformErrors, platform+" "+op)
}

func (m *fakeMetrics) lastRequest() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.requests) == 0 {
		return ""
	}
	return m.requests[len(m.requests)-1]
}

// flakyPlatform is a recorder whose Update fails while broken is set.
type flakyPlatform struct {
	recorder
	mu     sync.Mutex
	broken bool
}

func (p *flakyPlatform) Update(ctx context.Context, ref store.MessageRef, r bot.Reply) error {
	p.mu.Lock()
	broken := p.broken
	p.mu.Unlock()
	if broken {
		return errors.New("chat.update: 503 service unavailable")
	}
	return p.recorder.Update(ctx, ref, r)
}

// failingResponder cannot deliver replies.
type failingResponder struct{}

func (failingResponder) Respond(context.Context, bot.Reply) error {
	return errors.New("response_url: 404 expired")
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log records written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// observedBot is the bot on the demo cluster reporting to a fakeMetrics and
// logging JSON into a buffer.
func observedBot(t *testing.T) (*bot.Bot, *fakeMetrics, *flakyPlatform, *syncBuffer) {
	t.Helper()
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatalf("parsing examples/packit.yaml: %v", err)
	}
	d, err := demo.New(cfg, demo.WithTick(5*time.Millisecond))
	if err != nil {
		t.Fatalf("building the demo cluster: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatalf("starting the demo cluster: %v", err)
	}
	t.Cleanup(func() { cancel(); d.Stop() })
	envs := d.EnvClients()
	kube := map[string]kubeclient.Interface{}
	for name, ec := range envs {
		kube[name] = ec.Kube
	}
	set := cluster.NewSet(envs)
	m := &fakeMetrics{}
	p := &flakyPlatform{}
	logs := &syncBuffer{}
	b := bot.New(cfg, set, access.NewChecker(kube), store.NewMemory(), set,
		bot.WithPlatform(p), bot.WithMetrics(m), bot.WithRolloutDeadline(20*time.Second),
		bot.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	t.Cleanup(b.Close)
	return b, m, p, logs
}

// TestMetricsRequestOutcomes pins the command and outcome labels each kind
// of inbound request is counted under.
func TestMetricsRequestOutcomes(t *testing.T) {
	b, m, p, _ := observedBot(t)
	say := func(user, text, dedupe string) bot.Request {
		return bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: user, Name: user}, Channel: terminal.Channel, Text: text, DedupeKey: dedupe}
	}
	tests := []struct {
		name string
		req  bot.Request
		want string
	}{
		{"a read", say("alice", "status prod", ""), "terminal status ok"},
		{"help", say("alice", "help", ""), "terminal help ok"},
		{"help for a command", say("alice", "import --help", ""), "terminal help ok"},
		{"the bare prefix", say("alice", "/deploy", ""), "terminal help ok"},
		{"an unknown command", say("alice", "frobnicate prod", ""), "terminal none invalid"},
		{"a bad argument", say("alice", "import nowhere", ""), "terminal import invalid"},
		{"an empty message", say("alice", "   ", ""), "terminal none ignored"},
		{"RBAC refuses", say("carol", "import prod", ""), "terminal import refused"},
		{"an unmapped user", say("mallory", "import stg", ""), "terminal import refused"},
		{"a new event", say("alice", "status stg", "ev-1"), "terminal status ok"},
		{"the same event again", say("alice", "status stg", "ev-1"), "terminal none duplicate"},
		{"a button for no request", bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: "bob", Name: "bob"}, Channel: terminal.Channel,
			Action: &bot.Action{Kind: bot.ActionApprove, RequestID: "nosuchid00"}}, "terminal approve refused"},
		{"a request opened", say("alice", "import stg worker", ""), "terminal import ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := b.Handle(context.Background(), tt.req, &responder{}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if got := m.lastRequest(); got != tt.want {
				t.Errorf("counted %q, want %q", got, tt.want)
			}
		})
	}
	if got := p.count(); got != 1 {
		t.Fatalf("%d request messages posted, want 1 (import stg worker)", got)
	}

	t.Run("a reply that cannot be sent", func(t *testing.T) {
		err := b.Handle(context.Background(), say("alice", "status prod", ""), failingResponder{})
		if err == nil {
			t.Fatal("Handle returned no error though the reply failed")
		}
		if got, want := m.lastRequest(), "terminal status error"; got != want {
			t.Errorf("counted %q, want %q", got, want)
		}
	})
}

// TestMetricsRolloutAndPlatformErrors pins that an executed request's rollout
// is observed once with its outcome, and that failed message updates count
// as platform API errors.
func TestMetricsRolloutAndPlatformErrors(t *testing.T) {
	b, m, p, _ := observedBot(t)
	ctx := context.Background()
	alice := bot.ChatUser{ID: "alice", Name: "alice"}
	if err := b.Handle(ctx, bot.Request{Platform: terminal.Name, User: alice, Channel: terminal.Channel, Text: "import stg worker"}, &responder{}); err != nil {
		t.Fatal(err)
	}
	post, ok := p.post(0)
	if !ok {
		t.Fatal("no request message posted")
	}
	p.mu.Lock()
	p.broken = true
	p.mu.Unlock()
	if err := b.Handle(ctx, bot.Request{Platform: terminal.Name, User: alice, Channel: terminal.Channel,
		Action: &bot.Action{Kind: bot.ActionConfirm, RequestID: post.RequestID}}, &responder{}); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	b.ObserveAck("slack", 40*time.Millisecond)

	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.rollouts) != 1 || m.rollouts[0] != "stg import Succeeded" {
		t.Fatalf("rollouts observed: %q, want one \"stg import Succeeded\"", m.rollouts)
	}
	if m.rolloutTimes[0] <= 0 || m.rolloutTimes[0] > 20*time.Second {
		t.Errorf("rollout took %v, want more than 0 and within the 20s deadline", m.rolloutTimes[0])
	}
	if len(m.platformErrors) == 0 {
		t.Fatal("no platform API error counted though every update failed")
	}
	for _, e := range m.platformErrors {
		if e != "terminal update" {
			t.Errorf("platform error %q, want \"terminal update\"", e)
		}
	}
	if len(m.acks) != 1 || m.acks[0] != "slack 40ms" {
		t.Errorf("acks: %q, want [\"slack 40ms\"]", m.acks)
	}
}

// TestLogsCarryEventAndRequestIDs pins that the JSON log lines of one inbound
// event share its ID, and those about a request carry the request's ID, so a
// click can be followed from the webhook to the audit trail.
func TestLogsCarryEventAndRequestIDs(t *testing.T) {
	b, _, p, logs := observedBot(t)
	req := bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: "alice", Name: "alice"}, Channel: terminal.Channel,
		Text: "import stg worker", DedupeKey: "evt-7"}
	if err := b.Handle(context.Background(), req, &responder{}); err != nil {
		t.Fatal(err)
	}
	post, ok := p.post(0)
	if !ok {
		t.Fatal("no request message posted")
	}
	var command, audits int
	for _, rec := range logs.lines(t) {
		switch rec["msg"] {
		case "command":
			command++
			if rec["event"] != "evt-7" {
				t.Errorf("command line: event = %v, want evt-7: %v", rec["event"], rec)
			}
		case "audit":
			audits++
			if rec["event"] != "evt-7" || rec["request"] != post.RequestID {
				t.Errorf("audit line: event = %v, request = %v, want evt-7 and %s: %v", rec["event"], rec["request"], post.RequestID, rec)
			}
		}
	}
	if command != 1 || audits < 2 {
		t.Fatalf("%d command and %d audit lines, want 1 and at least 2 (plan, open)", command, audits)
	}
}
