package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// holdEndWindow is how long after its --until time a hold is still ended:
// one older than that was left by a deploybot that was down all along,
// and is left to people.
const holdEndWindow = 7 * 24 * time.Hour

// EndHolds ends the holds whose --until time has come: for each hold
// request that placed them it opens `unhold ENV SERVICE...` as the bot's
// own identity, approved by the hold's approval (its Plan showed the
// end), once per hold (the request ID is the hold's with "-until"). A
// service that is no longer held, or held anew, is left alone. The
// leader calls it with every sweep.
func (s *Scheduler) EndHolds(ctx context.Context) error {
	if s.tags == nil {
		return nil
	}
	reqs, err := s.store.List(ctx, store.ListOptions{States: []store.State{store.Succeeded, store.Failed}})
	if err != nil {
		return fmt.Errorf("listing holds: %w", err)
	}
	now := s.now()
	var errs []error
	for _, r := range reqs {
		if r.Plan.Action != plan.ActionHold {
			continue
		}
		env, ok := s.cfg.Env(r.Plan.Env)
		if !ok {
			continue
		}
		var due []string
		for _, t := range r.Plan.Targets {
			h := t.Hold
			if t.Unchanged || h == nil || h.Until.IsZero() || now.Before(h.Until) || now.Sub(h.Until) > holdEndWindow {
				continue
			}
			ts, err := s.tags.Tag(ctx, env.Name, t.Stream, t.Tag)
			if err != nil {
				errs = append(errs, fmt.Errorf("reading %s in %s: %w", t.Service, env.Name, err))
				continue
			}
			if ts.Hold == nil || !ts.Hold.Until.Equal(h.Until) || ts.Hold.Reason != h.Reason {
				continue // unheld meanwhile, or held anew
			}
			due = append(due, t.Service)
		}
		if len(due) == 0 {
			continue
		}
		text := "unhold " + env.Name + " " + strings.Join(due, " ")
		o := lifecycle.Open{Caller: s.caller(env.Name), ID: r.ID + "-until", AutoApprove: true,
			Command: plan.Command{Name: "unhold", Env: env.Name, Services: due, Text: text},
			Note:    fmt.Sprintf("hold #%s ends at its --until time", r.ID)}
		switch {
		case env.Channel != nil:
			o.Platform, o.Channel = env.Channel.Platform, env.Channel.ID
		case r.Channel != "":
			o.Platform, o.Channel = r.Requester.Platform, r.Channel // where the hold was asked for
		}
		_, err := s.life.Open(ctx, o)
		var busy *store.BusyError
		switch {
		case err == nil:
			s.log.Info("a hold ended at its --until time", "env", env.Name, "services", due, "hold", r.ID)
		case errors.Is(err, store.ErrExists):
			// ended once already (another replica, or a run that failed)
		case errors.As(err, &busy), errors.As(err, new(*commands.FrozenError)):
			// tried again at the next sweep: after the freeze, or the other request
		default:
			errs = append(errs, fmt.Errorf("ending hold #%s: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}
