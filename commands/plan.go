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
	// Inside a freeze window a change is refused before anything is read.
	if err := frozen(d, c); err != nil {
		return plan.Plan{}, err
	}
	p, err := spec.plan(ctx, d, caller, c)
	if err != nil {
		return plan.Plan{}, err
	}
	return freeze(d, c, p)
}

// frozen refuses a change to an env inside one of its freeze windows, with
// the window's reason and end, unless it is a dry run or breaks the glass.
func frozen(d Deps, c plan.Command) error {
	e, ok := d.Config.Env(c.Env)
	if !ok || c.DryRun || c.BreakGlass != "" {
		return nil
	}
	f, in := e.FrozenAt(d.now())
	if !in {
		return nil
	}
	return &FrozenError{UserError: *userFail("%s is frozen until %s: %s. Nothing is changed there until then; `%s --break-glass REASON` asks for it anyway, with one approval more than %s's policy.",
		e.Name, fmtFreezeTime(e, f.End), f.Reason, c.Text, e.Name)}
}

// FrozenError is a change refused because its env is inside a freeze
// window: a UserError the lifecycle tells apart (Frozen), so that a
// request opened before the window is refused as frozen, not as changed.
type FrozenError struct{ UserError }

// Frozen marks the refusal as a freeze's.
func (e *FrozenError) Frozen() bool { return true }

// Unwrap gives the UserError, for callers that show its Output.
func (e *FrozenError) Unwrap() error { return &e.UserError }

// freeze applies the env's freeze window to a Plan that frozen let
// through. One that breaks the glass (--break-glass REASON) needs one
// approval more than the env's policy — also outside a window, so that a
// request opened inside one and approved after it still binds to what it
// was opened with. A dry run says it would be refused; a window that began
// while the Plan was being read refuses it.
func freeze(d Deps, c plan.Command, p plan.Plan) (plan.Plan, error) {
	e, ok := d.Config.Env(p.Env)
	if !ok {
		return p, nil
	}
	f, inWindow := e.FrozenAt(d.now())
	window := ""
	if inWindow {
		window = fmt.Sprintf("%s is frozen until %s: %s. ", e.Name, fmtFreezeTime(e, f.End), f.Reason)
	}
	switch {
	case c.BreakGlass != "":
		p.Policy.Approvals++
		p.Notes = append(p.Notes, fmt.Sprintf("%sBreaking the glass (%q): one approval more than %s's policy.", window, c.BreakGlass, e.Name))
	case !inWindow:
	case c.DryRun:
		p.Notes = append(p.Notes, window+"Inside the window this would be refused; `--break-glass REASON` asks for it with one approval more.")
	default:
		if err := frozen(d, c); err != nil {
			return plan.Plan{}, err
		}
	}
	return p, nil
}

// fmtFreezeTime is a window's end in the env's time zone.
func fmtFreezeTime(e *config.Environment, t time.Time) string {
	if loc, err := e.Location(); err == nil {
		t = t.In(loc)
	}
	return t.Format("Mon 2006-01-02 15:04 MST")
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
