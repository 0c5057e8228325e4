package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/plan"
)

const (
	testNS  = "packit--prod"
	testEnv = "prod"
)

var testNow = time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)

func repo(stream string) string { return "quay.io/packit/" + stream }

// dig is the n-th digest pushed to quay.io/packit/STREAM:prod.
func dig(stream string, n int) string { return fakeopenshift.Digest(repo(stream), "prod", n) }

// ref is the pull spec of that digest, as a stream tag's history names it.
func ref(stream string, n int) string { return repo(stream) + "@" + dig(stream, n) }

// fixture is one environment on fake clientsets, with the openshift-apiserver
// reactors of fakeopenshift installed on the image clientset.
type fixture struct {
	set    *cluster.Set
	kube   *kubefake.Clientset
	images *kubefake.ImageClientset
	srv    *fakeopenshift.Server
	reg    *fakeopenshift.Registry
}

func newFixture(t *testing.T, kubeObjs []runtime.Object, streams []*imagev1.ImageStream, opts ...fakeopenshift.Option) *fixture {
	t.Helper()
	objs := make([]runtime.Object, len(streams))
	for i, s := range streams {
		objs[i] = s
	}
	images := kubefake.NewImageClientset(objs...)
	reg := fakeopenshift.NewRegistry()
	srv := fakeopenshift.Install(images, reg, append([]fakeopenshift.Option{fakeopenshift.WithClock(func() time.Time { return testNow })}, opts...)...)
	kube := kubefake.NewClientset(kubeObjs...)
	kube.PrependReactor("update", "deployments", bumpGeneration(kube.Tracker()))
	kube.PrependReactor("update", "statefulsets", bumpGeneration(kube.Tracker()))
	set := cluster.NewSet(map[string]cluster.EnvClient{
		testEnv: {Kube: kube, Images: images.ImageV1(), Namespace: testNS},
	}, cluster.WithStuckAfter(time.Minute))
	return &fixture{set: set, kube: kube, images: images, srv: srv, reg: reg}
}

// push makes the registry hold digests 1..n of STREAM:prod, the tag at n.
func (f *fixture) push(stream string, n int) {
	for i := 1; i <= n; i++ {
		f.reg.Push(repo(stream), "prod", dig(stream, i))
	}
}

func (f *fixture) stream(t *testing.T, name string) *imagev1.ImageStream {
	t.Helper()
	is, err := f.images.ImageV1().ImageStreams(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading stream %s: %v", name, err)
	}
	return is
}

// imageStream is STREAM with tag prod tracking quay.io/packit/STREAM:prod;
// history lists digest numbers newest first (history[0] is current).
func imageStream(name string, scheduled bool, history ...int) *imagev1.ImageStream {
	gen := int64(len(history))
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, ResourceVersion: "500", Generation: gen, UID: types.UID("uid-" + name)},
		Spec: imagev1.ImageStreamSpec{
			LookupPolicy: imagev1.ImageLookupPolicy{Local: true},
			Tags: []imagev1.TagReference{{
				Name:            "prod",
				From:            &corev1.ObjectReference{Kind: "DockerImage", Name: repo(name) + ":prod"},
				Generation:      &gen,
				ImportPolicy:    imagev1.TagImportPolicy{Scheduled: scheduled, ImportMode: imagev1.ImportModeLegacy},
				ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
			}},
		},
	}
	if len(history) == 0 {
		return is
	}
	list := imagev1.NamedTagEventList{Tag: "prod"}
	for i, n := range history {
		list.Items = append(list.Items, imagev1.TagEvent{
			Created:              metav1.NewTime(testNow.Add(-time.Duration(i+1) * 24 * time.Hour)),
			DockerImageReference: ref(name, n),
			Image:                dig(name, n),
			Generation:           gen - int64(i),
		})
	}
	is.Status.Tags = []imagev1.NamedTagEventList{list}
	return is
}

func triggerAnnotation(stream, container string) string {
	return fmt.Sprintf(`[{"from":{"kind":"ImageStreamTag","name":"%s:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"%s\")].image"}]`, stream, container)
}

func int32p(i int32) *int32 { return &i }

func podTemplate(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: image}}},
	}
}

// deployment is a settled Deployment NAME running image, with desired replicas.
func deployment(name, image string, desired int32, annotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("uid-deploy-" + name), Generation: 3, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(desired),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image),
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: desired, UpdatedReplicas: desired, ReadyReplicas: desired, AvailableReplicas: desired},
	}
}

// statefulSet is a settled OrderedReady StatefulSet NAME at revision rev.
func statefulSet(name, image string, desired int32, rev string, annotations map[string]string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("uid-sts-" + name), Generation: 2, Annotations: annotations},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            int32p(desired),
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:            podTemplate(name, image),
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
		},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: desired, ReadyReplicas: desired, UpdatedReplicas: desired, CurrentReplicas: desired, CurrentRevision: rev, UpdateRevision: rev},
	}
}

func controllerRef(kind, name string, uid types.UID) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &yes}}
}

// pod is a pod of StatefulSet sts on revision rev; ready or waiting with reason.
func stsPod(sts *appsv1.StatefulSet, ordinal int, rev string, ready bool, waiting string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", sts.Name, ordinal), Namespace: testNS,
			UID:             types.UID(fmt.Sprintf("uid-pod-%s-%d", sts.Name, ordinal)),
			ResourceVersion: "7",
			Labels:          map[string]string{"app": sts.Name, appsv1.ControllerRevisionHashLabelKey: rev},
			OwnerReferences: controllerRef("StatefulSet", sts.Name, sts.UID),
		},
		Spec: *sts.Spec.Template.Spec.DeepCopy(),
	}
	setPodState(p, ready, waiting)
	return p
}

func setPodState(p *corev1.Pod, ready bool, waiting string) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	cs := corev1.ContainerStatus{Name: p.Spec.Containers[0].Name, Ready: ready}
	if waiting != "" {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
	} else {
		cs.State.Running = &corev1.ContainerStateRunning{}
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
}

// progressLog collects reported Progress safely.
type progressLog struct {
	mu  sync.Mutex
	all []plan.Progress
}

func (l *progressLog) report(p plan.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, p)
}

func (l *progressLog) snapshot() []plan.Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]plan.Progress(nil), l.all...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bumpGeneration stands for kube-apiserver's Deployment and StatefulSet
// registry strategies (PrepareForUpdate): an update that changes the spec
// increments metadata.generation, which is how controllers and rollout
// watchers tell an unobserved change (observedGeneration < generation). The
// fake tracker stores objects as given; this reactor adjusts the object and
// lets the tracker store it.
func bumpGeneration(tracker clienttesting.ObjectTracker) clienttesting.ReactionFunc {
	return func(action clienttesting.Action) (bool, runtime.Object, error) {
		u, ok := action.(clienttesting.UpdateAction)
		if !ok || u.GetSubresource() != "" {
			return false, nil, nil
		}
		switch obj := u.GetObject().(type) {
		case *appsv1.Deployment:
			if old, err := tracker.Get(u.GetResource(), u.GetNamespace(), obj.Name); err == nil {
				prev := old.(*appsv1.Deployment)
				obj.Generation = prev.Generation
				if !apiequality.Semantic.DeepEqual(prev.Spec, obj.Spec) {
					obj.Generation++
				}
			}
		case *appsv1.StatefulSet:
			if old, err := tracker.Get(u.GetResource(), u.GetNamespace(), obj.Name); err == nil {
				prev := old.(*appsv1.StatefulSet)
				obj.Generation = prev.Generation
				if !apiequality.Semantic.DeepEqual(prev.Spec, obj.Spec) {
					obj.Generation++
				}
			}
		}
		return false, nil, nil
	}
}
