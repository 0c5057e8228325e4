package cluster

import (
	"context"
	"fmt"
	"maps"
	"sync"

	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"
)

// WatchEnv watches the objects that say which images the env runs (its
// ImageStreams on OpenShift, its Deployments and StatefulSets on plain
// Kubernetes) until ctx ends. It calls changed once when the initial lists
// are in, then whenever an object is added or deleted or its images (or,
// for workloads, annotations) change; changed is never called concurrently
// with itself and should only poke its caller, which re-reads the tags.
// It returns nil when ctx ends after the informers synced.
func (s *Set) WatchEnv(ctx context.Context, env string, changed func()) error {
	c, err := s.Env(env)
	if err != nil {
		return fmt.Errorf("watching %s: %w", env, err)
	}
	w := &envWatch{changed: changed}
	wctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer running.Wait() // the informers stop after cancel, before we return
	defer cancel()

	var checkers []cache.DoneChecker
	watch := func(resource string, inf cache.SharedIndexInformer, moved func(old, cur any) bool) error {
		reg, err := inf.AddEventHandler(w.handler(moved))
		if err != nil {
			return fmt.Errorf("watching %s: cannot watch %s: %w", env, resource, err)
		}
		// The registration syncs once its handler has seen the initial list.
		checkers = append(checkers, reg.HasSyncedChecker())
		running.Go(func() { inf.RunWithContext(wctx) })
		return nil
	}
	if c.Kubernetes != nil {
		deps := informer(c, c.Kube.AppsV1().Deployments(c.Namespace), &appsv1.Deployment{})
		if err := watch("deployments", deps, deploymentMoved); err != nil {
			return err
		}
		sets := informer(c, c.Kube.AppsV1().StatefulSets(c.Namespace), &appsv1.StatefulSet{})
		if err := watch("statefulsets", sets, statefulSetMoved); err != nil {
			return err
		}
	} else {
		streams := informer(c, c.Images.ImageStreams(c.Namespace), &imagev1.ImageStream{})
		if err := watch("imagestreams", streams, imageStreamMoved); err != nil {
			return err
		}
	}

	// A list that keeps failing (no access, API down) blocks until ctx ends.
	if !cache.WaitFor(wctx, "", checkers...) {
		return fmt.Errorf("watching %s: the informers of namespace %s did not sync: %w", env, c.Namespace, context.Cause(ctx))
	}
	w.start()
	<-ctx.Done()
	return nil
}

// envWatch serializes the calls of changed and drops the events of the
// initial lists: the one call after sync stands for all of them.
type envWatch struct {
	mu      sync.Mutex
	synced  bool
	changed func()
}

func (w *envWatch) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.synced = true
	w.changed()
}

func (w *envWatch) poke() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.synced {
		w.changed()
	}
}

// handler pokes on every add and delete, and on updates moved reports.
func (w *envWatch) handler(moved func(old, cur any) bool) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { w.poke() },
		UpdateFunc: func(old, cur any) {
			if moved(old, cur) {
				w.poke()
			}
		},
		DeleteFunc: func(any) { w.poke() },
	}
}

// imageStreamMoved: a tag's spec or history changed; annotations (holds),
// resourceVersion and the like do not move an image.
func imageStreamMoved(old, cur any) bool {
	o, ok1 := old.(*imagev1.ImageStream)
	n, ok2 := cur.(*imagev1.ImageStream)
	if !ok1 || !ok2 {
		return true
	}
	return !equality.Semantic.DeepEqual(o.Spec.Tags, n.Spec.Tags) ||
		!equality.Semantic.DeepEqual(o.Status.Tags, n.Status.Tags)
}

// deploymentMoved: the template's images or the annotations (pin, hold)
// changed; rollouts update the status many times and move nothing.
func deploymentMoved(old, cur any) bool {
	o, ok1 := old.(*appsv1.Deployment)
	n, ok2 := cur.(*appsv1.Deployment)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.Equal(containerImages(&o.Spec.Template), containerImages(&n.Spec.Template)) ||
		!maps.Equal(o.Annotations, n.Annotations)
}

// statefulSetMoved is deploymentMoved for StatefulSets.
func statefulSetMoved(old, cur any) bool {
	o, ok1 := old.(*appsv1.StatefulSet)
	n, ok2 := cur.(*appsv1.StatefulSet)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.Equal(containerImages(&o.Spec.Template), containerImages(&n.Spec.Template)) ||
		!maps.Equal(o.Annotations, n.Annotations)
}
