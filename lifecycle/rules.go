package lifecycle

import (
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// RefusalKind says why a step was refused, for callers that branch on it.
type RefusalKind string

// The reasons a request is not opened or a click on it is refused.
const (
	// RefusedNotMapped: the clicker has no Kubernetes identity.
	RefusedNotMapped RefusalKind = "not-mapped"
	// RefusedWrongState: the request is not waiting for this click.
	RefusedWrongState RefusalKind = "wrong-state"
	// RefusedExpired: the request waited too long.
	RefusedExpired RefusalKind = "expired"
	// RefusedSelfApproval: the requester tried to approve their own request.
	RefusedSelfApproval RefusalKind = "self-approval"
	// RefusedAlreadyApproved: this person already approved the request.
	RefusedAlreadyApproved RefusalKind = "already-approved"
	// RefusedNotRequester: only the requester may confirm or cancel.
	RefusedNotRequester RefusalKind = "not-requester"
	// RefusedPlanChanged: the cluster no longer matches the Plan that was approved.
	RefusedPlanChanged RefusalKind = "plan-changed"
	// RefusedAccess: the cluster's RBAC refuses a call the Plan needs.
	RefusedAccess RefusalKind = "access"
	// RefusedWrongChannel: the env accepts changes only from other channels.
	RefusedWrongChannel RefusalKind = "wrong-channel"
	// RefusedNoSuchRequest: no request has the ID, or none fits.
	RefusedNoSuchRequest RefusalKind = "no-such-request"
	// RefusedSchedule: the schedule cannot do that (none configured, the
	// run is not the next one, it is paused anyway).
	RefusedSchedule RefusalKind = "schedule"
)

// Refusal is a step the lifecycle refuses: a request not opened, or a click
// the approval rules refuse. Its message is written for the person who
// asked; nothing was changed.
type Refusal struct {
	RequestID string
	Kind      RefusalKind
	Text      string
}

func (r *Refusal) Error() string { return r.Text }

// NewRefusal is a refusal of kind with the given words, for the sources of
// requests (the scheduler) that refuse steps of their own.
func NewRefusal(kind RefusalKind, format string, args ...any) *Refusal {
	return refuse("", kind, format, args...)
}

func refuse(id string, kind RefusalKind, format string, args ...any) *Refusal {
	return &Refusal{RequestID: id, Kind: kind, Text: fmt.Sprintf(format, args...)}
}

// The approval rules: the one place that says who may confirm, approve,
// deny or cancel a request, when, and against which Plan. The lifecycle's
// steps (steps.go) call them inside the store's compare-and-swap, so a rule
// is checked against the request exactly as it is stored when it moves.

// CheckApproval applies the approval policy to approver's Approve click on r:
// the request must be waiting for approval and not expired, the approver must
// not be the requester nor have approved already, and the Plan must still be
// what the cluster would do (currentPlanHash, from planning again now). Whether
// the approver passes the Plan's access checks is asked before, by Authorize.
// It returns nil or a *Refusal.
func CheckApproval(r *store.Request, approver store.Person, currentPlanHash string, now time.Time) error {
	if approver.User == "" {
		return notMapped(r.ID, approver)
	}
	if err := checkWaiting(r, store.AwaitingApproval, store.Approved, now); err != nil {
		return err
	}
	if samePerson(r.Requester, approver) {
		return refuse(r.ID, RefusedSelfApproval, "you requested #%s; someone else must approve it", r.ID)
	}
	for _, a := range r.Approvals {
		if samePerson(a.By, approver) {
			return refuse(r.ID, RefusedAlreadyApproved, "you already approved #%s; %s", r.ID, stillNeeded(r))
		}
	}
	return checkPlan(r, currentPlanHash)
}

// CheckConfirm applies the policy to a Confirm click: only the requester
// confirms, while the request waits for it, before it expires, and only if
// the Plan is still what the cluster would do.
func CheckConfirm(r *store.Request, by store.Person, currentPlanHash string, now time.Time) error {
	if by.User == "" {
		return notMapped(r.ID, by)
	}
	if err := checkWaiting(r, store.AwaitingConfirm, store.AwaitingApproval, now); err != nil {
		return err
	}
	if !samePerson(r.Requester, by) {
		return refuse(r.ID, RefusedNotRequester, "Only %s, who requested #%s, can confirm it.", requesterName(r), r.ID)
	}
	return checkPlan(r, currentPlanHash)
}

// CheckDeny applies the policy to a Deny click: a request waiting for
// confirmation or approval may be denied by anyone who passes its access
// checks (asked before, by Authorize), the requester included. An approved
// request is about to run; only its requester may still cancel it.
func CheckDeny(r *store.Request, by store.Person, now time.Time) error {
	if by.User == "" {
		return notMapped(r.ID, by)
	}
	if r.State != store.AwaitingConfirm && r.State != store.AwaitingApproval {
		return refuse(r.ID, RefusedWrongState, "%s", (&store.TransitionError{ID: r.ID, From: r.State, To: store.Denied}).Error())
	}
	return checkExpiry(r, now)
}

// CheckCancel applies the policy to a Cancel click: only the requester
// cancels, and only before the request starts executing.
func CheckCancel(r *store.Request, by store.Person) error {
	if by.User == "" {
		return notMapped(r.ID, by)
	}
	if !store.CanTransition(r.State, store.Cancelled) {
		return refuse(r.ID, RefusedWrongState, "%s", (&store.TransitionError{ID: r.ID, From: r.State, To: store.Cancelled}).Error())
	}
	if !samePerson(r.Requester, by) {
		return refuse(r.ID, RefusedNotRequester, "Only %s, who requested #%s, can cancel it; approvers can `deny` it.", requesterName(r), r.ID)
	}
	return nil
}

// notMapped refuses a chat user without a Kubernetes identity, in the same
// words as a typed command gets.
func notMapped(id string, by store.Person) *Refusal {
	return refuse(id, RefusedNotMapped, "%s", config.NotMapped(by.Platform, by.ChatID))
}

// checkWaiting refuses unless r is in state want and not expired; to is the
// state the click would move it to, for the wording.
func checkWaiting(r *store.Request, want, to store.State, now time.Time) error {
	if r.State == store.Expired {
		return expired(r)
	}
	if r.State != want {
		return refuse(r.ID, RefusedWrongState, "%s", (&store.TransitionError{ID: r.ID, From: r.State, To: to}).Error())
	}
	return checkExpiry(r, now)
}

func checkExpiry(r *store.Request, now time.Time) error {
	if !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt) {
		return expired(r)
	}
	return nil
}

func expired(r *store.Request) *Refusal {
	if r.ExpiresAt.IsZero() {
		return refuse(r.ID, RefusedExpired, "#%s expired; run the command again", r.ID)
	}
	return refuse(r.ID, RefusedExpired, "#%s expired at %s; run the command again", r.ID, r.ExpiresAt.UTC().Format("2006-01-02 15:04 MST"))
}

func checkPlan(r *store.Request, currentPlanHash string) error {
	if reason, ok := strings.CutPrefix(currentPlanHash, frozenHash); ok {
		return refuse(r.ID, RefusedPlanChanged, "#%s cannot go ahead now: %s", r.ID, reason)
	}
	if currentPlanHash != r.PlanHash {
		what := "the cluster"
		if r.Plan.Action == plan.ActionRelease {
			what = "a repository's branches (or the cluster)"
		}
		why := ""
		if reason, ok := strings.CutPrefix(currentPlanHash, "changed: "); ok {
			why = " (" + reason + ")"
		}
		return refuse(r.ID, RefusedPlanChanged, "%s changed since #%s was planned%s; run the command again", what, r.ID, why)
	}
	return nil
}

// samePerson matches a chat account exactly, or the Kubernetes user: one
// person with two chat accounts is still one person.
func samePerson(p, q store.Person) bool {
	if p.Platform == q.Platform && p.ChatID == q.ChatID && q.ChatID != "" {
		return true
	}
	return q.User != "" && p.User == q.User
}

// stillNeeded says how many more approvals r needs.
func stillNeeded(r *store.Request) string {
	n := r.Plan.Policy.Approvals - len(r.Approvals)
	switch {
	case n <= 1:
		return "it needs one more approval from someone else"
	default:
		return fmt.Sprintf("it needs %d more approvals from others", n)
	}
}

func requesterName(r *store.Request) string {
	switch {
	case r.Requester.Name != "":
		return r.Requester.Name
	case r.Requester.User != "":
		return r.Requester.User
	}
	return "the requester"
}
