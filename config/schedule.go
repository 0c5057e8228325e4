package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MaxScheduleHeadsUp bounds environments[].scheduleHeadsUp: a heads-up more
// than a week ahead is no heads-up.
const MaxScheduleHeadsUp = 7 * 24 * time.Hour

// Cron returns the environment's schedule evaluated in its time zone, or nil
// when it has none. Next on the result gives the next run in any zone.
func (e *Environment) Cron() (cron.Schedule, error) {
	if e.Schedule == "" {
		return nil, nil
	}
	loc, err := e.Location()
	if err != nil {
		return nil, fmt.Errorf("time zone of %s: %w", e.Name, err)
	}
	s, err := cronIn(e.Schedule, loc)
	if err != nil {
		return nil, fmt.Errorf("schedule of %s: %w", e.Name, err)
	}
	return s, nil
}

// cronIn parses a standard cron expression evaluated in loc.
func cronIn(spec string, loc *time.Location) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	// ParseStandard leaves the zone Local, which means "the zone of the time
	// Next is given"; pin it so Next is right whatever zone callers use.
	if spec, ok := s.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return s, nil
}

// ScheduleGap returns the shortest time between two consecutive runs of the
// schedule over the next year (zero when it runs less than twice or s is
// nil), so that a lead time can be checked against it.
func ScheduleGap(s cron.Schedule, from time.Time) time.Duration {
	var gap time.Duration
	if s == nil {
		return 0
	}
	prev := s.Next(from)
	end := from.AddDate(1, 0, 0)
	// Bounded: a schedule that fires every minute is answered after a few
	// hundred steps; the gap of a regular schedule shows within its period.
	for i := 0; i < 500 && !prev.IsZero() && prev.Before(end); i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		if d := next.Sub(prev); gap == 0 || d < gap {
			gap = d
		}
		prev = next
	}
	return gap
}

// validateScheduling checks the scheduled-import fields of every environment.
func validateScheduling(ps *problems, c *Config) {
	for i := range c.Environments {
		e := &c.Environments[i]
		p := fmt.Sprintf("environments[%d]", i)
		if e.Channel != nil {
			validatePlatform(ps, p+".channel.platform", e.Channel.Platform)
			if strings.TrimSpace(e.Channel.ID) == "" {
				ps.add(p+".channel.id", "required (the channel scheduled imports are announced in)")
			}
		}
		lead := e.ScheduleHeadsUp.Duration
		if e.Schedule == "" {
			for _, f := range []struct {
				name string
				set  bool
			}{{"scheduleHeadsUp", lead != 0}, {"catchUp", e.CatchUp}} {
				if f.set {
					ps.add(p+"."+f.name, "has no effect without a schedule")
				}
			}
			// The schedule also opens the imports of registry pushes and
			// polls, on an env with scheduled: true.
			if e.AutoApproveScheduled && !e.Scheduled {
				ps.add(p+".autoApproveScheduled", "has no effect without a schedule or scheduled: true")
			}
			continue
		}
		switch {
		case lead < 0:
			ps.add(p+".scheduleHeadsUp", "must not be negative, got %s", lead)
		case lead > MaxScheduleHeadsUp:
			ps.add(p+".scheduleHeadsUp", "%s is more than a week ahead", lead)
		case lead > 0 && e.Channel == nil:
			ps.add(p+".scheduleHeadsUp", "needs environments[%d].channel to post the heads-up to", i)
		case lead > 0:
			s, err := e.Cron()
			if err != nil {
				continue // reported with the schedule or the time zone
			}
			// A fixed start keeps validation deterministic.
			if gap := ScheduleGap(s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); gap > 0 && lead >= gap {
				ps.add(p+".scheduleHeadsUp", "%s is not shorter than the %s between two runs of %q", lead, gap, e.Schedule)
			}
		}
	}
}

// validateStore checks the store section.
func validateStore(ps *problems, s Store) {
	if s.Namespace != "" {
		switch {
		case !dnsLabel.MatchString(s.Namespace) || len(s.Namespace) > 63:
			ps.add("store.namespace", "%q is not a valid namespace name", s.Namespace)
		case s.Backend == "file":
			ps.add("store.namespace", "is only used by the kubernetes backend, but backend is file")
		}
	}
	if s.Retention.Age.Duration < 0 {
		ps.add("store.retention.age", "must not be negative, got %s", s.Retention.Age.Duration)
	}
	if s.Retention.Requests < 0 {
		ps.add("store.retention.requests", "must not be negative, got %d", s.Retention.Requests)
	}
	if s.Retention.AuditEvents < 0 {
		ps.add("store.retention.auditEvents", "must not be negative, got %d", s.Retention.AuditEvents)
	}
}
