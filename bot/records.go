package bot

import (
	"context"
	"fmt"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// pending lists the open requests.
func (b *Bot) pending(ctx context.Context, resp Responder) error {
	open, err := b.store.List(ctx, store.ListOptions{States: []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved, store.Executing}})
	if err != nil {
		return b.fail(ctx, resp, "listing open requests", err)
	}
	var lines []string
	for _, r := range open {
		if r.Plan.Action == plan.ActionObserved {
			continue // the deploy feed's: nothing to do with them
		}
		lines = append(lines, fmt.Sprintf("#%s  %-40s  %-36s  by %s, expires %s", r.ID, r.Command, r.State.Status(),
			r.Requester.Name, r.ExpiresAt.UTC().Format("2006-01-02 15:04 MST")))
	}
	if len(lines) == 0 {
		return resp.Respond(ctx, Reply{Output: joinLines("No open requests.")})
	}
	return resp.Respond(ctx, Reply{Output: commands.Output{Title: "Open requests", Sections: []commands.Section{{Lines: lines, Pre: true}}}})
}

// auditLog shows the last n audit events.
func (b *Bot) auditLog(ctx context.Context, n int, resp Responder) error {
	if n <= 0 {
		n = 20
	}
	events, err := b.store.Audit(ctx, n)
	if err != nil {
		return b.fail(ctx, resp, "reading the audit trail", err)
	}
	if len(events) == 0 {
		return resp.Respond(ctx, Reply{Output: joinLines("The audit trail is empty.")})
	}
	var lines []string
	for _, e := range events {
		line := fmt.Sprintf("%s  #%s  %-8s %-8s %s", e.Time.UTC().Format("2006-01-02 15:04:05"), e.RequestID, e.Env, e.Action, e.Actor)
		if e.From != "" || e.To != "" {
			line += fmt.Sprintf("  %s→%s", e.From, e.To)
		}
		if e.Outcome != "" {
			line += "  " + e.Outcome
		}
		lines = append(lines, line)
	}
	return resp.Respond(ctx, Reply{Output: commands.Output{Title: fmt.Sprintf("Last %d audit events", len(events)), Sections: []commands.Section{{Lines: lines, Pre: true}}}})
}
