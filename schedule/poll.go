package schedule

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// A plain Kubernetes environment with `scheduled: true` has no ImageStream
// whose scheduled import notices a moved tag, so the scheduler does what
// that import does: every pollInterval it asks the registry for each
// service's tag (one HEAD request each) and, when a digest is new — not in
// the environment's image history, so an undo is not undone by the next poll
// — opens `import ENV` as the schedule, announced in the env's channel, under
// the env's policy like a cron run. Paused schedules pause the poll too.

// Registry answers what a service's tag names in the registry now; the
// cluster Set implements it (RegistryImage).
type Registry interface {
	RegistryImage(ctx context.Context, env, stream, tag string) (plan.Image, error)
}

// WithRegistry lets the scheduler poll the registry for plain Kubernetes
// environments with scheduled: true.
func WithRegistry(r Registry) Option { return func(s *Scheduler) { s.registry = r } }

// polledEnvs are the environments the scheduler polls.
func (s *Scheduler) polledEnvs() []*config.Environment {
	if s.registry == nil {
		return nil
	}
	var out []*config.Environment
	for i := range s.cfg.Environments {
		if e := &s.cfg.Environments[i]; e.Kubernetes() && e.Scheduled {
			out = append(out, e)
		}
	}
	return out
}

// pollLoop polls each polled environment at once and then every
// e.Poll(), until ctx ends.
func (s *Scheduler) pollLoop(ctx context.Context, envs []*config.Environment) {
	next := make(map[string]time.Time, len(envs))
	for {
		now := s.now()
		var wake time.Time
		for _, e := range envs {
			if at, ok := next[e.Name]; !ok || !now.Before(at) {
				s.poll(ctx, e, now)
				next[e.Name] = now.Add(e.Poll())
			}
			wake = earliest(wake, next[e.Name])
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.Until(wake):
		}
	}
}

// poll asks the registry about every service of env once and opens an
// import when one has a digest the history does not know.
func (s *Scheduler) poll(ctx context.Context, env *config.Environment, now time.Time) {
	if _, paused, err := s.pausedAt(ctx, env, now); err != nil || paused {
		if err != nil {
			s.log.Error("polling the registry", "env", env.Name, "err", err)
		}
		return
	}
	if _, frozen := env.FrozenAt(now); frozen {
		// Not looked at: the first poll after the window imports what came.
		return
	}
	var news []string
	var seen []store.ImageRecord
	for i := range s.cfg.Services {
		svc := &s.cfg.Services[i]
		img, err := s.registry.RegistryImage(ctx, env.Name, svc.Stream(), env.ImageTag())
		if err != nil {
			s.log.Warn("polling the registry", "env", env.Name, "service", svc.Name, "err", err)
			continue
		}
		if !plan.IsDigest(img.Digest) {
			continue
		}
		known, err := s.store.Images(ctx, env.Name, svc.Name)
		if err != nil {
			s.log.Error("reading the image history", "env", env.Name, "service", svc.Name, "err", err)
			continue
		}
		if slices.ContainsFunc(known, func(r store.ImageRecord) bool { return r.Digest == img.Digest }) {
			continue
		}
		if s.tags != nil {
			if st, err := s.tags.Tag(ctx, env.Name, svc.Stream(), env.ImageTag()); err == nil && st.Hold != nil {
				continue // not seen yet: the first poll after unhold imports it
			}
		}
		seen = append(seen, store.ImageRecord{Env: env.Name, Service: svc.Name, Digest: img.Digest, Ref: img.Ref, Seen: now})
		news = append(news, fmt.Sprintf("%s %s", svc.Name, plan.ShortDigest(img.Digest)))
	}
	if len(news) == 0 {
		return
	}
	at := now.Truncate(time.Minute)
	note := fmt.Sprintf("The registry has new images: %s.", strings.Join(news, ", "))
	if _, err := s.open(ctx, env, at, note); err != nil {
		// Not recorded as seen: the next poll tries again.
		s.log.Error("opening the import of new registry images", "env", env.Name, "err", err)
		return
	}
	for _, rec := range seen {
		if err := s.store.RecordImage(ctx, rec); err != nil {
			s.log.Error("recording a new image", "env", env.Name, "service", rec.Service, "err", err)
		}
	}
}
