package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/plan"
)

func promoteCommand() Spec {
	return Spec{
		Name:     "promote",
		Usage:    "promote SERVICE FROM TO [--dry-run]",
		Summary:  "pin TO's tag to the exact image FROM runs, once it has run there healthy (promote.healthyFor)",
		Examples: []string{"promote worker stg prod", "promote service stg prod --dry-run"},
		Who:      "mapped users whose Kubernetes identity may update TO's image stream tags (imagestreamtags), as for revert; then TO's policy:",
		Mutates:  true,
		parse:    parsePromote,
		plan:     planPromote,
	}
}

// parsePromote reads SERVICE FROM TO: one service and two environments,
// the one promoted from first.
func parsePromote(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	var envs []string
	for _, w := range fs.Args() {
		if e, ok := findEnv(p.cfg, w); ok {
			envs = append(envs, e.Name)
			continue
		}
		svc, err := p.service(w)
		if err != nil {
			return err
		}
		if len(c.Services) > 0 && c.Services[0] != svc {
			return userErrorf("One service at a time: got %s and %s.", c.Services[0], svc)
		}
		c.Services = []string{svc}
	}
	switch {
	case len(c.Services) == 0:
		return userErrorf("Which service? Services: %s.", listed(serviceNames(p.cfg)))
	case len(envs) != 2:
		return userErrorf("Give the environment to promote from and the one to promote to, in that order: `promote %s FROM TO`. Environments: %s.",
			c.Services[0], listed(envNames(p.cfg)))
	case envs[0] == envs[1]:
		return userErrorf("%s is both FROM and TO; promote takes what one environment runs to another.", envs[0])
	}
	c.From, c.Env = envs[0], envs[1]
	return nil
}

// ReadySince is optionally implemented by a Cluster: since when every pod
// of a workload has been Ready (zero unless all are), with how many are
// Ready of how many. promote needs it.
type ReadySince interface {
	ReadySince(ctx context.Context, env, kind, name string) (since time.Time, ready, pods int, err error)
}

// planPromote pins TO's tag to the digest FROM's tag has — only when every
// workload that follows FROM's tag runs that digest, settled, with all its
// pods Ready for at least promote.healthyFor — as `oc tag --source=docker
// REPO@DIGEST TO` would. The Plan says how long it has run healthy; the
// digest, not that duration, is what an approval binds to, and a FROM that
// moved on or stopped being healthy by then fails the approval.
func planPromote(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	to, err := envOf(d.Config, c.Env)
	if err != nil {
		return plan.Plan{}, err
	}
	from, err := envOf(d.Config, c.From)
	if err != nil {
		return plan.Plan{}, err
	}
	if len(c.Services) != 1 {
		return plan.Plan{}, userFail("promote takes one service.")
	}
	s, err := serviceOf(d.Config, c.Services[0])
	if err != nil {
		return plan.Plan{}, err
	}
	rs, ok := d.Cluster.(ReadySince)
	if !ok {
		return plan.Plan{}, userFail("This deploybot cannot read pods, so it cannot tell how long %s has run healthy in %s.", s.Name, from.Name)
	}
	fromTag, err := readTag(ctx, d, from, s)
	if err != nil {
		return plan.Plan{}, err
	}
	digest := fromTag.Current.Digest
	if digest == "" {
		return plan.Plan{}, userFail("%s has no image in %s yet, so there is nothing to promote.", s.Name, from.Name)
	}
	ws, err := serviceWorkloads(ctx, d, from, s)
	if err != nil {
		return plan.Plan{}, err
	}
	if len(ws) == 0 {
		return plan.Plan{}, userFail("No workload follows %s:%s in %s, so nothing there shows %s healthy.", s.Stream(), from.ImageTag(), from.Name, plan.ShortDigest(digest))
	}
	var problems []string
	var since time.Time // when the last of all their pods became Ready
	for _, w := range ws {
		name := strings.ToLower(w.Kind) + "/" + w.Name
		switch {
		case !runsDigest(w, digest):
			problems = append(problems, fmt.Sprintf("%s does not run %s yet (%s)", name, plan.ShortDigest(digest), imagesText(w.Images)))
			continue
		case !w.Settled || w.Updated < w.Desired || w.Ready < w.Desired:
			problems = append(problems, fmt.Sprintf("%s is %s, %d/%d ready", name, rolloutText(w), w.Ready, w.Desired))
			continue
		}
		t, ready, pods, err := rs.ReadySince(ctx, from.Name, w.Kind, w.Name)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		case t.IsZero():
			problems = append(problems, fmt.Sprintf("%s has %d of %d pods Ready", name, ready, pods))
		case t.After(since):
			since = t
		}
	}
	need := d.Config.Promote.Healthy()
	healthy := d.now().Sub(since)
	if len(problems) == 0 && healthy < need {
		problems = append(problems, fmt.Sprintf("all its pods have been Ready for %s; promote takes an image that has run healthy for %s (promote.healthyFor), so in %s",
			coarse(healthy), fmtDuration(need), coarse(need-healthy)))
	}
	if len(problems) > 0 {
		return plan.Plan{}, &UserError{Output: Output{Private: true, Sections: []Section{
			{Lines: []string{fmt.Sprintf("Not promoting %s %s from %s to %s:", s.Name, plan.ShortDigest(digest), from.Name, to.Name)}},
			{Lines: problems, Pre: true},
		}}}
	}

	toTag, err := readTag(ctx, d, to, s)
	if err != nil {
		return plan.Plan{}, err
	}
	if err := heldRefusal(to, s, toTag); err != nil {
		return plan.Plan{}, err
	}
	wsTo, err := serviceWorkloads(ctx, d, to, s)
	if err != nil {
		return plan.Plan{}, err
	}
	p := newPlan(plan.ActionPromote, to)
	t := pinTarget(toTag, to, s, digest, workloadRefs(wsTo, to, s))
	if lookup, ok := d.Cluster.(ImageLookup); ok {
		// What it was built from: the image's labels, by digest (cached).
		if img, err := lookup.LookupImage(ctx, from.Name, s.Stream(), s.Repository+"@"+digest); err == nil && img.Digest == digest {
			t.To.Revision, t.To.Source, t.To.Created = img.Revision, img.Source, img.Created
		}
	}
	if !t.Unchanged {
		t.Changes = whatChanged(ctx, d, to, s, t.From, t.To)
	}
	p.Targets = []plan.Target{t}
	workloads := fmt.Sprintf("%d workloads", len(ws))
	if len(ws) == 1 {
		workloads = "1 workload"
	}
	p.Notes = append([]string{fmt.Sprintf("Promotes what %s runs: %s on %s, every pod Ready for %s (at least %s asked).",
		from.Name, plan.ShortDigest(digest), workloads, coarse(healthy), fmtDuration(need))},
		pinNotes(t, toTag, to, s)...)
	p.Access = planAccess(p)
	return p, nil
}

// coarse is d to the minute from a minute on, else to the second: 26h,
// 1h30m, 45s.
func coarse(d time.Duration) string {
	if d >= time.Minute {
		d = d.Round(time.Minute)
	}
	return fmtDuration(d)
}

// runsDigest reports whether a container of w runs the image digest names.
func runsDigest(w plan.Workload, digest string) bool {
	for _, img := range w.Images {
		if strings.HasSuffix(img, "@"+digest) {
			return true
		}
	}
	return false
}
