package bot

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/feed"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// The deploy feed's buttons, on the message of a change whose rollout
// failed. Their RequestID is the change's record ID, '-' and the index of
// the service among the record's targets: the click opens `undo SERVICE
// ENV` or `revert SERVICE ENV PREVIOUS` for whoever clicks, under the
// env's policy, as if they had typed it.
const (
	ActionUndoChange ActionKind = "undo-change"
	ActionPinChange  ActionKind = "pin-change"
)

// maxChangeButtons bounds the services a failed change offers buttons for;
// the others get the commands in the text.
const maxChangeButtons = 2

// feedObserver is the deploy feed's view of the cluster, through the same
// reads commands make.
type feedObserver struct{ deps commands.Deps }

func (o feedObserver) Observe(ctx context.Context, env string) (map[string]plan.TagState, error) {
	return commands.Observe(ctx, o.deps, env)
}

func (o feedObserver) ObservedPlan(ctx context.Context, env string, changes []plan.Target) (plan.Plan, error) {
	return commands.ObservedPlan(ctx, o.deps, env, changes)
}

// feedMessages shows the deploy feed's changes on the platforms.
type feedMessages struct{ b *Bot }

func (m feedMessages) Post(ctx context.Context, platform, channel string, c feed.Change) (store.MessageRef, error) {
	p, ok := m.b.platform(platform)
	if !ok {
		return store.MessageRef{}, fmt.Errorf("posting change #%s: no platform %q", c.Record.ID, platform)
	}
	ref, err := p.Post(ctx, channel, renderChange(c))
	if err != nil {
		m.b.metrics.PlatformError(platform, "post")
		return store.MessageRef{}, fmt.Errorf("posting change #%s: %w", c.Record.ID, err)
	}
	return ref, nil
}

func (m feedMessages) Update(ctx context.Context, ref store.MessageRef, c feed.Change) error {
	p, ok := m.b.platform(ref.Platform)
	if !ok {
		return nil // a platform this replica does not serve
	}
	if err := p.Update(ctx, ref, renderChange(c)); err != nil {
		m.b.metrics.PlatformError(ref.Platform, "update")
		return err
	}
	return nil
}

// renderChange is a deploy feed message: what changed and by whom, the
// rollout's progress, how it ended, and on failure what undoes it.
func renderChange(c feed.Change) Reply {
	r := c.Record
	state := "rolling out"
	switch r.State {
	case store.Succeeded:
		state = "settled"
	case store.Failed:
		state = "FAILED"
	case store.Cancelled:
		state = "no longer followed"
	}
	p := commands.RenderPlan(r.Plan)
	out := commands.Output{Title: fmt.Sprintf("#%s %s: changed without deploybot, %s", r.ID, r.Plan.Env, state)}
	out.Sections = append(out.Sections, p.Sections...)
	if len(c.Progress) > 0 {
		out.Sections = append(out.Sections, commands.Section{Heading: "Progress", Lines: c.Progress, Pre: true})
	}
	var btns []Button
	switch r.State {
	case store.Succeeded:
		settled := 0
		if r.Result != nil {
			settled = len(r.Result.Rollouts)
		}
		line := fmt.Sprintf("Settled: %d %s rolled out.", settled, plural(settled, "workload", "workloads"))
		if settled == 0 {
			line = "Done: no workload follows it."
		}
		out.Sections = append(out.Sections, commands.Section{Lines: []string{line}})
	case store.Cancelled:
		out.Sections = append(out.Sections, commands.Section{Lines: []string{r.Reason}})
	case store.Failed:
		lines := []string{"Failed: " + r.Reason}
		for i, t := range r.Plan.Targets {
			if !failedService(r, t.Service) || t.From.Digest == "" {
				continue
			}
			lines = append(lines, fmt.Sprintf("To go back: `undo %s %s` (the rollback, as the cluster's triggers allow) or `revert %s %s %s` (pin %s's previous image).",
				t.Service, r.Plan.Env, t.Service, r.Plan.Env, t.From.Digest, t.Service))
			if len(btns) < 2*maxChangeButtons {
				id := r.ID + "-" + strconv.Itoa(i)
				btns = append(btns,
					Button{Action: ActionUndoChange, RequestID: id, Label: "Undo " + t.Service},
					Button{Action: ActionPinChange, RequestID: id, Label: "Pin previous " + t.Service})
			}
		}
		out.Sections = append(out.Sections, commands.Section{Lines: lines})
	}
	return Reply{Output: out, RequestID: r.ID, Buttons: btns, Final: r.State.Terminal()}
}

// failedService reports whether a rollout of service failed in r; a
// change whose rollout was not followed to its end counts for every
// service.
func failedService(r *store.Request, service string) bool {
	if r.Result == nil || len(r.Result.Rollouts) == 0 {
		return true
	}
	for _, t := range r.Plan.Targets {
		if t.Service != service {
			continue
		}
		for _, rr := range r.Result.Rollouts {
			if rr.Outcome == plan.PhaseSettled {
				continue
			}
			for _, w := range t.Workloads {
				if k, _ := plan.NormalizeKind(w.Kind); k == rr.Workload.Kind && w.Name == rr.Workload.Name {
					return true
				}
			}
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ParseChangeButton reads the value of an Undo or Pin previous button:
// the record ID and the index of the target.
func ParseChangeButton(v string) (id string, target int, ok bool) {
	id, n, found := strings.Cut(v, "-")
	if !found || len(id) != store.IDLength || len(n) == 0 || len(n) > 3 {
		return "", 0, false
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9') {
			return "", 0, false
		}
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || strconv.Itoa(i) != n {
		return "", 0, false
	}
	return id, i, true
}

// changeClicked opens what an Undo or Pin previous button offers, as if
// the person who clicked had typed it: the record says which service and
// which image came before.
func (b *Bot) changeClicked(ctx context.Context, req Request, caller plan.Caller, resp Responder) error {
	id, i, ok := ParseChangeButton(req.Action.RequestID)
	if !ok {
		return b.refuse(ctx, resp, "That button is not one deploybot makes; nothing was changed.")
	}
	r, err := b.store.Get(ctx, id)
	if err != nil || r.Plan.Action != plan.ActionObserved || i >= len(r.Plan.Targets) {
		return b.refuse(ctx, resp, "That button names a change deploybot does not know (#%s); nothing was changed.", id)
	}
	t := r.Plan.Targets[i]
	if _, ok := b.cfg.Service(t.Service); !ok {
		return b.refuse(ctx, resp, "Service %s is no longer configured; nothing was changed.", t.Service)
	}
	if _, ok := b.cfg.Env(r.Plan.Env); !ok {
		return b.refuse(ctx, resp, "Environment %s is no longer configured; nothing was changed.", r.Plan.Env)
	}
	// The button undoes that change: once the tag has moved on (the first
	// click's undo went through, or anything since), a second click would
	// undo something else, maybe back to the bad image.
	ts, err := b.deps.Cluster.Tag(ctx, r.Plan.Env, t.Stream, t.Tag)
	if err != nil {
		return b.fail(ctx, resp, "reading "+t.Service+" in "+r.Plan.Env, err)
	}
	if ts.Current.Digest != t.To.Digest {
		return b.refuse(ctx, resp, "%s in %s is no longer at %s, which change #%s brought: it is at %s now, so this button would not undo that change; nothing was changed. `images %s %s` shows where it has been.",
			t.Service, r.Plan.Env, plan.ShortDigest(t.To.Digest), id, plan.ShortDigest(ts.Current.Digest), t.Service, r.Plan.Env)
	}
	text := fmt.Sprintf("undo %s %s", t.Service, r.Plan.Env)
	if req.Action.Kind == ActionPinChange {
		if !plan.IsDigest(t.From.Digest) {
			return b.refuse(ctx, resp, "Change #%s does not say which image %s had before; nothing was changed.", id, t.Service)
		}
		text = fmt.Sprintf("revert %s %s %s", t.Service, r.Plan.Env, t.From.Digest)
	}
	// Parsed as if typed: the request is exactly the typed command's.
	res := commands.Parse(b.cfg, commands.Input{Text: text})
	if res.Kind != commands.RunKind {
		return b.refuse(ctx, resp, "`%s` is not a command this deploybot takes now; nothing was changed.", text)
	}
	cmd := res.Command
	b.logFor(ctx).Info("command", "platform", req.Platform, "user", req.User.ID, "k8sUser", caller.User, "command", cmd.Name, "text", cmd.Text, "button", true, "change", id)
	return b.open(ctx, req, caller, cmd, resp)
}
