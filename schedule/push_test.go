package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/clock/clocktest"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// pushWorld is a scheduler over a fake registry and fake tags: stg imports
// by itself (scheduled: true) and waits for one approval; prod does not.
type pushWorld struct {
	store    store.Store
	sched    *schedule.Scheduler
	registry *fakeRegistry
	notices  *notices
	now      time.Time
}

type fakeRegistry struct {
	mu      sync.Mutex
	images  map[string]string // env/stream → digest the registry has
	current map[string]string // env/stream → digest the env has
	fail    error
	asked   int
	// late is what a tag names from the second look on (env/stream →
	// digest): a registry that notified before it moved the tag.
	late map[string]string
}

func (r *fakeRegistry) RegistryImage(_ context.Context, env, stream, tag string) (plan.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	if r.fail != nil {
		return plan.Image{}, r.fail
	}
	d := r.images[env+"/"+stream]
	if late, ok := r.late[env+"/"+stream]; ok && r.asked > 1 {
		d = late
	}
	return plan.Image{Ref: stream + "@" + d, Digest: d}, nil
}

func (r *fakeRegistry) Tag(_ context.Context, env, stream, tag string) (plan.TagState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.current[env+"/"+stream]
	if !ok {
		return plan.TagState{}, errors.New("tag not found")
	}
	return plan.TagState{Stream: stream, Tag: tag, Current: plan.TagEvent{Digest: d}}, nil
}

// planner plans `import ENV` as the registry has it.
type planner struct{ r *fakeRegistry }

func (p planner) BuildPlan(_ context.Context, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	pl := plan.Plan{Action: plan.ActionImport, Env: c.Env, Namespace: "shop-" + c.Env, Policy: plan.Policy{Approvals: 1}}
	for _, svc := range []string{"web", "worker"} {
		from, to := p.r.current[c.Env+"/"+svc], p.r.images[c.Env+"/"+svc]
		pl.Targets = append(pl.Targets, plan.Target{Service: svc, Stream: svc, Tag: c.Env, From: plan.Image{Digest: from}, To: plan.Image{Digest: to}, Unchanged: from == to})
	}
	return pl, nil
}

type allowAll struct{}

func (allowAll) Denied(context.Context, string, string, []string, []plan.Access) ([]plan.Denial, error) {
	return nil, nil
}

type noMessages struct{}

func (noMessages) Post(context.Context, string, string, *store.Request) (store.MessageRef, error) {
	return store.MessageRef{}, nil
}
func (noMessages) Update(context.Context, store.MessageRef, *store.Request) error { return nil }

type notices struct {
	mu  sync.Mutex
	got []string // "channel: title / lines"
}

func (n *notices) Announce(_ context.Context, _, channel string, no schedule.Notice) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var lines []string
	for _, s := range no.Output.Sections {
		lines = append(lines, s.Lines...)
	}
	n.got = append(n.got, channel+": "+no.Output.Title+" / "+strings.Join(lines, " / "))
	return nil
}

func (n *notices) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.got...)
}

func newPushWorld(t *testing.T) *pushWorld {
	t.Helper()
	cfg := &config.Config{
		Environments: []config.Environment{
			{Name: "stg", Namespace: "shop-stg", Tag: "stg", Scheduled: true, Channel: &config.ChannelRef{Platform: "terminal", ID: "stg-deploys"}},
			{Name: "prod", Namespace: "shop-prod", Channel: &config.ChannelRef{Platform: "terminal", ID: "prod-deploys"}},
		},
		Services: []config.Service{
			{Name: "web", Repository: "quay.io/shop/web"},
			{Name: "worker", Repository: "shop/worker"}, // Docker Hub, written short
		},
	}
	now := time.Date(2026, 11, 24, 10, 42, 13, 0, time.UTC)
	clk := clocktest.New(now)
	st := store.NewMemory()
	reg := &fakeRegistry{
		images:  map[string]string{"stg/web": digest('b'), "stg/worker": digest('d'), "prod/web": digest('b'), "prod/worker": digest('c')},
		current: map[string]string{"stg/web": digest('a'), "stg/worker": digest('d'), "prod/web": digest('a'), "prod/worker": digest('c')},
	}
	log := slog.New(slog.DiscardHandler)
	life := lifecycle.New(lifecycle.Deps{Config: cfg, Store: st, Planner: planner{reg}, Access: allowAll{}, Messages: noMessages{}},
		lifecycle.WithClock(clk), lifecycle.WithLogger(log))
	t.Cleanup(life.Close)
	n := &notices{}
	s := schedule.New(cfg, st, life, n, schedule.WithClock(clk), schedule.WithLogger(log), schedule.WithRegistry(reg), schedule.WithTags(reg))
	return &pushWorld{store: st, sched: s, registry: reg, notices: n, now: now}
}

func summary(outs []schedule.PushOutcome) string {
	var parts []string
	for _, o := range outs {
		s := fmt.Sprintf("%s/%s %s", o.Env, o.Service, o.Did)
		if o.Request != "" {
			s += " #" + o.Request
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// TestPushed pins what a push does: only the envs whose tag and the
// services whose repository it names, re-resolved in the registry; nothing
// when the env has the registry's image; an import at once where the env
// imports by itself, else a heads-up naming the command; each once.
func TestPushed(t *testing.T) {
	defer schedule.SetPushRechecks(time.Millisecond, time.Millisecond, time.Millisecond)()
	web := func(tag string) webhook.Push { return webhook.Push{Repository: "quay.io/shop/web", Tag: tag} }
	tests := []struct {
		name   string
		setup  func(w *pushWorld)
		pushes []webhook.Push
		// twice sends the pushes again, as a registry's redelivery.
		twice   bool
		want    string   // summary of the (last) outcomes
		notices []string // substrings of the notices, in order
		asked   int      // registry lookups, -1: not checked
	}{
		{name: "not scheduled: a heads-up with the command", pushes: []webhook.Push{web("prod")},
			want:    "prod/web heads-up",
			notices: []string{"prod-deploys: New image for prod / web aaaaaaaaaaaa → bbbbbbbbbbbb; `import prod web` imports it. / Pushed to the registry at 10:42 UTC."}, asked: 1},
		{name: "redelivered: the heads-up is posted once", pushes: []webhook.Push{web("prod")}, twice: true,
			want: "prod/web duplicate", notices: []string{"New image for prod"}, asked: 2},
		{name: "the env has the registry's image: nothing, after looking again", pushes: []webhook.Push{{Repository: "docker.io/shop/worker", Tag: "prod"}},
			want: "prod/worker unchanged", asked: 4},
		{name: "the registry notified before it moved the tag: the second look sees the push", pushes: []webhook.Push{{Repository: "docker.io/shop/worker", Tag: "prod"}},
			setup: func(w *pushWorld) { w.registry.late = map[string]string{"prod/worker": digest('e')} },
			want:  "prod/worker heads-up", notices: []string{"worker cccccccccccc → eeeeeeeeeeee; `import prod worker`"}, asked: 2},
		{name: "another tag or repository: the registry is not asked", pushes: []webhook.Push{web("latest"), {Repository: "quay.io/shop/api", Tag: "prod"}},
			want: "", asked: 0},
		{name: "the repository is compared canonically", pushes: []webhook.Push{{Repository: "index.docker.io/shop/worker", Tag: "prod"}},
			setup: func(w *pushWorld) { w.registry.images["prod/worker"] = digest('e') },
			want:  "prod/worker heads-up", notices: []string{"worker cccccccccccc → eeeeeeeeeeee; `import prod worker`"}, asked: 1},
		{name: "scheduled: the import is opened as the schedule", pushes: []webhook.Push{web("stg")},
			want:    "stg/web import #" + schedule.RunID("stg", time.Date(2026, 11, 24, 10, 42, 0, 0, time.UTC)),
			notices: []string{"stg-deploys: Scheduled import of stg at Tue 2026-11-24 10:42 UTC / Pushed to the registry at 10:42 UTC: web bbbbbbbbbbbb."}, asked: 1},
		{name: "scheduled, redelivered: one import", pushes: []webhook.Push{web("stg")}, twice: true,
			want: "stg/web duplicate", notices: []string{"Pushed to the registry at 10:42 UTC: web bbbbbbbbbbbb."}, asked: 2},
		{name: "scheduled but paused: a heads-up that says so", pushes: []webhook.Push{web("stg")},
			setup: func(w *pushWorld) {
				if err := w.store.SetPause(context.Background(), "stg", &store.Pause{By: "alice", At: w.now.Add(-time.Hour)}); err != nil {
					t.Fatal(err)
				}
			},
			want:    "stg/web heads-up",
			notices: []string{"stg-deploys: New image for stg / The schedule of stg is paused by alice, so this push was not imported. / web aaaaaaaaaaaa → bbbbbbbbbbbb; `import stg web` imports it."}, asked: 1},
		{name: "both envs' tags pushed at once", pushes: []webhook.Push{web("stg"), web("prod")},
			want: "stg/web import #" + schedule.RunID("stg", time.Date(2026, 11, 24, 10, 42, 0, 0, time.UTC)) + ", prod/web heads-up", asked: 2,
			notices: []string{"Scheduled import of stg", "New image for prod"}},
		{name: "the registry fails: nothing is posted", pushes: []webhook.Push{web("prod")},
			setup: func(w *pushWorld) { w.registry.fail = errors.New("429 Too Many Requests; try again in 40s") },
			want:  "prod/web failed", asked: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newPushWorld(t)
			if tt.setup != nil {
				tt.setup(w)
			}
			ctx := context.Background()
			outs, err := w.sched.Pushed(ctx, tt.pushes)
			if err == nil && tt.twice {
				outs, err = w.sched.Pushed(ctx, tt.pushes)
			}
			if err != nil {
				t.Fatalf("Pushed: %v", err)
			}
			if got := summary(outs); got != tt.want {
				t.Errorf("outcomes %q, want %q", got, tt.want)
			}
			got := w.notices.all()
			if len(got) != len(tt.notices) {
				t.Fatalf("notices %q, want %d", got, len(tt.notices))
			}
			for i, want := range tt.notices {
				if !strings.Contains(got[i], want) {
					t.Errorf("notice %d = %q, want it to contain %q", i, got[i], want)
				}
			}
			if tt.asked >= 0 && w.registry.asked != tt.asked {
				t.Errorf("registry asked %d times, want %d", w.registry.asked, tt.asked)
			}
		})
	}
}

// TestPushedImportWaits: the import a push opens is a normal request of the
// schedule under the env's policy (here: one approval), importing what the
// registry has, not what the webhook body said.
func TestPushedImportWaits(t *testing.T) {
	w := newPushWorld(t)
	ctx := context.Background()
	outs, err := w.sched.Pushed(ctx, []webhook.Push{{Repository: "quay.io/shop/web", Tag: "stg"}})
	if err != nil || len(outs) != 1 || outs[0].Did != schedule.PushImport {
		t.Fatalf("Pushed = %v, %v", outs, err)
	}
	r, err := w.store.Get(ctx, outs[0].Request)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.AwaitingApproval || r.Requester.Platform != lifecycle.SchedulePlatform || r.Command != "import stg" {
		t.Errorf("request %s: %s by %s, %q", r.ID, r.State, r.Requester.Platform, r.Command)
	}
	for _, tg := range r.Plan.Targets {
		if tg.Service == "web" && tg.To.Digest != digest('b') {
			t.Errorf("web imports %s, want the registry's %s", tg.To.Digest, digest('b'))
		}
	}
}
