package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

func importCommand() Spec {
	return Spec{
		Name:     "import",
		Usage:    "import ENV [SERVICE...] [--dry-run]",
		Summary:  "import the registry's current images into the env's tags (all services by default)",
		Examples: []string{"import prod", "import prod worker", "import stg service worker --dry-run"},
		Who:      "mapped users whose Kubernetes identity may import images into the env's image streams (imagestreamimports); then the env's policy:",
		Mutates:  true,
		parse:    parseImport,
		plan:     planImport,
	}
}

func parseImport(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	env, svcs, err := p.envAndServices(fs.Args())
	if err != nil {
		return err
	}
	c.Env, c.Services = env, svcs
	return nil
}

// planImport asks the registry, for every service, what importing its tag
// would bring. A service the registry cannot answer for stays unchanged with a
// note, so one broken repository does not block the others.
func planImport(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	e, err := envOf(d.Config, c.Env)
	if err != nil {
		return plan.Plan{}, err
	}
	svcs, err := servicesOf(d.Config, c.Services)
	if err != nil {
		return plan.Plan{}, err
	}
	p := newPlan(plan.ActionImport, e)
	targets := make([]plan.Target, len(svcs))
	notes := make([][]string, len(svcs))
	errs := make([]error, len(svcs))
	forEach(len(svcs), func(i int) { targets[i], notes[i], errs[i] = importTarget(ctx, d, e, svcs[i]) })
	if err := errors.Join(errs...); err != nil {
		return plan.Plan{}, err
	}
	p.Targets = targets
	for _, n := range notes {
		p.Notes = append(p.Notes, n...)
	}
	p.Access = planAccess(p)
	return p, nil
}

func importTarget(ctx context.Context, d Deps, e *config.Environment, s *config.Service) (plan.Target, []string, error) {
	t := plan.Target{Service: s.Name, Stream: s.Stream(), Tag: e.ImageTag()}
	ts, err := readTag(ctx, d, e, s)
	if err != nil {
		return t, nil, err
	}
	t.From = currentImage(ts)
	if ts.Hold != nil {
		// Held: no import moves it, the schedule's and a push's included.
		t.To, t.Unchanged = t.From, true
		return t, []string{fmt.Sprintf("%s is %s; left as it is until `unhold %s %s`.", s.Name, holdText(*ts.Hold), e.Name, s.Name)}, nil
	}
	ws, err := serviceWorkloads(ctx, d, e, s)
	if err != nil {
		return t, nil, err
	}
	t.Workloads = workloadRefs(ws, e, s)
	var notes []string
	if ts.Pinned() {
		notes = append(notes, fmt.Sprintf("%s is pinned to %s, so import re-imports that image; `track %s %s` follows the registry again.",
			s.Name, ts.SpecFrom, s.Name, e.Name))
	}
	img, err := d.Cluster.RegistryImage(ctx, e.Name, t.Stream, t.Tag)
	if err != nil {
		// Shown, not fatal: the other services can still be imported.
		t.Unchanged = true
		return t, append(notes, fmt.Sprintf("%s: asking the registry failed, left unchanged: %v", s.Name, err)), nil
	}
	t.To = img
	t.Unchanged = img.Digest != "" && img.Digest == ts.Current.Digest
	if !t.Unchanged {
		t.Changes = whatChanged(ctx, d, e, s, t.From, t.To)
	}
	return t, notes, nil
}

// whatChanged lists the commits between the running image's revision and
// the new one's, from the repository that builds s for e. Without a
// repository, or full revision labels on both images, there is nothing
// to list; a repository that cannot be read says so in the Changes' Note,
// and the import is planned all the same.
func whatChanged(ctx context.Context, d Deps, e *config.Environment, s *config.Service, from, to plan.Image) *plan.Changes {
	repo, ok := d.Config.RepositoryOf(s.Name, e.Name)
	if d.Git == nil || !ok || !isFullSHA(to.Revision) {
		return nil
	}
	if from.Revision == "" && from.Digest != "" {
		if lookup, ok := d.Cluster.(ImageLookup); ok {
			if cur, err := lookup.LookupImage(ctx, e.Name, s.Stream(), s.Repository+"@"+from.Digest); err == nil {
				from.Revision = cur.Revision
			}
		}
	}
	if !isFullSHA(from.Revision) || from.Revision == to.Revision {
		return nil
	}
	ch := &plan.Changes{Repository: repo.Name, From: from.Revision, To: to.Revision, Compare: repo.CompareURL(from.Revision, to.Revision)}
	commits, ok, err := d.Git.Log(ctx, repo, from.Revision, to.Revision)
	if err == nil && ok && len(commits) == 0 {
		// The new image is older: say what going back undoes.
		ch.Back = true
		ch.Compare = repo.CompareURL(to.Revision, from.Revision)
		commits, ok, err = d.Git.Log(ctx, repo, to.Revision, from.Revision)
	}
	switch {
	case err != nil:
		ch.Note = fmt.Sprintf("the commits between %s and %s could not be listed: %v", shortSHA(from.Revision), shortSHA(to.Revision), err)
		return ch
	case !ok:
		ch.Note = fmt.Sprintf("%s or %s is not on %s's %s, so its commits are not listed", shortSHA(from.Revision), shortSHA(to.Revision), repo.Name, repo.RollingBranch())
		return ch
	}
	ch.Commits = commits
	if len(ch.Commits) > plan.MaxCommits {
		ch.More = len(ch.Commits) - plan.MaxCommits
		ch.Commits = ch.Commits[:plan.MaxCommits]
	}
	return ch
}

// isFullSHA reports a 40-digit commit SHA: an abbreviated revision label
// cannot be looked up without a fetch each time.
func isFullSHA(s string) bool { return len(s) == 40 && isHex(s) }

// shortSHA abbreviates a commit SHA as git log --oneline does.
func shortSHA(s string) string {
	if len(s) > 7 && isHex(s) {
		return s[:7]
	}
	return s
}
