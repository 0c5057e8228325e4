package commands

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// UserError is a problem the user can fix, or a refusal; Output is the reply
// (say what was wrong and what would be right). Callers find it with
// errors.As; any other error from Run or BuildPlan is an internal failure.
type UserError struct {
	Output Output
}

// UserFacing marks the error as one for the user, not a failure to read
// state: the request lifecycle, which knows no Output, tells them apart by it.
func (e *UserError) UserFacing() bool { return true }

func (e *UserError) Error() string {
	var parts []string
	for _, s := range e.Output.Sections {
		parts = append(parts, s.Lines...)
	}
	if len(parts) == 0 {
		return e.Output.Title
	}
	return strings.Join(parts, " ")
}

// userFail is a *UserError whose reply is the given lines, privately.
func userFail(format string, args ...any) *UserError {
	return &UserError{Output: Output{Private: true, Sections: []Section{{Lines: []string{fmt.Sprintf(format, args...)}}}}}
}

// Run answers a read-only command (help, status, images, history, whoami).
// Chat users who are not mapped to a Kubernetes identity may run only help
// and whoami; anything else is a *UserError saying how to get mapped.
func Run(ctx context.Context, d Deps, caller plan.Caller, c plan.Command) (Output, error) {
	spec, ok := Lookup(c.Name)
	if !ok {
		return Output{}, fmt.Errorf("running %q: no such command", c.Name)
	}
	if spec.run == nil {
		return Output{}, fmt.Errorf("running %s: not a read-only command (use BuildPlan, or the approval flow for Flow commands)", c.Name)
	}
	if d.Config == nil {
		return Output{}, fmt.Errorf("running %s: no config", c.Name)
	}
	if caller.User == "" && !spec.Anyone {
		return Output{}, unmapped(caller)
	}
	return spec.run(ctx, d, caller, c)
}

// unmapped is the refusal for a chat user without a Kubernetes identity.
func unmapped(caller plan.Caller) *UserError {
	return userFail("%s", config.NotMapped(caller.Platform, caller.ChatID))
}

func (d Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// envOf looks up the Command's environment again; the config may have been
// reloaded since the command was parsed.
func envOf(cfg *config.Config, name string) (*config.Environment, error) {
	if e, ok := findEnv(cfg, name); ok {
		return e, nil
	}
	return nil, userFail("Unknown environment %q. Environments: %s.", name, listed(envNames(cfg)))
}

// serviceIn resolves the environment and the one service of a command that
// takes "SERVICE [ENV]" (history, images, revert, track, undo).
func serviceIn(cfg *config.Config, c plan.Command) (*config.Environment, *config.Service, error) {
	e, err := envOf(cfg, c.Env)
	if err != nil {
		return nil, nil, err
	}
	s, err := serviceOf(cfg, firstService(c))
	if err != nil {
		return nil, nil, err
	}
	return e, s, nil
}

func serviceOf(cfg *config.Config, name string) (*config.Service, error) {
	if s, ok := findService(cfg, name); ok {
		return s, nil
	}
	return nil, userFail("Unknown service %q. Services: %s.", name, listed(serviceNames(cfg)))
}

// servicesOf resolves names; none means every configured service.
func servicesOf(cfg *config.Config, names []string) ([]*config.Service, error) {
	if len(names) == 0 {
		all := make([]*config.Service, len(cfg.Services))
		for i := range cfg.Services {
			all[i] = &cfg.Services[i]
		}
		return all, nil
	}
	var out []*config.Service
	for _, n := range names {
		s, err := serviceOf(cfg, n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// streamOf and tagOf apply the config defaults, so a Config built in code
// without SetDefaults behaves the same.
// serviceWorkloads are the workloads that follow the service's tag in env:
// the config's list when it has one (read for their state and triggers),
// otherwise those whose image.openshift.io/triggers name the tag.
func serviceWorkloads(ctx context.Context, d Deps, e *config.Environment, s *config.Service) ([]plan.Workload, error) {
	if len(s.Workloads) == 0 {
		ws, err := d.Cluster.TriggeredWorkloads(ctx, e.Name, s.Stream(), e.ImageTag())
		if err != nil {
			return nil, fmt.Errorf("finding the workloads of %s:%s in %s: %w", s.Stream(), e.ImageTag(), e.Name, err)
		}
		return ws, nil
	}
	var ws []plan.Workload
	for _, cw := range s.Workloads {
		w, err := d.Cluster.Workload(ctx, e.Name, cw.Kind, cw.Name)
		if err != nil {
			return nil, fmt.Errorf("reading %s %s in %s: %w", cw.Kind, cw.Name, e.Name, err)
		}
		if e.Kubernetes() {
			// The bot sets these containers' images itself: say now, not at
			// execution, when there are none.
			if _, err := plan.Containers(w.Images, cw.Container, s.Repository); err != nil {
				return nil, fmt.Errorf("%s %s in %s: %w", cw.Kind, cw.Name, e.Name, err)
			}
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// followsTag reports whether the image-trigger controller keeps w on the
// tag's image (an unpaused trigger naming the tag).
func followsTag(w plan.Workload, e *config.Environment, s *config.Service) bool {
	return followingTrigger(w, e, s) != nil
}

func followingTrigger(w plan.Workload, e *config.Environment, s *config.Service) *plan.Trigger {
	for i, t := range w.Triggers {
		if !t.Paused && t.Follows(e.Namespace, s.Stream(), e.ImageTag()) {
			return &w.Triggers[i]
		}
	}
	return nil
}

func workloadRef(w plan.Workload, e *config.Environment, s *config.Service) plan.WorkloadRef {
	if !e.Kubernetes() {
		return plan.WorkloadRef{Kind: w.Kind, Name: w.Name, Triggered: followsTag(w, e, s)}
	}
	// No triggers: the Plan names the containers the bot sets.
	ref := plan.WorkloadRef{Kind: w.Kind, Name: w.Name}
	for _, cw := range s.Workloads {
		if k, _ := plan.NormalizeKind(cw.Kind); k == w.Kind && cw.Name == w.Name {
			names, _ := plan.Containers(w.Images, cw.Container, s.Repository) // checked by serviceWorkloads
			ref.Containers = strings.Join(names, ",")
		}
	}
	return ref
}

// forEach runs f for 0..n-1 concurrently: reading several image streams or
// asking the registry about several images one after the other is slow.
func forEach(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}
