package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// FreezeWindow is a time in which an environment takes no changes (a
// change calendar): a recurring window, Cron (5-field, in the env's
// timeZone) starting one that lasts Duration ("0 15 * * 5" for 64h:
// Friday 15:00 to Monday 07:00), or a one-off window From to To, whole
// days in the env's timeZone, both included ("2026-12-23" to
// "2027-01-02"). Inside one, every mutating command, scheduled run and
// registry-push import of the env is refused, saying Reason and when the
// window ends; `--break-glass REASON` lets a person's request through with
// one approval more than the env's policy.
type FreezeWindow struct {
	Cron     string   `json:"cron,omitempty"`
	Duration Duration `json:"duration,omitempty"`
	From     string   `json:"from,omitempty"`
	To       string   `json:"to,omitempty"`
	Reason   string   `json:"reason"`
}

// Freeze is one window as it applies at a time: why, and from when until
// when.
type Freeze struct {
	Reason     string
	Start, End time.Time
}

// freezeDate is how From and To are written.
const freezeDate = "2006-01-02"

// maxFreeze bounds a recurring window's Duration: a window of more than a
// few weeks is a one-off one, written with From and To.
const maxFreeze = 31 * 24 * time.Hour

// maxDateFreeze bounds a one-off window.
const maxDateFreeze = 366 * 24 * time.Hour

// FrozenAt returns the freeze window the environment is in at t, if any:
// of overlapping ones, the one that ends last, and a window that another
// one continues (holidays running into a weekend) until the last of them
// ends. Windows the config validation would refuse are skipped.
func (e *Environment) FrozenAt(t time.Time) (Freeze, bool) {
	loc, err := e.Location()
	if err != nil {
		return Freeze{}, false
	}
	out, found := e.frozenOnce(t, loc)
	for i := 0; found && i < 50; i++ {
		next, ok := e.frozenOnce(out.End, loc)
		if !ok || !next.End.After(out.End) {
			break
		}
		out.End = next.End
	}
	return out, found
}

func (e *Environment) frozenOnce(t time.Time, loc *time.Location) (Freeze, bool) {
	var out Freeze
	found := false
	for _, w := range e.Freeze {
		f, ok := w.at(t, loc)
		if ok && (!found || f.End.After(out.End)) {
			out, found = f, true
		}
	}
	return out, found
}

// at reports whether the window holds t, and from when until when. A
// recurring window's Duration is wall-clock time in the env's zone:
// "Friday 15:00 for 64h" ends Monday 07:00 on a weekend the clocks change,
// too. (A start in the hour a spring change skips does not happen that
// day: robfig/cron skips it.)
func (w FreezeWindow) at(t time.Time, loc *time.Location) (Freeze, bool) {
	if w.Cron != "" {
		s, err := w.schedule(loc)
		if err != nil || w.Duration.Duration <= 0 {
			return Freeze{}, false
		}
		// Starts from a little more than Duration before t, so that a
		// clock change inside the window does not hide its start.
		var out Freeze
		found := false
		start := s.Next(t.Add(-w.Duration.Duration - 2*time.Hour))
		for i := 0; i < 1000 && !start.IsZero() && !start.After(t); i++ {
			if end := wallAdd(start, w.Duration.Duration, loc); t.Before(end) {
				out, found = Freeze{Reason: w.Reason, Start: start, End: end}, true
			}
			start = s.Next(start)
		}
		return out, found
	}
	from, to, err := w.days(loc)
	if err != nil || t.Before(from) || !t.Before(to) {
		return Freeze{}, false
	}
	return Freeze{Reason: w.Reason, Start: from, End: to}, true
}

// wallAdd adds d to t as a wall clock in loc would: across a change of the
// clocks, the hours the change adds or takes are not counted.
func wallAdd(t time.Time, d time.Duration, loc *time.Location) time.Time {
	lt := t.In(loc)
	end := lt.Add(d)
	_, before := lt.Zone()
	_, after := end.Zone()
	return end.Add(time.Duration(before-after) * time.Second)
}

func (w FreezeWindow) schedule(loc *time.Location) (cron.Schedule, error) {
	return cronIn(w.Cron, loc)
}

// days are a one-off window's bounds: the start of From and the end of To.
func (w FreezeWindow) days(loc *time.Location) (from, to time.Time, err error) {
	from, err = time.ParseInLocation(freezeDate, w.From, loc)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	to, err = time.ParseInLocation(freezeDate, w.To, loc)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return from, to.AddDate(0, 0, 1), nil
}

// NextFreeze returns the next freeze window of the environment that starts
// after t, within a year, for `schedule` to show.
func (e *Environment) NextFreeze(t time.Time) (Freeze, bool) {
	loc, err := e.Location()
	if err != nil {
		return Freeze{}, false
	}
	var out Freeze
	found := false
	for _, w := range e.Freeze {
		var f Freeze
		switch {
		case w.Cron != "":
			s, err := w.schedule(loc)
			if err != nil || w.Duration.Duration <= 0 {
				continue
			}
			start := s.Next(t)
			if start.IsZero() || start.After(t.AddDate(1, 0, 0)) {
				continue
			}
			f = Freeze{Reason: w.Reason, Start: start, End: wallAdd(start, w.Duration.Duration, loc)}
		default:
			from, to, err := w.days(loc)
			if err != nil || !from.After(t) {
				continue
			}
			f = Freeze{Reason: w.Reason, Start: from, End: to}
		}
		if !found || f.Start.Before(out.Start) {
			out, found = f, true
		}
	}
	return out, found
}

// validateFreeze checks one environment's windows.
func validateFreeze(ps *problems, path string, ws []FreezeWindow) {
	for i, w := range ws {
		p := fmt.Sprintf("%s.freeze[%d]", path, i)
		if strings.TrimSpace(w.Reason) == "" {
			ps.add(p+".reason", "required: people told of the freeze read why")
		}
		switch {
		case w.Cron != "" && (w.From != "" || w.To != ""):
			ps.add(p, "give either cron and duration (a recurring window) or from and to (dates), not both")
		case w.Cron != "":
			if _, err := cron.ParseStandard(w.Cron); err != nil {
				ps.add(p+".cron", "%q is not a cron expression (5 fields, e.g. \"0 15 * * 5\"): %v", w.Cron, err)
			}
			s, err := cron.ParseStandard(w.Cron)
			gap := time.Duration(0)
			if err == nil {
				gap = ScheduleGap(s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			}
			switch d := w.Duration.Duration; {
			case d <= 0:
				ps.add(p+".duration", "required with cron: how long each window lasts, e.g. 64h")
			case d > maxFreeze:
				ps.add(p+".duration", "%s is longer than %s; write a long freeze as from and to dates", d, maxFreeze)
			case d%time.Minute != 0:
				ps.add(p+".duration", "%s is not whole minutes", d)
			case gap > 0 && d >= gap:
				ps.add(p+".duration", "%s is at least the time between two starts of %q (%s): the windows would run into one that never ends", d, w.Cron, gap)
			}
		case w.From != "" || w.To != "":
			from, errFrom := time.Parse(freezeDate, w.From)
			to, errTo := time.Parse(freezeDate, w.To)
			if errFrom != nil {
				ps.add(p+".from", "%q is not a date YYYY-MM-DD", w.From)
			}
			if errTo != nil {
				ps.add(p+".to", "%q is not a date YYYY-MM-DD", w.To)
			}
			switch {
			case errFrom != nil || errTo != nil:
			case to.Before(from):
				ps.add(p+".to", "%s is before from %s", w.To, w.From)
			case to.Sub(from) > maxDateFreeze:
				ps.add(p+".to", "%s to %s is more than a year; a freeze that long is a typo, or no deploys at all", w.From, w.To)
			}
			if w.Duration.Duration != 0 {
				ps.add(p+".duration", "only with cron; from and to are whole days")
			}
		default:
			ps.add(p, "give cron and duration (a recurring window) or from and to (dates)")
		}
	}
}
