package demo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/internal/rbac"
	"github.com/deploybot/deploybot/registry"
	"k8s.io/apimachinery/pkg/types"
)

const triggerKey = fakeopenshift.TriggerAnnotation

// Cluster is the demo's OpenShift: one fake cluster (a Kubernetes and an
// image fake clientset, with the openshift-apiserver reactors of
// fakeopenshift, the kube-apiserver strategies of InstallKubeAPIServer and
// the RBAC of the demo users) per distinct kubeconfig and context of the
// config's environments, all pulling from one in-memory registry. Start
// runs the controllers that make it move: the image trigger controller,
// the deployment, ReplicaSet and StatefulSet controllers, the garbage
// collector, the kubelet and the scheduled importer.
type Cluster struct {
	cfg       *config.Config
	opts      options
	registry  *fakeopenshift.Registry
	clusters  []*fakeCluster
	envs      map[string]*fakeCluster
	broken    map[string]string // "service/env" → digest
	brokenSet map[string]bool
	// oci is the registry of the plain Kubernetes environments (oci.go);
	// nil when the config has none.
	oci *ociRegistry
	// git are the demo repositories by config name (git.go), served to
	// go-git's https transport (githosting.go); CI builds their stable
	// branches (ci.go).
	git map[string]*gitRepo
	// ciImages counts the images pushed per "repo:tag", so each CI build
	// gets the next deterministic digest.
	ciMu     sync.Mutex
	ciImages map[string]int

	mu      sync.Mutex
	cancel  context.CancelFunc
	running sync.WaitGroup
}

// fakeCluster is one API server and its controllers.
type fakeCluster struct {
	kube    *kubefake.Clientset
	images  *kubefake.ImageClientset
	server  *fakeopenshift.Server
	api     *kubeAPIServer
	trigger *fakeopenshift.TriggerController

	// stepMu keeps Step and the tick loop from running the controllers at
	// the same time.
	stepMu sync.Mutex
	ctrl   *controllers
}

type options struct {
	tick            time.Duration
	now             func() time.Time
	scheduledImport time.Duration
	firstImport     time.Duration
	brokenNext      map[string]bool // "service/env"
	workloads       map[string][]config.Workload
	broken          map[string]bool
	onError         func(error)
	buildDelay      time.Duration
}

// Option configures New.
type Option func(*options)

// WithTick sets how often the controllers act (default 500ms). A new pod is
// ContainerCreating for a tick and Ready (or failing) the next, so a pod
// takes about a second and a rollout a few seconds.
func WithTick(d time.Duration) Option { return func(o *options) { o.tick = d } }

// WithClock sets the clock for timestamps, the seeded history's ages and
// the progress deadline (default time.Now). Rollouts advance by ticks, not
// by this clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithScheduledImport sets how often tags with importPolicy.scheduled are
// re-imported (default 15 minutes, as on OpenShift; 0 disables).
func WithScheduledImport(d time.Duration) Option { return func(o *options) { o.scheduledImport = d } }

// WithFirstScheduledImport makes the first scheduled import come d after
// Start rather than a whole interval, as when OpenShift's scheduled
// importer happens to be due soon (the demo's deploy feed then has
// something to show).
func WithFirstScheduledImport(d time.Duration) Option { return func(o *options) { o.firstImport = d } }

// WithBrokenNext makes the image of service that env's registry tag has
// but env has not imported yet never become Ready (CrashLoopBackOff), so
// the next import of it fails its rollout.
func WithBrokenNext(env, service string) Option {
	return func(o *options) { o.brokenNext[service+"/"+env] = true }
}

// WithWorkloads sets the workloads seeded for a service whose config lists
// none (default: the packit layout for packit-worker, otherwise one
// Deployment named after the service).
func WithWorkloads(service string, ws ...config.Workload) Option {
	return func(o *options) { o.workloads[service] = ws }
}

// WithBrokenServices names the services that get a never-Ready image in
// their history (default packit-worker and packit-service).
func WithBrokenServices(services ...string) Option {
	return func(o *options) {
		o.broken = map[string]bool{}
		for _, s := range services {
			o.broken[s] = true
		}
	}
}

// WithErrorHandler receives the errors the running controllers meet
// (default: dropped; every controller retries on its next tick).
func WithErrorHandler(f func(error)) Option { return func(o *options) { o.onError = f } }

// New builds the demo cluster for cfg: per environment and service an
// ImageStream whose tag has historyLen imported images (the newest
// current) and one more pushed to the registry but not imported, the
// workloads following it through image.openshift.io/triggers with their
// rollout history, and RBAC for the demo users alice, bob and carol. A
// plain Kubernetes environment gets the same history in the demo's OCI
// registry and workloads instead (kubernetes.go); that registry serves
// while the cluster runs (Start to Stop).
//
// Each repository of cfg with an HTTPS URL gets a demo git repository
// (git.go) with a fixed history, and the images its services have in its
// environment carry revision labels from that history. New makes go-git's
// https transport serve them, for the whole process (githosting.go).
func New(cfg *config.Config, opts ...Option) (*Cluster, error) {
	if cfg == nil || len(cfg.Environments) == 0 {
		return nil, errors.New("building the demo cluster: the config has no environments")
	}
	o := options{
		tick:            500 * time.Millisecond,
		now:             time.Now,
		scheduledImport: 15 * time.Minute,
		workloads:       map[string][]config.Workload{},
		brokenNext:      map[string]bool{},
		broken:          map[string]bool{"packit-worker": true, "packit-service": true},
		onError:         func(error) {},
	}
	for s, ws := range packitWorkloads {
		o.workloads[s] = ws
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.tick <= 0 {
		return nil, fmt.Errorf("building the demo cluster: tick %v is not positive", o.tick)
	}
	c := &Cluster{
		cfg: cfg, opts: o, registry: fakeopenshift.NewRegistry(),
		envs: map[string]*fakeCluster{}, broken: map[string]string{}, brokenSet: map[string]bool{},
		ciImages: map[string]int{},
	}
	var err error
	if c.git, err = newGitRepos(cfg); err != nil {
		return nil, fmt.Errorf("building the demo cluster: %w", err)
	}
	hosts, err := kubeHosts(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the demo cluster: %w", err)
	}
	if len(hosts) > 0 {
		if c.oci, err = newOCIRegistry(hosts); err != nil {
			return nil, fmt.Errorf("building the demo cluster: %w", err)
		}
	}
	byKey := map[string]*fakeCluster{}
	usedNS := map[string]string{}
	for _, env := range cfg.Environments {
		if env.Namespace == "" {
			return nil, fmt.Errorf("building the demo cluster: environment %s has no namespace", env.Name)
		}
		if env.Tag == "" {
			env.Tag = env.Name
		}
		key := env.Kubeconfig + "\x00" + env.Context
		fc, ok := byKey[key]
		if !ok {
			fc = c.newFakeCluster()
			byKey[key] = fc
			c.clusters = append(c.clusters, fc)
		}
		if other, dup := usedNS[key+"\x00"+env.Namespace]; dup {
			return nil, fmt.Errorf("building the demo cluster: environments %s and %s share namespace %s on one cluster; the demo needs one namespace per environment", other, env.Name, env.Namespace)
		}
		usedNS[key+"\x00"+env.Namespace] = env.Name
		for _, svc := range cfg.Services {
			if _, _, _, err := fakeopenshift.ParseReference(svc.Repository + ":" + env.Tag); err != nil {
				return nil, fmt.Errorf("building the demo cluster: service %s: repository %q: %w", svc.Name, svc.Repository, err)
			}
		}
		seed := c.seedEnv
		if env.Kubernetes() {
			seed = c.seedKubeEnv
		}
		if err := seed(fc, env); err != nil {
			return nil, fmt.Errorf("building the demo cluster: environment %s: %w", env.Name, err)
		}
		c.envs[env.Name] = fc
	}
	hosting.serve(c.git)
	return c, nil
}

func (c *Cluster) newFakeCluster() *fakeCluster {
	kube := kubefake.NewClientset()
	images := kubefake.NewImageClientset()
	fc := &fakeCluster{kube: kube, images: images}
	fc.api = installKubeAPIServer(kube, c.opts.now)
	fc.server = fakeopenshift.Install(images, c.registry, fakeopenshift.WithClock(c.opts.now))
	rbac.InstallRBACReactor(kube)
	// Reviews bypass the reactor chain, which would record each one.
	kube.SetAuthorization(rbac.NewReviewer(kube.Tracker()))
	fc.trigger = fakeopenshift.NewTriggerController(kube, images.ImageV1(),
		fakeopenshift.TriggerOnError(func(err error) { c.opts.onError(fmt.Errorf("image trigger controller: %w", err)) }))
	fc.ctrl = &controllers{
		kube: kube, images: images.ImageV1(), registry: c.registry, now: c.opts.now,
		broken:    func(d string) bool { return c.brokenSet[d] },
		firstSeen: map[types.UID]int64{},
	}
	if c.oci != nil {
		fc.ctrl.pullable = c.oci.pullable
	}
	return fc
}

// EnvClients returns the clients of every environment, for cluster.NewSet.
// A plain Kubernetes environment has no image API; it reads the demo
// registry with the registry client (reaching it needs Start), and its
// image history is the caller's to set (the bot's store).
func (c *Cluster) EnvClients() map[string]cluster.EnvClient {
	out := map[string]cluster.EnvClient{}
	for _, env := range c.cfg.Environments {
		fc := c.envs[env.Name]
		if env.Kubernetes() {
			out[env.Name] = cluster.EnvClient{Kube: fc.kube, Namespace: env.Namespace, Kubernetes: &cluster.Kubernetes{
				Registry:  cluster.RegistryClient(c.oci.client),
				Services:  cluster.KubernetesServices(c.cfg),
				Scheduled: env.Scheduled,
			}}
			continue
		}
		out[env.Name] = cluster.EnvClient{Kube: fc.kube, Images: fc.images, Namespace: env.Namespace}
	}
	return out
}

// RegistryClient returns the client that reads the registry of the plain
// Kubernetes environments, or nil when the config has none. It reaches the
// registry while the demo runs.
func (c *Cluster) RegistryClient() *registry.Client {
	if c.oci == nil {
		return nil
	}
	return c.oci.client
}

// PushImage pushes the n-th demo image of service's repository to tag, as
// CI would (plain Kubernetes environments; n above historyLen+1 is an image
// nothing has seen yet), and returns its digest. It is deterministic like
// the seeded ones.
func (c *Cluster) PushImage(ctx context.Context, service, tag string, n int) (string, error) {
	if c.oci == nil {
		return "", errors.New("the demo has no plain Kubernetes environment, so no OCI registry")
	}
	for _, s := range c.cfg.Services {
		if s.Name == service {
			return c.oci.push(ctx, s.Repository, tag, n)
		}
	}
	return "", fmt.Errorf("no service %q in the config", service)
}

// BrokenDigest returns the digest in service's history on env whose pods
// never become Ready (CrashLoopBackOff), or "" when the service has none.
func (c *Cluster) BrokenDigest(service, env string) string { return c.broken[service+"/"+env] }

// Registry returns the registry all environments pull from.
func (c *Cluster) Registry() *fakeopenshift.Registry { return c.registry }

// Kube returns the Kubernetes fake clientset of env's cluster, or nil.
func (c *Cluster) Kube(env string) *kubefake.Clientset {
	if fc := c.envs[env]; fc != nil {
		return fc.kube
	}
	return nil
}

// Images returns the image fake clientset of env's cluster, or nil.
func (c *Cluster) Images(env string) *kubefake.ImageClientset {
	if fc := c.envs[env]; fc != nil {
		return fc.images
	}
	return nil
}

// ImageServer returns the fake openshift-apiserver of env's cluster, or
// nil, e.g. to inject conflicts.
func (c *Cluster) ImageServer(env string) *fakeopenshift.Server {
	if fc := c.envs[env]; fc != nil {
		return fc.server
	}
	return nil
}

// Start runs the controllers until ctx is done or Stop is called.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("the demo cluster is already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	if c.oci != nil {
		c.running.Add(1)
		if err := c.oci.serve(ctx, c.running.Done); err != nil {
			c.running.Done()
			cancel()
			return err
		}
	}
	c.cancel = cancel
	c.startCI(ctx)
	for _, fc := range c.clusters {
		c.running.Add(2)
		go func() {
			defer c.running.Done()
			_ = fc.trigger.Run(ctx)
		}()
		go func() {
			defer c.running.Done()
			c.tickLoop(ctx, fc)
		}()
	}
	if c.opts.scheduledImport > 0 {
		c.running.Add(1)
		go func() {
			defer c.running.Done()
			wait := c.opts.scheduledImport
			if c.opts.firstImport > 0 {
				wait = c.opts.firstImport
			}
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
					wait = c.opts.scheduledImport
					for _, fc := range c.clusters {
						if err := fc.server.ImportScheduled(); err != nil {
							c.opts.onError(err)
						}
					}
				}
			}
		}()
	}
	return nil
}

// Stop stops the controllers and the registry's listener and waits for
// them to return.
func (c *Cluster) Stop() {
	c.mu.Lock()
	cancel := c.cancel
	c.cancel = nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.running.Wait()
}

// Step runs one tick of every controller synchronously — the trigger
// controller, then the kube-controller-manager controllers and the kubelet —
// for tests that drive the cluster without Start.
func (c *Cluster) Step(ctx context.Context) error {
	var errs []error
	for _, fc := range c.clusters {
		errs = append(errs, fc.trigger.Sync(ctx), fc.step(ctx))
	}
	return errors.Join(errs...)
}

// clearActionsEvery bounds the memory of a long demo session: the fake
// clientsets record every request they serve.
const clearActionsEvery = 60

func (fc *fakeCluster) step(ctx context.Context) error {
	fc.stepMu.Lock()
	defer fc.stepMu.Unlock()
	err := fc.ctrl.step(ctx)
	if fc.ctrl.ticks%clearActionsEvery == 0 {
		fc.kube.ClearActions()
		fc.images.ClearActions()
	}
	return err
}

func (c *Cluster) tickLoop(ctx context.Context, fc *fakeCluster) {
	t := time.NewTicker(c.opts.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := fc.step(ctx); err != nil && ctx.Err() == nil {
				c.opts.onError(err)
			}
		}
	}
}
