package release_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/registry"
	"github.com/deploybot/deploybot/release"
)

func sha(c string) string { return strings.Repeat(c, 40) }

func digest(c string) string { return "sha256:" + strings.Repeat(c, 64) }

// fakeGit records pushes and refuses those listed in moved, as a remote
// whose branch someone else moved would (gitrepo is tested against git's
// own http-backend).
type fakeGit struct {
	mu     sync.Mutex
	pushed []string
	moved  map[string]error
}

func (g *fakeGit) Push(_ context.Context, repo *config.Repository, old, new string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.moved[repo.Name]; err != nil {
		return err
	}
	g.pushed = append(g.pushed, repo.Name+" "+old[:7]+".."+new[:7])
	return nil
}

// fakeRegistry answers Resolve from a table the test changes, as CI
// pushing to the registry would.
type fakeRegistry struct {
	mu   sync.Mutex
	tags map[string]plan.Image
	errs map[string]error
}

func (r *fakeRegistry) set(ref string, img plan.Image) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tags[ref] = img
}

func (r *fakeRegistry) Resolve(_ context.Context, repo, tag string) (plan.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.errs[repo+":"+tag]; err != nil {
		return plan.Image{}, err
	}
	img, ok := r.tags[repo+":"+tag]
	if !ok {
		return plan.Image{}, fmt.Errorf("%s:%s: %w", repo, tag, registry.ErrNotFound)
	}
	return img, nil
}

func testConfig(timeout time.Duration) *config.Config {
	return &config.Config{
		Environments: []config.Environment{{Name: "prod", Namespace: "packit--prod", Tag: "prod"}},
		Services: []config.Service{
			{Name: "packit-service", Repository: "quay.io/packit/packit-service"},
			{Name: "packit-worker", Repository: "quay.io/packit/packit-worker"},
			{Name: "dashboard", Repository: "quay.io/packit/dashboard"},
		},
		Repositories: []config.Repository{
			{Name: "packit-service", URL: "https://git.example/packit-service.git", Env: "prod", Services: []string{"packit-service", "packit-worker"}},
			{Name: "dashboard", URL: "https://git.example/dashboard.git", Env: "prod", Services: []string{"dashboard"}},
			{Name: "ogr", URL: "https://git.example/ogr.git", Env: "prod"},
		},
		Release: config.Release{Timeout: config.Duration{Duration: timeout}},
	}
}

func releasePlan() plan.Plan {
	target := func(name, from, to string, builds ...string) plan.Target {
		return plan.Target{Service: name, Branch: "stable", From: plan.Image{Revision: sha(from)}, To: plan.Image{Revision: sha(to)},
			Builds: builds, Unchanged: from == to}
	}
	return plan.Plan{Action: plan.ActionRelease, Env: "prod", Namespace: "packit--prod", Targets: []plan.Target{
		target("packit-service", "1", "2", "packit-service", "packit-worker"),
		target("dashboard", "3", "4", "dashboard"),
		target("ogr", "5", "5"),
	}}
}

type progress struct {
	mu    sync.Mutex
	lines []string
}

func (p *progress) report(ev plan.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, ev.Service+" "+ev.Phase+" "+ev.Message)
}

func (p *progress) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// TestReleaseWaitsForTheBuilds: the pushes go in order, each build is
// followed until its tag holds an image labelled with the pushed commit (or,
// without the label, another image than before the push), and a repository
// someone else moved is refused and reported while the others go on.
func TestReleaseWaitsForTheBuilds(t *testing.T) {
	g := &fakeGit{moved: map[string]error{"dashboard": errors.New("stable was moved to 9999999 by someone else after the release was planned from 3333333; nothing was pushed")}}
	reg := &fakeRegistry{tags: map[string]plan.Image{
		"quay.io/packit/packit-service:prod": {Digest: digest("a"), Revision: sha("1")},
		"quay.io/packit/packit-worker:prod":  {Digest: digest("b")}, // no revision label
	}}
	r := release.New(testConfig(time.Minute), g, reg, release.WithPoll(5*time.Millisecond))
	var pr progress
	res, err := r.Execute(context.Background(), releasePlan(), pr.report)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.pushed, ";"); got != "packit-service 1111111..2222222" {
		t.Errorf("pushed %q", got)
	}
	if res.Targets[0].Outcome != plan.PhaseChanged || res.Targets[1].Outcome != plan.PhaseFailed ||
		!strings.Contains(res.Targets[1].Error, "moved to 9999999 by someone else") || res.Targets[2].Outcome != plan.PhaseUnchanged {
		t.Fatalf("targets = %+v", res.Targets)
	}
	if len(res.Builds) != 2 || res.Builds[0].Before.Digest != digest("a") || res.Builds[1].Commit != sha("2") {
		t.Fatalf("builds = %+v", res.Builds)
	}
	if s := res.Targets[0].Summary(); s != "packit-service changed 1111111 → 2222222" {
		t.Errorf("summary %q", s)
	}

	done := make(chan []plan.RolloutResult)
	go func() { done <- r.Follow(context.Background(), releasePlan(), res, 0, pr.report) }()
	time.Sleep(30 * time.Millisecond)
	// CI: first an unrelated rebuild of the old commit, then the real one.
	reg.set("quay.io/packit/packit-service:prod", plan.Image{Digest: digest("c"), Revision: sha("1")})
	time.Sleep(30 * time.Millisecond)
	reg.set("quay.io/packit/packit-service:prod", plan.Image{Digest: digest("d"), Revision: sha("2")})
	reg.set("quay.io/packit/packit-worker:prod", plan.Image{Digest: digest("e")})
	var out []plan.RolloutResult
	select {
	case out = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not see the builds")
	}
	if len(out) != 2 || out[0].Outcome != plan.PhaseSettled || out[1].Outcome != plan.PhaseSettled || out[0].Workload.Kind != plan.KindBuild {
		t.Fatalf("rollouts = %+v\nprogress:\n%s", out, &pr)
	}
	text := pr.String()
	for _, want := range []string{
		"packit-service rolling waiting for quay.io/packit/packit-service:prod built from 2222222",
		"packit-service settled built dddddddddddd from 2222222 after",
		"packit-worker settled built eeeeeeeeeeee (no revision label; the tag moved on from bbbbbbbbbbbb) after",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("progress lacks %q:\n%s", want, text)
		}
	}
	res.Rollouts = out
	if b := res.Built(); strings.Join(b, ",") != "packit-service,packit-worker" {
		t.Errorf("built = %v", b)
	}
}

// TestReleaseBuildTimeout: a build that never arrives is reported failed
// after the release timeout, saying what the tag still has.
func TestReleaseBuildTimeout(t *testing.T) {
	reg := &fakeRegistry{tags: map[string]plan.Image{
		"quay.io/packit/dashboard:prod": {Digest: digest("a"), Revision: sha("3")},
	}, errs: map[string]error{}}
	r := release.New(testConfig(50*time.Millisecond), &fakeGit{}, reg, release.WithPoll(5*time.Millisecond))
	p := releasePlan()
	p.Targets = p.Targets[1:2]
	var pr progress
	res, err := r.Execute(context.Background(), p, pr.report)
	if err != nil {
		t.Fatal(err)
	}
	out := r.Follow(context.Background(), p, res, 0, pr.report)
	if len(out) != 1 || out[0].Outcome != plan.PhaseFailed ||
		out[0].Reason != "no image built from 4444444 arrived within 50ms; the tag still has aaaaaaaaaaaa built from 3333333" {
		t.Fatalf("rollouts = %+v", out)
	}
	res.Rollouts = out
	if !res.Failed() || !strings.Contains(res.FailureSummary(), "build/dashboard: no image built from 4444444") {
		t.Errorf("failure summary %q", res.FailureSummary())
	}

	// A registry that stops answering is named in the timeout.
	reg.errs["quay.io/packit/dashboard:prod"] = errors.New("the registry refused deploybot's credentials")
	out = r.Follow(context.Background(), p, res, 0, pr.report)
	if !strings.Contains(out[0].Reason, "the registry last said: the registry refused deploybot's credentials") {
		t.Errorf("reason %q", out[0].Reason)
	}
}

// TestReleaseUnknownBefore: when the registry cannot say what a tag held
// before the push, an image without a revision label may be the old one,
// so it never counts as built; the timeout says why.
func TestReleaseUnknownBefore(t *testing.T) {
	reg := &fakeRegistry{tags: map[string]plan.Image{
		"quay.io/packit/dashboard:prod": {Digest: digest("a")},
	}, errs: map[string]error{"quay.io/packit/dashboard:prod": errors.New("429 Too Many Requests")}}
	r := release.New(testConfig(100*time.Millisecond), &fakeGit{}, reg, release.WithPoll(5*time.Millisecond))
	p := releasePlan()
	p.Targets = p.Targets[1:2]
	var pr progress
	res, err := r.Execute(context.Background(), p, pr.report)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Builds) != 1 || res.Builds[0].BeforeKnown {
		t.Fatalf("builds = %+v, want the one build with what was there before unknown", res.Builds)
	}
	reg.mu.Lock()
	delete(reg.errs, "quay.io/packit/dashboard:prod")
	reg.mu.Unlock()
	out := r.Follow(context.Background(), p, res, 0, pr.report)
	if len(out) != 1 || out[0].Outcome != plan.PhaseFailed || !strings.Contains(out[0].Reason, "a new build cannot be told from the old one") {
		t.Fatalf("rollouts = %+v", out)
	}
}
