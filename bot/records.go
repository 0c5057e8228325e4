package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

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

// schedule shows the scheduled imports of one or all environments, or
// pauses or resumes one. The pause lives in the store, so every replica and a
// restart see it.
func (b *Bot) schedule(ctx context.Context, caller plan.Caller, cmd plan.Command, resp Responder) error {
	if cmd.Sub != "" {
		return b.pauseSchedule(ctx, caller, cmd, resp)
	}
	pauses, err := b.store.Pauses(ctx)
	if err != nil {
		return b.fail(ctx, resp, "reading schedule pauses", err)
	}
	var lines []string
	for i := range b.cfg.Environments {
		env := &b.cfg.Environments[i]
		if cmd.Env != "" && env.Name != cmd.Env {
			continue
		}
		if env.Schedule == "" {
			lines = append(lines, fmt.Sprintf("%-6s no scheduled import by deploybot (the tags' own scheduled import: %s)", env.Name, onOff(env.Scheduled)))
			continue
		}
		loc, err := env.Location()
		if err != nil {
			lines = append(lines, fmt.Sprintf("%-6s time zone %q: %v", env.Name, env.TimeZone, err))
			continue
		}
		sched, err := cron.ParseStandard(env.Schedule)
		if err != nil {
			lines = append(lines, fmt.Sprintf("%-6s %q is not a valid schedule: %v", env.Name, env.Schedule, err))
			continue
		}
		now := b.now().In(loc)
		line := fmt.Sprintf("%-6s import %q (%s), next run %s", env.Name, env.Schedule, loc, sched.Next(now).Format("Mon 2006-01-02 15:04 MST"))
		if p, ok := pauses[env.Name]; ok && p.Active(now) {
			line += ", PAUSED by " + p.By
			if !p.Until.IsZero() {
				line += " until " + p.Until.In(loc).Format("Mon 2006-01-02 15:04 MST")
			}
		}
		line += b.scheduleNotes(ctx, env, sched.Next(now))
		lines = append(lines, line)
	}
	return resp.Respond(ctx, Reply{Output: commands.Output{Title: "Scheduled imports", Sections: []commands.Section{{Lines: lines, Pre: true}}}})
}

// pauseSchedule pauses or resumes env's scheduled imports; whoever may import
// into the environment may do so.
func (b *Bot) pauseSchedule(ctx context.Context, caller plan.Caller, cmd plan.Command, resp Responder) error {
	if caller.User == "" {
		return b.refuse(ctx, resp, "%s", unmappedReply(caller))
	}
	env, ok := b.cfg.Env(cmd.Env)
	if !ok {
		return b.refuse(ctx, resp, "Unknown environment %q.", cmd.Env)
	}
	if env.Schedule == "" {
		return b.refuse(ctx, resp, "%s has no schedule to %s; nothing was changed.", env.Name, cmd.Sub)
	}
	// Pausing decides whether imports happen, so it takes what an import of
	// every service of the env takes.
	imp := plan.Plan{Action: plan.ActionImport, Env: env.Name, Namespace: env.Namespace}
	for _, svc := range b.cfg.Services {
		imp.Targets = append(imp.Targets, plan.Target{Service: svc.Name, Stream: svc.ImageStream, Tag: env.Tag})
	}
	calls := plan.ExecuteAccess(imp)
	denied, err := b.deps.Access.Denied(ctx, env.Name, caller.User, caller.Groups, calls)
	if err != nil {
		return b.fail(ctx, resp, "checking your access", err)
	}
	if len(denied) > 0 {
		return b.refuse(ctx, resp, "You cannot %s the schedule of %s: %s", cmd.Sub, env.Name, deniedText(caller.User, env.Name, denied))
	}
	var p *store.Pause
	if cmd.Sub == commands.SchedulePause {
		p = &store.Pause{By: caller.Name, At: b.now(), Until: cmd.Until}
	}
	if err := b.store.SetPause(ctx, env.Name, p); err != nil {
		return b.fail(ctx, resp, cmd.Sub+" the schedule", err)
	}
	action := "schedule-" + cmd.Sub
	e := store.AuditEvent{Time: b.now(), Actor: caller.User, Action: action, Env: env.Name}
	if p != nil && !p.Until.IsZero() {
		e.Outcome = "until " + p.Until.UTC().Format(time.RFC3339)
	}
	if err := b.store.Record(ctx, e); err != nil {
		b.log.Error("recording audit event", "action", action, "err", err)
	}
	return b.schedule(ctx, caller, plan.Command{Name: "schedule", Env: env.Name}, resp)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
