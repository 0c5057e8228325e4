package slack

import (
	"context"
	"fmt"

	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

const (
	testSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
	testTeam    = "T0PACKIT"
	testChannel = "C0DEPLOY"
)

// slackUsers are the demo people as Slack users of team T0PACKIT.
var slackUsers = map[string]string{"alice": "U0ALICE", "bob": "U0BOB", "carol": "U0CAROL"}

// slackConfig is examples/packit.yaml with the demo people mapped from
// Slack as well; bob's packit-admins group comes from a Slack user group.
func slackConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatalf("parsing examples/packit.yaml: %v", err)
	}
	cfg.Identities.Users = append(cfg.Identities.Users,
		config.UserMapping{Platform: Name, ID: testTeam + "/U0ALICE", User: "alice", Groups: []string{"packit-devs"}},
		config.UserMapping{Platform: Name, ID: testTeam + "/U0BOB", User: "bob"},
		config.UserMapping{Platform: Name, ID: testTeam + "/U0CAROL", User: "carol", Groups: []string{"packit-viewers"}},
	)
	cfg.Identities.Groups = append(cfg.Identities.Groups, config.GroupMapping{Platform: Name, ID: "S0ADMINS", Groups: []string{"packit-admins"}})
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

// flowEnv is the whole bot on the demo cluster behind the Slack adapter's
// HTTP endpoints, with a fake Slack Web API and fake response_urls.
type flowEnv struct {
	t        *testing.T
	botToken bool
	cfg      *config.Config
	demo     *demo.Cluster
	set      *cluster.Set
	store    store.Store
	exec     *countingExecutor
	bot      *bot.Bot
	adapter  *Adapter
	slack    *fakeSlack
	hooks    *hookServer
	sender   *slackSender

	mu sync.Mutex
	// hookUser maps a response_url path to the Slack user whose event it
	// answers, to tell whose private replies are whose.
	hookUser map[string]string
	// ts is the request message's timestamp, as clicks report it.
	ts string
}

func newFlowEnv(t *testing.T, botToken bool) *flowEnv {
	t.Helper()
	e := &flowEnv{t: t, botToken: botToken, cfg: slackConfig(t), hookUser: map[string]string{}}
	var err error
	e.demo, err = demo.New(e.cfg, demo.WithTick(5*time.Millisecond))
	if err != nil {
		t.Fatalf("building the demo cluster: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.demo.Start(ctx); err != nil {
		t.Fatalf("starting the demo cluster: %v", err)
	}
	t.Cleanup(func() { cancel(); e.demo.Stop() })
	envs := e.demo.EnvClients()
	kube := map[string]kubeclient.Interface{}
	for name, ec := range envs {
		kube[name] = ec.Kube
	}
	e.set = cluster.NewSet(envs)
	e.store = store.NewMemory()
	e.exec = &countingExecutor{inner: e.set}
	quiet := slog.New(slog.DiscardHandler)
	e.bot = bot.New(e.cfg, e.set, access.NewChecker(kube), e.store, e.exec, bot.WithLogger(quiet), bot.WithRolloutDeadline(20*time.Second))
	t.Cleanup(e.bot.Close)

	e.slack = newFakeSlack(t)
	e.slack.groups = []slackgo.UserGroup{{ID: "S0ADMINS", TeamID: testTeam, Handle: "packit-admins", Users: []string{"U0BOB"}}}
	e.hooks = newHookServer(t)
	e.adapter = e.newAdapter()
	e.bot.AddPlatform(e.adapter)
	e.sender = e.serve(e.adapter)
	return e
}

// newAdapter builds an adapter (a replica) in front of the env's bot.
func (e *flowEnv) newAdapter(opts ...Option) *Adapter {
	e.t.Helper()
	opts = append([]Option{
		WithSigningSecret(testSecret), WithAPIURL(e.slack.url()), WithLogger(testLogger(e.t)),
		WithUpdateInterval(5 * time.Millisecond), WithHookInterval(25 * time.Millisecond),
	}, opts...)
	if e.botToken {
		opts = append(opts, WithBotToken("xoxb-test-token"))
	}
	a, err := New(e.bot, opts...)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(a.Close)
	return a
}

// serve puts an adapter's endpoints on a loopback server.
func (e *flowEnv) serve(a *Adapter) *slackSender {
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return &slackSender{t: e.t, base: srv.URL, secret: testSecret, client: srv.Client()}
}

// command sends "/deploy text" as person and checks the ack.
func (e *flowEnv) command(person, text string) {
	e.t.Helper()
	hook := e.hookFor(person)
	body := commandBody(testTeam, slackUsers[person], person, testChannel, text, hook, e.sender.trigger())
	e.ack(e.sender, "/slack/commands", body)
}

// click presses a button of request id as person and returns the body
// sent, to resend it as Slack's retry.
func (e *flowEnv) click(s *slackSender, person string, action bot.ActionKind, id string) []byte {
	e.t.Helper()
	e.mu.Lock()
	ts := e.ts
	e.mu.Unlock()
	body := clickBody(testTeam, slackUsers[person], person, testChannel, ts, action, id, e.hookFor(person), s.trigger())
	e.ack(s, "/slack/interactions", body)
	return body
}

func (e *flowEnv) ack(s *slackSender, path string, body []byte) {
	e.t.Helper()
	status, took := s.send(path, body)
	if status != http.StatusOK {
		e.t.Fatalf("POST %s: status %d, want 200", path, status)
	}
	// Slack gives up after three seconds; the ack must not wait for the bot.
	if took > time.Second {
		e.t.Errorf("POST %s: ack took %s", path, took)
	}
}

func (e *flowEnv) hookFor(person string) string {
	u := e.hooks.url()
	e.mu.Lock()
	e.hookUser[strings.TrimPrefix(u, e.hooks.srv.URL)] = slackUsers[person]
	e.mu.Unlock()
	return u
}

// renditions returns every version of the request message Slack received,
// in order.
func (e *flowEnv) renditions() []string {
	var out []string
	if e.botToken {
		for _, c := range e.slack.all() {
			if c.Method == "chat.postMessage" || c.Method == "chat.update" {
				out = append(out, c.Blocks)
			}
		}
		return out
	}
	for _, p := range e.hooks.all() {
		if p.ResponseType == slackgo.ResponseTypeInChannel {
			out = append(out, p.Blocks)
		}
	}
	return out
}

// private returns the private replies person received.
func (e *flowEnv) private(person string) []string {
	var out []string
	if e.botToken {
		for _, c := range e.slack.all() {
			if c.Method == "chat.postEphemeral" && c.User == slackUsers[person] {
				out = append(out, c.Blocks)
			}
		}
		return out
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.hooks.all() {
		if p.ResponseType == slackgo.ResponseTypeEphemeral && e.hookUser[p.Path] == slackUsers[person] {
			out = append(out, p.Blocks)
		}
	}
	return out
}

// waitMessage waits until the request message's latest version contains
// every one of want, and returns it.
func (e *flowEnv) waitMessage(what string, want ...string) string {
	e.t.Helper()
	var last string
	ok := func() bool {
		r := e.renditions()
		if len(r) == 0 {
			return false
		}
		last = r[len(r)-1]
		for _, w := range want {
			if !strings.Contains(last, w) {
				return false
			}
		}
		return true
	}
	e.wait(what, ok, func() string { return "last version:\n" + last })
	return last
}

// waitPrivate waits until person got a private reply containing want.
func (e *flowEnv) waitPrivate(person, want string) {
	e.t.Helper()
	var got []string
	e.wait(person+" told "+want, func() bool {
		got = e.private(person)
		return slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) })
	}, func() string { return "private replies:\n" + strings.Join(got, "\n--\n") })
}

func (e *flowEnv) wait(what string, ok func() bool, show func() string) {
	e.t.Helper()
	deadline := time.After(30 * time.Second)
	for !ok() {
		select {
		case <-e.slack.change:
		case <-e.hooks.change:
		case <-time.After(25 * time.Millisecond):
		case <-deadline:
			e.t.Fatalf("waiting for %s; %s", what, show())
		}
	}
}

// TestImportProdFlow drives a whole `import prod` through signed HTTP
// requests only: alice's slash command, a refused Confirm by bob, alice's
// Confirm, refused Approves by alice (self) and carol (RBAC), bob's
// Approve, then Slack's retry of it. It asserts what Slack received and the
// cluster state after, with a bot token (Web API) and with only the
// signing secret (response_url, within its five uses per URL).
func TestImportProdFlow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		botToken bool
	}{
		{"bot token: chat.postMessage, chat.update, chat.postEphemeral", true},
		{"signing secret only: response_url", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFlowEnv(t, tc.botToken)

			e.command("alice", "import prod")
			msg := e.waitMessage("the request message", "waiting for the requester to confirm")
			m := regexp.MustCompile(`confirm=(\w+)`).FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("request message has no Confirm button:\n%s", msg)
			}
			id := m[1]
			// The bot records where the message is right after Post returns;
			// a click can only come after that in real life, so wait for it.
			e.wait("the message to be recorded", func() bool {
				r, err := e.store.Get(context.Background(), id)
				return err == nil && len(r.Messages) == 1
			}, func() string { return "no MessageRef stored" })
			for _, want := range []string{
				"header: #" + id + " import prod: waiting for the requester to confirm",
				// A section per target, from → to in short digests, and the workloads it rolls.
				"section: ```\npackit-worker: ",
				"rolls: deployment/packit-service-beat, statefulset/packit-worker-long-running, statefulset/packit-worker-short-running\n  built from packit-service@62391af\n```",
				"Requested by alice (alice)",
				// prod needs approval, so Confirm carries a dialog.
				"actions: confirm=" + id + "[primary dialog] cancel=" + id + "[]",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("request message lacks %q:\n%s", want, msg)
				}
			}
			if tc.botToken {
				var posts []apiCall
				for _, c := range e.slack.all() {
					if strings.HasPrefix(c.Method, "chat.") {
						posts = append(posts, c)
					}
				}
				if posts[0].Method != "chat.postMessage" || posts[0].Channel != testChannel || posts[0].Token != "xoxb-test-token" {
					t.Fatalf("first call = %s to %s with token %q, want chat.postMessage to %s with the bot token", posts[0].Method, posts[0].Channel, posts[0].Token, testChannel)
				}
				e.ts = posts[0].TS
			} else {
				e.ts = "1700000000.424242" // what Slack reports for a message posted through response_url
			}

			// Errors and refusals go to the clicking user only.
			e.click(e.sender, "bob", bot.ActionConfirm, id)
			e.waitPrivate("bob", "Only alice, who requested #"+id+", can confirm it.")

			e.click(e.sender, "alice", bot.ActionConfirm, id)
			e.waitMessage("the confirmed request", "waiting for approval", "approve="+id+"[primary]", "deny="+id+"[danger dialog]")

			e.click(e.sender, "alice", bot.ActionApprove, id)
			e.waitPrivate("alice", "you requested #"+id+"; someone else must approve it")
			e.click(e.sender, "carol", bot.ActionApprove, id)
			e.waitPrivate("carol", "carol may not do this in prod")

			approveBody := e.click(e.sender, "bob", bot.ActionApprove, id)
			final := e.waitMessage("the finished request", "import prod: succeeded", "approved by bob", "7/7 workloads settled")
			if strings.Contains(final, "actions:") {
				t.Errorf("the finished request still has buttons:\n%s", final)
			}

			// Slack's retry of bob's click (same trigger ID, fresh signature)
			// is acknowledged and does nothing; so is a second replica
			// receiving it after the first one forgot it.
			dupes := e.adapter.Stats().Duplicates
			if status, _ := e.sender.send("/slack/interactions", approveBody, headerRetryNum, "1", "X-Slack-Retry-Reason", "http_timeout"); status != http.StatusOK {
				t.Errorf("retry: status %d, want 200", status)
			}
			if got := e.adapter.Stats().Duplicates; got != dupes+1 {
				t.Errorf("retry: duplicates %d → %d, want one more", dupes, got)
			}
			done := make(chan string, 1)
			replica := e.newAdapter()
			replica.handler = handlerFunc(func(ctx context.Context, req bot.Request, resp bot.Responder) error {
				defer func() { done <- req.DedupeKey }()
				return e.bot.Handle(ctx, req, resp)
			})
			before := len(e.private("bob"))
			if status, _ := e.serve(replica).send("/slack/interactions", approveBody, headerRetryNum, "2"); status != http.StatusOK {
				t.Errorf("retry at a second replica: status %d, want 200", status)
			}
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the second replica never handed the retry to the bot")
			}
			e.bot.Wait()
			if got := len(e.private("bob")); got != before {
				t.Errorf("the retry at a second replica answered bob again: %v", e.private("bob")[before:])
			}

			// The cluster: executed once, every tag at the Plan's new image.
			e.bot.Wait()
			if n := e.exec.total(); n != 1 {
				t.Errorf("executions = %d, want 1", n)
			}
			rs, err := e.store.List(context.Background(), store.ListOptions{})
			if err != nil || len(rs) != 1 {
				t.Fatalf("requests = %d (%v), want 1", len(rs), err)
			}
			r := rs[0]
			if r.State != store.Succeeded {
				t.Fatalf("request state = %s, want Succeeded (%s)", r.State, r.Reason)
			}
			env, _ := e.cfg.Env("prod")
			for _, target := range r.Plan.Targets {
				svc, _ := e.cfg.Service(target.Service)
				ts, err := e.set.Tag(context.Background(), "prod", svc.ImageStream, env.Tag)
				if err != nil {
					t.Fatalf("reading %s:prod: %v", target.Service, err)
				}
				if ts.Current.Digest != target.To.Digest {
					t.Errorf("%s:prod is at %s, want the Plan's %s", target.Service, ts.Current.Digest, target.To.Digest)
				}
			}
			if len(r.Approvals) != 1 || r.Approvals[0].By.ChatID != testTeam+"/U0BOB" {
				t.Fatalf("approvals = %+v, want one by %s/U0BOB", r.Approvals, testTeam)
			}
			// With a bot token, bob's Slack user group adds its Kubernetes group.
			if got := slices.Contains(r.Approvals[0].By.Groups, "packit-admins"); got != tc.botToken {
				t.Errorf("bob's groups = %v; packit-admins from user group S0ADMINS: %v, want %v", r.Approvals[0].By.Groups, got, tc.botToken)
			}

			// What Slack saw: one message, updated in place.
			if tc.botToken {
				for _, c := range e.slack.all() {
					if c.Method == "chat.update" && (c.Channel != testChannel || c.TS != e.ts) {
						t.Errorf("chat.update of %s/%s, want the request message %s/%s", c.Channel, c.TS, testChannel, e.ts)
					}
				}
				if n := len(e.hooks.all()); n != 0 {
					t.Errorf("%d response_url posts with a bot token, want 0", n)
				}
			} else {
				if calls := e.slack.all(); len(calls) != 0 {
					t.Errorf("Web API calls without a bot token:\n%s", dumpCalls(calls))
				}
				for _, p := range e.hooks.all()[1:] {
					if p.ResponseType == slackgo.ResponseTypeInChannel && !p.ReplaceOriginal {
						t.Errorf("an update through response_url did not replace the original:\n%s", p.Blocks)
					}
				}
				if e.hooks.violations != 0 {
					t.Errorf("%d response_url posts beyond Slack's five uses per URL", e.hooks.violations)
				}
			}
			all := e.renditions()
			if !slices.ContainsFunc(all, func(s string) bool {
				return strings.Contains(s, "import prod: executing") && strings.Contains(s, "Progress")
			}) {
				t.Errorf("no progress update was shown; versions:\n%s", strings.Join(all, "\n--\n"))
			}
		})
	}
}

// testLogger logs through t, shown when a test fails.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// handlerFunc adapts a function to Handler.
type handlerFunc func(ctx context.Context, req bot.Request, resp bot.Responder) error

func (f handlerFunc) Handle(ctx context.Context, req bot.Request, resp bot.Responder) error {
	return f(ctx, req, resp)
}

// countingExecutor counts executions of Plans.
type countingExecutor struct {
	inner lifecycle.Executor
	mu    sync.Mutex
	runs  int
}

func (c *countingExecutor) Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error) {
	c.mu.Lock()
	c.runs++
	c.mu.Unlock()
	return c.inner.Execute(ctx, p, report)
}

func (c *countingExecutor) Follow(ctx context.Context, p plan.Plan, r plan.Result, d time.Duration, report func(plan.Progress)) []plan.RolloutResult {
	return c.inner.Follow(ctx, p, r, d, report)
}

func (c *countingExecutor) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs
}

// TestUnmappedClicks: a Slack user with no Kubernetes identity who presses
// Confirm, Cancel, Approve or Deny gets the same "not mapped" reply as a
// typed command, and the request does not move.
func TestUnmappedClicks(t *testing.T) {
	slackUsers["dave"] = "U0DAVE"
	t.Cleanup(func() { delete(slackUsers, "dave") })
	e := newFlowEnv(t, true)
	want := config.NotMapped(Name, testTeam+"/U0DAVE")

	e.command("dave", "import prod")
	e.waitPrivate("dave", want)
	e.command("alice", "import prod")
	msg := e.waitMessage("the request message", "waiting for the requester to confirm")
	id := regexp.MustCompile(`confirm=(\w+)`).FindStringSubmatch(msg)[1]
	e.wait("the message to be recorded", func() bool {
		r, err := e.store.Get(context.Background(), id)
		return err == nil && len(r.Messages) == 1
	}, func() string { return "no MessageRef stored" })
	for _, c := range e.slack.all() {
		if c.Method == "chat.postMessage" {
			e.ts = c.TS
		}
	}

	clicks := 0
	press := func(kind bot.ActionKind, state store.State) {
		t.Helper()
		e.click(e.sender, "dave", kind, id)
		clicks++
		e.wait(fmt.Sprintf("dave's %s refused", kind), func() bool {
			n := 0
			for _, p := range e.private("dave") {
				if strings.Contains(p, want) {
					n++
				}
			}
			return n == clicks+1
		}, func() string { return "private replies:\n" + strings.Join(e.private("dave"), "\n--\n") })
		if r, err := e.store.Get(context.Background(), id); err != nil || r.State != state || len(r.Approvals) != 0 {
			t.Fatalf("after dave's %s: %+v, %v; want %s with no approvals", kind, r, err, state)
		}
	}
	press(bot.ActionConfirm, store.AwaitingConfirm)
	press(bot.ActionCancel, store.AwaitingConfirm)
	e.click(e.sender, "alice", bot.ActionConfirm, id)
	e.wait("alice's confirm", func() bool {
		r, err := e.store.Get(context.Background(), id)
		return err == nil && r.State == store.AwaitingApproval
	}, func() string { return "not confirmed" })
	press(bot.ActionApprove, store.AwaitingApproval)
	press(bot.ActionDeny, store.AwaitingApproval)
	if e.exec.total() != 0 {
		t.Errorf("executed %d plans, want none", e.exec.total())
	}
}
