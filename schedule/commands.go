package schedule

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// What people do with schedules: `schedule [ENV]`, `schedule pause|resume
// ENV`, `schedule skip ENV` and the Skip button. Pauses and skips live in
// the store, so every replica and a restart see them. Refusals are
// *lifecycle.Refusal.

// Show lists the scheduled imports of one environment, or of all with env "".
func (s *Scheduler) Show(ctx context.Context, env string) (commands.Output, error) {
	pauses, err := s.store.Pauses(ctx)
	if err != nil {
		return commands.Output{}, fmt.Errorf("reading schedule pauses: %w", err)
	}
	var lines []string
	for i := range s.cfg.Environments {
		e := &s.cfg.Environments[i]
		if env != "" && e.Name != env {
			continue
		}
		if e.Schedule == "" {
			lines = append(lines, fmt.Sprintf("%-6s no scheduled import by deploybot (the tags' own scheduled import: %s)", e.Name, onOff(e.Scheduled))+freezeNote(e, s.now()))
			continue
		}
		loc, err := e.Location()
		if err != nil {
			lines = append(lines, fmt.Sprintf("%-6s time zone %q: %v", e.Name, e.TimeZone, err))
			continue
		}
		sched, err := e.Cron()
		if err != nil {
			lines = append(lines, fmt.Sprintf("%-6s %q is not a valid schedule: %v", e.Name, e.Schedule, err))
			continue
		}
		now := s.now().In(loc)
		line := fmt.Sprintf("%-6s import %q (%s), next run %s", e.Name, e.Schedule, loc, sched.Next(now).Format("Mon 2006-01-02 15:04 MST"))
		if p, ok := pauses[e.Name]; ok && p.Active(now) {
			line += ", PAUSED by " + p.By
			if !p.Until.IsZero() {
				line += " until " + p.Until.In(loc).Format("Mon 2006-01-02 15:04 MST")
			}
		}
		line += s.notes(ctx, e, sched.Next(now)) + freezeNote(e, now)
		lines = append(lines, line)
	}
	return commands.Output{Title: "Scheduled imports", Sections: []commands.Section{{Lines: lines, Pre: true}}}, nil
}

// Pause pauses env's scheduled imports until until (zero: until resumed);
// whoever may import into the environment may.
func (s *Scheduler) Pause(ctx context.Context, by store.Person, env string, until time.Time) (commands.Output, error) {
	return s.setPause(ctx, by, env, commands.SchedulePause, &store.Pause{By: by.Name, At: s.now(), Until: until})
}

// Resume lifts env's pause.
func (s *Scheduler) Resume(ctx context.Context, by store.Person, env string) (commands.Output, error) {
	return s.setPause(ctx, by, env, commands.ScheduleResume, nil)
}

func (s *Scheduler) setPause(ctx context.Context, by store.Person, env, verb string, p *store.Pause) (commands.Output, error) {
	e, err := s.scheduledEnv(env, verb)
	if err != nil {
		return commands.Output{}, err
	}
	if err := s.authorize(ctx, by, e, "You cannot %s the schedule of %s: ", verb, e.Name); err != nil {
		return commands.Output{}, err
	}
	if err := s.store.SetPause(ctx, e.Name, p); err != nil {
		return commands.Output{}, fmt.Errorf("%s the schedule of %s: %w", verb, e.Name, err)
	}
	ev := store.AuditEvent{Actor: by.User, Action: "schedule-" + verb, Env: e.Name}
	if p != nil && !p.Until.IsZero() {
		ev.Outcome = "until " + p.Until.UTC().Format(time.RFC3339)
	}
	s.life.Audit(ctx, ev)
	return s.Show(ctx, e.Name)
}

// SkipNext skips env's next run.
func (s *Scheduler) SkipNext(ctx context.Context, by store.Person, from Origin, env string) (commands.Output, error) {
	e, err := s.scheduledEnv(env, "skip")
	if err != nil {
		return commands.Output{}, err
	}
	c, _ := e.Cron()
	return s.skip(ctx, by, from, scheduled{env: e, sched: c}, c.Next(s.now()))
}

// SkipRun is the Skip button of a heads-up: it skips the run the heads-up
// announced, if that is still the next one.
func (s *Scheduler) SkipRun(ctx context.Context, by store.Person, from Origin, id string) (commands.Output, error) {
	now := s.now()
	for _, e := range s.scheduledEnvs() {
		if t := e.sched.Next(now); RunID(e.env.Name, t) == id {
			return s.skip(ctx, by, from, e, t)
		}
	}
	if r, err := s.store.Get(ctx, id); err == nil && r.Requester.Platform == lifecycle.SchedulePlatform {
		return commands.Output{}, lifecycle.NewRefusal(lifecycle.RefusedSchedule, "That scheduled run %s; nothing was changed.", runStateText(r))
	}
	return commands.Output{}, lifecycle.NewRefusal(lifecycle.RefusedSchedule, "That scheduled run is no longer the next one, so it cannot be skipped; `schedule` shows the next runs.")
}

// Origin is the chat channel a person acted in.
type Origin struct{ Platform, Channel string }

// skip records env's run at t as skipped by by, who must be allowed to
// import into env. A skip from another channel is announced in env's too.
func (s *Scheduler) skip(ctx context.Context, by store.Person, from Origin, e scheduled, t time.Time) (commands.Output, error) {
	env := e.env
	if err := s.authorize(ctx, by, env, "You cannot skip a run of the schedule of %s: ", env.Name); err != nil {
		return commands.Output{}, err
	}
	if p, ok, err := s.pausedAt(ctx, env, t); err != nil {
		return commands.Output{}, err
	} else if ok {
		return commands.Output{}, lifecycle.NewRefusal(lifecycle.RefusedSchedule, "The schedule of %s is paused by %s, so its run at %s will not happen anyway; nothing was changed.", env.Name, p.By, fmtTime(env, t))
	}
	ok, err := s.record(ctx, run{env: env, at: t, state: store.Cancelled, reason: "Skipped by " + by.Name + ".", action: "schedule-skip", by: &by})
	if err != nil {
		return commands.Output{}, err
	}
	if !ok {
		r, err := s.store.Get(ctx, RunID(env.Name, t))
		if err != nil {
			return commands.Output{}, fmt.Errorf("reading the run: %w", err)
		}
		return commands.Output{}, lifecycle.NewRefusal(lifecycle.RefusedSchedule, "The run of %s at %s %s; nothing was changed.", env.Name, fmtTime(env, t), runStateText(r))
	}
	line := fmt.Sprintf("%s skipped the scheduled import of %s at %s.", by.Name, env.Name, fmtTime(env, t))
	if next := e.sched.Next(t); !next.IsZero() {
		line += " The next run is at " + fmtTime(env, next) + "."
	}
	out := text("", line)
	if env.Channel != nil && (from.Platform != env.Channel.Platform || from.Channel != env.Channel.ID) {
		s.notify(ctx, env, Notice{Output: out})
	}
	return out, nil
}

// scheduledEnv returns env if it has a schedule to act on with verb.
func (s *Scheduler) scheduledEnv(env, verb string) (*config.Environment, error) {
	e, ok := s.cfg.Env(env)
	if !ok {
		return nil, lifecycle.NewRefusal(lifecycle.RefusedSchedule, "Unknown environment %q.", env)
	}
	if c, err := e.Cron(); err != nil || c == nil {
		return nil, lifecycle.NewRefusal(lifecycle.RefusedSchedule, "%s has no schedule to %s; nothing was changed.", e.Name, verb)
	}
	return e, nil
}

// authorize checks by for what pausing or skipping env's schedule takes:
// what an import of every service of env takes, since it decides whether
// imports happen.
func (s *Scheduler) authorize(ctx context.Context, by store.Person, env *config.Environment, format string, args ...any) error {
	imp := plan.Plan{Action: plan.ActionImport, Env: env.Name, Namespace: env.Namespace}
	if env.Kubernetes() {
		imp.Platform = plan.PlatformKubernetes
	}
	for i := range s.cfg.Services {
		svc := &s.cfg.Services[i]
		t := plan.Target{Service: svc.Name, Stream: svc.Stream(), Tag: env.ImageTag()}
		if env.Kubernetes() {
			// There the import is patching the listed workloads.
			for _, w := range svc.Workloads {
				t.Workloads = append(t.Workloads, plan.WorkloadRef{Kind: w.Kind, Name: w.Name})
			}
		}
		imp.Targets = append(imp.Targets, t)
	}
	err := s.life.Authorize(ctx, by, env.Name, plan.ExecuteAccess(imp))
	if rf, ok := err.(*lifecycle.Refusal); ok && rf.Kind == lifecycle.RefusedAccess {
		return lifecycle.NewRefusal(lifecycle.RefusedAccess, format+"%s", append(args, rf.Text)...)
	}
	return err
}

// notes adds to `schedule`'s line for env: whether its next run is skipped,
// and how its runs are announced, approved and caught up.
func (s *Scheduler) notes(ctx context.Context, env *config.Environment, next time.Time) string {
	var notes []string
	if r, err := s.store.Get(ctx, RunID(env.Name, next)); err == nil {
		if r.State == store.Cancelled && r.ClosedBy != nil {
			note := "that run is SKIPPED by " + r.ClosedBy.Name
			if c, err := env.Cron(); err == nil && c != nil {
				note += ", then " + fmtTime(env, c.Next(next))
			}
			notes = append(notes, note)
		} else {
			notes = append(notes, "that run is #"+r.ID+", "+r.State.Status())
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

// freezeNote adds to `schedule`'s line for env the freeze window it is in
// or the next one.
func freezeNote(env *config.Environment, now time.Time) string {
	openshift := ""
	if !env.Kubernetes() && env.Scheduled {
		openshift = ", but OpenShift's own scheduled import of the tags (importPolicy.scheduled) goes on"
	}
	if f, ok := env.FrozenAt(now); ok {
		return fmt.Sprintf("; FROZEN until %s (%s): runs are deferred to its end, changes refused without --break-glass%s", fmtTime(env, f.End), f.Reason, openshift)
	}
	if f, ok := env.NextFreeze(now); ok {
		return fmt.Sprintf("; next freeze %s to %s (%s)", fmtTime(env, f.Start), fmtTime(env, f.End), f.Reason)
	}
	return ""
}

// runStateText says what became of a scheduled run, for "That scheduled run ...".
func runStateText(r *store.Request) string {
	if r.State == store.Cancelled && r.ClosedBy != nil {
		return "was already skipped by " + r.ClosedBy.Name
	}
	return "already started: #" + r.ID + " is " + r.State.Status()
}
