package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// progressLog keeps a request's live progress lines: one line per target and
// per workload, replaced as the rollout moves.
type progressLog struct {
	mu    sync.Mutex
	keys  []string
	lines map[string]string
}

func (b *Bot) progressFor(id string) *progressLog {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.progress[id]
	if !ok {
		p = &progressLog{lines: map[string]string{}}
		b.progress[id] = p
	}
	return p
}

// progressLines returns the live progress of a request that is executing.
func (b *Bot) progressLines(id string) []string {
	b.mu.Lock()
	p, ok := b.progress[id]
	b.mu.Unlock()
	if !ok {
		return nil
	}
	return p.snapshot()
}

func (p *progressLog) add(ev plan.Progress) {
	key, line := progressLine(ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lines[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.lines[key] = line
}

func (p *progressLog) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.keys))
	for _, k := range p.keys {
		out = append(out, p.lines[k])
	}
	return out
}

func progressLine(ev plan.Progress) (key, line string) {
	if ev.Workload.Name == "" {
		line = ev.Service + ": " + ev.Phase
		if ev.Message != "" {
			line += ": " + ev.Message
		}
		return "target/" + ev.Service, line
	}
	w := strings.ToLower(ev.Workload.Kind) + "/" + ev.Workload.Name
	line = fmt.Sprintf("%s: %s, %d/%d updated, %d/%d ready", w, ev.Phase, ev.Updated, ev.Desired, ev.Ready, ev.Desired)
	if ev.Message != "" {
		line += " (" + ev.Message + ")"
	}
	return "workload/" + w, line
}

var stateWords = map[store.State]string{
	store.Planned:          "planned",
	store.AwaitingConfirm:  "waiting for the requester to confirm",
	store.AwaitingApproval: "waiting for approval",
	store.Approved:         "approved",
	store.Executing:        "executing",
	store.Succeeded:        "succeeded",
	store.Failed:           "failed",
	store.Cancelled:        "cancelled",
	store.Denied:           "denied",
	store.Expired:          "expired",
}

// renderRequest is the request message: the Plan, who asked and approved,
// progress, outcome, and the buttons that fit its state.
func (b *Bot) renderRequest(r *store.Request) Reply {
	p := commands.RenderPlan(r.Plan)
	out := commands.Output{Title: fmt.Sprintf("#%s %s: %s", r.ID, r.Command, stateWords[r.State])}
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
		line := stateWords[r.State] + " by " + r.ClosedBy.Name
		if r.Reason != "" && r.State == store.Denied {
			line += ": " + r.Reason
		}
		people = append(people, strings.ToUpper(line[:1])+line[1:])
	}
	out.Sections = append(out.Sections, commands.Section{Lines: people})
	if lines := b.progressLines(r.ID); len(lines) > 0 {
		out.Sections = append(out.Sections, commands.Section{Heading: "Progress", Lines: lines, Pre: true})
	}
	switch r.State {
	case store.Succeeded:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Done: " + outcomeText(r)}})
	case store.Failed:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Failed: " + r.Reason}})
	case store.Expired:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Expired without enough approvals; nothing was changed."}})
	case store.Cancelled, store.Denied:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{"Nothing was changed."}})
	case store.AwaitingConfirm:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{fmt.Sprintf("%s: `confirm #%s` or `cancel #%s`.", r.Requester.Name, r.ID, r.ID)}})
	case store.AwaitingApproval:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{fmt.Sprintf("Someone else with access to %s: `approve #%s` or `deny #%s [reason]`.", r.Plan.Env, r.ID, r.ID)}})
	}
	return Reply{Output: out, RequestID: r.ID, Buttons: buttons(r), Final: r.State.Terminal()}
}

func outcomeText(r *store.Request) string {
	if r.Result == nil {
		return "executed."
	}
	var parts []string
	for _, t := range r.Result.Targets {
		switch t.Outcome {
		case plan.PhaseChanged:
			parts = append(parts, fmt.Sprintf("%s %s → %s", t.Service, plan.ShortDigest(t.From.Digest), plan.ShortDigest(t.To.Digest)))
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
	if n := len(r.Result.Rollouts); n > 0 {
		s += fmt.Sprintf("; %d/%d workloads settled", settled, n)
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

// post publishes a new request message and remembers where it is.
func (b *Bot) post(ctx context.Context, platform, channel string, r *store.Request) {
	b.mu.Lock()
	p, ok := b.platforms[platform]
	b.mu.Unlock()
	if !ok {
		b.log.Error("no platform to post to", "platform", platform, "request", r.ID)
		return
	}
	ref, err := p.Post(ctx, channel, b.renderRequest(r))
	if err != nil {
		b.metrics.PlatformError(platform, "post")
		b.log.Error("posting request message", "request", r.ID, "err", err)
		return
	}
	if _, err := b.store.Update(ctx, r.ID, func(r *store.Request) error {
		r.Messages = append(r.Messages, ref)
		return nil
	}); err != nil {
		b.log.Error("remembering request message", "request", r.ID, "err", err)
	}
}

// refresh re-renders a request's messages everywhere they are shown.
func (b *Bot) refresh(ctx context.Context, id string) {
	r, err := b.store.Get(ctx, id)
	if err != nil {
		b.log.Error("reading request for update", "request", id, "err", err)
		return
	}
	reply := b.renderRequest(r)
	for _, ref := range r.Messages {
		b.mu.Lock()
		p, ok := b.platforms[ref.Platform]
		b.mu.Unlock()
		if !ok {
			continue
		}
		if err := p.Update(ctx, ref, reply); err != nil {
			b.metrics.PlatformError(ref.Platform, "update")
			b.log.Error("updating request message", "request", id, "platform", ref.Platform, "err", err)
		}
	}
}
