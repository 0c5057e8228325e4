package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// Open is one request to open: a typed Command from a Caller, and where its
// message goes.
type Open struct {
	Caller  plan.Caller
	Command plan.Command
	// Platform and Channel are where the request message is posted; a
	// platform of "" posts nothing.
	Platform, Channel string
	// ID is the request's ID when the caller needs a known one (a scheduled
	// run's RunID, so that creating it claims the run); default a new one.
	ID string
	// AutoApprove records the requester's own approval as the one the
	// env's policy asks for (scheduled runs with autoApproveScheduled).
	AutoApprove bool
	// AutoApproveIf, when set, limits AutoApprove to Plans it accepts.
	AutoApproveIf func(plan.Plan) bool
	// Note is audited with the opening, e.g. the scheduled time.
	Note string
	// Confirmed skips the requester's confirmation: the request follows
	// one they confirmed (a hold placed after their undo).
	Confirmed bool
}

// Opened is what Open did. Request is nil when nothing was opened: a dry
// run, or a Plan with nothing to change; Plan says what it would have done.
type Opened struct {
	Plan    plan.Plan
	Request *store.Request
}

// Open takes a mutating command to an open request, cheap checks first: the
// caller must be mapped and in a channel the env accepts changes from, then
// the Plan is built from live state, then every call it needs is authorized
// for the caller. A dry run, or a Plan that changes nothing, stops there. The
// request then waits for confirmation and approvals as the env's policy
// says, or, needing none, starts executing. Refusals are *Refusal, problems
// the user can fix are the Planner's errors, a taken lock is a
// *store.BusyError and a taken ID store.ErrExists.
func (l *Lifecycle) Open(ctx context.Context, o Open) (Opened, error) {
	c := o.Command
	if o.Caller.User == "" {
		return Opened{}, notMapped(o.ID, Person(o.Caller))
	}
	if err := l.checkChannel(o); err != nil {
		return Opened{}, err
	}
	p, err := l.planner.BuildPlan(ctx, o.Caller, c)
	if err != nil {
		return Opened{}, err
	}
	if err := l.Authorize(ctx, Person(o.Caller), p.Env, p.Access); err != nil {
		return Opened{Plan: p}, err
	}
	if c.DryRun || !p.Changes() {
		return Opened{Plan: p}, nil
	}
	// A release binds to the commits its Plan shows: re-planned at
	// confirmation and approval with them, not with the rolling branch's
	// head of that moment.
	if pins := p.Pins(); pins != nil {
		c.Pins = pins
	}

	now := l.Now()
	expiry := p.Policy.Expiry
	if expiry <= 0 {
		expiry = defaultExpiry
	}
	id := o.ID
	if id == "" {
		id = store.NewID()
	}
	r := &store.Request{
		ID:        id,
		State:     store.Planned,
		Requester: Person(o.Caller),
		Command:   c.Text,
		Intent:    &c,
		Channel:   o.Channel,
		Plan:      p,
		PlanHash:  p.Hash(),
		CreatedAt: now,
		UpdatedAt: now,
		ExpiresAt: now.Add(expiry),
		Locks:     locks(p),
	}
	err = l.store.Create(ctx, r)
	var busy *store.BusyError
	if errors.As(err, &busy) {
		// The holder may be past its expiry without the sweeper having
		// caught up; expire what is due and try once more.
		if err = l.Sweep(ctx); err == nil {
			err = l.store.Create(ctx, r)
		}
	}
	if err != nil {
		return Opened{Plan: p}, err
	}
	outcome := o.Note
	if c.BreakGlass != "" {
		// inside a freeze window: the audit keeps why the glass was broken
		outcome = strings.TrimSpace(outcome + " break-glass: " + c.BreakGlass)
	}
	l.Audit(ctx, store.AuditEvent{RequestID: r.ID, Actor: o.Caller.User, Action: "plan", To: store.Planned, Env: p.Env, PlanHash: r.PlanHash, Outcome: outcome})

	next, action := store.Approved, "open"
	switch scheduled := o.Caller.Platform == SchedulePlatform; {
	case p.Policy.Confirm && !scheduled && !o.Confirmed: // the schedule has nobody to confirm
		next = store.AwaitingConfirm
	case p.Policy.Approvals > 0 && o.AutoApprove && (o.AutoApproveIf == nil || o.AutoApproveIf(p)):
		action = "auto-approve"
	case p.Policy.Approvals > 0:
		next = store.AwaitingApproval
	}
	r, err = l.step(ctx, r.ID, o.Caller.User, action, func(r *store.Request) error {
		if action == "auto-approve" {
			r.Approvals = append(r.Approvals, store.Approval{By: r.Requester, At: l.Now(), PlanHash: r.PlanHash})
		}
		return store.Transition(r, next)
	})
	if err != nil {
		// Created but stuck in Planned: it expires, and the sweeper says so.
		return Opened{Plan: p}, fmt.Errorf("opening request #%s: %w", id, err)
	}
	if o.Platform != "" {
		if err := l.post(ctx, o.Platform, o.Channel, r); err != nil && r.State != store.Approved {
			// Nobody can see it, so nobody can confirm or approve it: do not
			// let it hold its lock until it expires.
			reason := fmt.Sprintf("The request message could not be posted (%v), so nobody could confirm or approve it; it was cancelled. Run the command again.", err)
			if _, cerr := l.step(ctx, r.ID, "deploybot", "cancel", func(r *store.Request) error {
				r.Reason = reason
				return store.Transition(r, store.Cancelled)
			}); cerr != nil {
				l.log.Error("cancelling a request whose message could not be posted", "request", r.ID, "err", cerr)
			}
			return Opened{Plan: p}, fmt.Errorf("%w; the request was cancelled, run the command again", err)
		}
	}
	if r.State == store.Approved {
		l.startExecution(r.ID)
	}
	return Opened{Plan: p, Request: r}, nil
}

// checkChannel refuses a person's change requested outside the channels
// the env accepts changes from. The schedule posts where the env announces.
func (l *Lifecycle) checkChannel(o Open) error {
	if o.Caller.Platform == SchedulePlatform {
		return nil
	}
	env, ok := l.cfg.Env(o.Command.Env)
	if !ok || len(env.Channels) == 0 || slices.Contains(env.Channels, o.Channel) {
		return nil
	}
	return refuse(o.ID, RefusedWrongChannel, "Changes to %s can only be requested in %s.", env.Name, strings.Join(env.Channels, ", "))
}

// ErrAccessCheck marks an access check that could not be made (the API
// server did not answer), as opposed to one that refused.
var ErrAccessCheck = errors.New("checking the access")

// Authorize is deploybot's one authorization stage: every API call in calls
// is checked for who in env's cluster (LocalSubjectAccessReview). Opening,
// approving and denying a request, and pausing or skipping a schedule, all
// pass through it. A refusal is a *Refusal naming each call the cluster's
// RBAC refuses and why.
func (l *Lifecycle) Authorize(ctx context.Context, who store.Person, env string, calls []plan.Access) error {
	if who.User == "" {
		return notMapped("", who)
	}
	denied, err := l.access.Denied(ctx, env, who.User, who.Groups, calls)
	if err != nil {
		return fmt.Errorf("%w of %s in %s: %w", ErrAccessCheck, who.User, env, err)
	}
	if len(denied) > 0 {
		return &Refusal{Kind: RefusedAccess, Text: DeniedText(who.User, env, denied)}
	}
	return nil
}

// DeniedText says which calls the cluster's RBAC refuses user in env.
func DeniedText(user, env string, denied []plan.Denial) string {
	lines := []string{fmt.Sprintf("%s may not do this in %s; the cluster's RBAC refuses:", user, env)}
	for _, d := range denied {
		a := d.Access
		res := a.Resource
		if a.Group != "" {
			res += "." + a.Group
		}
		if a.Subresource != "" {
			res += "/" + a.Subresource
		}
		if a.Name != "" {
			res += " " + a.Name
		}
		lines = append(lines, fmt.Sprintf("  %s %s in %s (%s)", a.Verb, res, a.Namespace, d.Reason))
	}
	return strings.Join(lines, "\n")
}

// locks are the env/service keys a Plan holds while its request is open.
func locks(p plan.Plan) []string {
	var out []string
	for _, t := range p.Targets {
		switch {
		case t.Unchanged:
		case p.Action == plan.ActionRelease:
			// a repository, not a service: one release of it at a time,
			// imports of its services go on meanwhile
			out = append(out, p.Env+"/release:"+t.Service)
		default:
			out = append(out, p.Env+"/"+t.Service)
		}
	}
	return out
}
