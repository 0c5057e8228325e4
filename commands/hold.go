package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

func holdCommand() Spec {
	return Spec{
		Name:     "hold",
		Usage:    "hold ENV [SERVICE...] --reason TEXT [--until TIME] [--dry-run]",
		Summary:  "keep services where they are until unhold: no import moves them, nor (OpenShift) the cluster itself",
		Examples: []string{`hold stg worker --reason "crash-loops since 06b144c; fix in review"`, `hold prod --reason "incident 4711" --until 2d`},
		Who: "mapped users whose Kubernetes identity may update the env's image streams and patch the workloads that follow them " +
			"(the workloads on plain Kubernetes); then the env's policy:",
		Mutates: true,
		flags: func(fs *pflag.FlagSet) {
			fs.String("reason", "", "why, for everyone who finds the service held (`TEXT`, required)")
			fs.String("until", "", "end the hold by itself at `TIME` (2h, 3d, 2026-12-01, \"2026-12-01 09:00\" in the env's time zone, RFC 3339)")
		},
		parse: parseHold,
		plan:  planHold,
	}
}

func unholdCommand() Spec {
	return Spec{
		Name:     "unhold",
		Usage:    "unhold ENV [SERVICE...] [--dry-run]",
		Summary:  "end holds, restoring scheduled import and image triggers as they were",
		Examples: []string{"unhold stg worker", "unhold prod"},
		Who:      "as for hold; then the env's policy:",
		Mutates:  true,
		parse:    parseImport,
		plan:     planUnhold,
	}
}

func holdsCommand() Spec {
	return Spec{
		Name:     "holds",
		Usage:    "holds [ENV]",
		Summary:  "the held services: by whom, since when, why",
		Examples: []string{"holds", "holds prod"},
		Who:      "any mapped user",
		parse:    parseHolds,
		run:      runHolds,
	}
}

func parseHold(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	if err := parseImport(p, fs, c); err != nil {
		return err
	}
	reason, _ := fs.GetString("reason")
	if reason = strings.TrimSpace(reason); reason == "" {
		return userErrorf(`Say why: --reason "TEXT" is shown to everyone who finds it held.`)
	}
	c.Reason = clipReason(reason)
	if until, _ := fs.GetString("until"); until != "" {
		e, _ := findEnv(p.cfg, c.Env)
		t, err := parseUntil(until, p.now, envLocation(e))
		if err != nil {
			return err
		}
		c.Until = t
	}
	return nil
}

func parseHolds(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	switch args := fs.Args(); len(args) {
	case 0:
		return nil
	case 1:
		env, err := p.env(args[0])
		c.Env = env
		return err
	}
	return userErrorf("holds takes at most one environment.")
}

// planHold holds each service that is not held already, recording what
// the hold changes: the tag's scheduled import (on OpenShift) and which
// workloads' image triggers on the tag run now, to pause.
func planHold(ctx context.Context, d Deps, caller plan.Caller, c plan.Command) (plan.Plan, error) {
	return planHolds(ctx, d, c, plan.ActionHold, func(t *plan.Target, e *config.Environment, ts plan.TagState, ws []plan.Workload) string {
		if ts.Hold != nil {
			t.Unchanged, t.Hold = true, ts.Hold
			return fmt.Sprintf("%s is held already: %s.", t.Service, holdText(*ts.Hold))
		}
		if !c.Until.IsZero() && !c.Until.After(d.now()) {
			// approved too late, say: it would be unheld at once
			t.Unchanged = true
			return fmt.Sprintf("%s is not held: its --until time %s has passed.", t.Service, c.Until.UTC().Format("2006-01-02 15:04 MST"))
		}
		h := &plan.Hold{By: caller.User, Reason: c.Reason, Until: c.Until}
		if !e.Kubernetes() {
			h.Scheduled = ts.Scheduled
			h.Paused = runningTriggers(ws, e, t.Stream)
		}
		t.Hold = h
		return ""
	})
}

// planUnhold ends each service's hold, restoring what it changed.
func planUnhold(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	return planHolds(ctx, d, c, plan.ActionUnhold, func(t *plan.Target, e *config.Environment, ts plan.TagState, ws []plan.Workload) string {
		if ts.Hold == nil {
			t.Unchanged = true
			if len(c.Services) > 0 {
				return t.Service + " is not held."
			}
			return ""
		}
		h := *ts.Hold
		if h.Foreign {
			// Not deploybot's: nothing known of what it changed, so the
			// tag gets the env's configured scheduled import.
			h.Scheduled = e.Scheduled
		}
		t.Hold = &h
		// The tag may have moved while held (oc tag by hand): resuming
		// the triggers then rolls the workloads to it.
		for _, w := range ws {
			if !slices.Contains(h.Paused, strings.ToLower(w.Kind)+"/"+w.Name) {
				continue
			}
			for _, img := range w.Images {
				if d := digestOf(img); d != "" && d != ts.Current.Digest && plan.Repository(img) == strings.Split(ts.Current.Ref, "@")[0] {
					t.From = plan.Image{Ref: img, Digest: d}
				}
			}
		}
		if t.From.Digest != t.To.Digest {
			return fmt.Sprintf("%s's tag moved while it was held: resuming its image triggers rolls it %s → %s.", t.Service, plan.ShortDigest(t.From.Digest), plan.ShortDigest(t.To.Digest))
		}
		return ""
	})
}

// planHolds is hold's and unhold's Plan: one target per service (every
// service by default), each decided by target.
func planHolds(ctx context.Context, d Deps, c plan.Command, action plan.Action,
	target func(t *plan.Target, e *config.Environment, ts plan.TagState, ws []plan.Workload) string) (plan.Plan, error) {
	e, err := envOf(d.Config, c.Env)
	if err != nil {
		return plan.Plan{}, err
	}
	svcs, err := servicesOf(d.Config, c.Services)
	if err != nil {
		return plan.Plan{}, err
	}
	p := newPlan(action, e)
	p.Targets = make([]plan.Target, len(svcs))
	notes := make([]string, len(svcs))
	errs := make([]error, len(svcs))
	forEach(len(svcs), func(i int) {
		s := svcs[i]
		t := plan.Target{Service: s.Name, Stream: s.Stream(), Tag: e.ImageTag()}
		ts, err := readTag(ctx, d, e, s)
		if err != nil {
			errs[i] = err
			return
		}
		ws, err := serviceWorkloads(ctx, d, e, s)
		if err != nil {
			errs[i] = err
			return
		}
		t.From, t.To = currentImage(ts), currentImage(ts)
		t.Workloads = workloadRefs(ws, e, s)
		notes[i] = target(&t, e, ts, ws)
		p.Targets[i] = t
	})
	if err := errors.Join(errs...); err != nil {
		return plan.Plan{}, err
	}
	for _, n := range notes {
		if n != "" {
			p.Notes = append(p.Notes, n)
		}
	}
	p.Access = planAccess(p)
	return p, nil
}

// runningTriggers are the workloads ("deployment/NAME") whose image trigger
// on the env's tag of stream is not paused now: what a hold pauses.
func runningTriggers(ws []plan.Workload, e *config.Environment, stream string) []string {
	var out []string
	for _, w := range ws {
		if slices.ContainsFunc(w.Triggers, func(tr plan.Trigger) bool { return tr.Follows(e.Namespace, stream, e.ImageTag()) && !tr.Paused }) {
			out = append(out, strings.ToLower(w.Kind)+"/"+w.Name)
		}
	}
	slices.Sort(out)
	return out
}

// holdText is "held by alice since 12-04 10:00 UTC: incident 4711".
func holdText(h plan.Hold) string {
	s := "held by " + h.By
	if !h.Since.IsZero() {
		s += " since " + h.Since.UTC().Format("2006-01-02 15:04 MST")
	}
	if !h.Until.IsZero() {
		s += " until " + h.Until.UTC().Format("2006-01-02 15:04 MST")
	}
	return s + ": " + h.Reason
}

// heldRefusal refuses a change to a held service: only unhold moves it.
func heldRefusal(e *config.Environment, s *config.Service, ts plan.TagState) error {
	if ts.Hold == nil {
		return nil
	}
	return userFail("%s is %s. A held service changes only through `unhold %s %s`.", s.Name, holdText(*ts.Hold), e.Name, s.Name)
}

// runHolds lists the held services of one env or of all.
func runHolds(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (Output, error) {
	var lines []string
	for i := range d.Config.Environments {
		e := &d.Config.Environments[i]
		if c.Env != "" && e.Name != c.Env {
			continue
		}
		svcs, _ := servicesOf(d.Config, nil)
		held := make([]string, len(svcs))
		forEach(len(svcs), func(j int) {
			ts, err := readTag(ctx, d, e, svcs[j])
			switch {
			case err != nil:
				held[j] = fmt.Sprintf("%s %s: cannot tell (%v)", e.Name, svcs[j].Name, err)
			case ts.Hold != nil:
				held[j] = fmt.Sprintf("%s %s: %s", e.Name, svcs[j].Name, holdText(*ts.Hold))
			}
		})
		for _, h := range held {
			if h != "" {
				lines = append(lines, h)
			}
		}
	}
	if len(lines) == 0 {
		lines = []string{"Nothing is held."}
	}
	return Output{Title: "Holds", Sections: []Section{{Lines: lines}}}, nil
}
