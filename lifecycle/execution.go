package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// The execution runner: an approved request runs exactly once, on the
// replica that wins the Approved → Executing compare-and-swap. While it runs
// that replica records a heartbeat and each target's result as it finishes,
// so that if the replica dies, another one (or its own next life) reports
// truthfully what was done and what may or may not have changed, and never
// runs it again.

// errTaken aborts a heartbeat or a report: the request is no longer this
// replica's to execute, or no longer orphaned.
var errTaken = errors.New("the request is no longer executing on this replica")

// startExecution executes an approved request in the background, unless
// this process is shutting down: the request then stays Approved, and the
// next replica (or this one's next start) runs it through Recover.
func (l *Lifecycle) startExecution(id string) {
	if l.closing.Load() {
		l.log.Info("shutting down: leaving an approved request for the next replica", "request", id)
		return
	}
	l.work.Add(1)
	go func() {
		defer l.work.Done()
		l.execute(l.ctx, id)
	}()
}

func (l *Lifecycle) execute(ctx context.Context, id string) {
	r, err := l.step(ctx, id, "deploybot", "execute", func(r *store.Request) error {
		if err := store.Transition(r, store.Executing); err != nil {
			return err
		}
		l.claim(r)
		return nil
	})
	if err != nil {
		l.log.Info("not executing", "request", id, "reason", err)
		return
	}
	execCtx, stopHeartbeat := l.heartbeat(ctx, id)
	defer stopHeartbeat()
	l.Refresh(ctx, id)
	report := func(p plan.Progress) {
		l.progressFor(id).Add(p)
		// A target that finishes while shutting down is still recorded.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		l.recordTarget(rctx, id, p)
		l.Refresh(ctx, id)
	}
	exec := l.exec
	var result plan.Result
	var execErr error
	switch {
	case r.Plan.Action == plan.ActionRelease:
		// A release pushes git branches with the bot's git credentials and
		// changes no cluster: the requester's access was checked already.
		exec = l.releaser
		if exec == nil {
			execErr = errors.New("this deploybot has no git client configured, so it cannot push releases; nothing was pushed")
		}
	case l.executorFor != nil && r.Requester.Platform != SchedulePlatform:
		exec, execErr = l.executorFor(r.Requester)
	}
	var followed time.Duration
	if execErr == nil {
		result, execErr = exec.Execute(execCtx, r.Plan, report)
		l.recordImages(ctx, r, result)
		start := time.Now()
		result.Rollouts = exec.Follow(execCtx, r.Plan, result, l.rolloutDeadline, report)
		followed = time.Since(start)
	}
	// The outcome is recorded even when ctx has ended (shutdown): on a
	// context of its own, bounded, so the request never stays Executing
	// with no word of what happened. Outside a shutdown a slow store (an
	// API server under load) gets longer than the shutdown's bound.
	timeout := recordTimeout
	if ctx.Err() == nil {
		timeout = recordTimeoutLive
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	interrupted := ctx.Err() != nil && !l.taken(execCtx)
	final, reason := store.Succeeded, ""
	if execErr != nil {
		final, reason = store.Failed, execErr.Error()
	} else if result.Failed() {
		final, reason = store.Failed, result.FailureSummary()
	}
	if len(result.Rollouts) > 0 {
		l.metrics.Rollout(r.Plan.Env, string(r.Plan.Action), string(final), followed)
	}
	action := "finish"
	if interrupted {
		action = "interrupt"
	}
	_, err = l.step(rctx, id, "deploybot", action, func(r *store.Request) error {
		if interrupted && r.State == store.Executing && r.Executor == l.replica {
			r.Result = &plan.Result{Targets: r.Done}
			r.Reason = interruptedReason(r, l.replica)
			return store.Transition(r, store.Failed)
		}
		return l.finish(r, result, final, reason)
	})
	if err != nil {
		l.log.Error("recording the outcome", "request", id, "err", err)
	}
	l.Refresh(rctx, id)
	// The final message shows the progress; nothing renders it again.
	l.mu.Lock()
	delete(l.progress, id)
	l.mu.Unlock()
	if err == nil && final == store.Succeeded && !interrupted {
		l.afterRelease(rctx, r, result)
		l.afterUndo(rctx, r, result)
	}
}

// afterUndo holds what an undo or revert went back to when the env says
// holdAfterUndo, so that no import brings the bad image back: a hold
// request of the requester's, opened after the rollout settled (pausing
// the triggers before would stop it), confirmed and approved by the
// undo's own confirmation and approvals. Its access is checked for the
// requester like any hold; when it cannot be opened the undo's message
// says why and offers the hold instead.
func (l *Lifecycle) afterUndo(ctx context.Context, r *store.Request, result plan.Result) {
	env, ok := l.cfg.Env(r.Plan.Env)
	if a := r.Plan.Action; !ok || !env.HoldAfterUndo || (a != plan.ActionRollback && a != plan.ActionPin) {
		return
	}
	var services []string
	for _, t := range result.Targets {
		if t.Outcome == plan.PhaseChanged {
			services = append(services, t.Service)
		}
	}
	if len(services) == 0 {
		return
	}
	reason := fmt.Sprintf("went back with %s (%s)", shortID(r.ID), r.Command)
	c := plan.Command{Name: "hold", Env: env.Name, Services: services, Reason: reason,
		Text: fmt.Sprintf("hold %s %s --reason %q", env.Name, strings.Join(services, " "), reason)}
	platform := r.Requester.Platform
	if platform == SchedulePlatform {
		platform = ""
	}
	_, err := l.Open(ctx, Open{Caller: caller(r.Requester, env.Name), Command: c, Platform: platform, Channel: r.Channel,
		ID: r.ID + "-hold", AutoApprove: true, Confirmed: true, Note: "after " + shortID(r.ID)})
	if err == nil {
		return
	}
	l.log.Error("holding after an undo", "request", r.ID, "err", err)
	if _, uerr := l.store.Update(ctx, r.ID, func(r *store.Request) error {
		r.Reason = fmt.Sprintf("The hold after it could not be placed: %v.", err)
		return nil
	}); uerr != nil {
		l.log.Error("recording that the hold after an undo was not placed", "request", r.ID, "err", uerr)
	}
	l.Refresh(ctx, r.ID)
}

// afterRelease opens, for a release whose images are all built, the import
// of exactly those services when the config says release.afterBuild:
// import: a normal request of the releaser's, under the env's confirm and
// approvals, posted where the release was asked for.
func (l *Lifecycle) afterRelease(ctx context.Context, r *store.Request, result plan.Result) {
	built := result.Built()
	if r.Plan.Action != plan.ActionRelease || len(built) == 0 || l.cfg.Release.AfterBuild != config.AfterBuildImport {
		return
	}
	c := plan.Command{Name: "import", Env: r.Plan.Env, Services: built,
		Text: "import " + r.Plan.Env + " " + strings.Join(built, " ")}
	if r.Intent != nil && r.Intent.BreakGlass != "" {
		// a release that broke the glass: its import does too, and needs
		// the extra approval as well
		c.BreakGlass = r.Intent.BreakGlass
		c.Text += fmt.Sprintf(" --break-glass %q", c.BreakGlass)
	}
	platform := r.Requester.Platform
	if platform == SchedulePlatform {
		platform = ""
	}
	_, err := l.Open(ctx, Open{Caller: caller(r.Requester, r.Plan.Env), Command: c, Platform: platform, Channel: r.Channel,
		Note: "after release " + shortID(r.ID)})
	if err == nil {
		return
	}
	// Say so where the release is shown: its message then offers the
	// import instead (bot/render.go).
	l.log.Error("opening the import after a release", "request", r.ID, "err", err)
	if _, uerr := l.store.Update(ctx, r.ID, func(r *store.Request) error {
		r.Reason = fmt.Sprintf("The import of the built images could not be opened: %v.", err)
		return nil
	}); uerr != nil {
		l.log.Error("recording that the import after a release was not opened", "request", r.ID, "err", uerr)
	}
	l.Refresh(ctx, r.ID)
}

// recordImages notes in the store the images a plain Kubernetes Plan set,
// with who asked: that environment's only tag history (the registry keeps
// none). A record that cannot be written is logged; the deploy happened.
func (l *Lifecycle) recordImages(ctx context.Context, r *store.Request, res plan.Result) {
	if !r.Plan.Kubernetes() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := l.Now()
	for _, t := range res.Targets {
		if t.Outcome != plan.PhaseChanged || !plan.IsDigest(t.To.Digest) {
			continue
		}
		rec := store.ImageRecord{Env: r.Plan.Env, Service: t.Service, Digest: t.To.Digest, Ref: t.To.Ref,
			Seen: now, Imported: now, By: r.Requester.User, Request: r.ID}
		if err := l.store.RecordImage(rctx, rec); err != nil {
			l.log.Error("recording an image in the history", "request", r.ID, "service", t.Service, "digest", t.To.Digest, "err", err)
		}
	}
}

// recordTimeout bounds recording an execution's outcome after its context
// has ended.
const recordTimeout = 10 * time.Second

// recordTimeoutLive bounds recording an outcome while the process runs on.
const recordTimeoutLive = 2 * time.Minute

// taken reports whether execCtx ended because another replica reported this
// execution dead (the heartbeat's cancel), not because of shutdown.
func (l *Lifecycle) taken(execCtx context.Context) bool {
	return errors.Is(context.Cause(execCtx), errTaken)
}

// claim marks r as executed by this replica, as of now.
func (l *Lifecycle) claim(r *store.Request) {
	r.Executor = l.replica
	r.Heartbeat = l.Now()
	r.Done = nil
	l.mu.Lock()
	l.running[r.ID] = true
	l.mu.Unlock()
}

// heartbeat records every heartbeat interval that this replica still
// executes request id. The returned context, for the execution, ends when
// ctx does or when another replica has meanwhile reported the execution as
// dead: this replica then stops instead of changing more than was reported.
// stop ends the heartbeat and waits for it.
func (l *Lifecycle) heartbeat(ctx context.Context, id string) (execCtx context.Context, stop func()) {
	execCtx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(errTaken) }
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-execCtx.Done():
				return
			case <-quit:
				return
			case <-l.clock.After(l.heartbeatEvery):
			}
			_, err := l.store.Update(ctx, id, func(r *store.Request) error {
				if r.State != store.Executing || r.Executor != l.replica {
					return errTaken
				}
				r.Heartbeat = l.Now()
				return nil
			})
			switch {
			case errors.Is(err, errTaken):
				l.log.Error("stopping an execution another replica reported as dead", "request", id, "replica", l.replica)
				cancel()
				return
			case err != nil && ctx.Err() == nil:
				l.log.Error("recording execution heartbeat", "request", id, "err", err)
			}
		}
	}()
	return execCtx, func() {
		close(quit)
		<-done
		cancelCause(nil)
		l.mu.Lock()
		delete(l.running, id)
		l.mu.Unlock()
	}
}

// recordTarget stores a target's result as soon as the executor reports it
// finished, so that the request tells what was done even if this replica
// dies before the end.
func (l *Lifecycle) recordTarget(ctx context.Context, id string, p plan.Progress) {
	if p.Workload.Name != "" || p.Service == "" {
		return
	}
	switch p.Phase {
	case plan.PhaseChanged, plan.PhaseUnchanged, plan.PhaseFailed:
	default:
		return
	}
	_, err := l.store.Update(ctx, id, func(r *store.Request) error {
		tr := plan.TargetResult{Service: p.Service, Outcome: p.Phase}
		for _, t := range r.Plan.Targets {
			if t.Service == p.Service {
				tr.From, tr.To = t.From, t.To
			}
		}
		if p.Phase == plan.PhaseFailed {
			tr.Error = p.Message
		}
		r.Done = slices.DeleteFunc(r.Done, func(d plan.TargetResult) bool { return d.Service == p.Service })
		r.Done = append(r.Done, tr)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		l.log.Error("recording a target's result", "request", id, "service", p.Service, "err", err)
	}
}

// finish records the outcome of this replica's execution of r. If another
// replica reported the execution dead meanwhile, r stays as reported and what
// this replica did after all is added to the reason: the record never claims
// less than happened.
func (l *Lifecycle) finish(r *store.Request, result plan.Result, final store.State, reason string) error {
	if r.State != store.Executing && r.Executor == l.replica {
		r.Result = &result
		did := result.Summary()
		if len(result.Targets) == 0 && reason != "" {
			did = reason
		}
		late := fmt.Sprintf("Later, replica %s, which had been taken for dead, stopped with: %s", l.replica, did)
		r.Reason = strings.TrimSpace(r.Reason + " " + late + ".")
		return nil
	}
	r.Result = &result
	if reason != "" {
		r.Reason = reason
	}
	return store.Transition(r, final)
}

// orphaned reports whether an executing request's executor is gone: its
// heartbeat is older than the stale limit, or it names this replica, which
// is not running it (an earlier life of this replica).
func (l *Lifecycle) orphaned(r *store.Request, now time.Time) bool {
	if r.State != store.Executing || r.Plan.Action == plan.ActionObserved {
		// The deploy feed's records execute nothing: the leader's feed
		// takes over the ones another replica followed.
		return false
	}
	if r.Executor == l.replica {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.running[r.ID]
	}
	hb := r.Heartbeat
	if hb.IsZero() {
		hb = r.UpdatedAt
	}
	return now.Sub(hb) > l.staleAfter
}

// Recover reports executions whose replica died as Failed, saying what was
// done and what not, and never runs them again; and it starts approved
// requests that no replica started within the stale limit (their approver's
// replica died between approving and executing; nothing of them ran yet,
// and the Approved → Executing compare-and-swap still runs each once). Any
// replica may call it at start-up; the leader's sweeper calls it too.
func (l *Lifecycle) Recover(ctx context.Context) error {
	open, err := l.store.List(ctx, store.ListOptions{States: []store.State{store.Executing, store.Approved}})
	if err != nil {
		return fmt.Errorf("listing executing requests: %w", err)
	}
	now := l.Now()
	for _, r := range open {
		if r.State == store.Approved {
			if now.Sub(r.UpdatedAt) > l.staleAfter && now.Before(r.ExpiresAt) {
				l.log.Info("starting an approved request no replica started", "request", r.ID)
				l.startExecution(r.ID)
			}
			continue
		}
		if !l.orphaned(r, now) {
			continue
		}
		_, err := l.step(ctx, r.ID, "deploybot", "reap", func(r *store.Request) error {
			if !l.orphaned(r, now) {
				return errTaken // it moved on or its replica spoke up meanwhile
			}
			r.Reason = orphanReason(r, l.replica)
			r.Result = &plan.Result{Targets: r.Done}
			return store.Transition(r, store.Failed)
		})
		if err != nil {
			if !errors.Is(err, errTaken) {
				l.log.Error("reporting a dead execution", "request", r.ID, "err", err)
			}
			continue
		}
		l.log.Info("reported a dead execution", "request", r.ID, "executor", r.Executor)
		l.Refresh(ctx, r.ID)
	}
	return nil
}

// orphanReason tells truthfully what is known of an execution whose replica
// died: which targets finished (and how) and which were not reported
// finished, so they may or may not have changed.
func orphanReason(r *store.Request, reporter string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Replica %s stopped while executing this request", r.Executor)
	if !r.Heartbeat.IsZero() {
		fmt.Fprintf(&b, " (last heard from at %s)", r.Heartbeat.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	b.WriteString(". ")
	unfinished(&b, r)
	fmt.Fprintf(&b, "Replica %s reported this and did not run anything again; check `status %s`", reporter, r.Plan.Env)
	advice(&b, r)
	return b.String()
}

// interruptedReason tells what a replica that was shut down mid-execution
// had done and what not.
func interruptedReason(r *store.Request, replica string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Interrupted: replica %s was shut down while executing this request. ", replica)
	unfinished(&b, r)
	fmt.Fprintf(&b, "Nothing will run it again; check `status %s`", r.Plan.Env)
	advice(&b, r)
	return b.String()
}

// unfinished writes what of r's targets was reported done and what not.
func unfinished(b *strings.Builder, r *store.Request) {
	var did, unknown []string
	for _, t := range r.Plan.Targets {
		if d, ok := doneFor(r, t.Service); ok {
			did = append(did, d.Summary())
			continue
		}
		if t.Unchanged {
			continue
		}
		unknown = append(unknown, t.Service)
	}
	if len(did) > 0 {
		fmt.Fprintf(b, "Done: %s. ", strings.Join(did, ", "))
	} else {
		b.WriteString("No target was reported finished. ")
	}
	if len(unknown) > 0 {
		fmt.Fprintf(b, "Not reported finished, so they may or may not have changed: %s. ", strings.Join(unknown, ", "))
	}
	if r.Plan.Action == plan.ActionRelease {
		var built []string
		for _, t := range r.Plan.Targets {
			if d, ok := doneFor(r, t.Service); ok && d.Outcome == plan.PhaseChanged {
				built = append(built, t.Builds...)
			}
		}
		if len(built) == 0 {
			b.WriteString("No build was waited for. ")
			return
		}
		fmt.Fprintf(b, "The builds were not waited for: `import %s %s` takes them once they are in the registry. ", r.Plan.Env, strings.Join(built, " "))
		return
	}
	b.WriteString("Rollouts were not followed. ")
}

// advice ends a reason with what to run again, if anything may be undone.
func advice(b *strings.Builder, r *store.Request) {
	for _, t := range r.Plan.Targets {
		if _, ok := doneFor(r, t.Service); !ok && !t.Unchanged {
			fmt.Fprintf(b, " and run `%s` again if needed", r.Command)
			break
		}
	}
	b.WriteString(".")
}

func doneFor(r *store.Request, service string) (plan.TargetResult, bool) {
	for _, d := range r.Done {
		if d.Service == service {
			return d, true
		}
	}
	return plan.TargetResult{}, false
}
