package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

func whoamiCommand() Spec {
	return Spec{
		Name:     "whoami",
		Usage:    "whoami",
		Summary:  "your Kubernetes identity and, per environment, which commands you may run",
		Examples: []string{"whoami"},
		Who:      whoAnyone,
		Anyone:   true,
		run:      runWhoami,
	}
}

// runWhoami answers from the same access checks a request would get: for
// every env and mutating command it builds the Plan the command would have
// over all services (from config and discovered workloads, changing nothing)
// and asks d.Access which of its API calls the caller may not make.
func runWhoami(ctx context.Context, d Deps, caller plan.Caller, _ plan.Command) (Output, error) {
	out := Output{Title: "whoami", Private: true}
	if caller.User == "" {
		out.Sections = []Section{{Lines: []string{unmapped(caller).Error()}}}
		return out, nil
	}
	who := fmt.Sprintf("You are %s on %s, Kubernetes user %s", orDash(caller.Name), orDash(caller.Platform), caller.User)
	if len(caller.Groups) > 0 {
		who += ", groups " + strings.Join(caller.Groups, ", ")
	}
	out.Sections = append(out.Sections, Section{Lines: []string{
		who + ".",
		"Anyone mapped may run help, status, images, history, pending, audit and schedule (to look).",
	}})
	if d.Access == nil || d.Cluster == nil {
		out.Sections = append(out.Sections, Section{Lines: []string{"Access checks are not configured, so which changes you may request is unknown."}})
		return out, nil
	}
	sections := make([]Section, len(d.Config.Environments))
	forEach(len(sections), func(i int) { sections[i] = envAccess(ctx, d, caller, &d.Config.Environments[i]) })
	out.Sections = append(out.Sections, sections...)
	out.Sections = append(out.Sections, Section{Lines: []string{
		"You may approve or deny other people's requests for what you may run yourself; pause and resume schedules where you may import.",
	}})
	return out, nil
}

// envAccess is one env's verdict per mutating command.
func envAccess(ctx context.Context, d Deps, caller plan.Caller, e *config.Environment) Section {
	sec := Section{Heading: fmt.Sprintf("%s (namespace %s): %s", e.Name, e.Namespace, policyText(policyOf(e))), Pre: true}
	svcs, _ := servicesOf(d.Config, nil)
	targets := make([]plan.Target, len(svcs))
	follows := make([]bool, len(svcs))
	var notes []string
	for i, s := range svcs {
		targets[i] = plan.Target{Service: s.Name, Stream: s.Stream(), Tag: e.ImageTag()}
	}
	errs := make([]error, len(svcs))
	forEach(len(svcs), func(i int) {
		ws, err := serviceWorkloads(ctx, d, e, svcs[i])
		if err != nil {
			errs[i] = err
			return
		}
		targets[i].Workloads = workloadRefs(ws, e, svcs[i])
		follows[i] = slices.ContainsFunc(targets[i].Workloads, func(w plan.WorkloadRef) bool { return w.Triggered })
	})
	for _, err := range errs {
		if err != nil {
			notes = append(notes, fmt.Sprintf("(%v; the answer leaves those workloads out)", err))
		}
	}

	// undo pins the tag of services whose workloads follow it and rolls
	// the others back, so it needs both kinds of calls.
	var pins, rollbacks []plan.Target
	for i, t := range targets {
		if follows[i] {
			pins = append(pins, t)
		} else {
			rollbacks = append(rollbacks, t)
		}
	}
	plans := []struct {
		name  string
		plans []plan.Plan
	}{
		{"import", []plan.Plan{synthetic(plan.ActionImport, e, targets)}},
		{"revert", []plan.Plan{synthetic(plan.ActionPin, e, targets)}},
		{"track", []plan.Plan{synthetic(plan.ActionTrack, e, targets)}},
		{"undo", []plan.Plan{synthetic(plan.ActionPin, e, pins), synthetic(plan.ActionRollback, e, rollbacks)}},
	}
	if len(d.Config.Environments) > 1 {
		// promote pins the tag, as revert does (promote.go)
		plans = append(plans, struct {
			name  string
			plans []plan.Plan
		}{"promote", []plan.Plan{synthetic(plan.ActionPromote, e, targets)}})
	}
	if slices.ContainsFunc(d.Config.Repositories, func(r config.Repository) bool { return r.Env == e.Name }) {
		// a release needs what importing its services does (release.go)
		plans = append(plans, struct {
			name  string
			plans []plan.Plan
		}{"release", []plan.Plan{synthetic(plan.ActionImport, e, targets)}})
	}
	for _, c := range plans {
		var calls []plan.Access
		for _, p := range c.plans {
			calls = append(calls, plan.AccessFor(p)...)
		}
		denied, err := d.Access.Denied(ctx, e.Name, caller.User, caller.Groups, calls)
		sec.Lines = append(sec.Lines, fmt.Sprintf("%-7s %s", c.name, verdict(denied, err, svcs, e)))
	}
	sec.Lines = append(sec.Lines, notes...)
	return sec
}

// synthetic is the Plan a command would have for targets, none unchanged.
func synthetic(action plan.Action, e *config.Environment, targets []plan.Target) plan.Plan {
	p := newPlan(action, e)
	p.Targets = targets
	return p
}

// verdict says yes, no (with the first reason) or which services are
// excluded, judging by the object names of the denied calls.
func verdict(denied []plan.Denial, err error, svcs []*config.Service, e *config.Environment) string {
	if err != nil {
		return "unknown: checking failed: " + err.Error()
	}
	if len(denied) == 0 {
		return "yes"
	}
	var except []string
	for _, dn := range denied {
		svc := ""
		for _, s := range svcs {
			if n := dn.Access.Name; n != "" && (n == s.Stream() || n == s.Stream()+":"+e.ImageTag()) {
				svc = s.Name
			}
		}
		if svc == "" {
			return "no: " + denialText(dn)
		}
		if !slices.Contains(except, svc) {
			except = append(except, svc)
		}
	}
	if len(except) == len(svcs) {
		return "no: " + denialText(denied[0])
	}
	return "yes, except " + strings.Join(except, ", ") + " (" + denialText(denied[0]) + ")"
}

// denialText is "may not create imagestreamimports", with the API server's reason.
func denialText(dn plan.Denial) string {
	a := dn.Access
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	if a.Name != "" {
		res += " " + a.Name
	}
	s := fmt.Sprintf("may not %s %s", a.Verb, res)
	if dn.Reason != "" {
		s += ": " + dn.Reason
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
