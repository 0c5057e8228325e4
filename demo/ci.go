package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/registry"
)

// The demo's CI: while the demo runs, a push that moves a demo
// repository's stable branch to X is built, after the build delay, into a
// new image of every service the repository builds, pushed to the tag of
// the repository's environment and labelled as packit's CI labels it:
// org.opencontainers.image.revision X, .source the repository's URL,
// .created the demo clock's now. An OpenShift environment's images go to
// the demo registry the ImageStreams import from, a plain Kubernetes one's
// to the demo's OCI registry. Failures go to the error handler, never to
// stdout (the terminal chat prints stdout).

// buildTicks is the default build delay in ticks: 3s at the default tick.
const buildTicks = 6

// WithBuildDelay sets how long the demo's CI takes to build the images of
// a stable branch after a push moves it (default 6 ticks: 3s at the
// default tick).
func WithBuildDelay(d time.Duration) Option { return func(o *options) { o.buildDelay = d } }

// buildDelay is the configured build delay.
func (c *Cluster) buildDelay() time.Duration {
	if c.opts.buildDelay > 0 {
		return c.opts.buildDelay
	}
	return buildTicks * c.opts.tick
}

// startCI runs one CI loop per demo repository that builds images; the
// caller holds c.mu and has set c.cancel.
func (c *Cluster) startCI(ctx context.Context) {
	for _, g := range c.git {
		if len(g.cfg.Services) == 0 {
			continue
		}
		c.running.Add(1)
		go func() {
			defer c.running.Done()
			c.runCI(ctx, g)
		}()
	}
}

// build is one queued build: a stable SHA and when its images are pushed.
type build struct {
	sha string
	due time.Time
}

// runCI builds g's stable branch each time it moves, in push order.
func (c *Cluster) runCI(ctx context.Context, g *gitRepo) {
	var queue []build
	// A push before Start (or between Stop and Start) is built too.
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-g.moved:
		case <-timer.C:
		}
		if sha, err := g.head(g.cfg.StableBranch()); err != nil {
			c.opts.onError(fmt.Errorf("demo CI: %w", err))
		} else if sha != g.built {
			g.built = sha
			queue = append(queue, build{sha: sha, due: time.Now().Add(c.buildDelay())})
		}
		for len(queue) > 0 && !time.Now().Before(queue[0].due) {
			if err := c.buildImages(ctx, g, queue[0].sha); err != nil && ctx.Err() == nil {
				c.opts.onError(fmt.Errorf("demo CI: building %s@%s: %w", g.cfg.Name, queue[0].sha[:7], err))
			}
			queue = queue[1:]
		}
		if len(queue) > 0 {
			timer.Reset(time.Until(queue[0].due))
		}
	}
}

// buildImages pushes a new image built from sha for each service of g.
func (c *Cluster) buildImages(ctx context.Context, g *gitRepo, sha string) error {
	env, ok := c.cfg.Env(g.cfg.Env)
	if !ok {
		return fmt.Errorf("no environment %q", g.cfg.Env)
	}
	labels := map[string]string{
		registry.LabelRevision: sha,
		registry.LabelSource:   g.cfg.URL,
		registry.LabelCreated:  c.opts.now().UTC().Format(time.RFC3339),
	}
	var errs []error
	for _, name := range g.cfg.Services {
		svc, ok := c.cfg.Service(name)
		if !ok {
			errs = append(errs, fmt.Errorf("no service %q", name))
			continue
		}
		if err := c.pushBuilt(ctx, env, svc.Repository, labels); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", svc.Name, err))
		}
	}
	return errors.Join(errs...)
}

// pushBuilt pushes the next image of repo:TAG of env with labels.
func (c *Cluster) pushBuilt(ctx context.Context, env *config.Environment, repo string, labels map[string]string) error {
	tag := env.ImageTag()
	c.ciMu.Lock()
	key := repo + ":" + tag
	if c.ciImages[key] == 0 {
		c.ciImages[key] = historyLen + 1 // the seeded ones
	}
	c.ciImages[key]++
	n := c.ciImages[key]
	c.ciMu.Unlock()
	if env.Kubernetes() {
		_, err := c.oci.pushImage(ctx, repo, tag, n, labels)
		return err
	}
	c.registry.PushImage(repo, tag, fakeopenshift.Digest(repo, tag, n), labels)
	return nil
}

// ImageRegistry answers for the images of every configured service from
// the demo registry that holds them — the one the ImageStreams import from,
// or the OCI registry of the plain Kubernetes environments (reached while
// the demo runs) — with each image's revision, source and creation time
// from its labels: what a release waits on for its builds.
func (c *Cluster) ImageRegistry() cluster.Registry { return demoImages{c} }

type demoImages struct{ c *Cluster }

// inOCI reports whether repo:tag is an image of a plain Kubernetes
// environment, which the OCI registry holds.
func (r demoImages) inOCI(tag string) bool {
	if r.c.oci == nil {
		return false
	}
	for i := range r.c.cfg.Environments {
		if e := &r.c.cfg.Environments[i]; e.Kubernetes() && e.ImageTag() == tag {
			return true
		}
	}
	return false
}

// service checks repo is a configured service's repository.
func (r demoImages) service(repo string) error {
	var repos []string
	for _, s := range r.c.cfg.Services {
		if s.Repository == repo {
			return nil
		}
		repos = append(repos, s.Repository)
	}
	return fmt.Errorf("%s is not the repository of a demo service (%s)", repo, strings.Join(repos, ", "))
}

func (r demoImages) Resolve(ctx context.Context, repo, tag string) (plan.Image, error) {
	if err := r.service(repo); err != nil {
		return plan.Image{}, err
	}
	if r.inOCI(tag) {
		return cluster.RegistryClient(r.c.oci.client).Resolve(ctx, repo, tag)
	}
	d, err := r.c.registry.Lookup(repo + ":" + tag)
	if err != nil {
		return plan.Image{}, fmt.Errorf("resolving %s:%s: %w", repo, tag, err)
	}
	return r.image(repo+":"+tag+"@"+d, d), nil
}

func (r demoImages) Lookup(ctx context.Context, repo, digest string) (plan.Image, error) {
	if err := r.service(repo); err != nil {
		return plan.Image{}, err
	}
	d, err := r.c.registry.Lookup(repo + "@" + digest)
	if err != nil && r.c.oci != nil {
		return cluster.RegistryClient(r.c.oci.client).Lookup(ctx, repo, digest)
	}
	if err != nil {
		return plan.Image{}, fmt.Errorf("looking up %s@%s: %w", repo, digest, err)
	}
	return r.image(repo+"@"+d, d), nil
}

// image is the fake registry's image digest under ref, with its labels.
func (r demoImages) image(ref, digest string) plan.Image {
	labels := r.c.registry.Labels(digest)
	img := plan.Image{Ref: ref, Digest: digest, Revision: labels[registry.LabelRevision], Source: labels[registry.LabelSource]}
	if t, err := time.Parse(time.RFC3339Nano, labels[registry.LabelCreated]); err == nil {
		img.Created = t
	}
	return img
}
