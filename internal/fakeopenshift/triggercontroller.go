package fakeopenshift

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/kubeclient"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// TriggerController reproduces the openshift-controller-manager image
// trigger controller (pkg/image/trigger, annotations.UpdateObjectFromImages)
// for Deployments and StatefulSets: for every workload whose
// image.openshift.io/triggers annotation names an ImageStreamTag IS:TAG
// (in from.namespace, or the workload's) that has a current image, and is
// not paused, it sets the container the fieldPath selects to that image's
// pull spec and writes the workload back with a full Update whenever the
// image differs. Because it compares against the container image and not
// against the last image it applied, it also undoes anyone else's change of
// that image — which is why `oc rollout undo` on a triggered workload does
// not stick.
type TriggerController struct {
	kube      kubeclient.Interface
	images    kubeclient.ImageV1
	namespace string
	resync    time.Duration
	retry     time.Duration
	onError   func(error)
}

// TriggerOption configures a TriggerController.
type TriggerOption func(*TriggerController)

// TriggerNamespace restricts the controller to one namespace (default: all).
func TriggerNamespace(ns string) TriggerOption {
	return func(c *TriggerController) { c.namespace = ns }
}

// TriggerResync sets how often Run re-checks everything even without
// events (default 30s; the real controller's informers resync too).
func TriggerResync(d time.Duration) TriggerOption {
	return func(c *TriggerController) { c.resync = d }
}

// TriggerOnError receives the errors of the syncs Run performs (default:
// dropped; a failed sync is retried shortly after).
func TriggerOnError(f func(error)) TriggerOption {
	return func(c *TriggerController) { c.onError = f }
}

// NewTriggerController returns a controller acting on kube's Deployments
// and StatefulSets with the image streams of images.
func NewTriggerController(kube kubeclient.Interface, images kubeclient.ImageV1, opts ...TriggerOption) *TriggerController {
	c := &TriggerController{kube: kube, images: images, resync: 30 * time.Second, retry: 100 * time.Millisecond, onError: func(error) {}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Sync brings every triggered Deployment and StatefulSet in line with its
// image stream tags once, and returns the errors it met (joined); a
// workload with an invalid annotation or fieldPath is skipped with an error,
// as the real controller does.
func (c *TriggerController) Sync(ctx context.Context) error {
	tags := tagCache{c: c, ctx: ctx, streams: map[string]*imagev1.ImageStream{}}
	var errs []error

	deps, err := c.kube.AppsV1().Deployments(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing deployments: %w", err)
	}
	for i := range deps.Items {
		d := deps.Items[i].DeepCopy()
		changed, err := applyTriggers(&d.ObjectMeta, &d.Spec.Template.Spec, tags.lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("deployment %s/%s: %w", d.Namespace, d.Name, err))
		}
		if changed {
			if _, err := c.kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("updating deployment %s/%s to its trigger images: %w", d.Namespace, d.Name, err))
			}
		}
	}

	sets, err := c.kube.AppsV1().StatefulSets(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing statefulsets: %w", err))...)
	}
	for i := range sets.Items {
		s := sets.Items[i].DeepCopy()
		changed, err := applyTriggers(&s.ObjectMeta, &s.Spec.Template.Spec, tags.lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("statefulset %s/%s: %w", s.Namespace, s.Name, err))
		}
		if changed {
			if _, err := c.kube.AppsV1().StatefulSets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("updating statefulset %s/%s to its trigger images: %w", s.Namespace, s.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// applyTriggers is UpdateObjectFromImages: it rewrites spec's triggered
// container images to their tags' current pull specs and reports whether
// anything changed. lookup returns ok false for a tag without an image.
func applyTriggers(meta *metav1.ObjectMeta, spec *corev1.PodSpec, lookup func(ns, istag string) (string, bool, error)) (bool, error) {
	annotation, ok := meta.Annotations[TriggerAnnotation]
	if !ok {
		return false, nil
	}
	triggers, err := ParseTriggers(annotation)
	if err != nil {
		return false, err
	}
	changed := false
	var errs []error
	for _, t := range triggers {
		if t.Paused || t.From.Kind != "ImageStreamTag" {
			continue
		}
		ns := t.From.Namespace
		if ns == "" {
			ns = meta.Namespace
		}
		ref, ok, err := lookup(ns, t.From.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		sel, err := ParseFieldPath(t.FieldPath)
		if err != nil {
			return false, err
		}
		container := sel.Container(spec)
		if container == nil {
			return false, fmt.Errorf("no such container: %s", t.FieldPath)
		}
		if container.Image != ref {
			container.Image = ref
			changed = true
		}
	}
	return changed, errors.Join(errs...)
}

// tagCache resolves IS:TAG to its current pull spec, reading each stream
// once per Sync.
type tagCache struct {
	c       *TriggerController
	ctx     context.Context
	streams map[string]*imagev1.ImageStream
}

func (t tagCache) lookup(ns, istag string) (string, bool, error) {
	name, tag, ok := strings.Cut(istag, ":")
	if !ok || name == "" || tag == "" || strings.Contains(tag, ":") {
		return "", false, fmt.Errorf("trigger source %q is not IS:TAG", istag)
	}
	key := ns + "/" + name
	stream, seen := t.streams[key]
	if !seen {
		s, err := t.c.images.ImageStreams(ns).Get(t.ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			s = nil
		case err != nil:
			return "", false, fmt.Errorf("reading image stream %s: %w", key, err)
		}
		t.streams[key], stream = s, s
	}
	if stream == nil {
		return "", false, nil
	}
	ev := latestTagEvent(stream, tag)
	if ev == nil {
		return "", false, nil
	}
	return resolveReference(stream, tag, ev), true, nil
}

// Run watches image streams, Deployments and StatefulSets and syncs after
// every change (coalesced), every resync period, and shortly after a failed
// sync, until ctx is done.
func (c *TriggerController) Run(ctx context.Context) error {
	dirty := make(chan struct{}, 1)
	poke := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	starters := []func(context.Context) (watch.Interface, error){
		func(ctx context.Context) (watch.Interface, error) {
			l, err := c.images.ImageStreams(c.namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return c.images.ImageStreams(c.namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
		},
		func(ctx context.Context) (watch.Interface, error) {
			l, err := c.kube.AppsV1().Deployments(c.namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return c.kube.AppsV1().Deployments(c.namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
		},
		func(ctx context.Context) (watch.Interface, error) {
			l, err := c.kube.AppsV1().StatefulSets(c.namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return c.kube.AppsV1().StatefulSets(c.namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
		},
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, start := range starters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drainWatch(ctx, start, poke, c.onError)
		}()
	}

	resync := time.NewTicker(c.resync)
	defer resync.Stop()
	var retry <-chan time.Time
	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-dirty:
		case <-resync.C:
		case <-retry:
		}
		retry = nil
		if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
			c.onError(err)
			retry = time.After(c.retry)
		}
	}
}

// drainWatch keeps a watch open until ctx is done and pokes on every event.
// It reads events as fast as they come: the fake clientsets' watchers panic
// when their 100-event buffer fills up.
func drainWatch(ctx context.Context, start func(context.Context) (watch.Interface, error), poke func(), onError func(error)) {
	for ctx.Err() == nil {
		w, err := start(ctx)
		if err != nil {
			onError(fmt.Errorf("starting watch: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		poke() // anything may have changed between two watches
		func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-w.ResultChan():
					if !ok {
						return
					}
					poke()
				}
			}
		}()
	}
}
