package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/auth"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// handleMutating plans a mutating command, checks the requester's access and
// opens a request that waits for confirmation and approvals as the env's
// policy says. Nothing changes in the cluster here.
func (b *Bot) handleMutating(ctx context.Context, req Request, caller plan.Caller, cmd plan.Command, resp Responder) error {
	if caller.User == "" {
		return b.refuse(ctx, resp, "%s", unmappedReply(caller))
	}
	p, err := commands.BuildPlan(ctx, b.deps, caller, cmd)
	if err != nil {
		return b.fail(ctx, resp, "planning "+cmd.Name, err)
	}
	if env, ok := b.cfg.Env(p.Env); ok && len(env.Channels) > 0 && !slices.Contains(env.Channels, req.Channel) {
		return b.refuse(ctx, resp, "Changes to %s can only be requested in %s.", p.Env, strings.Join(env.Channels, ", "))
	}
	denied, err := b.deps.Access.Denied(ctx, p.Env, caller.User, caller.Groups, p.Access)
	if err != nil {
		return b.fail(ctx, resp, "checking your access", err)
	}
	if len(denied) > 0 {
		return b.refuse(ctx, resp, "%s", deniedText(caller.User, p.Env, denied))
	}
	out := commands.RenderPlan(p)
	if cmd.DryRun {
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Dry run: nothing was changed and no request was opened."}})
		return resp.Respond(ctx, Reply{Output: out})
	}
	if !p.Changes() {
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Nothing to change, so no request was opened."}})
		return resp.Respond(ctx, Reply{Output: out})
	}

	now := b.now()
	r := &store.Request{
		ID:        store.NewID(),
		State:     store.Planned,
		Requester: person(caller),
		Command:   cmd.Text,
		Channel:   req.Channel,
		Plan:      p,
		PlanHash:  p.Hash(),
		CreatedAt: now,
		UpdatedAt: now,
		ExpiresAt: now.Add(p.Policy.Expiry),
		Locks:     locks(p),
	}
	err = b.store.Create(ctx, r)
	var busy *store.BusyError
	if errors.As(err, &busy) {
		// The holder may be past its expiry without the sweeper having
		// caught up; expire what is due and try once more.
		if err = b.Sweep(ctx); err == nil {
			err = b.store.Create(ctx, r)
		}
	}
	if err != nil {
		return b.fail(ctx, resp, "opening the request", err)
	}
	b.audit(ctx, r, caller.User, "plan", "", store.Planned, "")
	next := store.Approved
	switch {
	case p.Policy.Confirm:
		next = store.AwaitingConfirm
	case p.Policy.Approvals > 0:
		next = store.AwaitingApproval
	}
	r, err = b.transition(ctx, r.ID, caller.User, "open", func(r *store.Request) error { return store.Transition(r, next) })
	if err != nil {
		return b.fail(ctx, resp, "opening the request", err)
	}
	b.post(ctx, req.Platform, req.Channel, r)
	if r.State == store.Approved {
		b.startExecution(r.ID)
	}
	return nil
}

// handleAction handles a button press.
func (b *Bot) handleAction(ctx context.Context, req Request, caller plan.Caller, resp Responder) error {
	id := strings.TrimPrefix(req.Action.RequestID, "#")
	switch req.Action.Kind {
	case ActionConfirm:
		return b.confirm(ctx, caller, id, resp)
	case ActionApprove:
		return b.approve(ctx, caller, id, resp)
	case ActionDeny:
		return b.deny(ctx, caller, id, "", resp)
	case ActionCancel:
		return b.cancelRequest(ctx, caller, id, resp)
	case ActionSkip:
		return b.skipButton(ctx, req, caller, id, resp)
	}
	return b.refuse(ctx, resp, "Unknown button %q.", req.Action.Kind)
}

// handleFlow runs the commands that act on requests rather than clusters.
func (b *Bot) handleFlow(ctx context.Context, req Request, caller plan.Caller, cmd plan.Command, resp Responder) error {
	switch cmd.Name {
	case "pending":
		return b.pending(ctx, resp)
	case "audit":
		return b.auditLog(ctx, cmd.N, resp)
	case "schedule":
		if cmd.Sub == commands.ScheduleSkip {
			return b.skipCommand(ctx, req, caller, cmd, resp)
		}
		return b.schedule(ctx, caller, cmd, resp)
	}
	if caller.User == "" {
		return b.refuse(ctx, resp, "%s", unmappedReply(caller))
	}
	id, err := b.resolveID(ctx, caller, cmd)
	if err != nil {
		return b.fail(ctx, resp, "finding the request", err)
	}
	switch cmd.Name {
	case "confirm":
		return b.confirm(ctx, caller, id, resp)
	case "approve":
		return b.approve(ctx, caller, id, resp)
	case "deny":
		return b.deny(ctx, caller, id, cmd.Reason, resp)
	case "cancel":
		return b.cancelRequest(ctx, caller, id, resp)
	}
	return b.refuse(ctx, resp, "`%s` is not handled here.", cmd.Name)
}

// resolveID returns the command's request ID; without one it picks the only
// open request the command could mean, so typing the ID is needed only when
// it is ambiguous.
func (b *Bot) resolveID(ctx context.Context, caller plan.Caller, cmd plan.Command) (string, error) {
	if cmd.ID != "" {
		return cmd.ID, nil
	}
	var states []store.State
	switch cmd.Name {
	case "confirm":
		states = []store.State{store.AwaitingConfirm}
	case "approve":
		states = []store.State{store.AwaitingApproval}
	default:
		states = []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved}
	}
	open, err := b.store.List(ctx, store.ListOptions{States: states})
	if err != nil {
		return "", fmt.Errorf("listing open requests: %w", err)
	}
	var ids []string
	for _, r := range open {
		mine := r.Requester.Platform == caller.Platform && r.Requester.ChatID == caller.ChatID
		if (cmd.Name == "approve") != mine || cmd.Name == "deny" {
			ids = append(ids, r.ID)
		}
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", &commands.UserError{Output: joinLines(fmt.Sprintf("There is no open request for you to %s. `pending` lists the open ones.", cmd.Name))}
	}
	for i := range ids {
		ids[i] = shortID(ids[i])
	}
	return "", &commands.UserError{Output: joinLines(fmt.Sprintf("Which one? `%s ID` with one of %s.", cmd.Name, strings.Join(ids, ", ")))}
}

// refusal is a user-facing reason a flow step did not happen.
type refusal struct{ text string }

func (r *refusal) Error() string { return r.text }

func refusef(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

// stateRefusal explains why a request in its current state cannot take the step.
func stateRefusal(r *store.Request, step string) error {
	switch r.State {
	case store.AwaitingConfirm:
		return refusef("#%s waits for %s to confirm it; it cannot be %s yet.", r.ID, r.Requester.Name, step)
	case store.AwaitingApproval:
		return refusef("#%s is already confirmed and waits for approval.", r.ID)
	case store.Approved, store.Executing:
		return refusef("#%s was already approved and is %s.", r.ID, strings.ToLower(string(r.State)))
	}
	return refusef("#%s is %s; it cannot be %s any more.", r.ID, strings.ToLower(string(r.State)), step)
}

// expireIfDue moves a waiting request past its expiry to Expired and says so.
func (b *Bot) expireIfDue(ctx context.Context, r *store.Request) error {
	if r.State.Terminal() || r.State == store.Executing || b.now().Before(r.ExpiresAt) {
		return nil
	}
	if _, err := b.transition(ctx, r.ID, "deploybot", "expire", func(r *store.Request) error { return store.Transition(r, store.Expired) }); err == nil {
		b.refresh(ctx, r.ID)
	}
	return refusef("#%s expired at %s; nothing was changed. Run the command again to open a new request.", r.ID, r.ExpiresAt.UTC().Format(time.RFC3339))
}

func (b *Bot) confirm(ctx context.Context, caller plan.Caller, id string, resp Responder) error {
	r, err := b.store.Get(ctx, id)
	if err != nil {
		return b.fail(ctx, resp, "finding #"+id, err)
	}
	if err := b.expireIfDue(ctx, r); err != nil {
		return b.replyRefusal(ctx, resp, err)
	}
	r, err = b.transition(ctx, id, caller.User, "confirm", func(r *store.Request) error {
		if r.Requester.Platform != caller.Platform || r.Requester.ChatID != caller.ChatID {
			return refusef("Only %s, who requested #%s, can confirm it.", r.Requester.Name, r.ID)
		}
		if r.State != store.AwaitingConfirm {
			return stateRefusal(r, "confirmed")
		}
		next := store.Approved
		if r.Plan.Policy.Approvals > 0 {
			next = store.AwaitingApproval
		}
		return store.Transition(r, next)
	})
	if err != nil {
		return b.replyRefusal(ctx, resp, err)
	}
	b.refresh(ctx, id)
	if r.State == store.Approved {
		b.startExecution(id)
	}
	return nil
}

func (b *Bot) approve(ctx context.Context, caller plan.Caller, id string, resp Responder) error {
	r, err := b.store.Get(ctx, id)
	if err != nil {
		return b.fail(ctx, resp, "finding #"+id, err)
	}
	if err := b.expireIfDue(ctx, r); err != nil {
		return b.replyRefusal(ctx, resp, err)
	}
	if r.State == store.AwaitingApproval {
		// Approvers must pass the same access checks as the requester.
		denied, err := b.deps.Access.Denied(ctx, r.Plan.Env, caller.User, caller.Groups, r.Plan.Access)
		if err != nil {
			return b.fail(ctx, resp, "checking your access", err)
		}
		if len(denied) > 0 {
			return b.refuse(ctx, resp, "You cannot approve #%s: %s", id, deniedText(caller.User, r.Plan.Env, denied))
		}
	}
	current, err := b.currentPlanHash(ctx, r)
	if err != nil {
		return b.fail(ctx, resp, "re-checking the plan of #"+id, err)
	}
	approver := auth.Identity{User: caller.User, Groups: caller.Groups}
	r, err = b.transition(ctx, id, caller.User, "approve", func(r *store.Request) error {
		if err := auth.CheckApproval(r, approver, caller.ChatID, caller.Platform, current, b.now()); err != nil {
			return err
		}
		r.Approvals = append(r.Approvals, store.Approval{By: person(caller), At: b.now(), PlanHash: r.PlanHash})
		if len(r.Approvals) >= r.Plan.Policy.Approvals {
			return store.Transition(r, store.Approved)
		}
		return nil
	})
	if err != nil {
		return b.replyRefusal(ctx, resp, err)
	}
	b.refresh(ctx, id)
	if r.State == store.Approved {
		b.startExecution(id)
	}
	return nil
}

// currentPlanHash rebuilds the request's Plan from live state, so that an
// approval binds to what would actually happen now.
func (b *Bot) currentPlanHash(ctx context.Context, r *store.Request) (string, error) {
	if r.State != store.AwaitingApproval {
		return r.PlanHash, nil // the state check refuses it anyway
	}
	res := commands.Parse(b.cfg, commands.Input{Text: r.Command, ChannelEnv: r.Plan.Env})
	if res.Kind != commands.RunKind {
		return "", fmt.Errorf("re-reading %q did not give a command", r.Command)
	}
	requester := plan.Caller{Platform: r.Requester.Platform, ChatID: r.Requester.ChatID, Name: r.Requester.Name,
		User: r.Requester.User, Groups: r.Requester.Groups, ChannelEnv: r.Plan.Env}
	p, err := commands.BuildPlan(ctx, b.deps, requester, res.Command)
	if err != nil {
		var ue *commands.UserError
		if errors.As(err, &ue) {
			return "changed: " + err.Error(), nil
		}
		return "", err
	}
	return p.Hash(), nil
}

func (b *Bot) deny(ctx context.Context, caller plan.Caller, id, reason string, resp Responder) error {
	r, err := b.store.Get(ctx, id)
	if err != nil {
		return b.fail(ctx, resp, "finding #"+id, err)
	}
	denied, err := b.deps.Access.Denied(ctx, r.Plan.Env, caller.User, caller.Groups, r.Plan.Access)
	if err != nil {
		return b.fail(ctx, resp, "checking your access", err)
	}
	if len(denied) > 0 {
		return b.refuse(ctx, resp, "You cannot deny #%s: %s", id, deniedText(caller.User, r.Plan.Env, denied))
	}
	p := person(caller)
	_, err = b.transition(ctx, id, caller.User, "deny", func(r *store.Request) error {
		switch r.State {
		case store.AwaitingConfirm, store.AwaitingApproval, store.Approved:
		default:
			return stateRefusal(r, "denied")
		}
		r.ClosedBy, r.Reason = &p, reason
		return store.Transition(r, store.Denied)
	})
	if err != nil {
		return b.replyRefusal(ctx, resp, err)
	}
	b.refresh(ctx, id)
	return nil
}

func (b *Bot) cancelRequest(ctx context.Context, caller plan.Caller, id string, resp Responder) error {
	p := person(caller)
	_, err := b.transition(ctx, id, caller.User, "cancel", func(r *store.Request) error {
		if r.Requester.Platform != caller.Platform || r.Requester.ChatID != caller.ChatID {
			return refusef("Only %s, who requested #%s, can cancel it; approvers can `deny` it.", r.Requester.Name, r.ID)
		}
		switch r.State {
		case store.AwaitingConfirm, store.AwaitingApproval, store.Approved:
		default:
			return stateRefusal(r, "cancelled")
		}
		r.ClosedBy = &p
		return store.Transition(r, store.Cancelled)
	})
	if err != nil {
		return b.replyRefusal(ctx, resp, err)
	}
	b.refresh(ctx, id)
	return nil
}

// replyRefusal turns flow refusals into private replies and anything else
// into an error reply.
func (b *Bot) replyRefusal(ctx context.Context, resp Responder, err error) error {
	var rf *refusal
	var ar *auth.Refusal
	switch {
	case errors.As(err, &rf):
		return b.refuse(ctx, resp, "%s", rf.text)
	case errors.As(err, &ar):
		return b.refuse(ctx, resp, "%s", ar.Error())
	}
	return b.fail(ctx, resp, "updating the request", err)
}

// transition applies fn as one compare-and-swap on the request and audits the
// state change it made.
func (b *Bot) transition(ctx context.Context, id, actor, action string, fn func(r *store.Request) error) (*store.Request, error) {
	var from store.State
	r, err := b.store.Update(ctx, id, func(r *store.Request) error {
		from = r.State
		if err := fn(r); err != nil {
			return err
		}
		r.UpdatedAt = b.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.audit(ctx, r, actor, action, from, r.State, "")
	return r, nil
}

func (b *Bot) audit(ctx context.Context, r *store.Request, actor, action string, from, to store.State, outcome string) {
	e := store.AuditEvent{Time: b.now(), RequestID: r.ID, Actor: actor, Action: action, From: from, To: to,
		Env: r.Plan.Env, PlanHash: r.PlanHash, Outcome: outcome}
	if err := b.store.Record(ctx, e); err != nil {
		b.log.Error("recording audit event", "request", r.ID, "err", err)
	}
	b.logFor(ctx).Info("audit", "request", r.ID, "actor", actor, "action", action, "from", string(from), "to", string(to),
		"env", r.Plan.Env, "planHash", r.PlanHash, "outcome", outcome)
}

// startExecution executes an approved request in the background. The
// Approved → Executing compare-and-swap makes sure only one caller (click,
// retry, replica) ever runs it.
func (b *Bot) startExecution(id string) {
	b.background(func(ctx context.Context) { b.execute(ctx, id) })
}

func (b *Bot) execute(ctx context.Context, id string) {
	r, err := b.transition(ctx, id, "deploybot", "execute", func(r *store.Request) error {
		if err := store.Transition(r, store.Executing); err != nil {
			return err
		}
		b.claimExecution(r)
		return nil
	})
	if err != nil {
		b.log.Info("not executing", "request", id, "reason", err)
		return
	}
	execCtx, stopHeartbeat := b.heartbeat(ctx, id)
	defer stopHeartbeat()
	b.refresh(ctx, id)
	report := func(p plan.Progress) {
		b.progressFor(id).add(p)
		b.recordTarget(ctx, id, p)
		b.refresh(ctx, id)
	}
	exec := b.exec
	var result plan.Result
	var execErr error
	if b.executorFor != nil && r.Requester.Platform != SchedulePlatform {
		exec, execErr = b.executorFor(r.Requester)
	}
	var followed time.Duration
	if execErr == nil {
		result, execErr = exec.Execute(execCtx, r.Plan, report)
		start := time.Now()
		result.Rollouts = exec.Follow(execCtx, r.Plan, result, b.rolloutDeadline, report)
		followed = time.Since(start)
	}
	final, reason := store.Succeeded, ""
	if execErr != nil {
		final, reason = store.Failed, execErr.Error()
	} else if result.Failed() {
		final, reason = store.Failed, failureSummary(result)
	}
	if len(result.Rollouts) > 0 {
		b.metrics.Rollout(r.Plan.Env, string(r.Plan.Action), string(final), followed)
	}
	_, err = b.transition(ctx, id, "deploybot", "finish", func(r *store.Request) error {
		return b.finish(r, result, final, reason)
	})
	if err != nil {
		b.log.Error("recording the outcome", "request", id, "err", err)
	}
	b.refresh(ctx, id)
	// The final message shows the progress; nothing renders it again.
	b.mu.Lock()
	delete(b.progress, id)
	b.mu.Unlock()
}

func failureSummary(res plan.Result) string {
	var parts []string
	for _, t := range res.Targets {
		if t.Outcome == plan.PhaseFailed {
			parts = append(parts, t.Service+": "+t.Error)
		}
	}
	for _, o := range res.Rollouts {
		if o.Outcome != plan.PhaseSettled {
			parts = append(parts, strings.ToLower(o.Workload.Kind)+"/"+o.Workload.Name+": "+o.Reason)
		}
	}
	return strings.Join(parts, "; ")
}

// Sweep expires requests whose approval window has passed and reports
// executions whose replica died.
func (b *Bot) Sweep(ctx context.Context) error {
	if err := b.recoverExecutions(ctx); err != nil {
		return err
	}
	open, err := b.store.List(ctx, store.ListOptions{States: []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved}})
	if err != nil {
		return fmt.Errorf("listing open requests: %w", err)
	}
	for _, r := range open {
		if b.now().Before(r.ExpiresAt) {
			continue
		}
		if _, err := b.transition(ctx, r.ID, "deploybot", "expire", func(r *store.Request) error { return store.Transition(r, store.Expired) }); err == nil {
			b.refresh(ctx, r.ID)
		}
	}
	return nil
}

// locks are the env/service keys a Plan holds while its request is open.
func locks(p plan.Plan) []string {
	var out []string
	for _, t := range p.Targets {
		if !t.Unchanged {
			out = append(out, p.Env+"/"+t.Service)
		}
	}
	return out
}

func deniedText(user, env string, denied []plan.Denial) string {
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
