// Package release executes release Plans: it moves each repository's
// stable branch forward with a compare-and-swap push (fast-forward only,
// and only while the branch is still where the approved Plan saw it), and
// then follows the registry tags of the images those branches build until
// each is rebuilt from the new commit, reporting live and giving up,
// honestly, after the configured timeout. A Releaser is the lifecycle's
// Executor for plan.ActionRelease; it changes no cluster.
package release

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/clock"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/registry"
)

// Git pushes a configured repository's stable branch from old to new,
// refusing (and pushing nothing) when the remote branch is no longer at
// old. gitrepo.Configured implements it.
type Git interface {
	Push(ctx context.Context, repo *config.Repository, old, new string) error
}

// Registry resolves a registry tag to its image, with the revision label
// read. cluster.Registry implementations do.
type Registry interface {
	Resolve(ctx context.Context, repo, tag string) (plan.Image, error)
}

// DefaultPoll is how often a waiting release asks the registry for each
// image; at the registry client's default budget a release of many
// services stays far below it.
const DefaultPoll = 15 * time.Second

// Releaser executes release Plans.
type Releaser struct {
	cfg   *config.Config
	git   Git
	reg   Registry
	clock clock.Clock
	poll  time.Duration
}

// Option configures a Releaser.
type Option func(*Releaser)

// WithClock sets the clock the build wait measures time on.
func WithClock(c clock.Clock) Option { return func(r *Releaser) { r.clock = c } }

// WithPoll sets how often the registry is asked while waiting.
func WithPoll(d time.Duration) Option { return func(r *Releaser) { r.poll = d } }

// New returns a Releaser pushing through git and watching reg.
func New(cfg *config.Config, git Git, reg Registry, opts ...Option) *Releaser {
	r := &Releaser{cfg: cfg, git: git, reg: reg, clock: clock.Real, poll: DefaultPoll}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Execute pushes every repository of the Plan that moves, one after the
// other, in the Plan's order; a repository that fails (moved by someone
// else, refused, unreachable) is reported and the others still go. Just
// before each push it notes what the registry tags of the images the
// branch builds hold, for Follow.
func (r *Releaser) Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error) {
	if p.Action != plan.ActionRelease {
		return plan.Result{}, fmt.Errorf("the releaser executes releases, not %s", p.Action)
	}
	env, ok := r.cfg.Env(p.Env)
	if !ok {
		return plan.Result{}, fmt.Errorf("environment %s is no longer configured", p.Env)
	}
	var res plan.Result
	for _, t := range p.Targets {
		tr := plan.TargetResult{Service: t.Service, From: t.From, To: t.To}
		if t.Unchanged {
			tr.Outcome = plan.PhaseUnchanged
			res.Targets = append(res.Targets, tr)
			report(plan.Progress{Service: t.Service, Phase: plan.PhaseUnchanged})
			continue
		}
		builds, err := r.push(ctx, env, t)
		if err != nil {
			tr.Outcome, tr.Error = plan.PhaseFailed, err.Error()
			res.Targets = append(res.Targets, tr)
			report(plan.Progress{Service: t.Service, Phase: plan.PhaseFailed, Message: tr.Error})
			continue
		}
		tr.Outcome = plan.PhaseChanged
		res.Targets = append(res.Targets, tr)
		res.Builds = append(res.Builds, builds...)
		report(plan.Progress{Service: t.Service, Phase: plan.PhaseChanged,
			Message: fmt.Sprintf("pushed %s %s → %s", t.Branch, plan.ShortSHA(t.From.Revision), plan.ShortSHA(t.To.Revision))})
	}
	return res, nil
}

// push moves one repository and returns the builds to wait for.
func (r *Releaser) push(ctx context.Context, env *config.Environment, t plan.Target) ([]plan.Build, error) {
	repo, ok := r.cfg.Repository(t.Service)
	if !ok {
		return nil, fmt.Errorf("repository %s is no longer configured; nothing was pushed", t.Service)
	}
	if repo.StableBranch() != t.Branch {
		return nil, fmt.Errorf("the config now names %s as its stable branch, not %s; nothing was pushed, plan it again", repo.StableBranch(), t.Branch)
	}
	var builds []plan.Build
	for _, name := range t.Builds {
		s, ok := r.cfg.Service(name)
		if !ok {
			return nil, fmt.Errorf("service %s is no longer configured; nothing was pushed", name)
		}
		b := plan.Build{Service: s.Name, Repository: s.Repository, Tag: env.ImageTag(), Commit: t.To.Revision}
		b.Before, b.BeforeKnown = r.before(ctx, b)
		builds = append(builds, b)
	}
	if err := r.git.Push(ctx, repo, t.From.Revision, t.To.Revision); err != nil {
		return nil, fmt.Errorf("pushing %s: %w", t.Branch, err)
	}
	now := r.clock.Now()
	for i := range builds {
		builds[i].Pushed = now
	}
	return builds, nil
}

// before is what b's tag holds before the push: an image, or none when
// the registry says the tag does not exist (a first build). When the
// registry cannot say (asked twice), it is not known.
func (r *Releaser) before(ctx context.Context, b plan.Build) (plan.Image, bool) {
	var err error
	for try := range 2 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return plan.Image{}, false
			case <-r.clock.After(time.Second):
			}
		}
		var img plan.Image
		if img, err = r.reg.Resolve(ctx, b.Repository, b.Tag); err == nil {
			return img, true
		}
		if errors.Is(err, registry.ErrNotFound) {
			return plan.Image{}, true
		}
	}
	return plan.Image{}, false
}

// Follow waits for every build of res until its registry tag holds an
// image built from the pushed commit — its revision label names it, or,
// for an image without the label, the tag has moved on from what it held
// before the push — or until the release timeout (release.timeout, not the
// rollout deadline: builds take longer than rollouts). Each build is a
// rollout of kind plan.KindBuild in the result.
func (r *Releaser) Follow(ctx context.Context, p plan.Plan, res plan.Result, _ time.Duration, report func(plan.Progress)) []plan.RolloutResult {
	if len(res.Builds) == 0 {
		return nil
	}
	var mu sync.Mutex
	rep := func(ev plan.Progress) {
		mu.Lock()
		defer mu.Unlock()
		report(ev)
	}
	start := r.clock.Now()
	deadline := start.Add(r.cfg.Release.BuildTimeout())
	out := make([]plan.RolloutResult, len(res.Builds))
	var wg sync.WaitGroup
	for i, b := range res.Builds {
		from := b.Pushed
		if from.IsZero() {
			from = start
		}
		wg.Go(func() { out[i] = r.wait(ctx, b, from, deadline, rep) })
	}
	wg.Wait()
	return out
}

// wait follows one build.
func (r *Releaser) wait(ctx context.Context, b plan.Build, start, deadline time.Time, report func(plan.Progress)) plan.RolloutResult {
	w := plan.WorkloadRef{Kind: plan.KindBuild, Name: b.Service}
	progress := func(phase, msg string) {
		report(plan.Progress{Service: b.Service, Workload: w, Phase: phase, Message: msg})
	}
	progress(plan.PhaseRolling, fmt.Sprintf("waiting for %s:%s built from %s", b.Repository, b.Tag, plan.ShortSHA(b.Commit)))
	var last plan.Image
	var lastErr error
	for {
		img, err := r.reg.Resolve(ctx, b.Repository, b.Tag)
		switch {
		case err != nil:
			lastErr = err
		case built(img, b):
			msg := fmt.Sprintf("built %s from %s after %s", plan.ShortDigest(img.Digest), plan.ShortSHA(b.Commit), since(r.clock.Now(), start))
			if img.Revision == "" {
				was := "the tag moved on from " + plan.ShortDigest(b.Before.Digest)
				if b.Before.Digest == "" {
					was = "the tag had no image before"
				}
				msg = fmt.Sprintf("built %s (no revision label; %s) after %s", plan.ShortDigest(img.Digest), was, since(r.clock.Now(), start))
			}
			progress(plan.PhaseSettled, msg)
			return plan.RolloutResult{Workload: w, Outcome: plan.PhaseSettled, Reason: msg}
		default:
			last, lastErr = img, nil
		}
		var why string
		switch {
		case ctx.Err() != nil:
			why = fmt.Sprintf("stopped waiting for the image built from %s: this replica is shutting down, or another one took the request over", plan.ShortSHA(b.Commit))
		case !r.clock.Now().Before(deadline):
			why = fmt.Sprintf("no image built from %s arrived within %s", plan.ShortSHA(b.Commit), since(deadline, start))
			switch {
			case lastErr != nil:
				why += fmt.Sprintf("; the registry last said: %v", lastErr)
			case last.Digest != "":
				why += fmt.Sprintf("; the tag still has %s", plan.ShortDigest(last.Digest))
				if last.Revision != "" {
					why += " built from " + plan.ShortSHA(last.Revision)
				} else if !b.BeforeKnown {
					why += ", without a revision label, and the registry could not say what the tag held before the push, so a new build cannot be told from the old one"
				}
			}
		}
		if why != "" {
			progress(plan.PhaseFailed, why)
			return plan.RolloutResult{Workload: w, Outcome: plan.PhaseFailed, Reason: why}
		}
		select {
		case <-ctx.Done():
		case <-r.clock.After(min(r.poll, max(deadline.Sub(r.clock.Now()), 0))):
		}
	}
}

// built reports whether img is the build of b's commit: its revision
// label names the commit (in full or abbreviated), or, without a label,
// the tag holds another image than before the push.
func built(img plan.Image, b plan.Build) bool {
	if img.Digest == "" {
		return false
	}
	if img.Revision != "" {
		return img.Revision == b.Commit || len(img.Revision) >= 7 && strings.HasPrefix(b.Commit, img.Revision)
	}
	// Before is empty when the tag did not exist before the push: then any
	// image is the new one. Unknown, an unlabelled image may be the old one.
	return b.BeforeKnown && img.Digest != b.Before.Digest
}

func since(now, start time.Time) string {
	d := now.Sub(start)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}
