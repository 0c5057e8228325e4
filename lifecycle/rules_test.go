package lifecycle

import (
	"errors"
	"testing"
	"time"

	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

var (
	t0      = time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	alice   = store.Person{Platform: "terminal", ChatID: "alice", Name: "alice", User: "alice", Groups: []string{"packit-devs"}}
	aliceID = store.Person{User: "alice", Groups: []string{"packit-devs"}}
	bobID   = store.Person{User: "bob", Groups: []string{"packit-admins"}}
	daveID  = store.Person{User: "dave", Groups: []string{"packit-admins"}}
)

// request returns a prod import request in state st, created at t0, expiring in an hour.
func request(st store.State, approvals int, approvedBy ...store.Person) *store.Request {
	rollback := plan.Plan{Action: plan.ActionImport, Env: "prod", Namespace: "packit--prod",
		Policy: plan.Policy{Confirm: true, Approvals: approvals, Expiry: time.Hour}}
	r := &store.Request{ID: "abc123", State: st, Requester: alice, Command: "import prod",
		Plan: rollback, PlanHash: rollback.Hash(), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	for _, p := range approvedBy {
		r.Approvals = append(r.Approvals, store.Approval{By: p, At: t0, PlanHash: r.PlanHash})
	}
	return r
}

type refusalCase struct {
	name     string
	err      error
	wantKind RefusalKind // "" = allowed
	wantText string
}

func checkRefusals(t *testing.T, tests []refusalCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantKind == "" {
				if tt.err != nil {
					t.Fatalf("refused: %v", tt.err)
				}
				return
			}
			var r *Refusal
			if !errors.As(tt.err, &r) {
				t.Fatalf("error = %v, want *Refusal %s", tt.err, tt.wantKind)
			}
			if r.Kind != tt.wantKind || r.Error() != tt.wantText || r.RequestID != "abc123" {
				t.Errorf("refusal = {%s %q #%s}, want {%s %q #abc123}", r.Kind, r.Error(), r.RequestID, tt.wantKind, tt.wantText)
			}
		})
	}
}

func TestCheckApproval(t *testing.T) {
	bob := store.Person{Platform: "terminal", ChatID: "bob", User: "bob"}
	waiting := request(store.AwaitingApproval, 2)
	hash := waiting.PlanHash
	now := t0.Add(10 * time.Minute)
	checkRefusals(t, []refusalCase{
		{name: "another person approves",
			err: CheckApproval(waiting, as(bobID, "bob", "terminal"), hash, now)},
		{name: "second approver",
			err: CheckApproval(request(store.AwaitingApproval, 2, bob), as(daveID, "dave", "terminal"), hash, now)},
		{name: "self-approval",
			err:      CheckApproval(waiting, as(aliceID, "alice", "terminal"), hash, now),
			wantKind: RefusedSelfApproval, wantText: "you requested #abc123; someone else must approve it"},
		{name: "self-approval from another chat account of the same user",
			err:      CheckApproval(waiting, as(aliceID, "T1/U1", "slack"), hash, now),
			wantKind: RefusedSelfApproval, wantText: "you requested #abc123; someone else must approve it"},
		{name: "self-approval by chat account mapped to another user",
			err:      CheckApproval(waiting, as(bobID, "alice", "terminal"), hash, now),
			wantKind: RefusedSelfApproval, wantText: "you requested #abc123; someone else must approve it"},
		{name: "approving twice",
			err:      CheckApproval(request(store.AwaitingApproval, 2, bob), as(bobID, "bob", "terminal"), hash, now),
			wantKind: RefusedAlreadyApproved, wantText: "you already approved #abc123; it needs one more approval from someone else"},
		{name: "approving twice, more needed",
			err:      CheckApproval(request(store.AwaitingApproval, 3, bob), as(bobID, "bob", "terminal"), hash, now),
			wantKind: RefusedAlreadyApproved, wantText: "you already approved #abc123; it needs 2 more approvals from others"},
		{name: "approving after the request was approved",
			err:      CheckApproval(request(store.Approved, 1, bob), as(bobID, "bob", "terminal"), hash, now),
			wantKind: RefusedWrongState, wantText: "request #abc123 was already approved"},
		{name: "approving a finished request",
			err:      CheckApproval(request(store.Succeeded, 1, bob), as(daveID, "dave", "terminal"), hash, now),
			wantKind: RefusedWrongState, wantText: "request #abc123 already ran and succeeded"},
		{name: "approving before the requester confirmed",
			err:      CheckApproval(request(store.AwaitingConfirm, 1), as(bobID, "bob", "terminal"), hash, now),
			wantKind: RefusedWrongState, wantText: "request #abc123 is waiting for its requester to confirm, so it cannot be approved"},
		{name: "approving after expiry",
			err:      CheckApproval(waiting, as(bobID, "bob", "terminal"), hash, t0.Add(time.Hour)),
			wantKind: RefusedExpired, wantText: "#abc123 expired at 2026-03-03 03:00 UTC; run the command again"},
		{name: "approving an expired request",
			err:      CheckApproval(request(store.Expired, 1), as(bobID, "bob", "terminal"), hash, now),
			wantKind: RefusedExpired, wantText: "#abc123 expired at 2026-03-03 03:00 UTC; run the command again"},
		{name: "plan changed",
			err:      CheckApproval(waiting, as(bobID, "bob", "terminal"), "0123", now),
			wantKind: RefusedPlanChanged, wantText: "the cluster changed since #abc123 was planned; run the command again"},
		{name: "unmapped approver",
			err:      CheckApproval(waiting, as(store.Person{}, "mallory", "terminal"), hash, now),
			wantKind: RefusedNotMapped, wantText: "You are not mapped to a Kubernetes identity, so you may run only `help` and `whoami`. Ask an admin to add you to the config under identities.users with platform: terminal, id: \"mallory\" and your Kubernetes user."},
	})
}

func TestCheckConfirm(t *testing.T) {
	waiting := request(store.AwaitingConfirm, 1)
	hash := waiting.PlanHash
	now := t0.Add(time.Minute)
	checkRefusals(t, []refusalCase{
		{name: "requester confirms",
			err: CheckConfirm(waiting, as(aliceID, "alice", "terminal"), hash, now)},
		{name: "someone else confirms",
			err:      CheckConfirm(waiting, as(bobID, "bob", "terminal"), hash, now),
			wantKind: RefusedNotRequester, wantText: "Only alice, who requested #abc123, can confirm it."},
		{name: "confirming twice",
			err:      CheckConfirm(request(store.AwaitingApproval, 1), as(aliceID, "alice", "terminal"), hash, now),
			wantKind: RefusedWrongState, wantText: "request #abc123 is waiting for approval"},
		{name: "confirming after expiry",
			err:      CheckConfirm(waiting, as(aliceID, "alice", "terminal"), hash, t0.Add(2*time.Hour)),
			wantKind: RefusedExpired, wantText: "#abc123 expired at 2026-03-03 03:00 UTC; run the command again"},
		{name: "plan changed",
			err:      CheckConfirm(waiting, as(aliceID, "alice", "terminal"), "other", now),
			wantKind: RefusedPlanChanged, wantText: "the cluster changed since #abc123 was planned; run the command again"},
	})
}

func TestCheckDeny(t *testing.T) {
	now := t0.Add(time.Minute)
	checkRefusals(t, []refusalCase{
		{name: "approver denies", err: CheckDeny(request(store.AwaitingApproval, 1), bobID, now)},
		{name: "requester denies", err: CheckDeny(request(store.AwaitingConfirm, 1), aliceID, now)},
		{name: "denying a running request",
			err:      CheckDeny(request(store.Executing, 1), bobID, now),
			wantKind: RefusedWrongState, wantText: "request #abc123 is already running"},
		{name: "denying after expiry",
			err:      CheckDeny(request(store.AwaitingApproval, 1), bobID, t0.Add(time.Hour)),
			wantKind: RefusedExpired, wantText: "#abc123 expired at 2026-03-03 03:00 UTC; run the command again"},
		{name: "unmapped",
			err:      CheckDeny(request(store.AwaitingApproval, 1), store.Person{}, now),
			wantKind: RefusedNotMapped, wantText: "You are not mapped to a Kubernetes identity, so you may run only `help` and `whoami`. Ask an admin to add you to the config under identities.users with platform: PLATFORM, id: \"YOUR-ID\" and your Kubernetes user."},
	})
}

func TestCheckCancel(t *testing.T) {
	checkRefusals(t, []refusalCase{
		{name: "requester cancels while waiting", err: CheckCancel(request(store.AwaitingApproval, 1), as(aliceID, "alice", "terminal"))},
		{name: "requester cancels an approved request", err: CheckCancel(request(store.Approved, 1), as(aliceID, "alice", "terminal"))},
		{name: "someone else cancels",
			err:      CheckCancel(request(store.AwaitingApproval, 1), as(bobID, "bob", "terminal")),
			wantKind: RefusedNotRequester, wantText: "Only alice, who requested #abc123, can cancel it; approvers can `deny` it."},
		{name: "cancelling a running request",
			err:      CheckCancel(request(store.Executing, 1), as(aliceID, "alice", "terminal")),
			wantKind: RefusedWrongState, wantText: "request #abc123 is already running"},
		{name: "cancelling twice",
			err:      CheckCancel(request(store.Cancelled, 1), as(aliceID, "alice", "terminal")),
			wantKind: RefusedWrongState, wantText: "request #abc123 was cancelled"},
	})
}

// as is id acting from a chat account.
func as(id store.Person, chatID, platform string) store.Person {
	id.ChatID, id.Platform = chatID, platform
	return id
}
