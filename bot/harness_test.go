package bot_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/clock"
	"github.com/deploybot/deploybot/clock/clocktest"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/feed"
	"github.com/deploybot/deploybot/gitrepo"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/release"
	"github.com/deploybot/deploybot/store"
)

// harness is the whole bot on the demo cluster, with a recording platform
// and a clock the test moves.
type harness struct {
	t        testing.TB
	cfg      *config.Config
	demo     *demo.Cluster
	set      *cluster.Set
	store    store.Store
	platform *recorder
	exec     *countingExecutor
	bot      *bot.Bot
	clock    *clocktest.Clock
}

func newHarness(t testing.TB, opts ...func(*harnessOptions)) *harness {
	t.Helper()
	o := harnessOptions{}
	for _, f := range opts {
		f(&o)
	}
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatalf("parsing examples/packit.yaml: %v", err)
	}
	h := &harness{t: t, cfg: cfg, clock: clocktest.New(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))}
	h.demo, err = demo.New(cfg, append([]demo.Option{demo.WithTick(5 * time.Millisecond)}, o.demo...)...)
	if err != nil {
		t.Fatalf("building the demo cluster: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.demo.Start(ctx); err != nil {
		t.Fatalf("starting the demo cluster: %v", err)
	}
	t.Cleanup(func() { cancel(); h.demo.Stop() })
	envs := h.demo.EnvClients()
	kube := map[string]kubeclient.Interface{}
	for name, ec := range envs {
		kube[name] = ec.Kube
	}
	h.set = cluster.NewSet(envs)
	h.store = o.store
	if h.store == nil {
		h.store = store.NewMemory()
	}
	h.platform = &recorder{}
	h.exec = &countingExecutor{inner: h.set}
	bopts := []bot.Option{bot.WithClock(h.clock), bot.WithPlatform(h.platform), bot.WithLogger(slog.New(slog.DiscardHandler)), bot.WithRolloutDeadline(20 * time.Second)}
	if o.release {
		// The demo's repositories over go-git, its CI building labelled
		// images (demo/git.go, demo/ci.go), wired as deploybot chat --demo does.
		cfg.Release.AfterBuild = o.afterBuild
		for i := range cfg.Repositories {
			cfg.Repositories[i].TokenEnv = ""
		}
		git := gitrepo.Configured{C: gitrepo.New()}
		bopts = append(bopts, bot.WithGit(git), bot.WithReleaser(release.New(cfg, git, h.demo.ImageRegistry(), release.WithPoll(10*time.Millisecond))))
	}
	if o.feed {
		// stg's deploy feed in the terminal channel, on the real clock
		// (the demo's objects carry real times) and with short timings.
		for i := range cfg.Environments {
			if cfg.Environments[i].Name == "stg" {
				cfg.Environments[i].Feed = &config.Feed{Channel: &config.ChannelRef{Platform: terminal.Name, ID: terminal.Channel}}
			}
		}
		quiet, minUpdate := 50*time.Millisecond, feedMinUpdate
		if o.feedDefaults {
			quiet, minUpdate = feed.DefaultQuiet, feed.DefaultMinUpdate
		}
		bopts = append(bopts, bot.WithClock(clock.Real), bot.WithFeedOptions(feed.WithTimings(quiet, feed.DefaultMaxBurst, minUpdate)))
	}
	h.bot = bot.New(cfg, h.set, access.NewChecker(kube), h.store, h.exec, bopts...)
	t.Cleanup(h.bot.Close)
	return h
}

type harnessOptions struct {
	store store.Store
	demo  []demo.Option
	feed  bool // stg's deploy feed on, and the real clock
	// feedDefaults gives the feed its default timings, not the short ones.
	feedDefaults bool
	release      bool   // with git and the releaser
	afterBuild   string // release.afterBuild
}

// withRelease gives the bot the demo's repositories and the releaser.
func withRelease(afterBuild string) func(*harnessOptions) {
	return func(o *harnessOptions) { o.release, o.afterBuild = true, afterBuild }
}

// withFeed turns on stg's deploy feed, with the demo options given.
func withFeed(opts ...demo.Option) func(*harnessOptions) {
	return func(o *harnessOptions) { o.feed, o.demo = true, opts }
}

// feedMinUpdate is the least time between two updates of a feed message
// in the harness.
const feedMinUpdate = 200 * time.Millisecond

func withStore(s store.Store) func(*harnessOptions) { return func(o *harnessOptions) { o.store = s } }

func (h *harness) advance(d time.Duration) { h.clock.Add(d) }

// say sends text as a terminal user and returns the private replies as text.
func (h *harness) say(user, text string) string {
	h.t.Helper()
	return h.send(bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: user, Name: user}, Channel: terminal.Channel, Text: text})
}

// click presses a button as a terminal user.
func (h *harness) click(user string, kind bot.ActionKind, id string) string {
	h.t.Helper()
	return h.send(bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: user, Name: user}, Channel: terminal.Channel,
		Action: &bot.Action{Kind: kind, RequestID: id}})
}

func (h *harness) send(req bot.Request) string {
	h.t.Helper()
	var r responder
	if err := h.bot.Handle(context.Background(), req, &r); err != nil {
		h.t.Fatalf("Handle(%q): %v", req.Text, err)
	}
	return r.text()
}

// open runs a mutating command and returns the ID of the request it opened.
func (h *harness) open(user, text string) string {
	h.t.Helper()
	before := h.platform.count()
	if reply := h.say(user, text); reply != "" {
		h.t.Fatalf("%s: %q: unexpected reply %q", user, text, reply)
	}
	post, ok := h.platform.post(before)
	if !ok {
		h.t.Fatalf("%s: %q opened no request", user, text)
	}
	return post.RequestID
}

func (h *harness) request(id string) *store.Request {
	h.t.Helper()
	r, err := h.store.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

func (h *harness) requests() []*store.Request {
	h.t.Helper()
	rs, err := h.store.List(context.Background(), store.ListOptions{})
	if err != nil {
		h.t.Fatalf("List: %v", err)
	}
	return rs
}

func (h *harness) tag(env, service string) plan.TagState {
	h.t.Helper()
	e, _ := h.cfg.Env(env)
	s, _ := h.cfg.Service(service)
	ts, err := h.set.Tag(context.Background(), env, s.ImageStream, e.Tag)
	if err != nil {
		h.t.Fatalf("Tag(%s, %s): %v", env, service, err)
	}
	return ts
}

// responder collects the replies to one request.
type responder struct {
	mu      sync.Mutex
	replies []bot.Reply
}

func (r *responder) Respond(_ context.Context, reply bot.Reply) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replies = append(r.replies, reply)
	return nil
}

func (r *responder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, reply := range r.replies {
		out = append(out, strings.Join(terminal.Render(reply.Output), "\n"))
	}
	return strings.Join(out, "\n")
}

// recorder is a Platform that keeps every request message and its updates.
type recorder struct {
	mu      sync.Mutex
	posts   []bot.Reply
	updates map[string][]bot.Reply
	// failPosts makes Post fail, as a chat API that is down does.
	failPosts bool
}

func (p *recorder) Name() string { return terminal.Name }

func (p *recorder) Post(_ context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failPosts {
		return store.MessageRef{}, errors.New("chat API unavailable (503)")
	}
	p.posts = append(p.posts, r)
	return store.MessageRef{Platform: terminal.Name, Channel: channel, ID: r.RequestID}, nil
}

func (p *recorder) Update(_ context.Context, ref store.MessageRef, r bot.Reply) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.updates == nil {
		p.updates = map[string][]bot.Reply{}
	}
	p.updates[ref.ID] = append(p.updates[ref.ID], r)
	return nil
}

func (p *recorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.posts)
}

func (p *recorder) post(i int) (bot.Reply, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.posts) {
		return bot.Reply{}, false
	}
	return p.posts[i], true
}

// last returns the latest rendering of a request's message.
func (p *recorder) last(id string) bot.Reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.updates[id]; len(u) > 0 {
		return u[len(u)-1]
	}
	for _, r := range p.posts {
		if r.RequestID == id {
			return r
		}
	}
	return bot.Reply{}
}

func (p *recorder) all(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.posts {
		if r.RequestID == id {
			out = append(out, terminal.Render(r.Output)...)
		}
	}
	for _, r := range p.updates[id] {
		out = append(out, terminal.Render(r.Output)...)
	}
	return strings.Join(out, "\n")
}

// countingExecutor counts how often each request's Plan is executed.
type countingExecutor struct {
	inner lifecycle.Executor
	mu    sync.Mutex
	runs  map[string]int
	// progress counts the rollout progress events Follow reported.
	progress int
}

func (c *countingExecutor) Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error) {
	c.mu.Lock()
	if c.runs == nil {
		c.runs = map[string]int{}
	}
	c.runs[p.Hash()]++
	c.mu.Unlock()
	return c.inner.Execute(ctx, p, report)
}

func (c *countingExecutor) Follow(ctx context.Context, p plan.Plan, r plan.Result, d time.Duration, report func(plan.Progress)) []plan.RolloutResult {
	return c.inner.Follow(ctx, p, r, d, func(ev plan.Progress) {
		c.mu.Lock()
		c.progress++
		c.mu.Unlock()
		report(ev)
	})
}

func (c *countingExecutor) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.runs {
		n += v
	}
	return n
}
