package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

// A registry webhook says only "look again": for each environment whose tag
// was pushed and each service whose repository it was, the scheduler asks
// the registry what the tag names now (RegistryImage: an ImageStreamImport
// dry-run on OpenShift, a HEAD request on plain Kubernetes) and compares it
// with what the environment has (Tag). A digest in the webhook's body is
// never read, so a forged or stale body can change nothing the registry
// does not say. What changed is imported right away where the env imports
// by itself (scheduled: true, unless its schedule is paused), as the
// schedule and under the env's policy; elsewhere a heads-up in the env's
// channel names the command that imports it. Both are claimed once per
// env, service and digest, so a registry's redeliveries act once.

// pushOnce is how long an import or heads-up of one digest is remembered.
const pushOnce = 7 * 24 * time.Hour

// Tags reads what an environment's tag has now; the cluster Set implements
// it (commands.Cluster's Tag).
type Tags interface {
	Tag(ctx context.Context, env, stream, tag string) (plan.TagState, error)
}

// WithTags lets the scheduler compare a pushed tag's registry image with
// what the environment has, for registry webhooks.
func WithTags(t Tags) Option { return func(s *Scheduler) { s.tags = t } }

// What a push did to one service of one environment.
const (
	PushUnchanged = "unchanged" // the env has the registry's image already
	PushImport    = "import"    // an import was opened (Request), or one already holds it
	PushHeadsUp   = "heads-up"  // a heads-up was posted in the env's channel
	PushDuplicate = "duplicate" // this digest was imported or announced before
	PushFailed    = "failed"    // the registry or the cluster could not be read
)

// PushOutcome is what a push did to one service of one environment.
type PushOutcome struct {
	Env, Service string
	// From is the digest the env has, To the registry's.
	From, To string
	// Did is one of the Push* constants.
	Did string
	// Request is the import's request ID, for PushImport.
	Request string
	// Reason says why, where it is not plain.
	Reason string
}

// pushChange is one service of an env whose registry image differs from
// what the env has.
type pushChange struct {
	svc      *config.Service
	from, to plan.Image
}

// Pushed acts on pushes a registry announced. It returns what each matching
// env and service did; an error means the store failed and the rest was not
// done.
func (s *Scheduler) Pushed(ctx context.Context, pushes []webhook.Push) ([]PushOutcome, error) {
	if s.registry == nil {
		return nil, errors.New("registry webhooks need a registry to look tags up in (schedule.WithRegistry)")
	}
	now := s.now()
	var outs []PushOutcome
	for i := range s.cfg.Environments {
		env := &s.cfg.Environments[i]
		changes, o := s.pushedServices(ctx, env, pushes)
		outs = append(outs, o...)
		if len(changes) == 0 {
			continue
		}
		o, err := s.actOnPush(ctx, env, changes, now)
		outs = append(outs, o...)
		if err != nil {
			return outs, err
		}
	}
	return outs, nil
}

// pushedServices re-resolves each service of env that a push names and
// returns those whose registry image the env does not have.
func (s *Scheduler) pushedServices(ctx context.Context, env *config.Environment, pushes []webhook.Push) ([]pushChange, []PushOutcome) {
	tag := env.ImageTag()
	var changes []pushChange
	var outs []PushOutcome
	for i := range s.cfg.Services {
		svc := &s.cfg.Services[i]
		if !slices.ContainsFunc(pushes, func(p webhook.Push) bool { return p.Tag == tag && webhook.SameRepository(p.Repository, svc.Repository) }) {
			continue
		}
		out := PushOutcome{Env: env.Name, Service: svc.Name}
		to, err := s.registry.RegistryImage(ctx, env.Name, svc.Stream(), tag)
		if err == nil && !plan.IsDigest(to.Digest) {
			err = fmt.Errorf("the registry named no digest for %s:%s", svc.Repository, tag)
		}
		if err != nil {
			out.Did, out.Reason = PushFailed, "looking up the registry's image: "+err.Error()
			outs = append(outs, out)
			continue
		}
		out.To = to.Digest
		var from plan.Image
		if s.tags != nil {
			st, err := s.tags.Tag(ctx, env.Name, svc.Stream(), tag)
			if err != nil {
				// A tag not imported yet has nothing: the push is news.
				s.log.Warn("reading the tag a push names", "env", env.Name, "service", svc.Name, "err", err)
			} else {
				from = plan.Image{Ref: st.Current.Ref, Digest: st.Current.Digest}
				if st.Hold != nil {
					// Neither imported nor claimed: after unhold the
					// env's own imports take it.
					out.From, out.Did, out.Reason = from.Digest, PushUnchanged, "held by "+st.Hold.By+": "+st.Hold.Reason
					outs = append(outs, out)
					continue
				}
			}
		}
		out.From = from.Digest
		if from.Digest == to.Digest {
			// A registry may notify before the tag points at what was
			// pushed (Distribution sends the event when the manifest is
			// stored, then moves the tag: distribution/distribution#2625),
			// so "nothing new" is looked at again a few times first.
			to = s.lookAgain(ctx, env, svc, tag, from.Digest, to)
			out.To = to.Digest
		}
		if from.Digest == to.Digest {
			out.Did = PushUnchanged
			outs = append(outs, out)
			continue
		}
		changes = append(changes, pushChange{svc: svc, from: from, to: to})
	}
	return changes, outs
}

// pushRechecks are the waits before each second look at a pushed tag that
// still names the image the environment has.
var pushRechecks = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}

// lookAgain asks the registry again, after each of pushRechecks, until the
// tag names something other than have; it returns the last answer.
func (s *Scheduler) lookAgain(ctx context.Context, env *config.Environment, svc *config.Service, tag, have string, last plan.Image) plan.Image {
	for _, wait := range pushRechecks {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
		img, err := s.registry.RegistryImage(ctx, env.Name, svc.Stream(), tag)
		if err != nil || !plan.IsDigest(img.Digest) {
			continue
		}
		if last = img; img.Digest != have {
			return img
		}
	}
	return last
}

// actOnPush imports env's changes right away or announces them.
func (s *Scheduler) actOnPush(ctx context.Context, env *config.Environment, changes []pushChange, now time.Time) ([]PushOutcome, error) {
	p, paused, err := s.pausedAt(ctx, env, now)
	if err != nil {
		return nil, err
	}
	f, frozen := env.FrozenAt(now)
	if !env.Scheduled || paused || frozen {
		var why string
		switch {
		case frozen:
			why = fmt.Sprintf("%s is frozen until %s (%s), so this push was not imported.", env.Name, fmtTime(env, f.End), f.Reason)
		case paused:
			why = fmt.Sprintf("The schedule of %s is paused by %s", env.Name, p.By)
			if !p.Until.IsZero() {
				why += " until " + fmtTime(env, p.Until)
			}
			why += ", so this push was not imported."
		}
		return s.pushHeadsUp(ctx, env, changes, now, why)
	}
	fresh, outs, err := s.claimPush(ctx, env, changes, "import")
	if err != nil || len(fresh) == 0 {
		return outs, err
	}
	var pushed []string
	for _, c := range fresh {
		pushed = append(pushed, c.svc.Name+" "+plan.ShortDigest(c.to.Digest))
	}
	at := now.Truncate(time.Minute)
	note := fmt.Sprintf("Pushed to the registry at %s: %s.", clockTime(env, now), strings.Join(pushed, ", "))
	claimed, err := s.open(ctx, env, at, note)
	id := RunID(env.Name, at)
	switch {
	case err != nil:
		s.log.Error("opening the import of a push", "env", env.Name, "err", err)
		o, herr := s.pushHeadsUp(ctx, env, fresh, now, "Importing it right away failed: "+err.Error())
		return append(outs, o...), herr
	case claimed:
		for _, c := range fresh {
			outs = append(outs, PushOutcome{Env: env.Name, Service: c.svc.Name, From: c.from.Digest, To: c.to.Digest, Did: PushImport, Request: id})
		}
		return outs, nil
	}
	// The run of this minute was claimed before: a push a moment ago, or
	// the cron. What its Plan does not import is announced.
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return outs, fmt.Errorf("reading the import %s: %w", id, err)
	}
	var missing []pushChange
	for _, c := range fresh {
		if slices.ContainsFunc(r.Plan.Targets, func(t plan.Target) bool { return t.Service == c.svc.Name && t.To.Digest == c.to.Digest && !t.Unchanged }) {
			outs = append(outs, PushOutcome{Env: env.Name, Service: c.svc.Name, From: c.from.Digest, To: c.to.Digest, Did: PushImport, Request: id,
				Reason: "the import opened this minute has it"})
			continue
		}
		missing = append(missing, c)
	}
	if len(missing) == 0 {
		return outs, nil
	}
	o, err := s.pushHeadsUp(ctx, env, missing, now, fmt.Sprintf("#%s, opened this minute, was planned before this push and does not import it.", id))
	return append(outs, o...), err
}

// claimPush claims each change once per env, service and digest for what
// (import, heads-up); the rest were acted on before.
func (s *Scheduler) claimPush(ctx context.Context, env *config.Environment, changes []pushChange, what string) ([]pushChange, []PushOutcome, error) {
	var fresh []pushChange
	var outs []PushOutcome
	for _, c := range changes {
		first, err := s.store.Once(ctx, "push/"+what+"/"+env.Name+"/"+c.svc.Name+"/"+c.to.Digest, pushOnce)
		if err != nil {
			return nil, outs, fmt.Errorf("claiming the %s of a push to %s: %w", what, env.Name, err)
		}
		if !first {
			outs = append(outs, PushOutcome{Env: env.Name, Service: c.svc.Name, From: c.from.Digest, To: c.to.Digest, Did: PushDuplicate,
				Reason: "this image's " + what + " was done before"})
			continue
		}
		fresh = append(fresh, c)
	}
	return fresh, outs, nil
}

// pushHeadsUp posts, once per digest, that env's services have new images
// and which command imports them; why, if set, says why they were not
// imported right away.
func (s *Scheduler) pushHeadsUp(ctx context.Context, env *config.Environment, changes []pushChange, now time.Time, why string) ([]PushOutcome, error) {
	fresh, outs, err := s.claimPush(ctx, env, changes, "heads-up")
	if err != nil || len(fresh) == 0 {
		return outs, err
	}
	title := "New image for " + env.Name
	if len(fresh) > 1 {
		title = "New images for " + env.Name
	}
	var lines, audit, services []string
	if why != "" {
		lines = append(lines, why)
	}
	for _, c := range fresh {
		from := "(none)"
		if c.from.Digest != "" {
			from = plan.ShortDigest(c.from.Digest)
		}
		lines = append(lines, fmt.Sprintf("%s %s → %s; `import %s %s` imports it.", c.svc.Name, from, plan.ShortDigest(c.to.Digest), env.Name, c.svc.Name))
		audit = append(audit, c.svc.Name+" "+plan.ShortDigest(c.to.Digest))
		services = append(services, c.svc.Name)
		outs = append(outs, PushOutcome{Env: env.Name, Service: c.svc.Name, From: c.from.Digest, To: c.to.Digest, Did: PushHeadsUp, Reason: why})
	}
	if len(fresh) > 1 {
		lines = append(lines, fmt.Sprintf("`import %s` imports them all.", env.Name))
	}
	lines = append(lines, fmt.Sprintf("Pushed to the registry at %s.", clockTime(env, now)))
	// The Import button opens the same request as the command, for the
	// person who clicks it.
	s.notify(ctx, env, Notice{Output: commands.Output{Title: title, Sections: []commands.Section{{Lines: lines}}},
		ImportEnv: env.Name, ImportServices: services})
	s.life.Audit(ctx, store.AuditEvent{Time: now, Actor: "registry", Action: "push-heads-up", Env: env.Name, Outcome: strings.Join(audit, ", ")})
	return outs, nil
}

// clockTime shows t as a time of day in env's time zone.
func clockTime(env *config.Environment, t time.Time) string {
	loc, err := env.Location()
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("15:04 MST")
}
