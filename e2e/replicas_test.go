package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/clock/clocktest"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/kube"
)

// These tests run several deploybot replicas (bot.Bot instances, each with
// its own client and kubernetes store on the real API server, sharing one
// namespace: two pods of the chart) against one cluster to deploy to. The
// API server here serves no ImageStreamImport (openshift-apiserver is not a
// CRD), so the deploy target is the in-memory demo cluster for planning and
// access checks, and Execute is repFake, which counts executions and
// changes nothing: what is under test is the replicas' shared state and
// leader election, which are all real.

var packitServices = []string{"packit-service", "packit-worker", "packit-service-fedmsg", "packit-dashboard", "tokman"}

// repConfig is the packit services in envs e00, e01, ... (one approval each,
// no confirm), plus env prod with its Tuesday-night schedule announced in
// the terminal channel prod-deploys.
func repConfig(t *testing.T, envs int, prod string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("environments:\n")
	for i := range envs {
		fmt.Fprintf(&b, "  - {name: e%02d, namespace: packit--e%02d, approvals: {count: 1}}\n", i, i)
	}
	b.WriteString(prod)
	b.WriteString("services:\n")
	for _, s := range packitServices {
		fmt.Fprintf(&b, "  - {name: %s, repository: quay.io/packit/%s}\n", s, s)
	}
	b.WriteString(`identities:
  users:
    - {platform: terminal, id: alice, user: alice, groups: [packit-devs]}
    - {platform: terminal, id: bob, user: bob, groups: [packit-admins]}
`)
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// repTarget is the cluster the replicas deploy to: the demo cluster.
type repTarget struct {
	cfg     *config.Config
	demo    *demo.Cluster
	set     *cluster.Set
	checker *access.Checker
}

const scheduleUser = "system:serviceaccount:deploybot:deploybot"

func newRepTarget(t *testing.T, cfg *config.Config) *repTarget {
	t.Helper()
	d, err := demo.New(cfg, demo.WithTick(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Stop() })
	envs := d.EnvClients()
	kube := map[string]kubeclient.Interface{}
	for name, ec := range envs {
		kube[name] = ec.Kube
	}
	// The schedule runs as the bot's service account, which may deploy.
	for _, e := range cfg.Environments {
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "deploybot-deployer", Namespace: e.Namespace},
			Subjects:   []rbacv1.Subject{userSubject(scheduleUser)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "deploybot-demo-deployer"},
		}
		if _, err := d.Kube(e.Name).RbacV1().RoleBindings(e.Namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &repTarget{cfg: cfg, demo: d, set: cluster.NewSet(envs), checker: access.NewChecker(kube)}
}

// repFake is the executor: it reports every target changed as planned,
// changes nothing, and counts how often each request's Plan ran.
type repFake struct {
	mu   sync.Mutex
	runs map[string]int // by plan hash
	// stall, when set, makes Execute finish only the first target and then
	// hang until its context ends, as a replica that dies mid-import.
	stall   bool
	stalled chan struct{}
}

func (f *repFake) Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error) {
	f.mu.Lock()
	if f.runs == nil {
		f.runs = map[string]int{}
	}
	f.runs[p.Hash()]++
	f.mu.Unlock()
	var res plan.Result
	for i, t := range p.Targets {
		if f.stall && i == 1 {
			close(f.stalled)
			<-ctx.Done()
			return res, ctx.Err()
		}
		tr := plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: t.To}
		res.Targets = append(res.Targets, tr)
		report(plan.Progress{Service: t.Service, Phase: plan.PhaseChanged, Message: plan.ShortDigest(t.From.Digest) + " → " + plan.ShortDigest(t.To.Digest)})
	}
	return res, nil
}

func (f *repFake) Follow(context.Context, plan.Plan, plan.Result, time.Duration, func(plan.Progress)) []plan.RolloutResult {
	return nil
}

func (f *repFake) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.runs {
		out[k] = v
	}
	return out
}

// repChat is one replica's view of the chat platform: it records posts and
// updates of request messages.
type repChat struct {
	mu      sync.Mutex
	posts   []bot.Reply
	updates map[string][]bot.Reply
}

func (c *repChat) Name() string { return terminal.Name }

func (c *repChat) Post(_ context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts = append(c.posts, r)
	return store.MessageRef{Platform: terminal.Name, Channel: channel, ID: fmt.Sprintf("m%d", len(c.posts))}, nil
}

func (c *repChat) Update(_ context.Context, ref store.MessageRef, r bot.Reply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.updates == nil {
		c.updates = map[string][]bot.Reply{}
	}
	c.updates[r.RequestID] = append(c.updates[r.RequestID], r)
	return nil
}

// titled counts posts whose title starts with prefix.
func (c *repChat) titled(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.posts {
		if strings.HasPrefix(p.Title, prefix) {
			n++
		}
	}
	return n
}

func (c *repChat) last(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.updates[id]
	if len(u) == 0 {
		return ""
	}
	return strings.Join(terminal.Render(u[len(u)-1].Output), "\n")
}

// replica is one bot process: its own client, store, chat view and bot.
type replica struct {
	name  string
	cut   *cuttable // its connection to the API server
	store *kube.Store
	chat  *repChat
	bot   *bot.Bot
	// stop ends its leader election (releasing the Lease) and its bot.
	stop func()
}

func startReplica(t *testing.T, cp *controlplane.ControlPlane, ns, name string, tg *repTarget, exec lifecycle.Executor, opts ...bot.Option) *replica {
	t.Helper()
	// The replica's API connection can be cut, as a kill -9 cuts it.
	r := &replica{name: name, cut: &cuttable{}, chat: &repChat{}}
	cfg := fast(cp.UserConfig("deploybot"))
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { r.cut.base = rt; return r.cut }
	r.store = newKubeStore(t, botClientFor(t, cfg), ns)
	r.bot = bot.New(tg.cfg, tg.set, tg.checker, r.store, exec, append([]bot.Option{
		bot.WithPlatform(r.chat), bot.WithReplicaName(name),
		bot.WithScheduleIdentity(scheduleUser, []string{"system:serviceaccounts"}),
		bot.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)...)
	r.stop = r.bot.Close
	t.Cleanup(func() { r.stop() })
	return r
}

// lead campaigns for the Lease like `deploybot serve` does and runs the
// bot's leader duties while it holds it.
func (r *replica) lead(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := r.store.Lead(ctx, kube.Election{Identity: r.name, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond}, r.bot.Lead)
		if err != nil {
			t.Errorf("%s: %v", r.name, err)
		}
	}()
	once := sync.Once{}
	r.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			r.bot.Close()
		})
	}
}

// die kills the replica as kill -9 does: nothing it does reaches the API
// server any more, then it stops.
func (r *replica) die() {
	r.cut.cut.Store(true)
	r.stop()
}

func (r *replica) handle(t *testing.T, user string, text string, action *bot.Action) string {
	t.Helper()
	var resp repReplies
	req := bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: user, Name: user}, Channel: "deploys", Text: text, Action: action}
	if err := r.bot.Handle(context.Background(), req, &resp); err != nil {
		t.Errorf("%s: Handle(%q): %v", r.name, text, err)
	}
	return resp.text()
}

type repReplies struct {
	mu    sync.Mutex
	lines []string
}

func (r *repReplies) Respond(_ context.Context, reply bot.Reply) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, terminal.Render(reply.Output)...)
	return nil
}

func (r *repReplies) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// parallel runs fn(i) for i < n, at most width at a time.
func parallel(n, width int, fn func(i int)) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// TestReplicasApproveConcurrently: 200 requests are opened across two
// replicas; then every approval is clicked on both replicas at once (400
// clicks racing). Each request is approved once, executed exactly once,
// and ends Succeeded; the other click of each pair is refused in words.
func TestReplicasApproveConcurrently(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, 2*time.Minute)
	const ns = "deploybot-replicas"
	stateNamespace(ctx, t, cp, ns)
	const envs = 40 // × 5 services: 200 requests, each on its own env/service lock
	tg := newRepTarget(t, repConfig(t, envs, ""))
	exec := &repFake{}
	reps := []*replica{startReplica(t, cp, ns, "pod-a", tg, exec), startReplica(t, cp, ns, "pod-b", tg, exec)}

	began := time.Now()
	parallel(envs*len(packitServices), 20, func(i int) {
		text := fmt.Sprintf("import e%02d %s", i/len(packitServices), packitServices[i%len(packitServices)])
		if reply := reps[i%2].handle(t, "alice", text, nil); reply != "" {
			t.Errorf("%s: %q", text, reply)
		}
	})
	open, err := reps[0].store.List(ctx, store.ListOptions{States: []store.State{store.AwaitingApproval}})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != envs*len(packitServices) {
		t.Fatalf("%d requests await approval, want %d", len(open), envs*len(packitServices))
	}
	opened := time.Since(began)

	began = time.Now()
	replies := make([][2]string, len(open))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range open {
		for j, rep := range reps {
			wg.Go(func() {
				<-start
				replies[i][j] = rep.handle(t, "bob", "", &bot.Action{Kind: bot.ActionApprove, RequestID: r.ID})
			})
		}
	}
	close(start)
	wg.Wait()
	for _, rep := range reps {
		rep.bot.Wait()
	}
	approved := time.Since(began)

	counts := exec.counts()
	byExecutor := map[string]int{}
	for i, r := range open {
		accepted := 0
		for _, reply := range replies[i] {
			switch {
			case reply == "":
				accepted++
			case strings.Contains(reply, "went wrong"):
				t.Errorf("#%s: a click failed: %s", r.ID, reply)
			}
		}
		if accepted != 1 {
			t.Errorf("#%s: %d of its two approve clicks were accepted, want 1: %q", r.ID, accepted, replies[i])
		}
		final, err := reps[i%2].store.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if final.State != store.Succeeded {
			t.Errorf("#%s is %s (%s), want Succeeded", r.ID, final.State, final.Reason)
		}
		if n := counts[r.PlanHash]; n != 1 {
			t.Errorf("#%s executed %d times, want exactly once", r.ID, n)
		}
		byExecutor[final.Executor]++
	}
	if len(counts) != len(open) {
		t.Errorf("%d distinct plans executed, want %d", len(counts), len(open))
	}
	t.Logf("the refused click of the first pair: %q", slices.DeleteFunc(slices.Clone(replies[0][:]), func(s string) bool { return s == "" }))
	t.Logf("opened %d requests in %v; %d approvals clicked on both replicas (%d clicks) and executed in %v; executions by replica: %v",
		len(open), opened.Round(time.Millisecond), len(open), 2*len(open), approved.Round(time.Millisecond), byExecutor)
}

// TestReplicaKilledMidRun: the replica executing an import dies after its
// first target (its context ends between Executing and the finish); the
// other replica, leading, reports the request Failed with what was done and
// what may or may not have been, updates its message, and runs nothing
// again.
func TestReplicaKilledMidRun(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, time.Minute)
	const ns = "deploybot-killed"
	stateNamespace(ctx, t, cp, ns)
	tg := newRepTarget(t, repConfig(t, 1, ""))
	stalling := &repFake{stall: true, stalled: make(chan struct{})}
	healthy := &repFake{}
	timing := []bot.Option{bot.WithHeartbeat(200*time.Millisecond, time.Second), bot.WithSweepInterval(200 * time.Millisecond)}
	a := startReplica(t, cp, ns, "pod-a", tg, stalling, timing...)
	b := startReplica(t, cp, ns, "pod-b", tg, healthy, timing...)
	a.lead(t)
	b.lead(t)

	if reply := a.handle(t, "alice", "import e00", nil); reply != "" {
		t.Fatalf("import: %q", reply)
	}
	open, err := a.store.List(ctx, store.ListOptions{States: []store.State{store.AwaitingApproval}})
	if err != nil || len(open) != 1 {
		t.Fatalf("open requests: %v %v", len(open), err)
	}
	id := open[0].ID
	if reply := a.handle(t, "bob", "", &bot.Action{Kind: bot.ActionApprove, RequestID: id}); reply != "" {
		t.Fatalf("approve: %q", reply)
	}
	<-stalling.stalled
	waitFor(ctx, t, "the first target recorded by pod-a", func() (bool, string) {
		r, err := b.store.Get(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		return r.State == store.Executing && r.Executor == "pod-a" && len(r.Done) == 1, fmt.Sprintf("%s by %s, done %v", r.State, r.Executor, r.Done)
	})
	killed := time.Now()
	a.die() // pod-a dies mid-import (kill -9): it records nothing more

	var r *store.Request
	waitFor(ctx, t, "pod-b's report", func() (bool, string) {
		r, err = b.store.Get(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		return r.State == store.Failed, string(r.State)
	})
	t.Logf("pod-b reported #%s %v after pod-a died: %s", id, time.Since(killed).Round(time.Millisecond), r.Reason)
	first := r.Plan.Targets[0].Service
	for _, want := range []string{"Replica pod-a stopped while executing this request", "Done: " + first + " changed",
		"Not reported finished, so they may or may not have changed: " + strings.Join(packitServices[1:], ", "),
		"Replica pod-b reported this and did not run anything again", "`import e00` again"} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("reason lacks %q:\n%s", want, r.Reason)
		}
	}
	if r.Result == nil || len(r.Result.Targets) != 1 || r.Result.Targets[0].Service != first {
		t.Errorf("result = %+v, want the one target that was done", r.Result)
	}
	waitFor(ctx, t, "pod-b updating the request's message", func() (bool, string) {
		msg := b.chat.last(id)
		return strings.Contains(msg, "Failed: Replica pod-a stopped"), msg
	})
	// More sweeps (any replica's) run nothing again.
	for range 2 {
		if err := b.bot.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b.bot.Wait()
	if n := len(healthy.counts()); n != 0 {
		t.Errorf("pod-b executed %d plans, want none", n)
	}
	if n := stalling.counts()[r.PlanHash]; n != 1 {
		t.Errorf("pod-a executed the plan %d times, want once", n)
	}
}

// TestLeaderElectionSchedule: two replicas campaign for the Lease; the
// leader posts the heads-up and runs the scheduled import once; stopped, it
// hands over and the other replica runs the next week's import, once. The
// schedule's time is a fake clock both replicas share (so no test waits for
// Tuesday 02:00); the Lease is real.
func TestLeaderElectionSchedule(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, time.Minute)
	const ns = "deploybot-schedule"
	stateNamespace(ctx, t, cp, ns)
	tg := newRepTarget(t, repConfig(t, 0, `  - name: prod
    namespace: packit--prod
    approvals: {count: 1}
    schedule: "0 2 * * 2"
    channel: {platform: terminal, id: prod-deploys}
    scheduleHeadsUp: 30m
    autoApproveScheduled: true
`))
	clock := clocktest.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	prod, _ := tg.cfg.Env("prod")
	sched, err := prod.Cron()
	if err != nil {
		t.Fatal(err)
	}
	run := sched.Next(clock.Now())
	exec := &repFake{}
	reps := map[string]*replica{}
	for _, name := range []string{"pod-a", "pod-b"} {
		reps[name] = startReplica(t, cp, ns, name, tg, exec, bot.WithClock(clock))
		reps[name].lead(t)
	}
	admin := clientFor(t, cp.AdminConfig())
	holder := func(not string) string {
		var h string
		waitFor(ctx, t, "a Lease holder other than "+not, func() (bool, string) {
			l, err := admin.CoordinationV1().Leases(ns).Get(ctx, "deploybot-leader", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			h = leaseHolder(l)
			return h != "(none)" && h != "" && h != not, h
		})
		return h
	}
	// idle: the leader's scheduler and sweeper wait for their next time.
	idle := func() {
		waitFor(ctx, t, "the leader's duties asleep", func() (bool, string) {
			return clock.Sleepers() >= 2, fmt.Sprintf("%d timers", clock.Sleepers())
		})
	}
	headsUps := func() int { return reps["pod-a"].chat.titled("Heads-up") + reps["pod-b"].chat.titled("Heads-up") }
	succeeded := func(at time.Time) *store.Request {
		var r *store.Request
		waitFor(ctx, t, "the run of "+at.String(), func() (bool, string) {
			r, err = reps["pod-a"].store.Get(ctx, schedule.RunID("prod", at))
			if err != nil {
				return false, err.Error()
			}
			return r.State == store.Succeeded, string(r.State) + " " + r.Reason
		})
		return r
	}

	leader := holder("")
	idle()
	clock.Set(run.Add(-30 * time.Minute))
	waitFor(ctx, t, "the heads-up", func() (bool, string) { return headsUps() == 1, fmt.Sprint(headsUps()) })
	clock.Set(run)
	r := succeeded(run)
	if r.Executor != leader || r.Requester.Platform != lifecycle.SchedulePlatform {
		t.Errorf("the first run was executed by %s for %s, want the leader %s for the schedule", r.Executor, r.Requester.Name, leader)
	}

	stopped := time.Now()
	reps[leader].stop()
	follower := holder(leader)
	t.Logf("leader %s stopped; %s holds the Lease after %v", leader, follower, time.Since(stopped).Round(time.Millisecond))
	// The new leader's scheduler acts on the clock whenever it starts: its
	// timers are deadlines, so moving the clock now cannot slip past it.
	next := run.AddDate(0, 0, 7)
	clock.Set(next.Add(-30 * time.Minute))
	waitFor(ctx, t, "the second heads-up", func() (bool, string) { return headsUps() == 2, fmt.Sprint(headsUps()) })
	clock.Set(next)
	r = succeeded(next)
	if r.Executor != follower {
		t.Errorf("the second run was executed by %s, want the new leader %s", r.Executor, follower)
	}
	reps[follower].bot.Wait()
	counts := exec.counts()
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != 2 {
		t.Errorf("%d executions, want 2: each weekly run once", total)
	}
	if n := reps["pod-a"].chat.titled("#") + reps["pod-b"].chat.titled("#"); n != 2 {
		t.Errorf("%d request messages posted, want one per run", n)
	}
}
