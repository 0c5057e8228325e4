package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/store"
)

// The steps people take on an open request. Each reads the request, asks
// what it must ask outside the store (access, the live Plan), then moves the
// request in one compare-and-swap whose function applies the approval rules
// to the request exactly as stored. A step that is refused changes nothing
// and returns a *Refusal (or store.ErrNotFound for an unknown ID).

// Confirm is the requester's Confirm: the Plan must still be what the
// cluster would do, so a change between request and confirm never runs a
// stale Plan in an env without approvals.
func (l *Lifecycle) Confirm(ctx context.Context, by store.Person, id string) (*store.Request, error) {
	r, err := l.open(ctx, id)
	if err != nil {
		return nil, err
	}
	current, err := l.currentPlanHash(ctx, r, store.AwaitingConfirm)
	if err != nil {
		return nil, err
	}
	r, err = l.step(ctx, id, by.User, "confirm", func(r *store.Request) error {
		if err := CheckConfirm(r, by, current, l.Now()); err != nil {
			return err
		}
		next := store.Approved
		if r.Plan.Policy.Approvals > 0 {
			next = store.AwaitingApproval
		}
		return store.Transition(r, next)
	})
	return l.moved(ctx, r, err)
}

// Approve is an Approve by someone who is not the requester and passes the
// Plan's access checks; the approval binds to the Plan the cluster would run
// now.
func (l *Lifecycle) Approve(ctx context.Context, by store.Person, id string) (*store.Request, error) {
	r, err := l.open(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State == store.AwaitingApproval {
		// Approvers must pass the same access checks as the requester.
		if err := l.Authorize(ctx, by, r.Plan.Env, r.Plan.Access); err != nil {
			return nil, prefix(err, "You cannot approve %s: ", shortID(id))
		}
	}
	current, err := l.currentPlanHash(ctx, r, store.AwaitingApproval)
	if err != nil {
		return nil, err
	}
	r, err = l.step(ctx, id, by.User, "approve", func(r *store.Request) error {
		if err := CheckApproval(r, by, current, l.Now()); err != nil {
			return err
		}
		r.Approvals = append(r.Approvals, store.Approval{By: by, At: l.Now(), PlanHash: r.PlanHash})
		if len(r.Approvals) >= r.Plan.Policy.Approvals {
			return store.Transition(r, store.Approved)
		}
		return nil
	})
	return l.moved(ctx, r, err)
}

// Deny ends a waiting request; anyone who passes its access checks may.
func (l *Lifecycle) Deny(ctx context.Context, by store.Person, id, reason string) (*store.Request, error) {
	r, err := l.open(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := l.Authorize(ctx, by, r.Plan.Env, r.Plan.Access); err != nil {
		return nil, prefix(err, "You cannot deny %s: ", shortID(id))
	}
	r, err = l.step(ctx, id, by.User, "deny", func(r *store.Request) error {
		if err := CheckDeny(r, by, l.Now()); err != nil {
			return err
		}
		r.ClosedBy, r.Reason = &by, reason
		return store.Transition(r, store.Denied)
	})
	return l.moved(ctx, r, err)
}

// Cancel is the requester withdrawing a request before it runs.
func (l *Lifecycle) Cancel(ctx context.Context, by store.Person, id string) (*store.Request, error) {
	r, err := l.step(ctx, id, by.User, "cancel", func(r *store.Request) error {
		if err := CheckCancel(r, by); err != nil {
			return err
		}
		r.ClosedBy = &by
		return store.Transition(r, store.Cancelled)
	})
	return l.moved(ctx, r, err)
}

// open reads request id for a step, expiring it first if it is past due.
func (l *Lifecycle) open(ctx context.Context, id string) (*store.Request, error) {
	r, err := l.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State.Terminal() || r.State == store.Executing || l.Now().Before(r.ExpiresAt) {
		return r, nil
	}
	if _, err := l.step(ctx, r.ID, "deploybot", "expire", func(r *store.Request) error { return store.Transition(r, store.Expired) }); err == nil {
		l.Refresh(ctx, r.ID)
	}
	return nil, expired(r)
}

// moved shows a request that moved and starts it if it is now approved.
func (l *Lifecycle) moved(ctx context.Context, r *store.Request, err error) (*store.Request, error) {
	if err != nil {
		return nil, err
	}
	l.Refresh(ctx, r.ID)
	if r.State == store.Approved {
		l.startExecution(r.ID)
	}
	return r, nil
}

// currentPlanHash rebuilds the request's Plan from its typed Command and
// live state, so a confirmation or approval binds to what would actually
// happen now. Only a request in state waiting is re-planned; in any other
// state the rules refuse the step anyway.
func (l *Lifecycle) currentPlanHash(ctx context.Context, r *store.Request, waiting store.State) (string, error) {
	if r.State != waiting {
		return r.PlanHash, nil
	}
	if r.Intent == nil {
		return "changed: opened by an earlier deploybot, which kept no typed command", nil
	}
	p, err := l.planner.BuildPlan(ctx, caller(r.Requester, r.Plan.Env), *r.Intent)
	var frozen interface{ Frozen() bool }
	if errors.As(err, &frozen) && frozen.Frozen() {
		return frozenHash + err.Error(), nil
	}
	if err != nil {
		var rf *Refusal
		if errors.As(err, &rf) || isUserError(err) {
			return "changed: " + err.Error(), nil
		}
		return "", fmt.Errorf("re-checking the plan of %s: %w", shortID(r.ID), err)
	}
	return p.Hash(), nil
}

// frozenHash starts what currentPlanHash returns for a request whose env
// is now inside a freeze window: no Plan, and why.
const frozenHash = "frozen: "

// isUserError reports whether err is one the planner says the user can fix
// (it has an Output for them), as opposed to a failure to read state.
func isUserError(err error) bool {
	var ue interface{ UserFacing() bool }
	return errors.As(err, &ue) && ue.UserFacing()
}

// Pick returns the one open request a command without an ID can mean:
// confirm and cancel look at by's own requests, approve at others', deny at
// all. No or several candidates are a *Refusal saying what to type.
func (l *Lifecycle) Pick(ctx context.Context, by store.Person, command string) (string, error) {
	var states []store.State
	switch command {
	case "confirm":
		states = []store.State{store.AwaitingConfirm}
	case "approve":
		states = []store.State{store.AwaitingApproval}
	default:
		states = []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved}
	}
	open, err := l.store.List(ctx, store.ListOptions{States: states})
	if err != nil {
		return "", fmt.Errorf("listing open requests: %w", err)
	}
	var ids []string
	for _, r := range open {
		mine := samePerson(r.Requester, by)
		if (command == "approve") != mine || command == "deny" {
			ids = append(ids, r.ID)
		}
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", refuse("", RefusedNoSuchRequest, "There is no open request for you to %s. `pending` lists the open ones.", command)
	}
	for i := range ids {
		ids[i] = shortID(ids[i])
	}
	return "", refuse("", RefusedNoSuchRequest, "Which one? `%s ID` with one of %s.", command, strings.Join(ids, ", "))
}

// Sweep expires requests whose approval window has passed and reports
// executions whose replica died.
func (l *Lifecycle) Sweep(ctx context.Context) error {
	if err := l.Recover(ctx); err != nil {
		return err
	}
	open, err := l.store.List(ctx, store.ListOptions{States: []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved}})
	if err != nil {
		return fmt.Errorf("listing open requests: %w", err)
	}
	for _, r := range open {
		if l.Now().Before(r.ExpiresAt) {
			continue
		}
		if _, err := l.step(ctx, r.ID, "deploybot", "expire", func(r *store.Request) error { return store.Transition(r, store.Expired) }); err == nil {
			l.Refresh(ctx, r.ID)
		}
	}
	return nil
}

// prefix puts text in front of a refusal's words.
func prefix(err error, format string, args ...any) error {
	var rf *Refusal
	if errors.As(err, &rf) {
		return &Refusal{RequestID: rf.RequestID, Kind: rf.Kind, Text: fmt.Sprintf(format, args...) + rf.Text}
	}
	return err
}
