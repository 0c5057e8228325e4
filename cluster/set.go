package cluster

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/deploybot/deploybot/kubeclient"
)

// EnvClient is how deploybot reaches one environment: the clients of the
// cluster it lives on and the namespace its image streams and workloads are in.
type EnvClient struct {
	Kube      kubeclient.Interface
	Images    kubeclient.ImageV1
	Namespace string
	// Kubernetes is set for a plain Kubernetes environment, which has no
	// image API (Images is nil): the bot sets workload images itself.
	Kubernetes *Kubernetes
	// RevisionLabel is the image label naming the commit an image was built
	// from (registry.revisionLabel; default org.opencontainers.image.revision),
	// read from the image metadata OpenShift's imports return.
	RevisionLabel string
}

// Set holds one EnvClient per environment name. It answers the reads commands
// need to build Plans (it implements commands.Cluster) and executes Plans.
// A Set is safe for concurrent use; its only state of its own is what
// looking up image digests returned (immutable answers).
type Set struct {
	envs       map[string]EnvClient
	stuckAfter time.Duration
	digests    *digestCache
}

// Option configures a Set.
type Option func(*Set)

// WithStuckAfter sets how long Follow lets a pod of an OrderedReady
// StatefulSet sit not Ready on an old revision (without a container failure
// reason) before it calls the rollout stuck; default DefaultStuckAfter.
func WithStuckAfter(d time.Duration) Option {
	return func(s *Set) {
		if d <= 0 {
			d = time.Nanosecond // "at once": zero means the default
		}
		s.stuckAfter = d
	}
}

// NewSet returns a Set over the given environments, keyed by env name.
func NewSet(envs map[string]EnvClient, opts ...Option) *Set {
	m := make(map[string]EnvClient, len(envs))
	for name, c := range envs {
		m[name] = c
	}
	s := &Set{envs: m, digests: &digestCache{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Env returns the client of the named environment.
func (s *Set) Env(name string) (EnvClient, error) {
	c, ok := s.envs[name]
	if !ok {
		names := make([]string, 0, len(s.envs))
		for n := range s.envs {
			names = append(names, n)
		}
		sort.Strings(names)
		return EnvClient{}, fmt.Errorf("unknown environment %q (known: %s)", name, strings.Join(names, ", "))
	}
	switch {
	case c.Kube == nil || c.Namespace == "":
		return EnvClient{}, fmt.Errorf("environment %q is not fully configured (needs a Kubernetes client and a namespace)", name)
	case c.Kubernetes == nil && c.Images == nil:
		return EnvClient{}, fmt.Errorf("environment %q is not fully configured (an OpenShift environment needs the image API client)", name)
	case c.Kubernetes != nil && c.Kubernetes.Registry == nil:
		return EnvClient{}, fmt.Errorf("environment %q is plain Kubernetes but has no registry client", name)
	}
	return c, nil
}
