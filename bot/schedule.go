package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// SchedulePlatform is the Requester.Platform of the requests scheduled
// imports open; their requester is the schedule, acting as the bot's own
// Kubernetes identity (WithScheduleIdentity).
const SchedulePlatform = "schedule"

// Scheduler limits.
const (
	// maxLate is how late a run may start and still count as on time (a
	// leader hand-over, a slow API server); later, it was missed. Schedules
	// that run more often than every 20 minutes allow half their gap.
	maxLate = 10 * time.Minute
	// lookbackRuns and lookbackAge bound how far back the start-up check
	// looks for the last run that has a record.
	lookbackRuns = 12
	lookbackAge  = 60 * 24 * time.Hour
	// retryAfter is when a run that failed on the store is tried again.
	retryAfter = 30 * time.Second
)

// RunID is the request ID of env's scheduled run at the given time. Every
// run leaves exactly one request with this ID (the import, or a record of
// why there was none: skipped, paused, missed, nothing to change), so
// creating it is the claim that makes each run happen once across replicas
// and leader hand-overs, and finding it tells a new leader which runs were
// handled. The Skip button carries it.
func RunID(env string, at time.Time) string {
	id := env + "-" + at.UTC().Format("20060102-1504") + "z"
	if len(id) > 60 {
		sum := sha256.Sum256([]byte(env))
		id = "s" + hex.EncodeToString(sum[:])[:16] + "-" + at.UTC().Format("20060102-1504") + "z"
	}
	return id
}

func (b *Bot) schedulePerson() store.Person {
	return store.Person{Platform: SchedulePlatform, ChatID: "schedule", Name: "schedule", User: b.rep.scheduleUser, Groups: b.rep.scheduleGroups}
}

// scheduled is an environment with a schedule.
type scheduled struct {
	env   *config.Environment
	sched cron.Schedule
}

func (b *Bot) scheduledEnvs() []scheduled {
	var out []scheduled
	for i := range b.cfg.Environments {
		e := &b.cfg.Environments[i]
		s, err := e.Cron()
		if err != nil {
			b.log.Error("not scheduling", "env", e.Name, "err", err)
			continue
		}
		if s != nil {
			out = append(out, scheduled{env: e, sched: s})
		}
	}
	return out
}

// lateLimit is how late env's run at t may start and still be on time.
func lateLimit(s cron.Schedule, t time.Time) time.Duration {
	if gap := s.Next(t).Sub(t); gap > 0 && gap/2 < maxLate {
		return gap / 2
	}
	return maxLate
}

// runSchedule is the scheduler: it runs while this replica leads. At start
// it handles a run that is due and reports runs missed while no replica was
// up; then it sleeps (on the bot's clock) until the next heads-up or run.
func (b *Bot) runSchedule(ctx context.Context) {
	envs := b.scheduledEnvs()
	if len(envs) == 0 {
		return
	}
	now := b.now()
	// cursor: runs of each env up to this time are handled.
	cursor := map[string]time.Time{}
	headsUp := map[string]time.Time{} // the run each env's last heads-up was for
	for _, s := range envs {
		if s.env.Channel == nil {
			b.log.Warn("scheduled imports are announced nowhere: set environments[].channel", "env", s.env.Name)
		}
		cursor[s.env.Name] = b.checkMissed(ctx, s, now)
	}
	for {
		now = b.now()
		var wake time.Time
		for _, s := range envs {
			name := s.env.Name
			for {
				t := s.sched.Next(cursor[name])
				if t.IsZero() {
					break
				}
				if !now.Before(t) {
					if err := b.runOccurrence(ctx, s, t); err != nil {
						if ctx.Err() != nil {
							return
						}
						// Not claimed: try again shortly; too late, it counts as missed.
						b.log.Error("running a scheduled import; trying again", "env", name, "run", t, "err", err, "in", retryAfter)
						wake = earliest(wake, now.Add(retryAfter))
						break
					}
					cursor[name] = t
					continue
				}
				if lead := s.env.ScheduleHeadsUp.Duration; lead > 0 && !headsUp[name].Equal(t) {
					if at := t.Add(-lead); now.Before(at) {
						wake = earliest(wake, at)
					} else {
						b.headsUp(ctx, s, t)
						headsUp[name] = t
					}
				}
				wake = earliest(wake, t)
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		if wake.IsZero() {
			<-ctx.Done()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-b.rep.clock.Until(wake):
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// recentRuns returns env's runs at or before now, newest first: at most n,
// none older than lookbackAge.
func recentRuns(s cron.Schedule, now time.Time, n int) []time.Time {
	window := lookbackAge
	if gap := config.ScheduleGap(s, now); gap > 0 && time.Duration(2*n)*gap < window {
		window = time.Duration(2*n) * gap
	}
	var runs []time.Time
	for t := s.Next(now.Add(-window)); !t.IsZero() && !t.After(now); t = s.Next(t) {
		runs = append(runs, t)
	}
	if len(runs) > n {
		runs = runs[len(runs)-n:]
	}
	for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
		runs[i], runs[j] = runs[j], runs[i]
	}
	return runs
}

// checkMissed reports the runs since the last one with a record, which no
// replica was up to handle. Without any record in the look-back (a new
// schedule, a new install) nothing counts as missed. It returns the time from
// which the scheduler loop takes over: just before a run that is due now (a
// hand-over at run time), else now.
func (b *Bot) checkMissed(ctx context.Context, s scheduled, now time.Time) (cursor time.Time) {
	cursor = now
	runs := recentRuns(s.sched, now, lookbackRuns)
	if len(runs) > 0 && now.Sub(runs[0]) <= lateLimit(s.sched, runs[0]) {
		cursor = runs[0].Add(-time.Nanosecond)
		runs = runs[1:]
	}
	var missed []time.Time
	for _, t := range runs {
		_, err := b.store.Get(ctx, RunID(s.env.Name, t))
		if err == nil {
			if len(missed) > 0 {
				b.reportMissed(ctx, s, missed)
			}
			return cursor
		}
		if !errors.Is(err, store.ErrNotFound) {
			b.log.Error("looking for earlier scheduled runs", "env", s.env.Name, "err", err)
			return cursor
		}
		missed = append(missed, t)
	}
	if len(missed) > 0 {
		b.log.Info("no record of earlier scheduled runs; none reported as missed", "env", s.env.Name, "checked", len(missed))
	}
	return cursor
}

// runOccurrence handles env's run at t: unless already handled (skipped, or
// run by another replica) it is missed if too late, recorded if paused, and
// otherwise opened as a request.
// An error means the run was not claimed and may be tried again.
func (b *Bot) runOccurrence(ctx context.Context, s scheduled, t time.Time) error {
	if done, err := b.handled(ctx, s.env, t); done || err != nil {
		return err
	}
	if b.now().Sub(t) > lateLimit(s.sched, t) {
		b.reportMissed(ctx, s, []time.Time{t})
		return nil
	}
	p, paused, err := b.pausedAt(ctx, s.env, t)
	if err != nil {
		return err
	}
	if paused {
		reason := "Paused by " + p.By
		if !p.Until.IsZero() {
			reason += " until " + b.fmtTime(s.env, p.Until)
		}
		reason += "; this run did not happen."
		ok, err := b.recordRun(ctx, s.env, t, store.Cancelled, reason, nil, nil, "schedule-paused", "schedule")
		if ok {
			b.announce(ctx, s.env, runNotice(b, s.env, t, reason))
		}
		return err
	}
	_, err = b.openScheduled(ctx, s.env, t, "")
	return err
}

// handled reports whether env's run at t has its request already.
func (b *Bot) handled(ctx context.Context, env *config.Environment, t time.Time) (bool, error) {
	_, err := b.store.Get(ctx, RunID(env.Name, t))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("reading the scheduled run of %s: %w", env.Name, err)
}

// pausedAt returns the pause that holds env's run at t, if any.
func (b *Bot) pausedAt(ctx context.Context, env *config.Environment, t time.Time) (store.Pause, bool, error) {
	pauses, err := b.store.Pauses(ctx)
	if err != nil {
		return store.Pause{}, false, fmt.Errorf("reading schedule pauses: %w", err)
	}
	p, ok := pauses[env.Name]
	return p, ok && !p.At.After(t) && p.Active(t), nil
}

// reportMissed records runs (newest first) that no replica handled in time
// and says so in the env's channel; with catchUp the newest runs now, once.
func (b *Bot) reportMissed(ctx context.Context, s scheduled, missed []time.Time) {
	env := s.env
	var reported []string
	catchUp := time.Time{}
	for i, t := range missed {
		if p, ok, err := b.pausedAt(ctx, env, t); err != nil {
			b.log.Error("reporting missed scheduled runs", "env", env.Name, "err", err)
			return
		} else if ok {
			// It would not have run anyway.
			if _, err := b.recordRun(ctx, env, t, store.Cancelled, "Paused by "+p.By+"; this run did not happen.", nil, nil, "schedule-paused", "schedule"); err != nil {
				b.log.Error("recording a paused scheduled run", "env", env.Name, "err", err)
			}
			continue
		}
		if i == 0 && env.CatchUp {
			catchUp = t
			continue
		}
		reason := fmt.Sprintf("Missed: no deploybot replica was running at %s, so it did not run.", b.fmtTime(env, t))
		if ok, err := b.recordRun(ctx, env, t, store.Expired, reason, nil, nil, "schedule-missed", "schedule"); err != nil {
			b.log.Error("recording a missed scheduled run", "env", env.Name, "err", err)
		} else if ok {
			reported = append(reported, b.fmtTime(env, t))
		}
	}
	slices.Reverse(reported) // oldest first, for the sentence
	if !catchUp.IsZero() {
		note := fmt.Sprintf("The scheduled import of %s at %s was missed: no deploybot replica was running.", env.Name, joinAnd(append(reported, b.fmtTime(env, catchUp))))
		note += fmt.Sprintf(" catchUp is on, so the latest runs now, once, as #%s.", RunID(env.Name, catchUp))
		claimed, err := b.openScheduled(ctx, env, catchUp, note)
		if err != nil {
			b.log.Error("catching up a missed scheduled run", "env", env.Name, "err", err)
		}
		if claimed {
			return
		}
	}
	if len(reported) == 0 {
		return
	}
	note := fmt.Sprintf("The scheduled import of %s at %s was missed: no deploybot replica was running.", env.Name, joinAnd(reported))
	if !env.CatchUp {
		note += fmt.Sprintf(" catchUp is off, so it was not run; `import %s` runs it by hand.", env.Name)
	}
	b.announce(ctx, env, Reply{Output: commands.Output{Title: "Missed scheduled import of " + env.Name, Sections: []commands.Section{{Lines: []string{note}}}}})
}

func approvalsText(n int) string {
	if n == 1 {
		return "one approval"
	}
	return fmt.Sprintf("%d approvals", n)
}

// humanDuration writes d in whole minutes: "30m", "2h", "1h30m".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

func joinAnd(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// scheduleCaller is the schedule as a caller of commands.
func (b *Bot) scheduleCaller(env string) plan.Caller {
	p := b.schedulePerson()
	return plan.Caller{Platform: p.Platform, ChatID: p.ChatID, Name: p.Name, User: p.User, Groups: p.Groups, ChannelEnv: env}
}

// schedulePlan plans `import ENV` as the schedule.
func (b *Bot) schedulePlan(ctx context.Context, env *config.Environment) (plan.Command, plan.Plan, error) {
	res := commands.Parse(b.cfg, commands.Input{Text: "import " + env.Name, ChannelEnv: env.Name})
	if res.Kind != commands.RunKind {
		return plan.Command{}, plan.Plan{}, fmt.Errorf("`import %s` does not parse: %s", env.Name, strings.Join(outputLines(res.Reply), " "))
	}
	p, err := commands.BuildPlan(ctx, b.deps, b.scheduleCaller(env.Name), res.Command)
	return res.Command, p, err
}

func outputLines(o commands.Output) []string {
	var out []string
	for _, s := range o.Sections {
		out = append(out, s.Lines...)
	}
	return out
}

// openScheduled opens env's scheduled import for its run at t as a normal
// request owned by the schedule, under the env's policy: it waits for
// approvals unless the env auto-approves scheduled runs (or needs none). A
// run that cannot become a request (planning failed, access denied, nothing
// to change, busy) leaves a finished request saying why. note, if set, is
// announced first (a catch-up says why it runs late). It reports whether
// this call claimed the run; an error means nobody did, and it may be tried
// again.
func (b *Bot) openScheduled(ctx context.Context, env *config.Environment, t time.Time, note string) (bool, error) {
	if done, err := b.handled(ctx, env, t); done || err != nil {
		return false, err
	}
	id := RunID(env.Name, t)
	person := b.schedulePerson()
	finished := func(state store.State, reason, action string, p *plan.Plan, result *plan.Result) (bool, error) {
		ok, err := b.recordRun(ctx, env, t, state, reason, p, result, action, "schedule")
		if ok {
			lines := []string{reason}
			if note != "" {
				lines = []string{note, reason}
			}
			b.announce(ctx, env, Reply{Output: commands.Output{Title: b.runTitle(env, t), Sections: []commands.Section{{Lines: lines}}}})
		}
		return ok, err
	}
	cmd, p, err := b.schedulePlan(ctx, env)
	if err != nil {
		return finished(store.Failed, "Planning the scheduled import failed, so nothing was changed: "+err.Error(), "schedule-failed", nil, nil)
	}
	denied, err := b.deps.Access.Denied(ctx, env.Name, person.User, person.Groups, p.Access)
	if err != nil {
		return finished(store.Failed, "Checking the schedule's access failed, so nothing was changed: "+err.Error(), "schedule-failed", &p, nil)
	}
	if len(denied) > 0 {
		return finished(store.Failed, "The schedule runs as "+deniedText(person.User, env.Name, denied)+"\nNothing was changed.", "schedule-failed", &p, nil)
	}
	if !p.Changes() {
		res := &plan.Result{}
		for _, tg := range p.Targets {
			res.Targets = append(res.Targets, plan.TargetResult{Service: tg.Service, Outcome: plan.PhaseUnchanged, From: tg.From, To: tg.To})
		}
		return finished(store.Succeeded, "Nothing to import: every tag already has the registry's image.", "schedule-unchanged", &p, res)
	}

	now := b.now()
	channel := ""
	if env.Channel != nil {
		channel = env.Channel.ID
	}
	r := &store.Request{
		ID:        id,
		State:     store.Planned,
		Requester: person,
		Command:   cmd.Text,
		Channel:   channel,
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
		if err = b.Sweep(ctx); err == nil {
			err = b.store.Create(ctx, r)
		}
	}
	switch {
	case errors.As(err, &busy):
		return finished(store.Cancelled, fmt.Sprintf("%s was busy with #%s, so this run did not happen; nothing was changed.", busy.Lock, busy.ID), "schedule-busy", &p, nil)
	case errors.Is(err, store.ErrExists):
		return false, nil // another replica claimed the run meanwhile
	case err != nil:
		return false, fmt.Errorf("opening the scheduled import %s: %w", id, err)
	}
	b.audit(ctx, r, person.User, "plan", "", store.Planned, "scheduled "+b.fmtTime(env, t))
	if note != "" {
		b.announce(ctx, env, Reply{Output: commands.Output{Title: b.runTitle(env, t), Sections: []commands.Section{{Lines: []string{note}}}}})
	}
	next, action := store.Approved, "open"
	if p.Policy.Approvals > 0 {
		if env.AutoApproveScheduled {
			action = "auto-approve"
		} else {
			next = store.AwaitingApproval
		}
	}
	r, err = b.transition(ctx, id, person.User, action, func(r *store.Request) error {
		if action == "auto-approve" {
			r.Approvals = append(r.Approvals, store.Approval{By: person, At: b.now(), PlanHash: r.PlanHash})
		}
		return store.Transition(r, next)
	})
	if err != nil {
		// Claimed, but stuck in Planned: it expires, and the sweeper says so.
		b.log.Error("opening a scheduled import", "env", env.Name, "request", id, "err", err)
		return true, nil
	}
	if env.Channel != nil {
		b.post(ctx, env.Channel.Platform, env.Channel.ID, r)
	} else {
		b.log.Warn("scheduled import opened with no channel to show it in (set environments[].channel)", "env", env.Name, "request", id)
	}
	if r.State == store.Approved {
		b.startExecution(id)
	}
	return true, nil
}

// recordRun leaves the finished request of a run that did not become an
// import; false means the run was already claimed.
func (b *Bot) recordRun(ctx context.Context, env *config.Environment, t time.Time, state store.State, reason string,
	planned *plan.Plan, result *plan.Result, action, actor string, closedBy ...store.Person) (bool, error) {
	now := b.now()
	p := plan.Plan{Action: plan.ActionImport, Env: env.Name, Namespace: env.Namespace}
	if planned != nil {
		p = *planned
	}
	r := &store.Request{
		ID:        RunID(env.Name, t),
		State:     state,
		Requester: b.schedulePerson(),
		Command:   "import " + env.Name,
		Plan:      p,
		PlanHash:  p.Hash(),
		CreatedAt: now,
		UpdatedAt: now,
		ExpiresAt: now,
		Reason:    reason,
		Result:    result,
	}
	if env.Channel != nil {
		r.Channel = env.Channel.ID
	}
	if len(closedBy) > 0 {
		r.ClosedBy = &closedBy[0]
	}
	err := b.store.Create(ctx, r)
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recording the scheduled run %s: %w", r.ID, err)
	}
	b.audit(ctx, r, actor, action, "", state, b.fmtTime(env, t))
	return true, nil
}

// headsUp announces env's run at t with a Skip button, once across replicas.
func (b *Bot) headsUp(ctx context.Context, s scheduled, t time.Time) {
	env := s.env
	done, err := b.handled(ctx, env, t)
	if err != nil || done { // done: skipped already
		if err != nil {
			b.log.Error("no heads-up", "env", env.Name, "err", err)
		}
		return
	}
	if _, paused, err := b.pausedAt(ctx, env, t); err != nil || paused {
		if err != nil {
			b.log.Error("no heads-up", "env", env.Name, "err", err)
		}
		return
	}
	id := RunID(env.Name, t)
	first, err := b.store.Once(ctx, "schedule/heads-up/"+id, env.ScheduleHeadsUp.Duration+2*time.Hour)
	if err != nil {
		b.log.Error("claiming a heads-up", "env", env.Name, "err", err)
		return
	}
	if !first {
		return
	}
	now := b.now()
	out := commands.Output{Title: fmt.Sprintf("Heads-up: scheduled import of %s at %s (in %s)", env.Name, b.fmtTime(env, t), humanDuration(t.Sub(now)))}
	policy := "It runs without approval."
	switch n := env.Approvals.Count; {
	case n > 0 && env.AutoApproveScheduled:
		policy = "It is approved by the schedule itself (autoApproveScheduled)."
	case n > 0:
		policy = "It will wait for " + approvalsText(n) + "."
	}
	out.Sections = append(out.Sections, commands.Section{Lines: []string{
		policy,
		fmt.Sprintf("Skip this run with the button or `schedule skip %s`; `schedule pause %s` pauses the schedule.", env.Name, env.Name),
	}})
	_, p, err := b.schedulePlan(ctx, env)
	switch {
	case err != nil:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"What it would import could not be read now: " + err.Error()}})
	case !p.Changes():
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Right now there is nothing to import; the run checks again."}})
	default:
		// The env's "needs: confirm ..." line is about people's requests;
		// the schedule needs no confirmation and its approvals are said above.
		lines := slices.DeleteFunc(outputLines(commands.RenderPlan(p)), func(l string) bool { return strings.HasPrefix(l, "needs: ") })
		out.Sections = append(out.Sections, commands.Section{Heading: "If it ran now", Lines: lines, Pre: true})
	}
	reply := Reply{Output: out, Buttons: []Button{{Action: ActionSkip, RequestID: id, Label: "Skip this run",
		Confirm: fmt.Sprintf("Skip the scheduled import of %s at %s?", env.Name, b.fmtTime(env, t))}}}
	b.announce(ctx, env, reply)
	if err := b.store.Record(ctx, store.AuditEvent{Time: now, RequestID: id, Actor: "schedule", Action: "schedule-heads-up", Env: env.Name, Outcome: b.fmtTime(env, t)}); err != nil {
		b.log.Error("recording audit event", "action", "schedule-heads-up", "err", err)
	}
}

// announce posts to env's channel, when it has one.
func (b *Bot) announce(ctx context.Context, env *config.Environment, r Reply) {
	if env.Channel == nil {
		b.log.Info("nowhere to announce (set environments[].channel)", "env", env.Name, "title", r.Title)
		return
	}
	b.mu.Lock()
	p, ok := b.platforms[env.Channel.Platform]
	b.mu.Unlock()
	if !ok {
		b.log.Error("no platform to announce on", "env", env.Name, "platform", env.Channel.Platform)
		return
	}
	if _, err := p.Post(ctx, env.Channel.ID, r); err != nil {
		b.log.Error("announcing in the env's channel", "env", env.Name, "err", err)
	}
}

func (b *Bot) runTitle(env *config.Environment, t time.Time) string {
	return fmt.Sprintf("Scheduled import of %s at %s", env.Name, b.fmtTime(env, t))
}

func runNotice(b *Bot, env *config.Environment, t time.Time, text string) Reply {
	return Reply{Output: commands.Output{Title: b.runTitle(env, t), Sections: []commands.Section{{Lines: []string{text}}}}}
}

// fmtTime shows t in env's time zone.
func (b *Bot) fmtTime(env *config.Environment, t time.Time) string {
	loc, err := env.Location()
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("Mon 2006-01-02 15:04 MST")
}

// skipCommand is `schedule skip ENV`: skip env's next run.
func (b *Bot) skipCommand(ctx context.Context, req Request, caller plan.Caller, cmd plan.Command, resp Responder) error {
	env, ok := b.cfg.Env(cmd.Env)
	if !ok {
		return b.refuse(ctx, resp, "Unknown environment %q.", cmd.Env)
	}
	s, err := env.Cron()
	if err != nil || s == nil {
		return b.refuse(ctx, resp, "%s has no schedule to skip; nothing was changed.", env.Name)
	}
	return b.skip(ctx, req, caller, scheduled{env: env, sched: s}, s.Next(b.now()), resp)
}

// skipButton is the Skip button of a heads-up: it skips the run the heads-up
// announced, if that is still the next one.
func (b *Bot) skipButton(ctx context.Context, req Request, caller plan.Caller, id string, resp Responder) error {
	now := b.now()
	for _, s := range b.scheduledEnvs() {
		if t := s.sched.Next(now); RunID(s.env.Name, t) == id {
			return b.skip(ctx, req, caller, s, t, resp)
		}
	}
	if r, err := b.store.Get(ctx, id); err == nil && r.Requester.Platform == SchedulePlatform {
		return b.refuse(ctx, resp, "That scheduled run %s; nothing was changed.", runStateText(r))
	}
	return b.refuse(ctx, resp, "That scheduled run is no longer the next one, so it cannot be skipped; `schedule` shows the next runs.")
}

// runStateText says what became of a scheduled run, for "That scheduled run ...".
func runStateText(r *store.Request) string {
	if r.State == store.Cancelled && r.ClosedBy != nil {
		return "was already skipped by " + r.ClosedBy.Name
	}
	return "already started: #" + r.ID + " is " + stateWords[r.State]
}

// skip records env's run at t as skipped by caller, who must be allowed to
// import into env.
func (b *Bot) skip(ctx context.Context, req Request, caller plan.Caller, s scheduled, t time.Time, resp Responder) error {
	env := s.env
	if caller.User == "" {
		return b.refuse(ctx, resp, "%s", unmappedReply(caller))
	}
	denied, err := b.scheduleDenied(ctx, caller, env)
	if err != nil {
		return b.fail(ctx, resp, "checking your access", err)
	}
	if len(denied) > 0 {
		return b.refuse(ctx, resp, "You cannot skip a run of the schedule of %s: %s", env.Name, deniedText(caller.User, env.Name, denied))
	}
	if p, ok, err := b.pausedAt(ctx, env, t); err != nil {
		return b.fail(ctx, resp, "reading the schedule's pause", err)
	} else if ok {
		return b.refuse(ctx, resp, "The schedule of %s is paused by %s, so its run at %s will not happen anyway; nothing was changed.", env.Name, p.By, b.fmtTime(env, t))
	}
	by := person(caller)
	ok, err := b.recordRun(ctx, env, t, store.Cancelled, "Skipped by "+caller.Name+".", nil, nil, "schedule-skip", caller.User, by)
	if err != nil {
		return b.fail(ctx, resp, "skipping the run", err)
	}
	if !ok {
		r, err := b.store.Get(ctx, RunID(env.Name, t))
		if err != nil {
			return b.fail(ctx, resp, "reading the run", err)
		}
		return b.refuse(ctx, resp, "The run of %s at %s %s; nothing was changed.", env.Name, b.fmtTime(env, t), runStateText(r))
	}
	text := fmt.Sprintf("%s skipped the scheduled import of %s at %s.", caller.Name, env.Name, b.fmtTime(env, t))
	if next := s.sched.Next(t); !next.IsZero() {
		text += " The next run is at " + b.fmtTime(env, next) + "."
	}
	out := Reply{Output: commands.Output{Sections: []commands.Section{{Lines: []string{text}}}}}
	if env.Channel != nil && (req.Platform != env.Channel.Platform || req.Channel != env.Channel.ID) {
		b.announce(ctx, env, out)
	}
	return resp.Respond(ctx, out)
}

// scheduleDenied is what skipping (like pausing) env's schedule takes: what
// an import of every service of env takes, since it decides whether imports
// happen.
func (b *Bot) scheduleDenied(ctx context.Context, caller plan.Caller, env *config.Environment) ([]plan.Denial, error) {
	imp := plan.Plan{Action: plan.ActionImport, Env: env.Name, Namespace: env.Namespace}
	for _, svc := range b.cfg.Services {
		imp.Targets = append(imp.Targets, plan.Target{Service: svc.Name, Stream: svc.ImageStream, Tag: env.Tag})
	}
	return b.deps.Access.Denied(ctx, env.Name, caller.User, caller.Groups, plan.ExecuteAccess(imp))
}

// scheduleNotes adds to `schedule`'s line for env: whether its next run is
// skipped, and how its runs are announced, approved and caught up.
func (b *Bot) scheduleNotes(ctx context.Context, env *config.Environment, next time.Time) string {
	var notes []string
	if r, err := b.store.Get(ctx, RunID(env.Name, next)); err == nil {
		if r.State == store.Cancelled && r.ClosedBy != nil {
			note := "that run is SKIPPED by " + r.ClosedBy.Name
			if s, err := env.Cron(); err == nil && s != nil {
				note += ", then " + b.fmtTime(env, s.Next(next))
			}
			notes = append(notes, note)
		} else {
			notes = append(notes, "that run is #"+r.ID+", "+stateWords[r.State])
		}
	}
	switch lead := env.ScheduleHeadsUp.Duration; {
	case env.Channel == nil:
		notes = append(notes, "announced nowhere (no channel configured)")
	case lead > 0:
		notes = append(notes, fmt.Sprintf("heads-up %s before in %s %s", humanDuration(lead), env.Channel.Platform, env.Channel.ID))
	default:
		notes = append(notes, fmt.Sprintf("announced in %s %s", env.Channel.Platform, env.Channel.ID))
	}
	switch {
	case env.Approvals.Count == 0:
		notes = append(notes, "runs need no approval")
	case env.AutoApproveScheduled:
		notes = append(notes, "runs are auto-approved")
	default:
		notes = append(notes, "runs wait for "+approvalsText(env.Approvals.Count))
	}
	if env.CatchUp {
		notes = append(notes, "a missed run is caught up once")
	} else {
		notes = append(notes, "a missed run is only reported")
	}
	return "; " + strings.Join(notes, "; ")
}
