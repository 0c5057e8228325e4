package demo

import (
	"context"
	"fmt"
	"slices"

	"github.com/deploybot/deploybot/config"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// A plain Kubernetes environment of the demo (platform: kubernetes) has no
// ImageStreams: its services' images are in the demo's OCI registry
// (oci.go), historyLen+1 per repository and tag, and its workloads — those
// each service lists — run image historyLen as REPO:TAG@DIGEST with the
// rollout history of images 1..historyLen and no trigger annotations, so
// the tag names one image not deployed yet and `import` has something to
// do. Nothing but deploybot changes their images, as in such a cluster.

// kubeHosts are the registry hosts of the services, as the registry client
// reads them, when the config has a plain Kubernetes environment.
func kubeHosts(cfg *config.Config) ([]string, error) {
	if !slices.ContainsFunc(cfg.Environments, func(e config.Environment) bool { return e.Kubernetes() }) {
		return nil, nil
	}
	var hosts []string
	for _, s := range cfg.Services {
		r, err := name.NewRepository(s.Repository)
		if err != nil {
			return nil, fmt.Errorf("service %s: repository %q: %w", s.Name, s.Repository, err)
		}
		if h := r.RegistryStr(); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}

// seedKubeEnv fills fc with a plain Kubernetes environment: per service the
// images in the registry and the listed workloads on image historyLen, and
// the same RBAC as any demo environment.
func (c *Cluster) seedKubeEnv(fc *fakeCluster, env config.Environment) error {
	ctx := context.Background()
	now := c.opts.now()
	ns := env.Namespace
	add := func(objs ...runtime.Object) error {
		for _, o := range objs {
			if err := fc.kube.Tracker().Add(o); err != nil {
				return fmt.Errorf("seeding %s: %w", ns, err)
			}
		}
		return nil
	}
	if err := add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, UID: fc.api.nextUID(), ResourceVersion: fc.api.nextRV()}}); err != nil {
		return err
	}
	for _, svc := range c.cfg.Services {
		digests := make([]string, historyLen+2)
		for n := 1; n <= historyLen+1; n++ {
			d, err := c.oci.pushImage(ctx, svc.Repository, env.Tag, n, c.seedLabels(svc, env, n))
			if err != nil {
				return fmt.Errorf("service %s: %w", svc.Name, err)
			}
			digests[n] = d
		}
		if c.opts.broken[svc.Name] {
			c.broken[svc.Name+"/"+env.Name] = digests[brokenN]
			c.brokenSet[digests[brokenN]] = true
		}
		workloads := svc.Workloads
		if len(workloads) == 0 {
			workloads = c.opts.workloads[svc.Name]
		}
		if len(workloads) == 0 {
			workloads = []config.Workload{{Kind: "Deployment", Name: svc.Name}}
		}
		for _, w := range workloads {
			objs, err := seedWorkload(fc, env, w, kubeSeed(env, svc, w, digests), now)
			if err != nil {
				return fmt.Errorf("service %s: %w", svc.Name, err)
			}
			if err := add(objs...); err != nil {
				return err
			}
		}
	}
	return add(c.rbacObjects(fc, env)...)
}

// kubeSeed is a plain Kubernetes workload: its container runs
// REPO:TAG@DIGEST, as deploybot sets it, and each rollout was CI setting
// the image.
func kubeSeed(env config.Environment, svc config.Service, w config.Workload, digests []string) workloadSeed {
	container := w.Container
	if container == "" {
		container = w.Name
	}
	labels := map[string]string{"app": svc.Name, "component": w.Name}
	return workloadSeed{
		repo: svc.Repository, digests: digests,
		image: func(n int) string { return svc.Repository + ":" + env.Tag + "@" + digests[n] },
		cause: func(n int) string {
			return fmt.Sprintf("CI deployed %s:%s %s", svc.Name, env.Tag, digests[n][:len("sha256:")+12])
		},
		template: func(image string) corev1.PodTemplateSpec {
			return corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  container,
					Image: image,
					Env:   []corev1.EnvVar{{Name: "DEPLOYMENT", Value: "demo"}},
				}}},
			}
		},
		labels: labels,
	}
}
