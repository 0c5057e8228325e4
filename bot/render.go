package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
)

// renderRequest is the request message: the Plan, who asked and approved,
// progress, outcome, and the buttons that fit its state.
func (b *Bot) renderRequest(r *store.Request) Reply {
	p := commands.RenderPlan(r.Plan)
	out := commands.Output{Title: fmt.Sprintf("#%s %s: %s", r.ID, r.Command, r.State.Status())}
	out.Sections = append(out.Sections, p.Sections...)
	people := []string{"Requested by " + r.Requester.Name + " (" + r.Requester.User + ")"}
	if n := r.Plan.Policy.Approvals; n > 0 {
		var by []string
		for _, a := range r.Approvals {
			by = append(by, a.By.Name)
		}
		line := fmt.Sprintf("Approvals: %d of %d", len(r.Approvals), n)
		if len(by) > 0 {
			line += " (" + strings.Join(by, ", ") + ")"
		}
		people = append(people, line)
	}
	if r.ClosedBy != nil {
		line := r.State.Status() + " by " + r.ClosedBy.Name
		if r.Reason != "" && r.State == store.Denied {
			line += ": " + r.Reason
		}
		people = append(people, strings.ToUpper(line[:1])+line[1:])
	}
	out.Sections = append(out.Sections, commands.Section{Lines: people})
	if lines := b.life.Progress(r.ID); len(lines) > 0 {
		out.Sections = append(out.Sections, commands.Section{Heading: "Progress", Lines: lines, Pre: true})
	}
	switch r.State {
	case store.Succeeded:
		lines := []string{"Done: " + outcomeText(r)}
		if e, ok := b.cfg.Env(r.Plan.Env); ok && e.HoldAfterUndo && (r.Plan.Action == plan.ActionPin || r.Plan.Action == plan.ActionRollback) {
			if r.Reason != "" {
				lines = append(lines, r.Reason) // the hold after it failed: why
			} else {
				lines = append(lines, fmt.Sprintf("holdAfterUndo: #%s-hold holds %s there next, so that no import brings the image it left back (its message says when it is held); `unhold %s %s` ends it.",
					r.ID, strings.Join(changedServices(r), " "), r.Plan.Env, strings.Join(changedServices(r), " ")))
			}
		} else if a := r.Plan.Action; a == plan.ActionPin || a == plan.ActionRollback {
			// after going back, the offer to keep it there, saying why
			for _, t := range r.Plan.Targets {
				if !t.Unchanged {
					lines = append(lines, fmt.Sprintf("To keep %s there until someone unholds it, with a reason everyone sees: `hold %s %s --reason \"...\"`.", t.Service, r.Plan.Env, t.Service))
					break
				}
			}
		}
		out.Sections = append(out.Sections, commands.Section{Lines: lines})
	case store.Failed:
		lines := []string{"Failed: " + r.Reason}
		if moved := changedTargets(r); len(moved) > 0 {
			// a partial failure says exactly what did change
			lines = append(lines, "Changed nonetheless: "+strings.Join(moved, ", ")+".")
		}
		out.Sections = append(out.Sections, commands.Section{Lines: lines})
	case store.Expired:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Expired without enough approvals; nothing was changed."}})
	case store.Cancelled, store.Denied:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Nothing was changed."}})
	case store.AwaitingConfirm:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{fmt.Sprintf("%s: `confirm #%s` or `cancel #%s`.", r.Requester.Name, r.ID, r.ID)}})
	case store.AwaitingApproval:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{fmt.Sprintf("Someone else with access to %s: `approve #%s` or `deny #%s [reason]`.", r.Plan.Env, r.ID, r.ID)}})
	}
	btns := buttons(r)
	// With release.afterBuild: import the lifecycle opened the import of a
	// release that succeeded; a partly failed one still offers it.
	auto := b.cfg.Release.AfterBuild == config.AfterBuildImport && r.State == store.Succeeded
	if auto && r.Reason != "" {
		// the lifecycle could not open it: why, and the offer instead
		out.Sections = append(out.Sections, commands.Section{Lines: []string{r.Reason}})
		auto = false
	}
	if built := releaseBuilt(r); len(built) > 0 && auto {
		out.Sections = append(out.Sections, commands.Section{Lines: []string{fmt.Sprintf("Built: the import of %s is opened as its own request.", strings.Join(built, ", "))}})
	} else if len(built) > 0 {
		// What a release built waits to be imported: the command, and a
		// button that opens exactly that request for whoever clicks.
		cmd := "import " + r.Plan.Env + " " + strings.Join(built, " ")
		out.Sections = append(out.Sections, commands.Section{Lines: []string{fmt.Sprintf("Built: `%s` imports them.", cmd)}})
		offer := ImportOffer(r.Plan.Env, built)
		label := "Import"
		if offer == r.Plan.Env {
			label = "Import all of " + r.Plan.Env
		}
		btns = append(btns, Button{Action: ActionImport, RequestID: offer, Label: label})
	}
	return Reply{Output: out, RequestID: r.ID, Buttons: btns, Final: r.State.Terminal()}
}

// releaseBuilt are the services whose images a finished release saw
// built.
func releaseBuilt(r *store.Request) []string {
	if r.Plan.Action != plan.ActionRelease || r.Result == nil || !r.State.Terminal() {
		return nil
	}
	return r.Result.Built()
}

// changedServices are the services of a finished execution that changed.
func changedServices(r *store.Request) []string {
	var out []string
	if r.Result != nil {
		for _, t := range r.Result.Targets {
			if t.Outcome == plan.PhaseChanged {
				out = append(out, t.Service)
			}
		}
	}
	return out
}

// changedTargets are the targets of a finished execution that changed,
// "packit-service 62391af → 61099d0".
func changedTargets(r *store.Request) []string {
	if r.Result == nil {
		return nil
	}
	var out []string
	for _, t := range r.Result.Targets {
		if t.Outcome == plan.PhaseChanged {
			out = append(out, t.Service+" "+plan.ImageChange(t.From, t.To))
		}
	}
	return out
}

func outcomeText(r *store.Request) string {
	if r.Result == nil {
		return "executed."
	}
	var parts []string
	for _, t := range r.Result.Targets {
		switch t.Outcome {
		case plan.PhaseChanged:
			parts = append(parts, t.Service+" "+plan.ImageChange(t.From, t.To))
		case plan.PhaseUnchanged:
			parts = append(parts, t.Service+" unchanged")
		}
	}
	settled := 0
	for _, o := range r.Result.Rollouts {
		if o.Outcome == plan.PhaseSettled {
			settled++
		}
	}
	s := strings.Join(parts, ", ")
	what := "workloads settled"
	if r.Plan.Action == plan.ActionRelease {
		what = "images built"
	}
	if n := len(r.Result.Rollouts); n > 0 {
		s += fmt.Sprintf("; %d/%d %s", settled, n, what)
	}
	if len(r.Approvals) > 0 {
		var by []string
		for _, a := range r.Approvals {
			by = append(by, a.By.Name)
		}
		s += "; approved by " + strings.Join(by, ", ")
	}
	return s + "."
}

func buttons(r *store.Request) []Button {
	danger := r.Plan.Policy.Approvals > 0 // protected environments get confirm dialogs
	confirmText := func(s string) string {
		if danger {
			return s
		}
		return ""
	}
	switch r.State {
	case store.AwaitingConfirm:
		return []Button{
			{Action: ActionConfirm, RequestID: r.ID, Label: "Confirm", Confirm: confirmText(fmt.Sprintf("Really %s?", r.Command))},
			{Action: ActionCancel, RequestID: r.ID, Label: "Cancel"},
		}
	case store.AwaitingApproval:
		return []Button{
			{Action: ActionApprove, RequestID: r.ID, Label: "Approve"},
			{Action: ActionDeny, RequestID: r.ID, Label: "Deny", Danger: true, Confirm: confirmText(fmt.Sprintf("Deny #%s?", r.ID))},
		}
	}
	return nil
}

// messages shows requests and schedule notices on the platforms: it is the
// lifecycle's Messages and the scheduler's Announcer.
type messages struct{ b *Bot }

func (m messages) Post(ctx context.Context, platform, channel string, r *store.Request) (store.MessageRef, error) {
	p, ok := m.b.platform(platform)
	if !ok {
		return store.MessageRef{}, fmt.Errorf("posting request #%s: no platform %q", r.ID, platform)
	}
	ref, err := p.Post(ctx, channel, m.b.renderRequest(r))
	if err != nil {
		m.b.metrics.PlatformError(platform, "post")
		return store.MessageRef{}, fmt.Errorf("posting request #%s: %w", r.ID, err)
	}
	return ref, nil
}

func (m messages) Update(ctx context.Context, ref store.MessageRef, r *store.Request) error {
	p, ok := m.b.platform(ref.Platform)
	if !ok {
		return nil // a platform this replica does not serve
	}
	if err := p.Update(ctx, ref, m.b.renderRequest(r)); err != nil {
		m.b.metrics.PlatformError(ref.Platform, "update")
		return err
	}
	return nil
}

func (m messages) Announce(ctx context.Context, platform, channel string, n schedule.Notice) error {
	p, ok := m.b.platform(platform)
	if !ok {
		return fmt.Errorf("no platform %q to announce on", platform)
	}
	reply := Reply{Output: n.Output}
	if n.SkipRun != "" {
		reply.Buttons = append(reply.Buttons, Button{Action: ActionSkip, RequestID: n.SkipRun, Label: "Skip this run", Confirm: n.SkipConfirm})
	}
	if n.ImportEnv != "" {
		offer := ImportOffer(n.ImportEnv, n.ImportServices)
		label := "Import"
		if offer == n.ImportEnv { // the names did not fit: the whole env
			label = "Import all of " + n.ImportEnv
		}
		reply.Buttons = append(reply.Buttons, Button{Action: ActionImport, RequestID: offer, Label: label})
	}
	if _, err := p.Post(ctx, channel, reply); err != nil {
		m.b.metrics.PlatformError(platform, "post")
		return err
	}
	return nil
}
