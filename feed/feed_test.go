package feed_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/feed"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// env is what the fakes below share: the tags of env "stg", changed by
// the test, and a poke to every watcher when they change.
type env struct {
	mu       sync.Mutex
	tags     map[string]plan.TagState
	watchers []func()
	// rollouts are released by the test: Follow blocks until then, and
	// reports the outcome given.
	rollout chan []plan.RolloutResult
	follows int
}

func (e *env) Observe(context.Context, string) (map[string]plan.TagState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.tags), nil
}

func (e *env) ObservedPlan(_ context.Context, env string, changes []plan.Target) (plan.Plan, error) {
	p := plan.Plan{Action: plan.ActionObserved, Env: env, Namespace: "packit-stg"}
	for _, c := range changes {
		c.Workloads = []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: c.Service, Triggered: true}}
		p.Targets = append(p.Targets, c)
	}
	return p, nil
}

func (e *env) WatchEnv(ctx context.Context, _ string, changed func()) error {
	e.mu.Lock()
	e.watchers = append(e.watchers, changed)
	e.mu.Unlock()
	changed() // the initial list
	<-ctx.Done()
	return nil
}

func (e *env) Follow(ctx context.Context, p plan.Plan, _ plan.Result, _ time.Duration, report func(plan.Progress)) []plan.RolloutResult {
	e.mu.Lock()
	e.follows++
	e.mu.Unlock()
	for i := range 20 { // a rollout reports often: the feed must not pass each on
		report(plan.Progress{Service: p.Targets[0].Service, Workload: p.Targets[0].Workloads[0], Phase: plan.PhaseRolling, Desired: 20, Updated: int32(i)})
	}
	select {
	case <-ctx.Done():
		return nil
	case rs := <-e.rollout:
		return rs
	}
}

// set gives service's tag a new image and pokes the watchers.
func (e *env) set(service, digest string) {
	e.mu.Lock()
	ts := e.tags[service]
	ev := plan.TagEvent{Created: time.Now(), Digest: digest, Ref: "quay.io/packit/" + service + "@" + digest}
	ts.Current, ts.History, ts.ChangedBy = ev, append([]plan.TagEvent{ev}, ts.History...), "scheduled import"
	e.tags[service] = ts
	ws := append([]func(){}, e.watchers...)
	e.mu.Unlock()
	for _, w := range ws {
		w()
	}
}

// chat records the feed's messages.
type chat struct {
	mu      sync.Mutex
	posts   []feed.Change
	updates map[string][]time.Time
	last    map[string]feed.Change
}

func (c *chat) Post(_ context.Context, platform, channel string, ch feed.Change) (store.MessageRef, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts = append(c.posts, ch)
	c.last[ch.Record.ID] = ch
	return store.MessageRef{Platform: platform, Channel: channel, ID: fmt.Sprint(len(c.posts))}, nil
}

func (c *chat) Update(_ context.Context, ref store.MessageRef, ch feed.Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updates[ref.ID] = append(c.updates[ref.ID], time.Now())
	c.last[ch.Record.ID] = ch
	return nil
}

func (c *chat) snapshot() (posts []feed.Change, updates map[string][]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]feed.Change(nil), c.posts...), maps.Clone(c.updates)
}

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

var services = []string{"packit-dashboard", "packit-service", "packit-service-fedmsg", "packit-worker", "tokman"}

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("environments:\n  - name: stg\n    namespace: packit-stg\n    channel: {platform: terminal, id: stg-deploys}\n    feed: {" + extra + "}\nservices:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  - {name: %s, repository: quay.io/packit/%s}\n", s, s)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newEnv() *env {
	e := &env{tags: map[string]plan.TagState{}, rollout: make(chan []plan.RolloutResult, 10)}
	old := time.Now().Add(-time.Hour)
	for _, s := range services {
		ev := plan.TagEvent{Created: old, Digest: digest('a'), Ref: "quay.io/packit/" + s + "@" + digest('a')}
		e.tags[s] = plan.TagState{Stream: s, Tag: "stg", Current: ev, History: []plan.TagEvent{ev}}
	}
	return e
}

func newFeed(cfg *config.Config, st store.Store, e *env, c *chat, replica string) *feed.Feed {
	return feed.New(cfg, st, e, e, e, c, feed.WithReplicaName(replica), feed.WithLogger(slog.New(slog.DiscardHandler)),
		feed.WithTimings(20*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond), feed.WithHeartbeat(50*time.Millisecond))
}

func run(f *feed.Feed) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func records(t *testing.T, st store.Store) []*store.Request {
	t.Helper()
	all, err := st.List(context.Background(), store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*store.Request
	for _, r := range all {
		if r.Plan.Action == plan.ActionObserved {
			out = append(out, r)
		}
	}
	return out
}

// A five-service import out of band is one message, updated at most once
// per MinUpdate however often the rollout reports, and its end is shown.
func TestBurstIsOneMessage(t *testing.T) {
	e, c, st := newEnv(), &chat{updates: map[string][]time.Time{}, last: map[string]feed.Change{}}, store.NewMemory()
	f := newFeed(testConfig(t, ""), st, e, c, "r1")
	stop := run(f)
	defer stop()
	waitFor(t, "the watch", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.watchers) == 1 })
	for _, s := range services {
		e.set(s, digest('b'))
	}
	waitFor(t, "the post", func() bool { p, _ := c.snapshot(); return len(p) == 1 })
	e.rollout <- []plan.RolloutResult{{Workload: plan.WorkloadRef{Kind: plan.KindDeployment, Name: "packit-worker"}, Outcome: plan.PhaseSettled}}
	waitFor(t, "the end", func() bool { rs := records(t, st); return len(rs) == 1 && rs[0].State == store.Succeeded })
	time.Sleep(150 * time.Millisecond) // nothing more comes
	posts, updates := c.snapshot()
	if len(posts) != 1 || len(posts[0].Record.Plan.Targets) != 5 {
		t.Fatalf("posts = %d (targets %d), want 1 with the 5 services", len(posts), len(posts[0].Record.Plan.Targets))
	}
	ups := updates["1"]
	for i := 1; i < len(ups); i++ {
		if gap := ups[i].Sub(ups[i-1]); gap < 90*time.Millisecond {
			t.Errorf("updates %d and %d came %v apart, less than MinUpdate 100ms", i-1, i, gap)
		}
	}
	if len(ups) == 0 || len(ups) > 3 {
		t.Errorf("%d updates for 20 progress reports and the end, want 1 to 3", len(ups))
	}
	r := records(t, st)[0]
	if r.Requester.Name != "scheduled import" || !strings.Contains(r.Command, "packit-worker") {
		t.Errorf("record by %q: %q", r.Requester.Name, r.Command)
	}
	if got := c.last[r.ID].Record.State; got != store.Succeeded {
		t.Errorf("the message shows %s, want Succeeded", got)
	}
	t.Logf("5 services changed: %d post, %d updates", len(posts), len(ups))
}

// A change the bot's own request makes is not posted.
func TestOwnChangeIsNotPosted(t *testing.T) {
	e, c, st := newEnv(), &chat{updates: map[string][]time.Time{}, last: map[string]feed.Change{}}, store.NewMemory()
	ctx := context.Background()
	now := time.Now()
	own := &store.Request{ID: store.NewID(), State: store.Executing, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour),
		Plan: plan.Plan{Action: plan.ActionImport, Env: "stg", Targets: []plan.Target{{Service: "packit-worker"}}}}
	if err := st.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	stop := run(newFeed(testConfig(t, ""), st, e, c, "r1"))
	defer stop()
	waitFor(t, "the watch", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.watchers) == 1 })
	e.set("packit-worker", digest('b'))
	time.Sleep(200 * time.Millisecond)
	if p, _ := c.snapshot(); len(p) != 0 {
		t.Fatalf("the bot's own import was posted: %+v", p[0].Record.Command)
	}
	e.set("tokman", digest('c')) // and one that is not the bot's
	waitFor(t, "the post", func() bool { p, _ := c.snapshot(); return len(p) == 1 })
	if p, _ := c.snapshot(); p[0].Record.Plan.Targets[0].Service != "tokman" || len(p[0].Record.Plan.Targets) != 1 {
		t.Errorf("posted %q, want tokman's change only", p[0].Record.Command)
	}
}

// Two leaders for a moment post a change once; when the one following it
// stops mid-rollout, the next one takes the record over and ends the same
// message, and a change while no leader watched is posted late, once.
func TestHandOver(t *testing.T) {
	e, c, st := newEnv(), &chat{updates: map[string][]time.Time{}, last: map[string]feed.Change{}}, store.NewMemory()
	cfg := testConfig(t, "")
	stopA := run(newFeed(cfg, st, e, c, "a"))
	stopB := run(newFeed(cfg, st, e, c, "b"))
	waitFor(t, "two watches", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.watchers) == 2 })
	e.set("packit-worker", digest('b'))
	waitFor(t, "the post", func() bool { p, _ := c.snapshot(); return len(p) == 1 })
	time.Sleep(100 * time.Millisecond)
	if p, _ := c.snapshot(); len(p) != 1 {
		t.Fatalf("two leaders posted the change %d times", len(p))
	}
	rec := records(t, st)[0]
	// The one following it loses the lease mid-rollout; the other stays
	// and goes too, then a third leader comes.
	stopA()
	stopB()
	e.set("tokman", digest('c')) // while no one leads
	if r, _ := st.Get(context.Background(), rec.ID); r.State != store.Executing {
		t.Fatalf("the record is %s after its leader stopped, want Executing", r.State)
	}
	stopC := run(newFeed(cfg, st, e, c, "c"))
	defer stopC()
	waitFor(t, "the late post", func() bool { p, _ := c.snapshot(); return len(p) == 2 })
	e.rollout <- []plan.RolloutResult{{Workload: plan.WorkloadRef{Kind: plan.KindDeployment, Name: "packit-worker"}, Outcome: plan.PhaseFailed, Reason: "packit-worker-1: CrashLoopBackOff"}}
	e.rollout <- []plan.RolloutResult{{Workload: plan.WorkloadRef{Kind: plan.KindDeployment, Name: "tokman"}, Outcome: plan.PhaseSettled}}
	waitFor(t, "both ended", func() bool {
		rs := records(t, st)
		return len(rs) == 2 && rs[0].State.Terminal() && rs[1].State.Terminal()
	})
	got, _ := st.Get(context.Background(), rec.ID)
	if got.State != store.Failed || got.Executor != "c" || !strings.Contains(got.Reason, "CrashLoopBackOff") || len(got.Messages) != 1 {
		t.Errorf("the taken-over record: %s by %s, reason %q, %d messages", got.State, got.Executor, got.Reason, len(got.Messages))
	}
	posts, updates := c.snapshot()
	if len(posts) != 2 {
		t.Errorf("%d posts, want 2: the first change once and the late one once", len(posts))
	}
	if c.last[rec.ID].Record.State != store.Failed || len(updates[got.Messages[0].ID]) == 0 {
		t.Errorf("the first message was not updated to its end: %s", c.last[rec.ID].Record.State)
	}
}

// With failuresOnly a settled change posts nothing, a failed one posts
// once, at its end.
func TestFailuresOnly(t *testing.T) {
	e, c, st := newEnv(), &chat{updates: map[string][]time.Time{}, last: map[string]feed.Change{}}, store.NewMemory()
	stop := run(newFeed(testConfig(t, "failuresOnly: true"), st, e, c, "r1"))
	defer stop()
	waitFor(t, "the watch", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.watchers) == 1 })
	e.set("packit-worker", digest('b'))
	e.rollout <- []plan.RolloutResult{{Workload: plan.WorkloadRef{Kind: plan.KindDeployment, Name: "packit-worker"}, Outcome: plan.PhaseSettled}}
	waitFor(t, "the end", func() bool { rs := records(t, st); return len(rs) == 1 && rs[0].State.Terminal() })
	e.set("tokman", digest('c'))
	e.rollout <- []plan.RolloutResult{{Workload: plan.WorkloadRef{Kind: plan.KindDeployment, Name: "tokman"}, Outcome: plan.PhaseFailed, Reason: "tokman-1: ImagePullBackOff"}}
	waitFor(t, "the post", func() bool { p, _ := c.snapshot(); return len(p) == 1 })
	p, _ := c.snapshot()
	if p[0].Record.State != store.Failed || p[0].Record.Plan.Targets[0].Service != "tokman" {
		t.Errorf("posted %s %q, want tokman's failure", p[0].Record.State, p[0].Record.Command)
	}
}

// flakyChat fails its first Post, as a platform's transient error.
type flakyChat struct {
	chat
	failed bool
}

func (c *flakyChat) Post(ctx context.Context, platform, channel string, ch feed.Change) (store.MessageRef, error) {
	c.mu.Lock()
	if !c.failed {
		c.failed = true
		c.mu.Unlock()
		return store.MessageRef{}, errors.New("503 from the platform")
	}
	c.mu.Unlock()
	return c.chat.Post(ctx, platform, channel, ch)
}

type slowEnv struct{ *env }

func (e slowEnv) Follow(ctx context.Context, p plan.Plan, _ plan.Result, _ time.Duration, report func(plan.Progress)) []plan.RolloutResult {
	for i := range 6 {
		time.Sleep(150 * time.Millisecond)
		report(plan.Progress{Service: p.Targets[0].Service, Workload: p.Targets[0].Workloads[0], Phase: plan.PhaseRolling, Desired: 6, Updated: int32(i)})
	}
	return []plan.RolloutResult{{Workload: p.Targets[0].Workloads[0], Outcome: plan.PhaseSettled}}
}

// A first post that fails (a 503) is made again at the next update, once:
// later updates edit that message rather than post more.
func TestFirstPostFails(t *testing.T) {
	e := newEnv()
	c := &flakyChat{chat: chat{updates: map[string][]time.Time{}, last: map[string]feed.Change{}}}
	st := store.NewMemory()
	cfg := testConfig(t, "")
	se := slowEnv{e}
	f := feed.New(cfg, st, se, se, se, c, feed.WithReplicaName("a"), feed.WithLogger(slog.New(slog.DiscardHandler)),
		feed.WithTimings(20*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond), feed.WithHeartbeat(10*time.Second))
	stop := run(f)
	defer stop()
	waitFor(t, "watch", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.watchers) == 1 })
	e.set("packit-worker", digest('b'))
	waitFor(t, "end", func() bool { rs := records(t, st); return len(rs) == 1 && rs[0].State.Terminal() })
	time.Sleep(300 * time.Millisecond)
	posts, _ := c.snapshot()
	rec := records(t, st)[0]
	if len(posts) != 1 || len(rec.Messages) != 1 {
		t.Errorf("one change whose first post failed: %d posts, %d message references; want 1 and 1", len(posts), len(rec.Messages))
	}
}

// A replica that leads again later starts over: a change another leader
// posted meanwhile, older than the lookback by then, is not posted again
// once its claim has expired.
func TestLeadingAgainStartsOver(t *testing.T) {
	e, c, st := newEnv(), &chat{updates: map[string][]time.Time{}, last: map[string]feed.Change{}}, store.NewMemory()
	cfg := testConfig(t, "")
	const lookback = 300 * time.Millisecond
	opts := func(name string) *feed.Feed {
		return feed.New(cfg, st, e, e, e, c, feed.WithReplicaName(name), feed.WithLogger(slog.New(slog.DiscardHandler)),
			feed.WithTimings(20*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond), feed.WithLookback(lookback))
	}
	a := opts("a")
	stop := run(a) // a's first term: sees every tag at a
	waitFor(t, "a's watch", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.watchers) == 1 })
	time.Sleep(100 * time.Millisecond)
	stop()
	e.set("tokman", digest('c'))
	e.rollout <- []plan.RolloutResult{{Workload: plan.WorkloadRef{Kind: plan.KindDeployment, Name: "tokman"}, Outcome: plan.PhaseSettled}}
	stop = run(opts("b")) // b leads and posts it
	waitFor(t, "b's post", func() bool { p, _ := c.snapshot(); return len(p) == 1 })
	waitFor(t, "its end", func() bool { rs := records(t, st); return len(rs) == 1 && rs[0].State.Terminal() })
	stop()
	time.Sleep(2*lookback + 100*time.Millisecond) // the claim expires
	stop = run(a)                                 // a leads again
	defer stop()
	waitFor(t, "a's watch again", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.watchers) == 3 })
	time.Sleep(200 * time.Millisecond)
	if p, _ := c.snapshot(); len(p) != 1 {
		t.Errorf("%d posts: a posted b's old change again when it led again", len(p))
	}
}
