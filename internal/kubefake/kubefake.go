// Package kubefake is an in-memory kubeclient.Interface and kubeclient.ImageV1:
// client-go's object tracker and reactor chain (k8s.io/client-go/testing)
// behind gentype's fake clients, the same parts client-go's generated fake
// clientsets are made of, over a scheme of only the groups deploybot uses
// (plus rbac/v1, which the demo's RBAC evaluator reads). The demo cluster and
// the tests build on it; k8s.io/client-go/kubernetes/fake would link every
// API group's client and fake into the binary.
//
// Like client-go's fakes, it stores objects as given: no resourceVersion
// checks, no generation, no defaults. The demo adds those with reactors
// (demo.InstallKubeAPIServer, fakeopenshift.Install).
package kubefake

import (
	"fmt"

	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/kubeclient"
)

// Scheme is kubeclient.Scheme's groups and rbac/v1.
var Scheme = runtime.NewScheme()

var codecs = serializer.NewCodecFactory(Scheme)

func init() {
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	if err := kubeclient.AddToScheme(Scheme); err != nil {
		panic(fmt.Sprintf("kubefake: building the scheme: %v", err))
	}
	if err := rbacv1.AddToScheme(Scheme); err != nil {
		panic(fmt.Sprintf("kubefake: building the scheme: %v", err))
	}
}

// tracked is what both fakes are: a reactor chain (PrependReactor, Actions,
// as in client-go's fakes) over one object tracker.
type tracked struct {
	testing.Fake
	tracker testing.ObjectTracker
}

// Tracker is the object store behind the reactors.
func (t *tracked) Tracker() testing.ObjectTracker { return t.tracker }

// IsWatchListSemanticsUnSupported tells client-go's reflector that the fake
// cannot stream an initial list (it lists, then watches), as client-go's own
// fake clientsets do.
func (t *tracked) IsWatchListSemanticsUnSupported() bool { return true }

func (t *tracked) init(objects []runtime.Object) { t.tracker = track(&t.Fake, objects) }

// Clientset is the fake kubeclient.Interface.
type Clientset struct {
	tracked
	authz kubeclient.AuthorizationV1
}

// SetAuthorization makes AuthorizationV1 return a instead of the fake's
// reactor chain (see rbac.Reviewer).
func (c *Clientset) SetAuthorization(a kubeclient.AuthorizationV1) { c.authz = a }

var _ kubeclient.Interface = (*Clientset)(nil)

// NewClientset returns a Clientset whose tracker holds objects, as
// client-go's fake.NewSimpleClientset does.
func NewClientset(objects ...runtime.Object) *Clientset {
	c := &Clientset{}
	c.init(objects)
	return c
}

// ImageClientset is the fake kubeclient.ImageV1, on its own tracker as
// OpenShift's fake image clientset is.
type ImageClientset struct{ tracked }

var _ kubeclient.ImageV1 = (*ImageClientset)(nil)

// NewImageClientset returns an ImageClientset whose tracker holds objects.
func NewImageClientset(objects ...runtime.Object) *ImageClientset {
	c := &ImageClientset{}
	c.init(objects)
	return c
}

// ImageV1 returns c itself, for call sites written against OpenShift's
// clientset (images.ImageV1().ImageStreams(ns)).
func (c *ImageClientset) ImageV1() kubeclient.ImageV1 { return c }

// track wires a new object tracker holding objects into f: every verb on
// every resource reaches the tracker, as in client-go's fake clientsets.
func track(f *testing.Fake, objects []runtime.Object) testing.ObjectTracker {
	o := testing.NewObjectTracker(Scheme, codecs.UniversalDecoder())
	for _, obj := range objects {
		if err := o.Add(obj); err != nil {
			panic(fmt.Sprintf("kubefake: adding %T: %v", obj, err))
		}
	}
	f.AddReactor("*", "*", testing.ObjectReaction(o))
	f.AddWatchReactor("*", func(action testing.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if w, ok := action.(testing.WatchActionImpl); ok {
			opts = w.ListOptions
		}
		w, err := o.Watch(action.GetResource(), action.GetNamespace(), opts)
		if err != nil {
			return false, nil, err
		}
		return true, w, nil
	})
	return o
}

// AppsV1 implements kubeclient.Interface.
func (c *Clientset) AppsV1() kubeclient.AppsV1 { return apps{&c.Fake} }

// CoreV1 implements kubeclient.Interface.
func (c *Clientset) CoreV1() kubeclient.CoreV1 { return core{&c.Fake} }

// AuthorizationV1 implements kubeclient.Interface.
func (c *Clientset) AuthorizationV1() kubeclient.AuthorizationV1 {
	if c.authz != nil {
		return c.authz
	}
	return authz{&c.Fake}
}

// AuthenticationV1 implements kubeclient.Interface.
func (c *Clientset) AuthenticationV1() kubeclient.AuthenticationV1 { return authn{&c.Fake} }

// CoordinationV1 implements kubeclient.Interface.
func (c *Clientset) CoordinationV1() kubeclient.CoordinationV1 { return coord{&c.Fake} }

// RbacV1 is the fake's own: the demo seeds Roles and bindings for the RBAC
// evaluator, which the bot itself never reads.
func (c *Clientset) RbacV1() RbacV1 { return RbacV1{&c.Fake} }

// RbacV1 is rbac/v1 on the fake.
type RbacV1 struct{ f *testing.Fake }

// Roles of a namespace.
func (g RbacV1) Roles(ns string) kubeclient.Resource[*rbacv1.Role, *rbacv1.RoleList] {
	return withList[*rbacv1.Role, *rbacv1.RoleList](g.f, rbacv1.SchemeGroupVersion.WithResource("roles"), ns)
}

// RoleBindings of a namespace.
func (g RbacV1) RoleBindings(ns string) kubeclient.Resource[*rbacv1.RoleBinding, *rbacv1.RoleBindingList] {
	return withList[*rbacv1.RoleBinding, *rbacv1.RoleBindingList](g.f, rbacv1.SchemeGroupVersion.WithResource("rolebindings"), ns)
}

// ClusterRoles of the cluster.
func (g RbacV1) ClusterRoles() kubeclient.Resource[*rbacv1.ClusterRole, *rbacv1.ClusterRoleList] {
	return withList[*rbacv1.ClusterRole, *rbacv1.ClusterRoleList](g.f, rbacv1.SchemeGroupVersion.WithResource("clusterroles"), "")
}

// ClusterRoleBindings of the cluster.
func (g RbacV1) ClusterRoleBindings() kubeclient.Resource[*rbacv1.ClusterRoleBinding, *rbacv1.ClusterRoleBindingList] {
	return withList[*rbacv1.ClusterRoleBinding, *rbacv1.ClusterRoleBindingList](g.f, rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings"), "")
}

// ImageStreams implements kubeclient.ImageV1.
func (c *ImageClientset) ImageStreams(ns string) kubeclient.Resource[*imagev1.ImageStream, *imagev1.ImageStreamList] {
	return withList[*imagev1.ImageStream, *imagev1.ImageStreamList](&c.Fake, imagev1.SchemeGroupVersion.WithResource("imagestreams"), ns)
}

// ImageStreamTags implements kubeclient.ImageV1.
func (c *ImageClientset) ImageStreamTags(ns string) kubeclient.Resource[*imagev1.ImageStreamTag, *imagev1.ImageStreamTagList] {
	return withList[*imagev1.ImageStreamTag, *imagev1.ImageStreamTagList](&c.Fake, imagev1.SchemeGroupVersion.WithResource("imagestreamtags"), ns)
}

// ImageStreamImports implements kubeclient.ImageV1.
func (c *ImageClientset) ImageStreamImports(ns string) kubeclient.Creator[*imagev1.ImageStreamImport] {
	return createOnly[*imagev1.ImageStreamImport](&c.Fake, imagev1.SchemeGroupVersion.WithResource("imagestreamimports"), ns)
}

type apps struct{ f *testing.Fake }

func (g apps) Deployments(ns string) kubeclient.Resource[*appsv1.Deployment, *appsv1.DeploymentList] {
	return withList[*appsv1.Deployment, *appsv1.DeploymentList](g.f, appsv1.SchemeGroupVersion.WithResource("deployments"), ns)
}

func (g apps) StatefulSets(ns string) kubeclient.Resource[*appsv1.StatefulSet, *appsv1.StatefulSetList] {
	return withList[*appsv1.StatefulSet, *appsv1.StatefulSetList](g.f, appsv1.SchemeGroupVersion.WithResource("statefulsets"), ns)
}

func (g apps) ReplicaSets(ns string) kubeclient.Resource[*appsv1.ReplicaSet, *appsv1.ReplicaSetList] {
	return withList[*appsv1.ReplicaSet, *appsv1.ReplicaSetList](g.f, appsv1.SchemeGroupVersion.WithResource("replicasets"), ns)
}

func (g apps) ControllerRevisions(ns string) kubeclient.Resource[*appsv1.ControllerRevision, *appsv1.ControllerRevisionList] {
	return withList[*appsv1.ControllerRevision, *appsv1.ControllerRevisionList](g.f, appsv1.SchemeGroupVersion.WithResource("controllerrevisions"), ns)
}

type core struct{ f *testing.Fake }

func (g core) Pods(ns string) kubeclient.Resource[*corev1.Pod, *corev1.PodList] {
	return withList[*corev1.Pod, *corev1.PodList](g.f, corev1.SchemeGroupVersion.WithResource("pods"), ns)
}

func (g core) ConfigMaps(ns string) kubeclient.Resource[*corev1.ConfigMap, *corev1.ConfigMapList] {
	return withList[*corev1.ConfigMap, *corev1.ConfigMapList](g.f, corev1.SchemeGroupVersion.WithResource("configmaps"), ns)
}

type authz struct{ f *testing.Fake }

func (g authz) LocalSubjectAccessReviews(ns string) kubeclient.Creator[*authorizationv1.LocalSubjectAccessReview] {
	return createOnly[*authorizationv1.LocalSubjectAccessReview](g.f, authorizationv1.SchemeGroupVersion.WithResource("localsubjectaccessreviews"), ns)
}

func (g authz) SubjectAccessReviews() kubeclient.Creator[*authorizationv1.SubjectAccessReview] {
	return createOnly[*authorizationv1.SubjectAccessReview](g.f, authorizationv1.SchemeGroupVersion.WithResource("subjectaccessreviews"), "")
}

func (g authz) SelfSubjectAccessReviews() kubeclient.Creator[*authorizationv1.SelfSubjectAccessReview] {
	return createOnly[*authorizationv1.SelfSubjectAccessReview](g.f, authorizationv1.SchemeGroupVersion.WithResource("selfsubjectaccessreviews"), "")
}

type authn struct{ f *testing.Fake }

func (g authn) SelfSubjectReviews() kubeclient.Creator[*authenticationv1.SelfSubjectReview] {
	return createOnly[*authenticationv1.SelfSubjectReview](g.f, authenticationv1.SchemeGroupVersion.WithResource("selfsubjectreviews"), "")
}

type coord struct{ f *testing.Fake }

func (g coord) Leases(ns string) kubeclient.Resource[*coordinationv1.Lease, *coordinationv1.LeaseList] {
	return withList[*coordinationv1.Lease, *coordinationv1.LeaseList](g.f, coordinationv1.SchemeGroupVersion.WithResource("leases"), ns)
}

type object interface {
	runtime.Object
	metav1.Object
}

// withList is gentype's fake client of one resource; the list helpers go
// through apimachinery's meta accessors instead of one function per type.
func withList[T object, L runtime.Object](f *testing.Fake, gvr schema.GroupVersionResource, ns string) kubeclient.Resource[T, L] {
	return gentype.NewFakeClientWithList[T, L](f, ns, gvr, kindOf[T](gvr), kubeclient.Zero[T], kubeclient.Zero[L],
		func(dst, src L) {
			d, errD := meta.ListAccessor(dst)
			s, errS := meta.ListAccessor(src)
			if errD == nil && errS == nil {
				d.SetResourceVersion(s.GetResourceVersion())
				d.SetContinue(s.GetContinue())
				d.SetRemainingItemCount(s.GetRemainingItemCount())
			}
		},
		func(l L) []T {
			objs, err := meta.ExtractList(l)
			if err != nil {
				panic(fmt.Sprintf("kubefake: listing %s: %v", gvr.Resource, err))
			}
			items := make([]T, 0, len(objs))
			for _, o := range objs {
				items = append(items, o.(T))
			}
			return items
		},
		func(l L, items []T) {
			objs := make([]runtime.Object, len(items))
			for i, it := range items {
				objs[i] = it
			}
			if err := meta.SetList(l, objs); err != nil {
				panic(fmt.Sprintf("kubefake: listing %s: %v", gvr.Resource, err))
			}
		})
}

func createOnly[T object](f *testing.Fake, gvr schema.GroupVersionResource, ns string) kubeclient.Creator[T] {
	return gentype.NewFakeClient[T](f, ns, gvr, kindOf[T](gvr), kubeclient.Zero[T])
}

// kindOf is T's GroupVersionKind in the scheme.
func kindOf[T runtime.Object](gvr schema.GroupVersionResource) schema.GroupVersionKind {
	gvks, _, err := Scheme.ObjectKinds(kubeclient.Zero[T]())
	if err != nil || len(gvks) == 0 {
		panic(fmt.Sprintf("kubefake: %s is not in the scheme: %v", gvr, err))
	}
	return gvks[0]
}

// ApplyPatch computes what a patch makes of current without storing it, by
// replaying the action against a scratch tracker holding only current, so
// the tracker's own JSON, merge and strategic-merge patch code does the work
// (reactors that check a patched object before storing it use this).
func ApplyPatch(a testing.PatchActionImpl, current runtime.Object) (runtime.Object, error) {
	t := testing.NewObjectTracker(Scheme, codecs.UniversalDecoder())
	if err := t.Add(current.DeepCopyObject()); err != nil {
		return nil, err
	}
	_, obj, err := testing.ObjectReaction(t)(a)
	return obj, err
}
