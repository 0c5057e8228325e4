package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/registry"
)

// A plain Kubernetes environment has no ImageStreams: deploybot is its own
// image-trigger controller. The same reads answer the commands (a service's
// "tag" is what its listed workloads run, its history what the bot
// recorded, the registry asked directly), and executing sets the listed
// containers' images to REPO:TAG@DIGEST — pinned by digest, so every pod of
// a rollout runs the same image, with the tag kept for people reading it.

// PinnedAnnotation marks a workload of a plain Kubernetes environment that
// revert pinned to an image: its value is REPO@DIGEST. Imports re-import
// that image and the poller leaves the workload alone until track removes
// the annotation, as a pinned ImageStream tag does on OpenShift.
const PinnedAnnotation = "deploybot.io/pinned"

// Registry is what a plain Kubernetes environment asks about images: the
// registry client in production and in the demo.
type Registry interface {
	// Resolve returns the image repo:tag names now (one HEAD request when
	// the digest is known), with Ref REPO:TAG@DIGEST.
	Resolve(ctx context.Context, repo, tag string) (plan.Image, error)
	// Lookup returns the image repo@digest, with Ref REPO@DIGEST.
	Lookup(ctx context.Context, repo, digest string) (plan.Image, error)
}

// ImageHistory is the record of the images each service has had in an
// environment (the store keeps it; the registry keeps no tag history).
type ImageHistory interface {
	Images(ctx context.Context, env, service string) ([]plan.ImageRecord, error)
}

// Service is one service of a plain Kubernetes environment: where its images
// come from and the workloads that run them.
type Service struct {
	Name       string
	Repository string
	Workloads  []ServiceWorkload
}

// ServiceWorkload is one workload of a Service; Container empty means every
// container whose image is from the service's repository.
type ServiceWorkload struct {
	Kind, Name, Container string
}

// Kubernetes is what an EnvClient of a plain Kubernetes environment needs
// beyond the Kubernetes clients.
type Kubernetes struct {
	Registry Registry
	History  ImageHistory
	// Services by the name the commands ask for them (the stream name:
	// imageStream, default the service name).
	Services map[string]Service
	// Scheduled: the bot polls the registry for this environment.
	Scheduled bool
}

// service returns the service a command asks for by stream name.
func (k *Kubernetes) service(stream string) (Service, error) {
	s, ok := k.Services[stream]
	if !ok {
		return Service{}, fmt.Errorf("no service %q is configured for this plain Kubernetes environment", stream)
	}
	if len(s.Workloads) == 0 {
		return Service{}, fmt.Errorf("service %s lists no workloads; a plain Kubernetes environment has no image triggers to find them by", s.Name)
	}
	return s, nil
}

// podTemplate reads a workload's pod template and annotations.
func (c EnvClient) podTemplate(ctx context.Context, kind, name string) (*corev1.PodTemplateSpec, map[string]string, error) {
	tmpl, meta, err := c.podTemplateMeta(ctx, kind, name)
	if err != nil {
		return nil, nil, err
	}
	return tmpl, meta.Annotations, nil
}

// podTemplateMeta reads a workload's pod template and metadata.
func (c EnvClient) podTemplateMeta(ctx context.Context, kind, name string) (*corev1.PodTemplateSpec, *metav1.ObjectMeta, error) {
	k, err := plan.NormalizeKind(kind)
	if err != nil {
		return nil, nil, err
	}
	if k == plan.KindDeployment {
		d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("reading deployment %s: %w", name, err)
		}
		return &d.Spec.Template, &d.ObjectMeta, nil
	}
	sts, err := c.Kube.AppsV1().StatefulSets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("reading statefulset %s: %w", name, err)
	}
	return &sts.Spec.Template, &sts.ObjectMeta, nil
}

// digestOf is the sha256 digest in an image reference, or "".
func digestOf(ref string) string {
	_, d, ok := strings.Cut(ref, "@")
	if !ok || !plan.IsDigest(d) {
		return ""
	}
	return d
}

// kubeTag is a service's "tag" in a plain Kubernetes environment: what its
// first listed workload runs (Current), whether revert pinned it (SpecFrom
// REPO@DIGEST) or it follows the registry tag (REPO:TAG), and the images the
// bot recorded for it (History, newest first, with what runs now on top).
func (c EnvClient) kubeTag(ctx context.Context, env, stream, tag string) (plan.TagState, error) {
	svc, err := c.Kubernetes.service(stream)
	if err != nil {
		return plan.TagState{}, err
	}
	w := svc.Workloads[0]
	tmpl, meta, err := c.podTemplateMeta(ctx, w.Kind, w.Name)
	if err != nil {
		return plan.TagState{}, err
	}
	annotations := meta.Annotations
	images := containerImages(tmpl)
	names, err := plan.Containers(images, w.Container, svc.Repository)
	if err != nil {
		return plan.TagState{}, fmt.Errorf("%s %s: %w", w.Kind, w.Name, err)
	}
	ts := plan.TagState{Stream: stream, Tag: tag, SpecFrom: svc.Repository + ":" + tag, SpecFromKind: "DockerImage", Scheduled: c.Kubernetes.Scheduled,
		ChangedBy: workloadChangedBy(meta.ManagedFields)}
	if pin := annotations[PinnedAnnotation]; pin != "" {
		ts.SpecFrom, ts.Scheduled = pin, false
	}
	ts.Hold = parseHold(annotations[HoldAnnotation])
	running := images[names[0]]
	var records []plan.ImageRecord
	if c.Kubernetes.History != nil {
		if records, err = c.Kubernetes.History.Images(ctx, env, svc.Name); err != nil {
			return plan.TagState{}, fmt.Errorf("reading the image history of %s: %w", svc.Name, err)
		}
	}
	if d := digestOf(running); d != "" {
		ts.Current = plan.TagEvent{Ref: running, Digest: d}
	}
	for _, r := range records {
		if r.Imported.IsZero() && r.Digest != ts.Current.Digest {
			continue // seen in the registry, never run
		}
		ev := plan.TagEvent{Created: r.Latest(), Ref: r.Ref, Digest: r.Digest}
		if r.Digest == ts.Current.Digest {
			ts.Current.Created = ev.Created
		}
		ts.History = append(ts.History, ev)
	}
	// What the workload's rollout history ran (ReplicaSets, ControllerRevisions)
	// counts too: images set before the bot, or by kubectl set image.
	has := func(d string) bool {
		return slices.ContainsFunc(ts.History, func(e plan.TagEvent) bool { return e.Digest == d })
	}
	revs, err := c.revisions(ctx, w.Kind, w.Name)
	if err != nil {
		return plan.TagState{}, err
	}
	for i := len(revs) - 1; i >= 0; i-- {
		ref := revs[i].Images[names[0]]
		if d := digestOf(ref); d != "" && !has(d) && plan.Repository(ref) == svc.Repository {
			ts.History = append(ts.History, plan.TagEvent{Created: revs[i].Created, Ref: ref, Digest: d})
			if d == ts.Current.Digest && ts.Current.Created.IsZero() {
				ts.Current.Created = revs[i].Created
			}
		}
	}
	if ts.Current.Digest != "" && !has(ts.Current.Digest) {
		ts.History = append([]plan.TagEvent{ts.Current}, ts.History...)
	}
	slices.SortStableFunc(ts.History, func(a, b plan.TagEvent) int {
		switch {
		case a.Digest == ts.Current.Digest:
			return -1
		case b.Digest == ts.Current.Digest:
			return 1
		}
		return b.Created.Compare(a.Created)
	})
	return ts, nil
}

func containerImages(tmpl *corev1.PodTemplateSpec) map[string]string {
	m := make(map[string]string, len(tmpl.Spec.Containers))
	for _, ct := range tmpl.Spec.Containers {
		m[ct.Name] = ct.Image
	}
	return m
}

// kubeRegistryImage is what importing would bring: the pinned image when
// revert pinned the service, else what the registry tag names now.
func (c EnvClient) kubeRegistryImage(ctx context.Context, stream, tag string) (plan.Image, error) {
	svc, err := c.Kubernetes.service(stream)
	if err != nil {
		return plan.Image{}, err
	}
	_, annotations, err := c.podTemplate(ctx, svc.Workloads[0].Kind, svc.Workloads[0].Name)
	if err != nil {
		return plan.Image{}, err
	}
	if pin := annotations[PinnedAnnotation]; pin != "" {
		return c.kubeLookup(ctx, svc, pin)
	}
	return c.kubeLookup(ctx, svc, svc.Repository+":"+tag)
}

// kubeLookup asks the registry for ref, REPO:TAG or REPO@DIGEST of the
// service's repository.
func (c EnvClient) kubeLookup(ctx context.Context, svc Service, ref string) (plan.Image, error) {
	if c.Kubernetes.Registry == nil {
		return plan.Image{}, errors.New("no registry client is configured")
	}
	if plan.Repository(ref) != svc.Repository {
		return plan.Image{}, fmt.Errorf("%s is not an image of %s's repository %s", ref, svc.Name, svc.Repository)
	}
	if d := digestOf(ref); d != "" {
		return c.Kubernetes.Registry.Lookup(ctx, svc.Repository, d)
	}
	_, tag, _ := strings.Cut(strings.TrimPrefix(ref, svc.Repository), ":")
	return c.Kubernetes.Registry.Resolve(ctx, svc.Repository, tag)
}

// setImages points the Plan's containers of every target workload at ref in
// one strategic merge patch per workload, and sets or clears the pin
// annotation (pin "" clears it; keep leaves it as it is).
func (c EnvClient) setImages(ctx context.Context, t plan.Target, ref string, pin string, keep bool) error {
	// Every workload is checked before any is changed, so a refusal leaves
	// the service as it was rather than half set.
	for _, w := range t.Workloads {
		if err := c.checkContainers(ctx, w); err != nil {
			return err
		}
	}
	var errs []error
	for _, w := range t.Workloads {
		names := w.ContainerNames()
		containers := make([]map[string]string, 0, len(names))
		for _, n := range names {
			containers = append(containers, map[string]string{"name": n, "image": ref})
		}
		patch := map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": containers}}}}
		// The change cause reaches the Deployment's new ReplicaSet, so
		// `history` and `kubectl rollout history` say what set the image.
		annotations := map[string]any{ChangeCauseAnnotation: "deploybot set " + ref}
		if !keep {
			var v any // null removes the annotation
			if pin != "" {
				v = pin
			}
			annotations[PinnedAnnotation] = v
		}
		patch["metadata"] = map[string]any{"annotations": annotations}
		body, err := json.Marshal(patch)
		if err != nil {
			return fmt.Errorf("encoding the patch of %s %s: %w", w.Kind, w.Name, err)
		}
		if err := c.patchWorkload(ctx, w.Kind, w.Name, types.StrategicMergePatchType, body); err != nil {
			errs = append(errs, fmt.Errorf("setting the image of %s %s: %w", w.Kind, w.Name, err))
		}
	}
	return errors.Join(errs...)
}

// checkContainers makes sure the workload still has the Plan's containers:
// a container renamed since the Plan would otherwise be added by the
// strategic merge patch.
func (c EnvClient) checkContainers(ctx context.Context, w plan.WorkloadRef) error {
	names := w.ContainerNames()
	if len(names) == 0 {
		return fmt.Errorf("the plan names no container of %s %s; nothing was changed, plan it again", w.Kind, w.Name)
	}
	tmpl, _, err := c.podTemplate(ctx, w.Kind, w.Name)
	if err != nil {
		return err
	}
	images := containerImages(tmpl)
	for _, n := range names {
		if _, ok := images[n]; !ok {
			return fmt.Errorf("%s %s has no container %q any more; nothing was changed, plan it again", w.Kind, w.Name, n)
		}
	}
	return nil
}

// patchWorkload patches one Deployment or StatefulSet as deploybot (its
// field manager).
func (c EnvClient) patchWorkload(ctx context.Context, kind, name string, pt types.PatchType, body []byte) error {
	var err error
	if k, _ := plan.NormalizeKind(kind); k == plan.KindDeployment {
		_, err = c.Kube.AppsV1().Deployments(c.Namespace).Patch(ctx, name, pt, body, metav1.PatchOptions{FieldManager: fieldManager})
	} else {
		_, err = c.Kube.AppsV1().StatefulSets(c.Namespace).Patch(ctx, name, pt, body, metav1.PatchOptions{FieldManager: fieldManager})
	}
	return err
}

// fieldManager names deploybot in managedFields, so `kubectl get -o yaml
// --show-managed-fields` says who set an image.
const fieldManager = "deploybot"

// executeKube performs one target of a plain Kubernetes Plan.
func (c EnvClient) executeKube(ctx context.Context, action plan.Action, t plan.Target) plan.TargetResult {
	svc, err := c.Kubernetes.service(t.Stream)
	if err != nil {
		return failed(t, "%v", err)
	}
	switch action {
	case plan.ActionHold:
		return c.kubeHold(ctx, t, t.Hold)
	case plan.ActionUnhold:
		return c.kubeHold(ctx, t, nil)
	case plan.ActionImport:
		// As an import re-checks the registry: what it names now must be
		// what was approved.
		now, err := c.kubeRegistryImage(ctx, t.Stream, t.Tag)
		if err != nil {
			return failed(t, "checking the registry before importing: %v", err)
		}
		if t.To.Digest != "" && now.Digest != t.To.Digest {
			return failed(t, "the registry moved since the plan was approved: planned %s, now %s; nothing was changed, plan it again",
				plan.ShortDigest(t.To.Digest), plan.ShortDigest(now.Digest))
		}
		if err := c.setImages(ctx, t, now.Ref, "", true); err != nil {
			return failed(t, "%v", err)
		}
		return changedResult(t, t.From, now)
	case plan.ActionPin, plan.ActionPromote:
		if err := c.checkRunning(ctx, t, svc); err != nil {
			return failed(t, "%v", err)
		}
		if err := c.setImages(ctx, t, t.SpecFrom, t.SpecFrom, false); err != nil {
			return failed(t, "%v", err)
		}
		return changedResult(t, t.From, t.To)
	case plan.ActionTrack:
		_, tag, _ := strings.Cut(strings.TrimPrefix(t.SpecFrom, svc.Repository), ":")
		now, err := c.Kubernetes.Registry.Resolve(ctx, svc.Repository, tag)
		if err != nil {
			return failed(t, "asking the registry for %s: %v; nothing was changed", t.SpecFrom, err)
		}
		if err := c.setImages(ctx, t, now.Ref, "", false); err != nil {
			return failed(t, "%v", err)
		}
		return changedResult(t, t.From, now)
	}
	return failed(t, "a plain Kubernetes environment cannot %s", action)
}

// checkRunning refuses a pin when the service's image moved since the Plan
// was approved, as executePin does for a tag.
func (c EnvClient) checkRunning(ctx context.Context, t plan.Target, svc Service) error {
	if t.From.Digest == "" || len(t.Workloads) == 0 {
		return nil
	}
	tmpl, _, err := c.podTemplate(ctx, t.Workloads[0].Kind, t.Workloads[0].Name)
	if err != nil {
		return err
	}
	names := t.Workloads[0].ContainerNames()
	if len(names) == 0 {
		return nil
	}
	now := digestOf(containerImages(tmpl)[names[0]])
	if now != t.From.Digest && now != t.To.Digest {
		return fmt.Errorf("%s moved since the plan was approved: planned from %s, now %s; nothing was changed, plan it again",
			svc.Name, plan.ShortDigest(t.From.Digest), plan.ShortDigest(now))
	}
	return nil
}

func changedResult(t plan.Target, from, to plan.Image) plan.TargetResult {
	r := plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: from, To: to}
	if from.Digest != "" && from.Digest == to.Digest {
		r.Outcome = plan.PhaseUnchanged
	}
	return r
}

// KubernetesServices are the config's services as a plain Kubernetes
// environment reads them, by stream name.
func KubernetesServices(cfg *config.Config) map[string]Service {
	out := make(map[string]Service, len(cfg.Services))
	for _, s := range cfg.Services {
		svc := Service{Name: s.Name, Repository: s.Repository}
		for _, w := range s.Workloads {
			svc.Workloads = append(svc.Workloads, ServiceWorkload{Kind: w.Kind, Name: w.Name, Container: w.Container})
		}
		out[s.Stream()] = svc
	}
	return out
}

// NewRegistry builds the registry client a config's registry section
// describes (credentials, plain-HTTP hosts), as plain Kubernetes
// environments ask it.
func NewRegistry(c config.Registry) (Registry, error) {
	var opts []registry.Option
	if c.DockerConfig != "" {
		opts = append(opts, registry.WithDockerConfig(c.DockerConfig))
	}
	if len(c.Insecure) > 0 {
		opts = append(opts, registry.WithInsecure(c.Insecure...))
	}
	client, err := registry.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("building the registry client: %w", err)
	}
	return registryClient{client, c.RevisionLabel}, nil
}

// RegistryClient is the registry client as a plain Kubernetes environment
// asks it.
func RegistryClient(c *registry.Client) Registry { return registryClient{c: c} }

// registryClient reads revisions from label, when set, instead of
// org.opencontainers.image.revision (registry.revisionLabel).
type registryClient struct {
	c     *registry.Client
	label string
}

func (r registryClient) Resolve(ctx context.Context, repo, tag string) (plan.Image, error) {
	img, err := r.c.Resolve(ctx, repo, tag)
	if err != nil {
		return plan.Image{}, err
	}
	return r.imageOf(img), nil
}

func (r registryClient) Lookup(ctx context.Context, repo, digest string) (plan.Image, error) {
	img, err := r.c.Lookup(ctx, repo, digest)
	if err != nil {
		return plan.Image{}, err
	}
	return r.imageOf(img), nil
}

func (r registryClient) imageOf(img registry.Image) plan.Image {
	rev := img.Revision
	if r.label != "" {
		rev = img.Labels[r.label]
	}
	return plan.Image{Ref: img.Pinned(), Digest: img.Digest, Revision: rev, Source: img.Source, Created: img.Created}
}
