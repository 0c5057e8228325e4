package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/deploybot/deploybot/plan"
)

// Observe reads the tag of every service in env, by service name: the
// image it has now, the ones before it, and who changed it last
// (TagState.ChangedBy). A tag that cannot be read is left out, and said
// in the error.
func Observe(ctx context.Context, d Deps, env string) (map[string]plan.TagState, error) {
	e, err := envOf(d.Config, env)
	if err != nil {
		return nil, err
	}
	svcs, err := servicesOf(d.Config, nil)
	if err != nil {
		return nil, err
	}
	tags := make([]plan.TagState, len(svcs))
	errs := make([]error, len(svcs))
	forEach(len(svcs), func(i int) { tags[i], errs[i] = readTag(ctx, d, e, svcs[i]) })
	out := make(map[string]plan.TagState, len(svcs))
	for i, s := range svcs {
		if errs[i] == nil {
			out[s.Name] = tags[i]
		}
	}
	return out, errors.Join(errs...)
}

// ObservedPlan is the record of changes to env made without the bot: for
// each change, the service's tag went from one digest to another (by
// ChangedBy). Its targets name the workloads that follow each tag, so the
// rollout can be followed as an import's is, the images' revision labels,
// and the commits between them when the env's repositories say.
func ObservedPlan(ctx context.Context, d Deps, env string, changes []plan.Target) (plan.Plan, error) {
	e, err := envOf(d.Config, env)
	if err != nil {
		return plan.Plan{}, err
	}
	p := newPlan(plan.ActionObserved, e)
	p.Targets = make([]plan.Target, len(changes))
	errs := make([]error, len(changes))
	forEach(len(changes), func(i int) {
		c := changes[i]
		s, err := serviceOf(d.Config, c.Service)
		if err != nil {
			errs[i] = err
			return
		}
		t := plan.Target{Service: s.Name, Stream: s.Stream(), Tag: e.ImageTag(), From: c.From, To: c.To, ChangedBy: c.ChangedBy}
		ws, err := serviceWorkloads(ctx, d, e, s)
		if err != nil {
			errs[i] = err
			return
		}
		t.Workloads = workloadRefs(ws, e, s)
		if lookup, ok := d.Cluster.(ImageLookup); ok {
			for _, img := range []*plan.Image{&t.From, &t.To} {
				if img.Digest == "" || img.Revision != "" {
					continue
				}
				if got, err := lookup.LookupImage(ctx, e.Name, s.Stream(), s.Repository+"@"+img.Digest); err == nil {
					img.Revision, img.Source, img.Created = got.Revision, got.Source, got.Created
				}
			}
		}
		t.Changes = whatChanged(ctx, d, e, s, t.From, t.To)
		p.Targets[i] = t
	})
	if err := errors.Join(errs...); err != nil {
		return plan.Plan{}, fmt.Errorf("reading what changed in %s: %w", env, err)
	}
	return p, nil
}
