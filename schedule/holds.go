package schedule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

const (
	// holdEndWindow is how long after its --until time a hold is still
	// ended: one older than that was left by a deploybot that was down all
	// along, and is left to people.
	holdEndWindow = 7 * 24 * time.Hour
	// holdScanEvery is how often EndHolds reads every tag for due holds,
	// besides those the store's hold requests name: a hold request may
	// have been pruned from the store before its hold ends.
	holdScanEvery = 15 * time.Minute
)

// EndHolds ends the holds whose --until time has come: per env it opens
// `unhold ENV SERVICE...` as the bot's own identity, approved by the
// holds' approval (their Plans showed the end) as long as ending them
// moves no image; an unhold that would roll one (the tag was moved by
// hand during the hold) waits for the env's approvals like any request.
// It finds due holds through the store's hold requests at every call and
// by reading every tag every holdScanEvery, and reads each tag before
// ending its hold: a service unheld or held anew meanwhile is left alone.
// One unhold per set of holds (its ID is made from them), tried again at
// the next call while a freeze or a busy lock stands in the way. The
// leader calls it with every sweep.
func (s *Scheduler) EndHolds(ctx context.Context) error {
	if s.tags == nil {
		return nil
	}
	now := s.now()
	reqs, err := s.store.List(ctx, store.ListOptions{States: []store.State{store.Succeeded, store.Failed}})
	if err != nil {
		return fmt.Errorf("listing holds: %w", err)
	}
	// env → services worth reading
	candidates := map[string][]string{}
	add := func(env, svc string) {
		if !slices.Contains(candidates[env], svc) {
			candidates[env] = append(candidates[env], svc)
		}
	}
	for _, r := range reqs {
		if r.Plan.Action != plan.ActionHold {
			continue
		}
		for _, t := range r.Plan.Targets {
			if h := t.Hold; !t.Unchanged && h != nil && due(h, now) {
				add(r.Plan.Env, t.Service)
			}
		}
	}
	s.holdsMu.Lock()
	scan := now.Sub(s.holdsScanned) >= holdScanEvery
	if scan {
		s.holdsScanned = now
	}
	s.holdsMu.Unlock()
	if scan {
		for _, e := range s.cfg.Environments {
			for _, svc := range s.cfg.Services {
				add(e.Name, svc.Name)
			}
		}
	}
	var errs []error
	for i := range s.cfg.Environments {
		env := &s.cfg.Environments[i]
		var ended []string // "service@since"
		var services []string
		for _, name := range candidates[env.Name] {
			svc, ok := s.cfg.Service(name)
			if !ok {
				continue
			}
			ts, err := s.tags.Tag(ctx, env.Name, svc.Stream(), env.ImageTag())
			if err != nil {
				errs = append(errs, fmt.Errorf("reading %s in %s for its hold: %w", name, env.Name, err))
				continue
			}
			if ts.Hold != nil && due(ts.Hold, now) {
				services = append(services, svc.Name)
				ended = append(ended, svc.Name+"@"+ts.Hold.Since.UTC().Format(time.RFC3339))
			}
		}
		if len(services) > 0 {
			if err := s.endHolds(ctx, env, services, ended); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// due reports whether h has an --until time that has come, recently
// enough to be ended.
func due(h *plan.Hold, now time.Time) bool {
	return !h.Until.IsZero() && !now.Before(h.Until) && now.Sub(h.Until) <= holdEndWindow
}

// endHolds opens the unhold of services in env, whose holds ended names.
func (s *Scheduler) endHolds(ctx context.Context, env *config.Environment, services, ended []string) error {
	slices.Sort(ended)
	sum := sha256.Sum256([]byte(env.Name + "\n" + strings.Join(ended, "\n")))
	text := "unhold " + env.Name + " " + strings.Join(services, " ")
	o := lifecycle.Open{Caller: s.caller(env.Name), ID: "h" + hex.EncodeToString(sum[:])[:15] + "-until",
		Command: plan.Command{Name: "unhold", Env: env.Name, Services: services, Text: text},
		Note:    "the holds end at their --until time",
		// The holds' approvals covered their end, not a rollout: an unhold
		// that rolls a tag moved during the hold is approved as usual.
		AutoApprove: true, AutoApproveIf: movesNoImage}
	if env.Channel != nil {
		o.Platform, o.Channel = env.Channel.Platform, env.Channel.ID
	}
	_, err := s.life.Open(ctx, o)
	var busy *store.BusyError
	switch {
	case err == nil:
		s.log.Info("holds ended at their --until time", "env", env.Name, "services", services, "request", o.ID)
	case errors.Is(err, store.ErrExists):
		// ended once already (another replica, or an unhold that failed)
	case errors.As(err, &busy), errors.As(err, new(*commands.FrozenError)):
		// tried again at the next sweep: after the freeze, or the other request
	default:
		return fmt.Errorf("ending the holds of %s in %s: %w", strings.Join(services, ", "), env.Name, err)
	}
	return nil
}

// movesNoImage reports whether an unhold's Plan only restores what the
// holds changed, rolling nothing.
func movesNoImage(p plan.Plan) bool {
	for _, t := range p.Targets {
		if !t.Unchanged && t.From.Digest != t.To.Digest {
			return false
		}
	}
	return true
}
