package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

func releaseCommand() Spec {
	return Spec{
		Name:     "release",
		Usage:    "release [ENV] [REPO...] [--to SHA] [--dry-run]",
		Summary:  "move stable branches to main (fast-forward only) so CI builds the env's images; wait for them, offer the import",
		Examples: []string{"release", "release packit-service", "release ogr --to 3f2a9c1", "release --dry-run"},
		Who: "mapped users whose Kubernetes identity may import the images the repositories build into the env " +
			"(imagestreamimports, or the workloads' patch on plain Kubernetes; every service of the env for repositories that build none); then the env's policy:",
		Mutates: true,
		flags: func(fs *pflag.FlagSet) {
			fs.String("to", "", "move stable to commit `SHA` of the rolling branch instead of its head (one repository only)")
		},
		parse: parseRelease,
		plan:  planRelease,
	}
}

// parseRelease reads "[ENV] [REPO...]": repositories by name, or by a
// service they build ("release worker" is the repository that builds
// packit-worker).
func parseRelease(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	if len(p.cfg.Repositories) == 0 {
		return userErrorf("No repositories are configured, so there is nothing to release; see the repositories section of the config.")
	}
	// The environment first, wherever it stands: a service names the
	// repository that builds it for that environment.
	for _, w := range fs.Args() {
		if e, ok := findEnv(p.cfg, w); ok {
			if c.Env != "" && c.Env != e.Name {
				return userErrorf("One environment at a time: got %s and %s.", c.Env, e.Name)
			}
			c.Env = e.Name
		}
	}
	for _, w := range fs.Args() {
		if _, ok := findEnv(p.cfg, w); ok {
			continue
		}
		r, err := p.repository(w, c.Env)
		if err != nil {
			return err
		}
		if !slices.Contains(c.Repositories, r) {
			c.Repositories = append(c.Repositories, r)
		}
	}
	to, _ := fs.GetString("to")
	if to != "" {
		to = strings.ToLower(to)
		if len(to) < 7 || len(to) > 40 || !isHex(to) {
			return userErrorf("Malformed commit %q: give a commit SHA of 7 to 40 hex digits.", clip(to))
		}
		if len(c.Repositories) != 1 {
			return userErrorf("--to names one commit, so it needs exactly one repository: `release REPO --to %s`.", to)
		}
		c.To = to
	}
	return p.releaseEnv(c)
}

// repository resolves a repository name, or a service to the repository
// that builds it (for env, when given).
func (p *parser) repository(word, env string) (string, error) {
	for _, r := range p.cfg.Repositories {
		if strings.EqualFold(r.Name, word) {
			return r.Name, nil
		}
	}
	if s, ok := findService(p.cfg, word); ok {
		var from []string
		for _, r := range p.cfg.Repositories {
			if slices.Contains(r.Services, s.Name) && (env == "" || r.Env == env) && !slices.Contains(from, r.Name) {
				from = append(from, r.Name)
			}
		}
		switch len(from) {
		case 1:
			return from[0], nil
		case 0:
			if env != "" {
				return "", userErrorf("No configured repository builds %s for %s. Repositories: %s.", s.Name, env, listed(repositoryNames(p.cfg)))
			}
			return "", userErrorf("No configured repository builds %s. Repositories: %s.", s.Name, listed(repositoryNames(p.cfg)))
		}
		return "", userErrorf("%s is built by %s (one per environment); name the repository or the environment.", s.Name, listed(from))
	}
	return "", userErrorf("Unknown repository %q.%s Repositories: %s.", clip(word), didYouMean(word, repositoryNames(p.cfg)), listed(repositoryNames(p.cfg)))
}

// releaseEnv settles the one environment a release is for: the one named,
// else the one its repositories feed.
func (p *parser) releaseEnv(c *plan.Command) error {
	var envs []string
	for _, r := range p.cfg.Repositories {
		if len(c.Repositories) > 0 && !slices.Contains(c.Repositories, r.Name) {
			continue
		}
		if c.Env != "" && r.Env != c.Env {
			if len(c.Repositories) > 0 {
				return userErrorf("%s builds for %s, not %s.", r.Name, r.Env, c.Env)
			}
			continue
		}
		if !slices.Contains(envs, r.Env) {
			envs = append(envs, r.Env)
		}
	}
	switch {
	case len(envs) == 0 && c.Env != "":
		return userErrorf("No configured repository builds for %s.", c.Env)
	case len(envs) > 1:
		return userErrorf("These repositories build for %s: release one environment at a time (`release %s`).", listed(envs), envs[0])
	case c.Env == "":
		c.Env = envs[0]
	}
	return nil
}

func repositoryNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Repositories))
	for _, r := range cfg.Repositories {
		names = append(names, r.Name)
	}
	return names
}

// planRelease compares, for every repository, the stable branch with the
// commit it would move to. A repository that is even is shown and skipped;
// one that cannot be read, or whose move would not fast-forward, is left
// out with a note, so one broken repository does not hold up the others —
// unless it is the only one asked for, which is then refused with why.
func planRelease(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	e, err := envOf(d.Config, c.Env)
	if err != nil {
		return plan.Plan{}, err
	}
	if d.Git == nil {
		return plan.Plan{}, userFail("This deploybot has no git client, so it cannot release.")
	}
	var repos []*config.Repository
	for i := range d.Config.Repositories {
		r := &d.Config.Repositories[i]
		if r.Env == e.Name && (len(c.Repositories) == 0 || slices.Contains(c.Repositories, r.Name)) {
			repos = append(repos, r)
		}
	}
	if len(repos) == 0 {
		return plan.Plan{}, userFail("No configured repository builds for %s.", e.Name)
	}
	p := newPlan(plan.ActionRelease, e)
	p.Targets = make([]plan.Target, len(repos))
	notes := make([]string, len(repos))
	errs := make([]error, len(repos))
	forEach(len(repos), func(i int) {
		to := c.Pins[repos[i].Name]
		if to == "" {
			to = c.To
		}
		p.Targets[i], errs[i] = releaseTarget(ctx, d, repos[i], to)
	})
	for i, err := range errs {
		if err == nil {
			continue
		}
		if len(repos) == 1 {
			return plan.Plan{}, userFail("%s: %v", repos[i].Name, err)
		}
		notes[i] = fmt.Sprintf("%s is left out: %v", repos[i].Name, err)
	}
	for _, n := range notes {
		if n != "" {
			p.Notes = append(p.Notes, n)
		}
	}
	p.Access, err = releaseAccess(ctx, d, e, p.Targets)
	if err != nil {
		return plan.Plan{}, err
	}
	return p, nil
}

// releaseTarget is one repository's move. Its error is the git client's:
// a refusal (not on the rolling branch, not a fast-forward) or a remote
// that could not be read.
func releaseTarget(ctx context.Context, d Deps, r *config.Repository, to string) (plan.Target, error) {
	t := plan.Target{Service: r.Name, Branch: r.StableBranch(), Builds: slices.Clone(r.Services), Unchanged: true}
	stable, target, commits, err := d.Git.Compare(ctx, r, to)
	if err != nil {
		return t, err
	}
	t.From, t.To = plan.Image{Revision: stable}, plan.Image{Revision: target}
	if stable == target {
		return t, nil
	}
	t.Unchanged = false
	ch := &plan.Changes{Repository: r.Name, From: stable, To: target, Commits: commits, Compare: r.CompareURL(stable, target)}
	if len(ch.Commits) > plan.MaxCommits {
		ch.More = len(ch.Commits) - plan.MaxCommits
		ch.Commits = ch.Commits[:plan.MaxCommits]
	}
	t.Changes = ch
	return t, nil
}

// releaseAccess is what importing the services the moving branches build
// needs, so that a user who may not import into the env may not release
// into it either; a release that moves a repository that builds no
// service (a library, which the services' images take in) needs what
// importing every service does.
func releaseAccess(ctx context.Context, d Deps, e *config.Environment, targets []plan.Target) ([]plan.Access, error) {
	var names []string
	library := false
	for _, t := range targets {
		if !t.Unchanged {
			names = append(names, t.Builds...)
			library = library || len(t.Builds) == 0
		}
	}
	if library || len(names) == 0 {
		// a library feeds every service's image: what importing all needs
		names = nil
	}
	svcs, err := servicesOf(d.Config, names)
	if err != nil {
		return nil, err
	}
	imp := newPlan(plan.ActionImport, e)
	imp.Targets = make([]plan.Target, len(svcs))
	errs := make([]error, len(svcs))
	forEach(len(svcs), func(i int) {
		s := svcs[i]
		imp.Targets[i] = plan.Target{Service: s.Name, Stream: s.Stream(), Tag: e.ImageTag()}
		ws, err := serviceWorkloads(ctx, d, e, s)
		if err != nil {
			errs[i] = err
			return
		}
		imp.Targets[i].Workloads = workloadRefs(ws, e, s)
	})
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reading the workloads a release's import would roll: %w", err)
	}
	return planAccess(imp), nil
}
