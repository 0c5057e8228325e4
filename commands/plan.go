package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// defaultExpiry is how long a request waits when the env sets no expiry.
const defaultExpiry = time.Hour

// BuildPlan turns a mutating command (import, revert, undo, track) into a
// Plan from live cluster state read through d.Cluster. It changes nothing.
// Problems the user can fix (an unknown digest, no earlier revision, an
// unmapped caller) are *UserError; other errors are failures to read state.
// The same command and the same cluster state give the same Plan, so a Plan
// rebuilt at approval time hashes equal unless something really changed.
func BuildPlan(ctx context.Context, d Deps, caller plan.Caller, c plan.Command) (plan.Plan, error) {
	spec, ok := Lookup(c.Name)
	if !ok {
		return plan.Plan{}, fmt.Errorf("planning %q: no such command", c.Name)
	}
	if spec.plan == nil {
		return plan.Plan{}, fmt.Errorf("planning %s: it changes no cluster, so it has no Plan", c.Name)
	}
	if d.Config == nil || d.Cluster == nil {
		return plan.Plan{}, fmt.Errorf("planning %s: no config or cluster", c.Name)
	}
	if caller.User == "" {
		return plan.Plan{}, unmapped(caller)
	}
	return spec.plan(ctx, d, caller, c)
}

// newPlan starts a Plan for env with the env's policy as it is now.
func newPlan(action plan.Action, e *config.Environment) plan.Plan {
	p := plan.Plan{
		Action:    action,
		Env:       e.Name,
		Namespace: e.Namespace,
		Policy:    policyOf(e),
	}
	if e.Kubernetes() {
		p.Platform = plan.PlatformKubernetes
	}
	return p
}

func policyOf(e *config.Environment) plan.Policy {
	expiry := e.Approvals.Expiry.Duration
	if expiry <= 0 {
		expiry = defaultExpiry
	}
	return plan.Policy{Confirm: e.Confirm, Approvals: e.Approvals.Count, Expiry: expiry}
}

// currentImage is what the tag points at now.
func currentImage(ts plan.TagState) plan.Image {
	return plan.Image{Ref: ts.Current.Ref, Digest: ts.Current.Digest}
}

// readTag reads the service's tag in env, wrapping the error with what was read.
func readTag(ctx context.Context, d Deps, e *config.Environment, s *config.Service) (plan.TagState, error) {
	ts, err := d.Cluster.Tag(ctx, e.Name, s.Stream(), e.ImageTag())
	if err != nil {
		return plan.TagState{}, fmt.Errorf("reading %s:%s in %s: %w", s.Stream(), e.ImageTag(), e.Name, err)
	}
	return ts, nil
}

func workloadRefs(ws []plan.Workload, e *config.Environment, s *config.Service) []plan.WorkloadRef {
	refs := make([]plan.WorkloadRef, 0, len(ws))
	for _, w := range ws {
		refs = append(refs, workloadRef(w, e, s))
	}
	return refs
}

// planAccess is every API call executing and following p makes, as the
// cluster package knows them, so the requester is checked for exactly those.
func planAccess(p plan.Plan) []plan.Access { return plan.AccessFor(p) }
