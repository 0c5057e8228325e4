// Package schedule is the scheduler: a time-driven source of requests. On
// each environment's cron it opens `import ENV` as the schedule, through
// the same lifecycle.Open as a person's command, under the env's policy; it
// announces runs ahead with a Skip button, honours pauses and skips, and
// reports runs missed while no replica was up (catching up once where the
// env asks). Every run leaves exactly one request with a deterministic ID,
// so creating it is the claim that makes a run happen once across replicas
// and leader hand-overs.
package schedule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/deploybot/deploybot/clock"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

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

// Notice is something the scheduler says in an env's channel.
type Notice struct {
	Output commands.Output
	// SkipRun, when set, is the ID of the run a Skip button skips, and
	// SkipConfirm the question the button asks first.
	SkipRun, SkipConfirm string
	// ImportEnv, when set, is the env an Import button opens an import
	// request for, of ImportServices (all of its services when empty).
	ImportEnv      string
	ImportServices []string
}

// Announcer posts notices; the bot implements it.
type Announcer interface {
	Announce(ctx context.Context, platform, channel string, n Notice) error
}

// Scheduler runs the scheduled imports of a config's environments.
type Scheduler struct {
	cfg      *config.Config
	store    store.Store
	life     *lifecycle.Lifecycle
	announce Announcer
	clock    clock.Clock
	log      *slog.Logger
	// identity is who scheduled imports are requested as: the bot's own
	// Kubernetes identity, checked like anyone's.
	identity store.Person
	// registry, when set, is polled for plain Kubernetes environments with
	// scheduled: true (poll.go), and re-resolves registry webhooks' pushes.
	registry Registry
	// tags, when set, tells registry webhooks what an env has now (push.go),
	// and EndHolds which holds are due.
	tags Tags
	// holdsMu guards holdsScanned, when EndHolds last read every tag.
	holdsMu      sync.Mutex
	holdsScanned time.Time
}

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithClock sets the clock the scheduler reads and sleeps on.
func WithClock(c clock.Clock) Option { return func(s *Scheduler) { s.clock = c } }

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option { return func(s *Scheduler) { s.log = l } }

// WithIdentity is the Kubernetes identity scheduled imports are requested
// as (the bot's service account). Default user "deploybot".
func WithIdentity(user string, groups []string) Option {
	return func(s *Scheduler) { s.identity.User, s.identity.Groups = user, groups }
}

// New returns the scheduler of cfg's environments, opening requests through
// life and announcing through a.
func New(cfg *config.Config, st store.Store, life *lifecycle.Lifecycle, a Announcer, opts ...Option) *Scheduler {
	s := &Scheduler{cfg: cfg, store: st, life: life, announce: a, clock: clock.Real, log: slog.Default(),
		identity: store.Person{Platform: lifecycle.SchedulePlatform, ChatID: "schedule", Name: "schedule", User: "deploybot"}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Scheduler) now() time.Time { return s.clock.Now() }

// scheduled is an environment with a schedule.
type scheduled struct {
	env   *config.Environment
	sched cron.Schedule
}

func (s *Scheduler) scheduledEnvs() []scheduled {
	var out []scheduled
	for i := range s.cfg.Environments {
		e := &s.cfg.Environments[i]
		c, err := e.Cron()
		if err != nil {
			s.log.Error("not scheduling", "env", e.Name, "err", err)
			continue
		}
		if c != nil {
			out = append(out, scheduled{env: e, sched: c})
		}
	}
	return out
}

// lateLimit is how late a run at t may start and still be on time.
func lateLimit(c cron.Schedule, t time.Time) time.Duration {
	if gap := c.Next(t).Sub(t); gap > 0 && gap/2 < maxLate {
		return gap / 2
	}
	return maxLate
}

// Run is the scheduler loop; it runs while this replica leads. At start it
// handles a run that is due and reports runs missed while no replica was up;
// then it sleeps (on the clock) until the next heads-up or run.
func (s *Scheduler) Run(ctx context.Context) {
	envs := s.scheduledEnvs()
	if polled := s.polledEnvs(); len(polled) > 0 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.pollLoop(ctx, polled)
		}()
		defer func() { <-done }()
		if len(envs) == 0 {
			<-ctx.Done()
			return
		}
	}
	if len(envs) == 0 {
		return
	}
	now := s.now()
	// cursor: runs of each env up to this time are handled.
	cursor := map[string]time.Time{}
	// deferred: when each env's run that a freeze window held runs.
	deferred := map[string]time.Time{}
	headsUp := map[string]time.Time{} // the run each env's last heads-up was for
	for _, e := range envs {
		if e.env.Channel == nil {
			s.log.Warn("scheduled imports are announced nowhere: set environments[].channel", "env", e.env.Name)
		}
		cursor[e.env.Name] = s.checkMissed(ctx, e, now)
		if d := s.deferredRun(ctx, e, now); !d.IsZero() {
			deferred[e.env.Name] = d
		}
	}
	for {
		now = s.now()
		var wake time.Time
		for _, e := range envs {
			name := e.env.Name
			for {
				t := e.sched.Next(cursor[name])
				if t.IsZero() {
					break
				}
				if !now.Before(t) {
					until, err := s.runOccurrence(ctx, e, t, "")
					if until.After(deferred[name]) {
						deferred[name] = until
					}
					if err != nil {
						if ctx.Err() != nil {
							return
						}
						// Not claimed: try again shortly; too late, it counts as missed.
						s.log.Error("running a scheduled import; trying again", "env", name, "run", t, "err", err, "in", retryAfter)
						wake = earliest(wake, now.Add(retryAfter))
						break
					}
					cursor[name] = t
					continue
				}
				_, frozen := e.env.FrozenAt(t) // a run a freeze defers gets no heads-up
				if lead := e.env.ScheduleHeadsUp.Duration; lead > 0 && !headsUp[name].Equal(t) && !frozen {
					if at := t.Add(-lead); now.Before(at) {
						wake = earliest(wake, at)
					} else {
						s.headsUp(ctx, e, t)
						headsUp[name] = t
					}
				}
				wake = earliest(wake, t)
				break
			}
			if d := deferred[name]; !d.IsZero() {
				if now.Before(d) {
					wake = earliest(wake, d)
					continue
				}
				// The window is over: the run it held happens now, once
				// (its ID is the window's end), unless another window
				// holds it on.
				note := fmt.Sprintf("The freeze of %s is over: this is the scheduled import it held back.", name)
				until, err := s.runOccurrence(ctx, e, d, note)
				switch {
				case err != nil && ctx.Err() != nil:
					return
				case err != nil:
					s.log.Error("running a scheduled import a freeze held back; trying again", "env", name, "err", err, "in", retryAfter)
					wake = earliest(wake, now.Add(retryAfter))
				case until.After(d):
					deferred[name] = until
					wake = earliest(wake, until)
				default:
					delete(deferred, name)
				}
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
		case <-s.clock.Until(wake):
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// recentRuns returns the runs at or before now, newest first: at most n,
// none older than lookbackAge.
func recentRuns(c cron.Schedule, now time.Time, n int) []time.Time {
	window := lookbackAge
	if gap := config.ScheduleGap(c, now); gap > 0 && time.Duration(2*n)*gap < window {
		window = time.Duration(2*n) * gap
	}
	var runs []time.Time
	for t := c.Next(now.Add(-window)); !t.IsZero() && !t.After(now); t = c.Next(t) {
		runs = append(runs, t)
	}
	if len(runs) > n {
		runs = runs[len(runs)-n:]
	}
	slices.Reverse(runs)
	return runs
}

// checkMissed reports the runs since the last one with a record, which no
// replica was up to handle. Without any record in the look-back (a new
// schedule, a new install) nothing counts as missed. It returns the time from
// which the scheduler loop takes over: just before a run that is due now (a
// hand-over at run time), else now.
func (s *Scheduler) checkMissed(ctx context.Context, e scheduled, now time.Time) (cursor time.Time) {
	cursor = now
	runs := recentRuns(e.sched, now, lookbackRuns)
	if len(runs) > 0 && now.Sub(runs[0]) <= lateLimit(e.sched, runs[0]) {
		cursor = runs[0].Add(-time.Nanosecond)
		runs = runs[1:]
	}
	var missed []time.Time
	for _, t := range runs {
		_, err := s.store.Get(ctx, RunID(e.env.Name, t))
		if errors.Is(err, store.ErrNotFound) {
			if f, frozen := e.env.FrozenAt(t); frozen && f.End.After(now) {
				// No replica was up for it, but the freeze that holds
				// now held it anyway: deferred, as if one had been
				// (deferredRun runs it at the window's end).
				if _, derr := s.deferRun(ctx, e.env, t, f); derr != nil {
					s.log.Error("recording a scheduled run a freeze held back", "env", e.env.Name, "err", derr)
				}
				continue
			}
		}
		if err == nil {
			if len(missed) > 0 {
				s.reportMissed(ctx, e, missed)
			}
			return cursor
		}
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("looking for earlier scheduled runs", "env", e.env.Name, "err", err)
			return cursor
		}
		missed = append(missed, t)
	}
	if len(missed) > 0 {
		s.log.Info("no record of earlier scheduled runs; none reported as missed", "env", e.env.Name, "checked", len(missed))
	}
	return cursor
}

// runOccurrence handles env's run at t: unless already handled (skipped, or
// run by another replica) it is missed if too late, recorded if paused, and
// otherwise opened as a request. An error means the run was not claimed and
// may be tried again.
//
// A run inside a freeze window is deferred: it leaves a cancelled request
// saying until when, is announced, and until is the window's end, when the
// loop runs it (note says why then).
func (s *Scheduler) runOccurrence(ctx context.Context, e scheduled, t time.Time, note string) (until time.Time, err error) {
	if done, err := s.handled(ctx, e.env, t); done || err != nil {
		return time.Time{}, err
	}
	if f, frozen := e.env.FrozenAt(t); frozen {
		return s.deferRun(ctx, e.env, t, f)
	}
	if s.now().Sub(t) > lateLimit(e.sched, t) && note == "" {
		s.reportMissed(ctx, e, []time.Time{t})
		return time.Time{}, nil
	}
	p, paused, err := s.pausedAt(ctx, e.env, t)
	if err != nil {
		return time.Time{}, err
	}
	if paused {
		reason := "Paused by " + p.By
		if !p.Until.IsZero() {
			reason += " until " + fmtTime(e.env, p.Until)
		}
		reason += "; this run did not happen."
		ok, err := s.record(ctx, run{env: e.env, at: t, state: store.Cancelled, reason: reason, action: "schedule-paused"})
		if ok {
			s.notify(ctx, e.env, s.runNotice(e.env, t, reason))
		}
		return time.Time{}, err
	}
	_, err = s.open(ctx, e.env, t, note)
	return time.Time{}, err
}

// deferRun records env's run at t, inside freeze window f, as deferred to
// the window's end, and announces that once per window (a schedule every
// 15 minutes over a weekend is one notice, not 256).
func (s *Scheduler) deferRun(ctx context.Context, env *config.Environment, t time.Time, f config.Freeze) (time.Time, error) {
	reason := fmt.Sprintf("%s%s is frozen until %s (%s); this run happens when the window ends.", frozenPrefix, env.Name, fmtTime(env, f.End), f.Reason)
	ok, err := s.record(ctx, run{env: env, at: t, state: store.Cancelled, reason: reason, action: "schedule-frozen"})
	if ok {
		if first, oerr := s.store.Once(ctx, "freeze-notice/"+env.Name+"/"+f.End.UTC().Format(time.RFC3339), f.End.Sub(s.now())+24*time.Hour); oerr != nil || first {
			s.notify(ctx, env, s.runNotice(env, t, reason))
		}
	}
	return f.End, err
}

// frozenPrefix starts the reason of a run a freeze window deferred.
const frozenPrefix = "Deferred by a freeze: "

// deferredRun finds, at start-up, a run of env that a freeze window
// deferred and that has not run yet (the replica that deferred it stopped,
// or leadership moved): when it is due, or zero.
func (s *Scheduler) deferredRun(ctx context.Context, e scheduled, now time.Time) time.Time {
	var due time.Time
	for _, t := range recentRuns(e.sched, now, lookbackRuns) {
		f, frozen := e.env.FrozenAt(t)
		if !frozen || !f.End.After(due) {
			continue
		}
		r, err := s.store.Get(ctx, RunID(e.env.Name, t))
		if err != nil || !strings.HasPrefix(r.Reason, frozenPrefix) {
			continue
		}
		if done, err := s.handled(ctx, e.env, f.End); err == nil && !done {
			due = f.End
		}
	}
	return due
}

// handled reports whether env's run at t has its request already.
func (s *Scheduler) handled(ctx context.Context, env *config.Environment, t time.Time) (bool, error) {
	_, err := s.store.Get(ctx, RunID(env.Name, t))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("reading the scheduled run of %s: %w", env.Name, err)
}

// pausedAt returns the pause that holds env's run at t, if any.
func (s *Scheduler) pausedAt(ctx context.Context, env *config.Environment, t time.Time) (store.Pause, bool, error) {
	pauses, err := s.store.Pauses(ctx)
	if err != nil {
		return store.Pause{}, false, fmt.Errorf("reading schedule pauses: %w", err)
	}
	p, ok := pauses[env.Name]
	return p, ok && !p.At.After(t) && p.Active(t), nil
}

// reportMissed records runs (newest first) that no replica handled in time
// and says so in the env's channel; with catchUp the newest runs now, once.
func (s *Scheduler) reportMissed(ctx context.Context, e scheduled, missed []time.Time) {
	env := e.env
	var reported []string
	catchUp := time.Time{}
	for i, t := range missed {
		if p, ok, err := s.pausedAt(ctx, env, t); err != nil {
			s.log.Error("reporting missed scheduled runs", "env", env.Name, "err", err)
			return
		} else if ok {
			// It would not have run anyway.
			if _, err := s.record(ctx, run{env: env, at: t, state: store.Cancelled, reason: "Paused by " + p.By + "; this run did not happen.", action: "schedule-paused"}); err != nil {
				s.log.Error("recording a paused scheduled run", "env", env.Name, "err", err)
			}
			continue
		}
		if i == 0 && env.CatchUp {
			catchUp = t
			continue
		}
		reason := fmt.Sprintf("Missed: no deploybot replica was running at %s, so it did not run.", fmtTime(env, t))
		if ok, err := s.record(ctx, run{env: env, at: t, state: store.Expired, reason: reason, action: "schedule-missed"}); err != nil {
			s.log.Error("recording a missed scheduled run", "env", env.Name, "err", err)
		} else if ok {
			reported = append(reported, fmtTime(env, t))
		}
	}
	slices.Reverse(reported) // oldest first, for the sentence
	if !catchUp.IsZero() {
		note := fmt.Sprintf("The scheduled import of %s at %s was missed: no deploybot replica was running.", env.Name, joinAnd(append(reported, fmtTime(env, catchUp))))
		note += fmt.Sprintf(" catchUp is on, so the latest runs now, once, as #%s.", RunID(env.Name, catchUp))
		claimed, err := s.open(ctx, env, catchUp, note)
		if err != nil {
			s.log.Error("catching up a missed scheduled run", "env", env.Name, "err", err)
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
	s.notify(ctx, env, Notice{Output: text("Missed scheduled import of "+env.Name, note)})
}

// importCommand is the command every scheduled run opens: import every
// service of env.
func importCommand(env *config.Environment) plan.Command {
	return plan.Command{Name: "import", Env: env.Name, Text: "import " + env.Name}
}

// caller is the schedule as the requester of env's runs.
func (s *Scheduler) caller(env string) plan.Caller {
	p := s.identity
	return plan.Caller{Platform: p.Platform, ChatID: p.ChatID, Name: p.Name, User: p.User, Groups: p.Groups, ChannelEnv: env}
}

// open opens env's scheduled import for its run at t through the lifecycle,
// as a normal request owned by the schedule under the env's policy: it waits
// for approvals unless the env auto-approves scheduled runs (or needs none).
// A run that cannot become a request (planning failed, access denied,
// nothing to change, busy) leaves a finished request saying why. note, if
// set, is announced too (a catch-up says why it runs late). It reports
// whether this call claimed the run; an error means nobody did, and it may
// be tried again.
func (s *Scheduler) open(ctx context.Context, env *config.Environment, t time.Time, note string) (bool, error) {
	if done, err := s.handled(ctx, env, t); done || err != nil {
		return false, err
	}
	finished := func(r run) (bool, error) {
		r.env, r.at = env, t
		ok, err := s.record(ctx, r)
		if ok {
			lines := []string{r.reason}
			if note != "" {
				lines = []string{note, r.reason}
			}
			s.notify(ctx, env, Notice{Output: text(s.runTitle(env, t), lines...)})
		}
		return ok, err
	}
	o := lifecycle.Open{Caller: s.caller(env.Name), Command: importCommand(env), ID: RunID(env.Name, t),
		AutoApprove: env.AutoApproveScheduled, Note: "scheduled " + fmtTime(env, t)}
	if env.Channel != nil {
		o.Platform, o.Channel = env.Channel.Platform, env.Channel.ID
	} else {
		s.log.Warn("scheduled import opened with no channel to show it in (set environments[].channel)", "env", env.Name)
	}
	opened, err := s.life.Open(ctx, o)
	var rf *lifecycle.Refusal
	var busy *store.BusyError
	switch {
	case errors.Is(err, store.ErrExists):
		return false, nil // another replica claimed the run meanwhile
	case errors.As(err, &rf) && rf.Kind == lifecycle.RefusedAccess:
		return finished(run{state: store.Failed, reason: "The schedule runs as " + o.Caller.User + ". " + rf.Text + "\nNothing was changed.", action: "schedule-failed", plan: &opened.Plan})
	case errors.Is(err, lifecycle.ErrAccessCheck):
		return finished(run{state: store.Failed, reason: "Checking the schedule's access failed, so nothing was changed: " + err.Error(), action: "schedule-failed", plan: &opened.Plan})
	case errors.As(err, &busy):
		return finished(run{state: store.Cancelled, reason: fmt.Sprintf("%s was busy with #%s, so this run did not happen; nothing was changed.", busy.Lock, busy.ID),
			action: "schedule-busy", plan: &opened.Plan})
	case err != nil && opened.Plan.Env == "":
		return finished(run{state: store.Failed, reason: "Planning the scheduled import failed, so nothing was changed: " + err.Error(), action: "schedule-failed"})
	case err != nil:
		return false, fmt.Errorf("opening the scheduled import %s: %w", o.ID, err)
	case opened.Request == nil:
		res := &plan.Result{}
		for _, tg := range opened.Plan.Targets {
			res.Targets = append(res.Targets, plan.TargetResult{Service: tg.Service, Outcome: plan.PhaseUnchanged, From: tg.From, To: tg.To})
		}
		return finished(run{state: store.Succeeded, reason: "Nothing to import: every tag already has the registry's image.", action: "schedule-unchanged",
			plan: &opened.Plan, result: res})
	}
	if note != "" {
		s.notify(ctx, env, Notice{Output: text(s.runTitle(env, t), note)})
	}
	return true, nil
}

// run is the finished request a scheduled run leaves when it did not
// become an import: why, and who closed it.
type run struct {
	env    *config.Environment
	at     time.Time
	state  store.State
	reason string
	// action is the audit action, e.g. "schedule-missed".
	action string
	plan   *plan.Plan
	result *plan.Result
	// by closed the run (a skip); nil means the schedule itself.
	by *store.Person
}

// record leaves the finished request of a run; false means the run was
// already claimed.
func (s *Scheduler) record(ctx context.Context, rn run) (bool, error) {
	now := s.now()
	p := plan.Plan{Action: plan.ActionImport, Env: rn.env.Name, Namespace: rn.env.Namespace}
	if rn.plan != nil && rn.plan.Env != "" {
		p = *rn.plan
	}
	cmd := importCommand(rn.env)
	r := &store.Request{
		ID:        RunID(rn.env.Name, rn.at),
		State:     rn.state,
		Requester: s.identity,
		Command:   cmd.Text,
		Intent:    &cmd,
		Plan:      p,
		PlanHash:  p.Hash(),
		CreatedAt: now,
		UpdatedAt: now,
		ExpiresAt: now,
		Reason:    rn.reason,
		Result:    rn.result,
		ClosedBy:  rn.by,
	}
	if rn.env.Channel != nil {
		r.Channel = rn.env.Channel.ID
	}
	err := s.store.Create(ctx, r)
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recording the scheduled run %s: %w", r.ID, err)
	}
	actor := "schedule"
	if rn.by != nil {
		actor = rn.by.User
	}
	s.life.Audit(ctx, store.AuditEvent{RequestID: r.ID, Actor: actor, Action: rn.action, To: rn.state, Env: rn.env.Name, PlanHash: r.PlanHash, Outcome: fmtTime(rn.env, rn.at)})
	return true, nil
}

// headsUp announces env's run at t with a Skip button, once across replicas.
func (s *Scheduler) headsUp(ctx context.Context, e scheduled, t time.Time) {
	env := e.env
	done, err := s.handled(ctx, env, t)
	if err != nil || done { // done: skipped already
		if err != nil {
			s.log.Error("no heads-up", "env", env.Name, "err", err)
		}
		return
	}
	if _, paused, err := s.pausedAt(ctx, env, t); err != nil || paused {
		if err != nil {
			s.log.Error("no heads-up", "env", env.Name, "err", err)
		}
		return
	}
	id := RunID(env.Name, t)
	first, err := s.store.Once(ctx, "schedule/heads-up/"+id, env.ScheduleHeadsUp.Duration+2*time.Hour)
	if err != nil {
		s.log.Error("claiming a heads-up", "env", env.Name, "err", err)
		return
	}
	if !first {
		return
	}
	now := s.now()
	out := commands.Output{Title: fmt.Sprintf("Heads-up: scheduled import of %s at %s (in %s)", env.Name, fmtTime(env, t), humanDuration(t.Sub(now)))}
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
	p, err := s.life.Plan(ctx, s.caller(env.Name), importCommand(env))
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
	s.notify(ctx, env, Notice{Output: out, SkipRun: id, SkipConfirm: fmt.Sprintf("Skip the scheduled import of %s at %s?", env.Name, fmtTime(env, t))})
	s.life.Audit(ctx, store.AuditEvent{Time: now, RequestID: id, Actor: "schedule", Action: "schedule-heads-up", Env: env.Name, Outcome: fmtTime(env, t)})
}

// notify posts n to env's channel, when it has one.
func (s *Scheduler) notify(ctx context.Context, env *config.Environment, n Notice) {
	if env.Channel == nil {
		s.log.Info("nowhere to announce (set environments[].channel)", "env", env.Name, "title", n.Output.Title)
		return
	}
	if err := s.announce.Announce(ctx, env.Channel.Platform, env.Channel.ID, n); err != nil {
		s.log.Error("announcing in the env's channel", "env", env.Name, "err", err)
	}
}

func (s *Scheduler) runTitle(env *config.Environment, t time.Time) string {
	return fmt.Sprintf("Scheduled import of %s at %s", env.Name, fmtTime(env, t))
}

func (s *Scheduler) runNotice(env *config.Environment, t time.Time, line string) Notice {
	return Notice{Output: text(s.runTitle(env, t), line)}
}
