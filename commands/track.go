package commands

import (
	"context"
	"fmt"

	"github.com/deploybot/deploybot/plan"
)

func trackCommand() Spec {
	return Spec{
		Name:     "track",
		Usage:    "track SERVICE [ENV] [--dry-run]",
		Summary:  "point the stream tag back at the registry tag, restore the env's scheduled import, import",
		Examples: []string{"track worker prod", "track service stg --dry-run"},
		Who:      "mapped users whose Kubernetes identity may update the env's image stream tags (imagestreamtags); then the env's policy:",
		Mutates:  true,
		parse:    parseServiceEnv,
		plan:     planTrack,
	}
}

// planTrack re-points the tag at REPOSITORY:TAG like `oc tag REPO:TAG NS/IS:TAG`,
// but with the env's importPolicy.scheduled: oc tag would leave it false and
// stg would silently stop deploying.
func planTrack(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	e, s, err := serviceIn(d.Config, c)
	if err != nil {
		return plan.Plan{}, err
	}
	ts, err := readTag(ctx, d, e, s)
	if err != nil {
		return plan.Plan{}, err
	}
	if err := heldRefusal(e, s, ts); err != nil {
		return plan.Plan{}, err
	}
	ws, err := serviceWorkloads(ctx, d, e, s)
	if err != nil {
		return plan.Plan{}, err
	}
	spec := s.Repository + ":" + e.ImageTag()
	t := plan.Target{
		Service:   s.Name,
		Stream:    s.Stream(),
		Tag:       e.ImageTag(),
		From:      currentImage(ts),
		SpecFrom:  spec,
		Scheduled: e.Scheduled,
		Workloads: workloadRefs(ws, e, s),
	}
	p := newPlan(plan.ActionTrack, e)

	// What the registry tag holds now. RegistryImage asks about the tag's spec
	// source, which is the registry tag only when the tag already tracks it.
	var lookErr error
	switch lookup, ok := d.Cluster.(ImageLookup); {
	case ts.SpecFrom == spec:
		t.To, lookErr = d.Cluster.RegistryImage(ctx, e.Name, t.Stream, t.Tag)
	case ok:
		t.To, lookErr = lookup.LookupImage(ctx, e.Name, t.Stream, spec)
	default:
		t.To = plan.Image{Ref: spec}
		p.Notes = append(p.Notes, fmt.Sprintf("The digest %s has now is known once it is imported.", spec))
	}
	if lookErr != nil {
		return plan.Plan{}, userFail("Asking the registry for %s failed, so tracking it would not import anything: %v", spec, lookErr)
	}

	t.Unchanged = ts.SpecFrom == spec && ts.Scheduled == e.Scheduled && t.To.Digest != "" && t.To.Digest == ts.Current.Digest
	switch {
	case t.Unchanged:
		p.Notes = append(p.Notes, fmt.Sprintf("%s:%s already tracks %s with scheduled import %s, and has its image.", t.Stream, t.Tag, spec, onOff(e.Scheduled)))
	case ts.Pinned():
		p.Notes = append(p.Notes, fmt.Sprintf("Unpins %s:%s from %s.", t.Stream, t.Tag, ts.SpecFrom))
	}
	if !t.Unchanged && ts.Scheduled != e.Scheduled {
		p.Notes = append(p.Notes, fmt.Sprintf("Scheduled import goes back %s, as %s is configured.", onOff(e.Scheduled), e.Name))
	}
	p.Targets = []plan.Target{t}
	p.Access = planAccess(p)
	return p, nil
}
