package bot

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/store"
)

// pending lists the open requests.
func (b *Bot) pending(ctx context.Context, resp Responder) error {
	open, err := b.store.List(ctx, store.ListOptions{States: []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved, store.Executing}})
	if err != nil {
		return b.fail(ctx, resp, "listing open requests", err)
	}
	if len(open) == 0 {
		return resp.Respond(ctx, Reply{Output: joinLines("No open requests.")})
	}
	var lines []string
	for _, r := range open {
		lines = append(lines, fmt.Sprintf("#%s  %-40s  %-36s  by %s, expires %s", r.ID, r.Command, stateWords[r.State],
			r.Requester.Name, r.ExpiresAt.UTC().Format("2006-01-02 15:04 MST")))
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

// schedule shows the scheduled imports of one or all environments.
func (b *Bot) schedule(ctx context.Context, caller commands.Caller, cmd commands.Command, resp Responder) error {
	if cmd.Sub != "" {
		return b.refuse(ctx, resp, "`schedule %s` needs the scheduler, which runs with `deploybot serve` (not built yet); nothing was changed.", cmd.Sub)
	}
	var lines []string
	for _, env := range b.cfg.Environments {
		if cmd.Env != "" && env.Name != cmd.Env {
			continue
		}
		if env.Schedule == "" {
			lines = append(lines, fmt.Sprintf("%-6s no scheduled import (scheduled tag import: %s)", env.Name, onOff(env.Scheduled)))
			continue
		}
		loc := time.UTC
		if env.TimeZone != "" {
			if l, err := time.LoadLocation(env.TimeZone); err == nil {
				loc = l
			}
		}
		sched, err := cron.ParseStandard(env.Schedule)
		if err != nil {
			lines = append(lines, fmt.Sprintf("%-6s %q is not a valid schedule: %v", env.Name, env.Schedule, err))
			continue
		}
		next := sched.Next(b.now().In(loc))
		lines = append(lines, fmt.Sprintf("%-6s import %q (%s), next run %s", env.Name, env.Schedule, loc, next.Format("Mon 2006-01-02 15:04 MST")))
	}
	return resp.Respond(ctx, Reply{Output: commands.Output{Title: "Scheduled imports", Sections: []commands.Section{{Lines: lines, Pre: true}}}})
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

var _ = strings.TrimSpace
