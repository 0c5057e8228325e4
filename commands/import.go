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
	return t, notes, nil
}
