package bot_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
)

// schedHarness is the bot on the demo cluster with prod's schedule
// ("0 2 * * 2" UTC) announced in the terminal channel prod-deploys, a fake
// clock and any number of replicas sharing one store.
type schedHarness struct {
	t        *testing.T
	cfg      *config.Config
	demo     *demo.Cluster
	set      *cluster.Set
	checker  *access.Checker
	store    store.Store
	platform *recorder
	exec     *countingExecutor
	clock    *clocktest.Clock
	// run is prod's first scheduled run after the clock's start.
	run time.Time
}

const prodChannel = "prod-deploys"

func newSchedHarness(t *testing.T, mutate func(prod *config.Environment)) *schedHarness {
	t.Helper()
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	prod, _ := cfg.Env("prod")
	prod.Channel = &config.ChannelRef{Platform: terminal.Name, ID: prodChannel}
	prod.ScheduleHeadsUp = config.Duration{Duration: 30 * time.Minute}
	if mutate != nil {
		mutate(prod)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := &schedHarness{t: t, cfg: cfg, store: store.NewMemory(), platform: &recorder{},
		clock: clocktest.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))}
	s, err := prod.Cron()
	if err != nil {
		t.Fatal(err)
	}
	h.run = s.Next(h.clock.Now())
	h.demo, err = demo.New(cfg, demo.WithTick(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.demo.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); h.demo.Stop() })
	envs := h.demo.EnvClients()
	kube := map[string]kubeclient.Interface{}
	for name, ec := range envs {
		kube[name] = ec.Kube
	}
	h.set = cluster.NewSet(envs)
	h.checker = access.NewChecker(kube)
	h.exec = &countingExecutor{inner: h.set}
	// The schedule runs as the bot's service account, which may import
	// into prod like a deployer.
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deploybot-deployer", Namespace: prod.Namespace},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccount:deploybot:deploybot"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "deploybot-demo-deployer"},
	}
	if _, err := h.demo.Kube("prod").RbacV1().RoleBindings(prod.Namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return h
}

// replica builds one bot replica on the shared store, cluster and clock.
func (h *schedHarness) replica(name string, exec lifecycle.Executor, opts ...bot.Option) *bot.Bot {
	return h.replicaOn(h.store, name, exec, opts...)
}

// replicaOn is replica with its own handle of the store.
func (h *schedHarness) replicaOn(st store.Store, name string, exec lifecycle.Executor, opts ...bot.Option) *bot.Bot {
	if exec == nil {
		exec = h.exec
	}
	b := bot.New(h.cfg, h.set, h.checker, st, exec, append([]bot.Option{
		bot.WithClock(h.clock), bot.WithPlatform(h.platform), bot.WithReplicaName(name),
		bot.WithScheduleIdentity("system:serviceaccount:deploybot:deploybot", []string{"system:serviceaccounts"}),
		bot.WithLogger(slog.New(slog.DiscardHandler)), bot.WithRolloutDeadline(20 * time.Second),
	}, opts...)...)
	h.t.Cleanup(b.Close)
	return b
}

// letScheduleDeploy binds the schedule's identity (the bot's service
// account) to the demo's deployer role in env, so its imports pass the
// access checks there.
func (h *schedHarness) letScheduleDeploy(env string) {
	h.t.Helper()
	e, _ := h.cfg.Env(env)
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deploybot-deployer", Namespace: e.Namespace},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccount:deploybot:deploybot"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "deploybot-demo-deployer"},
	}
	if _, err := h.demo.Kube(env).RbacV1().RoleBindings(e.Namespace).Create(context.Background(), binding, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// lead runs b's leader duties until the returned stop is called.
func (h *schedHarness) lead(b *bot.Bot) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Lead(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	h.t.Cleanup(stop)
	return stop
}

// idle waits until n timers are pending: the leader's loops have done what
// was due and sleep.
func (h *schedHarness) idle(n int) {
	h.t.Helper()
	poll.Until(h.t, 20*time.Second, fmt.Sprintf("%d timers pending", n), func() (bool, string) {
		got := h.clock.Sleepers()
		return got >= n, fmt.Sprintf("%d pending", got)
	})
}

func (h *schedHarness) say(b *bot.Bot, user, text string) string {
	h.t.Helper()
	return h.send(b, bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: user, Name: user}, Channel: terminal.Channel, Text: text})
}

func (h *schedHarness) click(b *bot.Bot, user string, kind bot.ActionKind, id string) string {
	h.t.Helper()
	return h.send(b, bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: user, Name: user}, Channel: prodChannel,
		Action: &bot.Action{Kind: kind, RequestID: id}})
}

func (h *schedHarness) send(b *bot.Bot, req bot.Request) string {
	h.t.Helper()
	var r responder
	if err := b.Handle(context.Background(), req, &r); err != nil {
		h.t.Fatalf("Handle(%q): %v", req.Text, err)
	}
	return r.text()
}

// announcements are the texts of the posts that show no request.
func (h *schedHarness) announcements() []string {
	h.platform.mu.Lock()
	defer h.platform.mu.Unlock()
	var out []string
	for _, p := range h.platform.posts {
		if p.RequestID == "" {
			out = append(out, strings.Join(terminal.Render(p.Output), "\n"))
		}
	}
	return out
}

func (h *schedHarness) announced(substr string) int {
	n := 0
	for _, a := range h.announcements() {
		if strings.Contains(a, substr) {
			n++
		}
	}
	return n
}

func (h *schedHarness) request(id string) (*store.Request, bool) {
	r, err := h.store.Get(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return r, true
}

// waitState waits until request id exists and is in one of states.
func (h *schedHarness) waitState(id string, states ...store.State) *store.Request {
	h.t.Helper()
	var r *store.Request
	poll.Until(h.t, 20*time.Second, fmt.Sprintf("#%s in %v", id, states), func() (bool, string) {
		var ok bool
		r, ok = h.request(id)
		if !ok {
			return false, "no such request"
		}
		return slices.Contains(states, r.State), fmt.Sprintf("state %s (%s)", r.State, r.Reason)
	})
	return r
}

// TestScheduledImport: the heads-up comes lead time before the run, with a
// Skip button; at the run the schedule opens an import under prod's policy,
// once, which either waits for an approval or approves itself; the outcome
// is reported in the request's message like any import's.
func TestScheduledImport(t *testing.T) {
	tests := []struct {
		name       string
		auto       bool
		wantPolicy string
		wantAudit  string // the actions on the request, newest first
	}{
		{name: "waits for approval", wantPolicy: "It will wait for one approval.",
			wantAudit: "deploybot:finish deploybot:execute bob:approve system:serviceaccount:deploybot:deploybot:open system:serviceaccount:deploybot:deploybot:plan"},
		{name: "auto-approved", auto: true, wantPolicy: "approved by the schedule itself",
			wantAudit: "deploybot:finish deploybot:execute system:serviceaccount:deploybot:deploybot:auto-approve system:serviceaccount:deploybot:deploybot:plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSchedHarness(t, func(e *config.Environment) { e.AutoApproveScheduled = tt.auto })
			b := h.replica("a", nil)
			h.lead(b)
			id := schedule.RunID("prod", h.run)

			h.clock.Set(h.run.Add(-31 * time.Minute))
			h.idle(2)
			if n := h.announced("Heads-up"); n != 0 {
				t.Fatalf("%d heads-ups 31 minutes before the run, want none yet", n)
			}
			h.clock.Set(h.run.Add(-30 * time.Minute))
			poll.Until(t, 20*time.Second, "the heads-up", func() (bool, string) { return h.announced("Heads-up") == 1, strings.Join(h.announcements(), "\n---\n") })
			headsUp, _ := h.platform.post(0)
			if len(headsUp.Buttons) != 1 || headsUp.Buttons[0].Action != bot.ActionSkip || headsUp.Buttons[0].RequestID != id {
				t.Errorf("heads-up buttons = %+v, want one Skip for %s", headsUp.Buttons, id)
			}
			text := h.announcements()[0]
			for _, want := range []string{"Heads-up: scheduled import of prod at Tue 2026-11-24 02:00 UTC (in 30m)", tt.wantPolicy, "schedule skip prod", "If it ran now"} {
				if !strings.Contains(text, want) {
					t.Errorf("heads-up lacks %q:\n%s", want, text)
				}
			}

			h.clock.Set(h.run)
			var r *store.Request
			if tt.auto {
				r = h.waitState(id, store.Succeeded, store.Failed)
			} else {
				r = h.waitState(id, store.AwaitingApproval)
				if r.Requester.Platform != lifecycle.SchedulePlatform || r.Requester.Name != "schedule" || r.Requester.User != "system:serviceaccount:deploybot:deploybot" {
					t.Errorf("requester = %+v, want the schedule as the bot's service account", r.Requester)
				}
				poll.Until(t, 20*time.Second, "the request's message in "+prodChannel, func() (bool, string) {
					r, _ = h.request(id)
					return len(r.Messages) == 1 && r.Messages[0].Channel == prodChannel, fmt.Sprintf("%+v", r.Messages)
				})
				if reply := h.say(b, "bob", "approve #"+id); reply != "" {
					t.Fatalf("approve: %q", reply)
				}
				r = h.waitState(id, store.Succeeded, store.Failed)
			}
			b.Wait()
			if r.State != store.Succeeded {
				t.Fatalf("scheduled import %s: %s", r.State, r.Reason)
			}
			if n := h.exec.total(); n != 1 {
				t.Errorf("executed %d times, want once", n)
			}
			final := strings.Join(terminal.Render(h.platform.last(id).Output), "\n")
			for _, want := range []string{"succeeded", "workloads settled"} {
				if !strings.Contains(final, want) {
					t.Errorf("final message lacks %q:\n%s", want, final)
				}
			}
			events, _ := h.store.Audit(context.Background(), 0)
			var actions []string
			for _, e := range events {
				if e.RequestID == id && e.Action != "schedule-heads-up" {
					actions = append(actions, e.Actor+":"+e.Action)
				}
			}
			if got := strings.Join(actions, " "); got != tt.wantAudit {
				t.Errorf("audit = %q, want %q", got, tt.wantAudit)
			}

			// A week later the registry has nothing newer: the run says so
			// and leaves a finished record.
			next := schedule.RunID("prod", h.run.AddDate(0, 0, 7))
			h.clock.Set(h.run.AddDate(0, 0, 7))
			r = h.waitState(next, store.Succeeded)
			if !strings.Contains(r.Reason, "Nothing to import") {
				t.Errorf("second run: %s, want nothing to import", r.Reason)
			}
			poll.Until(t, 20*time.Second, "the nothing-to-import notice", func() (bool, string) {
				return h.announced("Nothing to import") == 1, strings.Join(h.announcements(), "\n---\n")
			})
			if n := h.exec.total(); n != 1 {
				t.Errorf("executed %d times after a run with nothing to import, want once", n)
			}
		})
	}
}

// TestScheduleSkip: the next run is skipped by the command or by the
// heads-up's button, by someone who may import into prod; it then does not
// happen (nor its heads-up) and the run after it does.
func TestScheduleSkip(t *testing.T) {
	tests := []struct {
		name      string
		skip      func(h *schedHarness, b *bot.Bot) string
		wantReply string
		skipped   bool
	}{
		{name: "command", skip: func(h *schedHarness, b *bot.Bot) string { return h.say(b, "alice", "schedule skip prod") },
			wantReply: "alice skipped the scheduled import of prod at Tue 2026-11-24 02:00 UTC. The next run is at Tue 2026-12-01 02:00 UTC.", skipped: true},
		{name: "button", skip: func(h *schedHarness, b *bot.Bot) string {
			return h.click(b, "bob", bot.ActionSkip, schedule.RunID("prod", h.run))
		}, wantReply: "bob skipped the scheduled import of prod at Tue 2026-11-24 02:00 UTC.", skipped: true},
		{name: "a viewer may not", skip: func(h *schedHarness, b *bot.Bot) string { return h.say(b, "carol", "schedule skip prod") },
			wantReply: "You cannot skip a run of the schedule of prod: carol may not do this in prod"},
		{name: "a button of a past run", skip: func(h *schedHarness, b *bot.Bot) string {
			return h.click(b, "bob", bot.ActionSkip, schedule.RunID("prod", h.run.AddDate(0, 0, -7)))
		}, wantReply: "That scheduled run is no longer the next one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSchedHarness(t, nil)
			b := h.replica("a", nil)
			h.lead(b)
			h.idle(2)
			if reply := tt.skip(h, b); !strings.Contains(reply, tt.wantReply) {
				t.Fatalf("reply %q, want %q", reply, tt.wantReply)
			}
			shown := h.say(b, "carol", "schedule prod")
			if got := strings.Contains(shown, "that run is SKIPPED by"); got != tt.skipped {
				t.Errorf("schedule shows skipped = %v, want %v:\n%s", got, tt.skipped, shown)
			}
			id := schedule.RunID("prod", h.run)
			h.clock.Set(h.run.Add(-30 * time.Minute))
			if tt.skipped {
				h.clock.Set(h.run)
				h.idle(2)
				r, ok := h.request(id)
				if !ok || r.State != store.Cancelled || r.ClosedBy == nil {
					t.Fatalf("skipped run: %+v, want a cancelled record with who skipped it", r)
				}
				if n := h.announced("Heads-up"); n != 0 {
					t.Errorf("%d heads-ups for a skipped run, want none", n)
				}
				if reply := h.say(b, "alice", "schedule skip prod"); !strings.Contains(reply, "skipped the scheduled import of prod at Tue 2026-12-01") {
					t.Errorf("skipping the following run: %q", reply)
				}
				if reply := h.click(b, "bob", bot.ActionSkip, schedule.RunID("prod", h.run.AddDate(0, 0, 7))); !strings.Contains(reply, "was already skipped by alice") {
					t.Errorf("skipping it again: %q", reply)
				}
				return
			}
			poll.Until(t, 20*time.Second, "the heads-up", func() (bool, string) { return h.announced("Heads-up") == 1, strings.Join(h.announcements(), "\n") })
			h.clock.Set(h.run)
			h.waitState(id, store.AwaitingApproval)
		})
	}
	// Whatever was skipped, nothing was executed.
}

// TestSchedulePauseHonoured: a paused schedule posts no heads-up and its run
// leaves a record of the pause; after resume the schedule runs again.
func TestSchedulePauseHonoured(t *testing.T) {
	h := newSchedHarness(t, nil)
	b := h.replica("a", nil)
	h.lead(b)
	h.idle(2)
	if reply := h.say(b, "alice", "schedule pause prod"); !strings.Contains(reply, "PAUSED by alice") {
		t.Fatalf("pause: %q", reply)
	}
	h.clock.Set(h.run.Add(-30 * time.Minute))
	h.clock.Set(h.run)
	r := h.waitState(schedule.RunID("prod", h.run), store.Cancelled)
	if !strings.Contains(r.Reason, "Paused by alice") {
		t.Errorf("paused run: %q", r.Reason)
	}
	poll.Until(t, 20*time.Second, "the pause notice", func() (bool, string) {
		return h.announced("Paused by alice") == 1, strings.Join(h.announcements(), "\n")
	})
	if n := h.announced("Heads-up"); n != 0 {
		t.Errorf("%d heads-ups while paused, want none", n)
	}
	if reply := h.say(b, "alice", "schedule resume prod"); strings.Contains(reply, "PAUSED") {
		t.Fatalf("resume: %q", reply)
	}
	h.clock.Set(h.run.AddDate(0, 0, 7))
	h.waitState(schedule.RunID("prod", h.run.AddDate(0, 0, 7)), store.AwaitingApproval)
	if n := h.exec.total(); n != 0 {
		t.Errorf("executed %d times, want none", n)
	}
}

// TestScheduleMissedRun: a run no replica was up for is reported when one
// comes up, and run (once) only with catchUp; with no record of any earlier
// run (a new install) nothing counts as missed.
func TestScheduleMissedRun(t *testing.T) {
	tests := []struct {
		name       string
		catchUp    bool
		history    bool
		wantState  store.State // of the (first) missed run's request; "" for none
		wantNotice string
		weeksDown  int // more runs missed after the first
	}{
		{name: "reported", history: true, wantState: store.Expired,
			wantNotice: "The scheduled import of prod at Tue 2026-11-24 02:00 UTC was missed: no deploybot replica was running. catchUp is off"},
		{name: "caught up", catchUp: true, history: true, wantState: store.AwaitingApproval,
			wantNotice: "catchUp is on, so the latest runs now, once, as #prod-20261124-0200z."},
		{name: "new install", catchUp: true},
		{name: "two missed, the latest caught up", catchUp: true, history: true, weeksDown: 1, wantState: store.Expired,
			wantNotice: "The scheduled import of prod at Tue 2026-11-24 02:00 UTC and Tue 2026-12-01 02:00 UTC was missed: no deploybot replica was running. catchUp is on, so the latest runs now, once, as #prod-20261201-0200z."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSchedHarness(t, func(e *config.Environment) { e.CatchUp = tt.catchUp })
			if tt.history {
				prev := h.run.AddDate(0, 0, -7)
				if err := h.store.Create(context.Background(), &store.Request{ID: schedule.RunID("prod", prev), State: store.Succeeded,
					Requester: store.Person{Platform: lifecycle.SchedulePlatform, Name: "schedule"}, Command: "import prod"}); err != nil {
					t.Fatal(err)
				}
			}
			h.clock.Set(h.run.AddDate(0, 0, 7*tt.weeksDown).Add(3 * time.Hour))
			id := schedule.RunID("prod", h.run)
			for replica := range 2 { // a second start reports nothing again
				b := h.replica(fmt.Sprintf("r%d", replica), nil)
				stop := h.lead(b)
				h.idle(2 * (replica + 1))
				stop()
			}
			r, ok := h.request(id)
			switch {
			case tt.wantState == "" && ok:
				t.Errorf("new install left %s for the run it never saw", r.State)
			case tt.wantState != "" && !ok:
				t.Fatalf("missed run left no request")
			case tt.wantState != "" && r.State != tt.wantState:
				t.Errorf("missed run is %s (%s), want %s", r.State, r.Reason, tt.wantState)
			}
			notices := h.announcements()
			if tt.wantNotice == "" {
				if len(notices) != 0 {
					t.Errorf("announced %q, want nothing", notices)
				}
				return
			}
			if n := h.announced(tt.wantNotice); n != 1 {
				t.Errorf("notice %q announced %d times, want once; announcements:\n%s", tt.wantNotice, n, strings.Join(notices, "\n---\n"))
			}
			if n := h.exec.total(); n != 0 {
				t.Errorf("executed %d times, want none (prod waits for approval)", n)
			}
			if tt.weeksDown > 0 {
				latest, ok := h.request(schedule.RunID("prod", h.run.AddDate(0, 0, 7*tt.weeksDown)))
				if !ok || latest.State != store.AwaitingApproval {
					t.Errorf("the latest missed run: %+v, want it caught up and waiting for approval", latest)
				}
			}
		})
	}
}

// TestScheduleDueAtHandOver: a leader that starts a few minutes after a run
// was due (the old one died at 02:00) runs it, late but on time, and
// reports nothing missed.
func TestScheduleDueAtHandOver(t *testing.T) {
	h := newSchedHarness(t, nil)
	if err := h.store.Create(context.Background(), &store.Request{ID: schedule.RunID("prod", h.run.AddDate(0, 0, -7)), State: store.Succeeded,
		Requester: store.Person{Platform: lifecycle.SchedulePlatform, Name: "schedule"}, Command: "import prod"}); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(h.run.Add(2 * time.Minute))
	h.lead(h.replica("a", nil))
	h.waitState(schedule.RunID("prod", h.run), store.AwaitingApproval)
	h.idle(2)
	if n := h.announced("missed"); n != 0 {
		t.Errorf("a run started 2 minutes late was reported missed: %q", h.announcements())
	}
}

// flakyStore fails creating scheduled runs' requests while failing is set.
type flakyStore struct {
	store.Store
	failing atomic.Bool
}

func (f *flakyStore) Create(ctx context.Context, r *store.Request) error {
	if f.failing.Load() && strings.HasPrefix(r.ID, "prod-") {
		return errors.New("etcdserver: request timed out")
	}
	return f.Store.Create(ctx, r)
}

// TestScheduleRetriesAfterStoreError: a run the store could not record is
// tried again shortly, and happens once.
func TestScheduleRetriesAfterStoreError(t *testing.T) {
	h := newSchedHarness(t, nil)
	flaky := &flakyStore{Store: h.store}
	flaky.failing.Store(true)
	h.store = flaky
	h.lead(h.replica("a", nil))
	h.idle(2)
	h.clock.Set(h.run)
	h.idle(2)
	if _, ok := h.request(schedule.RunID("prod", h.run)); ok {
		t.Fatal("a run was recorded while the store failed")
	}
	flaky.failing.Store(false)
	h.clock.Add(30 * time.Second)
	h.waitState(schedule.RunID("prod", h.run), store.AwaitingApproval)
}

// TestScheduleRunsOnceWithTwoLeaders: should two replicas lead at once (a
// lease lost unnoticed), the heads-up and the run still happen once.
func TestScheduleRunsOnceWithTwoLeaders(t *testing.T) {
	h := newSchedHarness(t, func(e *config.Environment) { e.AutoApproveScheduled = true })
	a, b := h.replica("a", nil), h.replica("b", nil)
	h.lead(a)
	h.lead(b)
	h.idle(4)
	h.clock.Set(h.run.Add(-30 * time.Minute))
	h.idle(4)
	h.clock.Set(h.run)
	h.waitState(schedule.RunID("prod", h.run), store.Succeeded)
	a.Wait()
	b.Wait()
	if n := h.announced("Heads-up"); n != 1 {
		t.Errorf("%d heads-ups, want 1", n)
	}
	if n := h.exec.total(); n != 1 {
		t.Errorf("executed %d times, want 1", n)
	}
	if n := h.platform.count() - len(h.announcements()); n != 1 {
		t.Errorf("%d request messages, want 1", n)
	}
}

// mortalStore is one replica's handle of the shared store; after die,
// nothing that replica does reaches the store, as after a kill -9.
type mortalStore struct {
	store.Store
	dead atomic.Bool
}

var errDead = errors.New("this replica is dead")

func (m *mortalStore) die() { m.dead.Store(true) }

func (m *mortalStore) Create(ctx context.Context, r *store.Request) error {
	if m.dead.Load() {
		return errDead
	}
	return m.Store.Create(ctx, r)
}

func (m *mortalStore) Update(ctx context.Context, id string, fn func(r *store.Request) error) (*store.Request, error) {
	if m.dead.Load() {
		return nil, errDead
	}
	return m.Store.Update(ctx, id, fn)
}

func (m *mortalStore) Record(ctx context.Context, e store.AuditEvent) error {
	if m.dead.Load() {
		return errDead
	}
	return m.Store.Record(ctx, e)
}

// stallingExecutor finishes the Plan's first target and then hangs until its
// context ends, as a replica does that dies (or is cut off) mid-import.
type stallingExecutor struct {
	inner   lifecycle.Executor
	stalled chan struct{}
	once    sync.Once
}

func (s *stallingExecutor) Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error) {
	first := plan.Plan{Action: p.Action, Env: p.Env, Namespace: p.Namespace, Targets: p.Targets[:1], Policy: p.Policy}
	res, err := s.inner.Execute(ctx, first, report)
	if err != nil {
		return res, err
	}
	s.once.Do(func() { close(s.stalled) })
	<-ctx.Done()
	for _, t := range p.Targets[1:] {
		res.Targets = append(res.Targets, plan.TargetResult{Service: t.Service, Outcome: plan.PhaseFailed, From: t.From, To: t.To, Error: ctx.Err().Error()})
	}
	return res, nil
}

func (s *stallingExecutor) Follow(context.Context, plan.Plan, plan.Result, time.Duration, func(plan.Progress)) []plan.RolloutResult {
	return nil
}

// openApproved opens `import prod` as alice and has bob approve it on b.
func (h *schedHarness) openApproved(b *bot.Bot) string {
	h.t.Helper()
	before := h.platform.count()
	if reply := h.say(b, "alice", "import prod"); reply != "" {
		h.t.Fatalf("import: %q", reply)
	}
	post, ok := h.platform.post(before)
	if !ok {
		h.t.Fatal("no request opened")
	}
	id := post.RequestID
	if reply := h.say(b, "alice", "confirm #"+id); reply != "" {
		h.t.Fatalf("confirm: %q", reply)
	}
	if reply := h.say(b, "bob", "approve #"+id); reply != "" {
		h.t.Fatalf("approve: %q", reply)
	}
	return id
}

// TestDeadExecutionReported: a replica dies after the first of prod's
// imports; the request is reported Failed with what was done and what may
// or may not have been, by another replica once the heartbeat is stale, or
// at once by the same replica restarted; nothing runs again.
func TestDeadExecutionReported(t *testing.T) {
	tests := []struct {
		name   string
		report func(h *schedHarness) *bot.Bot
	}{
		{name: "another replica after the heartbeat stopped", report: func(h *schedHarness) *bot.Bot {
			other := h.replica("b", nil)
			if err := other.Sweep(context.Background()); err != nil {
				h.t.Fatal(err)
			}
			h.clock.Add(30 * time.Second)
			if err := other.Sweep(context.Background()); err != nil {
				h.t.Fatal(err)
			}
			return other
		}},
		{name: "the same replica restarted", report: func(h *schedHarness) *bot.Bot {
			again := h.replica("a", nil)
			if err := again.Recover(context.Background()); err != nil {
				h.t.Fatal(err)
			}
			return again
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSchedHarness(t, nil)
			stall := &stallingExecutor{inner: h.set, stalled: make(chan struct{})}
			counting := &countingExecutor{inner: stall}
			handle := &mortalStore{Store: h.store}
			a := h.replicaOn(handle, "a", counting, bot.WithHeartbeat(10*time.Second, time.Minute))
			id := h.openApproved(a)
			<-stall.stalled
			r := h.waitState(id, store.Executing)
			poll.Until(t, 20*time.Second, "the first target recorded", func() (bool, string) {
				r, _ = h.request(id)
				return len(r.Done) == 1, fmt.Sprintf("%+v", r.Done)
			})
			first := r.Plan.Targets[0].Service
			handle.die() // the replica dies (kill -9): nothing it does reaches the store after
			a.Close()

			h.clock.Add(45 * time.Second)
			if r, _ := h.request(id); r.State != store.Executing {
				t.Fatalf("before the report: %s", r.State)
			}
			reporter := tt.report(h)
			r = h.waitState(id, store.Failed)
			for _, want := range []string{"Replica a stopped while executing this request", "Done: " + first + " changed",
				"Not reported finished, so they may or may not have changed: ", "did not run anything again", "`import prod` again"} {
				if !strings.Contains(r.Reason, want) {
					t.Errorf("reason lacks %q:\n%s", want, r.Reason)
				}
			}
			for _, tg := range r.Plan.Targets[1:] {
				if !strings.Contains(r.Reason, tg.Service) {
					t.Errorf("reason does not name %s, which was not reported finished:\n%s", tg.Service, r.Reason)
				}
			}
			final := strings.Join(terminal.Render(h.platform.last(id).Output), "\n")
			if !strings.Contains(final, "Failed: Replica a stopped") {
				t.Errorf("the request's message was not updated truthfully:\n%s", final)
			}
			if err := reporter.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			reporter.Wait()
			if n := counting.total(); n != 1 {
				t.Errorf("executed %d times, want once: a half-done import is never run again", n)
			}
		})
	}
}

// TestReplicaTakenForDeadStops: a replica whose heartbeat is late is
// reported dead by another; at its next heartbeat it stops executing, and
// what it did meanwhile is added to the report, never hidden.
func TestReplicaTakenForDeadStops(t *testing.T) {
	h := newSchedHarness(t, nil)
	stall := &stallingExecutor{inner: h.set, stalled: make(chan struct{})}
	a := h.replica("a", stall, bot.WithHeartbeat(time.Minute, time.Hour))
	other := h.replica("b", nil, bot.WithHeartbeat(time.Minute, 10*time.Second))
	id := h.openApproved(a)
	<-stall.stalled
	h.waitState(id, store.Executing)
	h.idle(1)                     // a's heartbeat timer
	h.clock.Add(20 * time.Second) // past b's stale limit, before a's next heartbeat
	if err := other.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitState(id, store.Failed)
	h.clock.Add(time.Minute) // a's heartbeat finds the request taken and stops
	a.Wait()
	r, _ := h.request(id)
	if r.State != store.Failed {
		t.Fatalf("state %s, want Failed as reported", r.State)
	}
	for _, want := range []string{"Replica a stopped while executing", "Later, replica a, which had been taken for dead, stopped with: "} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("reason lacks %q:\n%s", want, r.Reason)
		}
	}
	if r.Result == nil || len(r.Result.Targets) != len(r.Plan.Targets) {
		t.Errorf("result = %+v, want a's result for every target", r.Result)
	}
}

// gatedExecutor runs the Plan once its gate opens (or its context ends).
type gatedExecutor struct {
	inner   lifecycle.Executor
	started chan struct{}
	gate    chan struct{}
}

func (g *gatedExecutor) Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error) {
	close(g.started)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return plan.Result{}, ctx.Err()
	}
	return g.inner.Execute(ctx, p, report)
}

func (g *gatedExecutor) Follow(context.Context, plan.Plan, plan.Result, time.Duration, func(plan.Progress)) []plan.RolloutResult {
	return nil
}

// TestShutdownRecordsInterrupted: a replica shut down (SIGTERM) while an
// import runs, past its grace period, records the request as interrupted,
// with what it had done and what not, and updates the request's message;
// nothing stays Executing and nothing runs it again.
func TestShutdownRecordsInterrupted(t *testing.T) {
	h := newSchedHarness(t, nil)
	stall := &stallingExecutor{inner: h.set, stalled: make(chan struct{})}
	counting := &countingExecutor{inner: stall}
	a := h.replica("a", counting)
	id := h.openApproved(a)
	<-stall.stalled
	poll.Until(t, 20*time.Second, "the first target recorded", func() (bool, string) {
		r, _ := h.request(id)
		return len(r.Done) == 1, fmt.Sprintf("%+v", r.Done)
	})
	if n := a.Shutdown(50 * time.Millisecond); n != 1 {
		t.Errorf("Shutdown interrupted %d executions, want 1", n)
	}
	r, _ := h.request(id)
	if r.State != store.Failed {
		t.Fatalf("after shutdown the request is %s, want Failed (interrupted)", r.State)
	}
	first := r.Plan.Targets[0].Service
	for _, want := range []string{"Interrupted: replica a was shut down while executing this request", "Done: " + first + " changed",
		"Not reported finished, so they may or may not have changed: ", "`import prod` again"} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("reason lacks %q:\n%s", want, r.Reason)
		}
	}
	final := strings.Join(terminal.Render(h.platform.last(id).Output), "\n")
	if !strings.Contains(final, "Interrupted: replica a was shut down") {
		t.Errorf("the request's message was not updated:\n%s", final)
	}
	again := h.replica("a", nil)
	if err := again.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	again.Wait()
	if n := counting.total(); n != 1 {
		t.Errorf("executed %d times, want once", n)
	}
}

// TestShutdownLetsExecutionsFinish: within the grace period a running
// import finishes and is recorded as it ended.
func TestShutdownLetsExecutionsFinish(t *testing.T) {
	h := newSchedHarness(t, nil)
	gated := &gatedExecutor{inner: h.set, started: make(chan struct{}), gate: make(chan struct{})}
	a := h.replica("a", gated)
	id := h.openApproved(a)
	<-gated.started
	interrupted := make(chan int, 1)
	go func() { interrupted <- a.Shutdown(20 * time.Second) }()
	close(gated.gate)
	if n := <-interrupted; n != 0 {
		t.Errorf("Shutdown interrupted %d executions, want 0", n)
	}
	if r, _ := h.request(id); r.State != store.Succeeded {
		t.Errorf("request is %s (%s), want Succeeded", r.State, r.Reason)
	}
}

// TestShutdownStartsNothing: an approval that reaches a replica after its
// shutdown began leaves the request Approved; the next replica runs it.
func TestShutdownStartsNothing(t *testing.T) {
	h := newSchedHarness(t, nil)
	counting := &countingExecutor{inner: h.set}
	a := h.replica("a", counting)
	before := h.platform.count()
	if reply := h.say(a, "alice", "import prod"); reply != "" {
		t.Fatalf("import: %q", reply)
	}
	post, _ := h.platform.post(before)
	id := post.RequestID
	if reply := h.say(a, "alice", "confirm #"+id); reply != "" {
		t.Fatalf("confirm: %q", reply)
	}
	a.Shutdown(0)
	// The stores stamp UpdatedAt with their own clock when the change keeps
	// it equal, so move the test clock between the steps.
	h.clock.Add(time.Second)
	if reply := h.say(a, "bob", "approve #"+id); reply != "" {
		t.Fatalf("approve: %q", reply)
	}
	a.Wait()
	if r, _ := h.request(id); r.State != store.Approved || counting.total() != 0 {
		t.Fatalf("after shutdown the approved request is %s and ran %d times, want Approved and not run", r.State, counting.total())
	}
	next := h.replica("b", counting)
	h.clock.Add(lifecycle.DefaultStaleAfter + time.Second)
	if err := next.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitState(id, store.Succeeded)
	if n := counting.total(); n != 1 {
		t.Errorf("executed %d times, want once", n)
	}
}

// TestScheduleWithoutRights: a run whose identity the cluster refuses fails
// with a reason that says who the schedule runs as and what RBAC refused,
// in sentences, and changes nothing.
func TestScheduleWithoutRights(t *testing.T) {
	h := newSchedHarness(t, nil)
	b := h.replica("a", nil, bot.WithScheduleIdentity("system:serviceaccount:deploybot:nobody", nil))
	h.lead(b)
	id := schedule.RunID("prod", h.run)
	e, _ := h.cfg.Env("prod")
	svc, _ := h.cfg.Service("packit-service")
	tag := func() plan.TagState {
		ts, err := h.set.Tag(context.Background(), "prod", svc.ImageStream, e.Tag)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	before := tag()
	h.clock.Set(h.run)
	r := h.waitState(id, store.Failed)
	want := "The schedule runs as system:serviceaccount:deploybot:nobody. system:serviceaccount:deploybot:nobody may not do this in prod; the cluster's RBAC refuses:"
	if !strings.HasPrefix(r.Reason, want) || !strings.HasSuffix(r.Reason, "Nothing was changed.") {
		t.Errorf("reason =\n%s\nwant it to start %q and end with Nothing was changed.", r.Reason, want)
	}
	if after := tag(); !reflect.DeepEqual(after, before) {
		t.Errorf("the tag moved: %+v → %+v", before, after)
	}
}
