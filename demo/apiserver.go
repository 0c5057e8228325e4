package demo

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/deploybot/deploybot/internal/kubefake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	clienttesting "k8s.io/client-go/testing"
)

// kubeAPIServer stands for the parts of kube-apiserver's registry
// strategies (pkg/registry/apps/deployment, statefulset, replicaset,
// controllerrevision and pkg/registry/core/pod) that controllers and
// clients depend on and the object tracker of the fake clientset lacks:
//
//   - metadata.resourceVersion from one counter, and 409 Conflict for an
//     update or patch that carries a stale one (optimistic concurrency);
//   - uid, creationTimestamp and generateName on create;
//   - metadata.generation 1 on create, +1 on every spec change (for
//     Deployments also on annotation changes, which are copied to
//     ReplicaSets), never through the status subresource;
//   - the main resource ignores status and the status subresource ignores
//     spec (for Deployments and ReplicaSets, labels too; annotations may
//     change there, as the deployment controller's revision annotation does);
//   - new pods start Pending; Deployments and StatefulSets get their API
//     defaults (replicas 1, RollingUpdate 25%/25%, progressDeadlineSeconds
//     600, revisionHistoryLimit 10, OrderedReady, partition 0).
//
// Deletes, gets, lists and watches fall through to the tracker; deletion is
// immediate (no graceful termination).
type kubeAPIServer struct {
	mu      sync.Mutex
	tracker clienttesting.ObjectTracker
	now     func() time.Time
	rv      int64
	uid     int64
}

// InstallKubeAPIServer adds the kube-apiserver behaviour described on
// kubeAPIServer to c for deployments, statefulsets, replicasets,
// controllerrevisions and pods, with now stamping creation times.
func InstallKubeAPIServer(c *kubefake.Clientset, now func() time.Time) { installKubeAPIServer(c, now) }

func installKubeAPIServer(c *kubefake.Clientset, now func() time.Time) *kubeAPIServer {
	s := &kubeAPIServer{tracker: c.Tracker(), now: now, rv: 100}
	for _, r := range []string{"deployments", "statefulsets", "replicasets", "controllerrevisions", "pods"} {
		c.PrependReactor("*", r, s.react)
	}
	return s
}

// nextRV hands out a resourceVersion; seeding uses it too so every stored
// object carries one.
func (s *kubeAPIServer) nextRV() string {
	s.rv++
	return strconv.FormatInt(s.rv, 10)
}

func (s *kubeAPIServer) nextUID() types.UID {
	s.uid++
	return types.UID(fmt.Sprintf("6b1d0000-0000-4000-8000-%012d", s.uid))
}

func (s *kubeAPIServer) react(action clienttesting.Action) (bool, runtime.Object, error) {
	switch a := action.(type) {
	case clienttesting.CreateActionImpl:
		if a.GetSubresource() != "" {
			return false, nil, nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		obj := a.GetObject().DeepCopyObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return true, nil, err
		}
		if m.GetNamespace() == "" {
			m.SetNamespace(a.GetNamespace())
		}
		if m.GetName() == "" && m.GetGenerateName() != "" {
			m.SetName(m.GetGenerateName() + s.suffix(m.GetGenerateName()))
		}
		if m.GetName() == "" {
			return true, nil, apierrors.NewBadRequest("name or generateName is required")
		}
		m.SetUID(s.nextUID())
		m.SetCreationTimestamp(metav1.NewTime(s.now()))
		m.SetResourceVersion(s.nextRV())
		prepareForCreate(obj)
		if err := s.tracker.Create(a.GetResource(), obj, m.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj.DeepCopyObject(), nil
	case clienttesting.UpdateActionImpl:
		s.mu.Lock()
		defer s.mu.Unlock()
		obj, err := s.update(a.GetResource(), a.GetNamespace(), a.GetObject().DeepCopyObject(), a.GetSubresource())
		return true, obj, err
	case clienttesting.PatchActionImpl:
		s.mu.Lock()
		defer s.mu.Unlock()
		old, err := s.tracker.Get(a.GetResource(), a.GetNamespace(), a.GetName())
		if err != nil {
			return true, nil, err
		}
		patched, err := kubefake.ApplyPatch(a, old)
		if err != nil {
			return true, nil, err
		}
		obj, err := s.update(a.GetResource(), a.GetNamespace(), patched, a.GetSubresource())
		return true, obj, err
	}
	return false, nil, nil
}

// suffix is the random part of a generated name; deterministic here so
// demo transcripts are stable.
func (s *kubeAPIServer) suffix(base string) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s#%d", base, s.rv)
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))[:5]
}

// update stores obj over the stored object of the same name, applying the
// strategy of the main resource or, for subresource "status", the status one.
func (s *kubeAPIServer) update(gvr schema.GroupVersionResource, ns string, obj runtime.Object, subresource string) (runtime.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	oldObj, err := s.tracker.Get(gvr, ns, m.GetName())
	if err != nil {
		return nil, err
	}
	old, _ := meta.Accessor(oldObj)
	if m.GetResourceVersion() != "" && m.GetResourceVersion() != old.GetResourceVersion() {
		return nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(),
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	m.SetNamespace(ns)
	m.SetUID(old.GetUID())
	m.SetCreationTimestamp(old.GetCreationTimestamp())
	if subresource == "status" {
		prepareForStatusUpdate(obj, oldObj)
	} else if subresource == "" {
		prepareForUpdate(obj, oldObj)
	} else {
		return nil, apierrors.NewMethodNotSupported(gvr.GroupResource(), "update/"+subresource)
	}
	m.SetResourceVersion(s.nextRV())
	if err := s.tracker.Update(gvr, obj, ns); err != nil {
		return nil, err
	}
	return obj.DeepCopyObject(), nil
}

// prepareForCreate is the strategies' PrepareForCreate plus API defaulting.
func prepareForCreate(obj runtime.Object) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Status = appsv1.DeploymentStatus{}
		o.Generation = 1
		defaultDeployment(o)
	case *appsv1.StatefulSet:
		o.Status = appsv1.StatefulSetStatus{}
		o.Generation = 1
		defaultStatefulSet(o)
	case *appsv1.ReplicaSet:
		o.Status = appsv1.ReplicaSetStatus{}
		o.Generation = 1
		if o.Spec.Replicas == nil {
			o.Spec.Replicas = int32Ptr(1)
		}
	case *corev1.Pod:
		o.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}
	}
}

// prepareForUpdate is the strategies' PrepareForUpdate: status is kept and
// spec changes bump the generation.
func prepareForUpdate(obj, oldObj runtime.Object) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		old := oldObj.(*appsv1.Deployment)
		defaultDeployment(o)
		o.Status = old.Status
		o.Generation = old.Generation
		if !apiequality.Semantic.DeepEqual(o.Spec, old.Spec) || !apiequality.Semantic.DeepEqual(o.Annotations, old.Annotations) {
			o.Generation = old.Generation + 1
		}
	case *appsv1.StatefulSet:
		old := oldObj.(*appsv1.StatefulSet)
		defaultStatefulSet(o)
		o.Status = old.Status
		o.Generation = old.Generation
		if !apiequality.Semantic.DeepEqual(o.Spec, old.Spec) {
			o.Generation = old.Generation + 1
		}
	case *appsv1.ReplicaSet:
		old := oldObj.(*appsv1.ReplicaSet)
		o.Status = old.Status
		o.Generation = old.Generation
		if !apiequality.Semantic.DeepEqual(o.Spec, old.Spec) {
			o.Generation = old.Generation + 1
		}
	case *corev1.Pod:
		o.Status = oldObj.(*corev1.Pod).Status
	}
}

// prepareForStatusUpdate is the status strategies' PrepareForUpdate.
func prepareForStatusUpdate(obj, oldObj runtime.Object) {
	m, _ := meta.Accessor(obj)
	old, _ := meta.Accessor(oldObj)
	m.SetGeneration(old.GetGeneration())
	m.SetLabels(old.GetLabels())
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec = oldObj.(*appsv1.Deployment).Spec
	case *appsv1.ReplicaSet:
		o.Spec = oldObj.(*appsv1.ReplicaSet).Spec
	case *appsv1.StatefulSet:
		o.Spec = oldObj.(*appsv1.StatefulSet).Spec
		m.SetAnnotations(old.GetAnnotations())
	case *corev1.Pod:
		o.Spec = oldObj.(*corev1.Pod).Spec
		m.SetAnnotations(old.GetAnnotations())
	default:
		// resources without a status subresource
		m.SetAnnotations(old.GetAnnotations())
	}
}

func defaultDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = int32Ptr(1)
	}
	if d.Spec.Strategy.Type == "" {
		d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if d.Spec.Strategy.RollingUpdate == nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		quarter := intstr.FromString("25%")
		if d.Spec.Strategy.RollingUpdate.MaxSurge == nil {
			d.Spec.Strategy.RollingUpdate.MaxSurge = &quarter
		}
		if d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil {
			q := quarter
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = &q
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = int32Ptr(10)
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = int32Ptr(600)
	}
}

func defaultStatefulSet(s *appsv1.StatefulSet) {
	if s.Spec.Replicas == nil {
		s.Spec.Replicas = int32Ptr(1)
	}
	if s.Spec.PodManagementPolicy == "" {
		s.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if s.Spec.UpdateStrategy.Type == "" {
		s.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if s.Spec.UpdateStrategy.RollingUpdate == nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		if s.Spec.UpdateStrategy.RollingUpdate.Partition == nil {
			s.Spec.UpdateStrategy.RollingUpdate.Partition = int32Ptr(0)
		}
	}
	if s.Spec.RevisionHistoryLimit == nil {
		s.Spec.RevisionHistoryLimit = int32Ptr(10)
	}
}

func int32Ptr(v int32) *int32 { return &v }
