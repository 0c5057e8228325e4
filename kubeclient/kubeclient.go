// Package kubeclient holds the typed clients deploybot uses, and only those:
// apps/v1 (Deployments, StatefulSets, ReplicaSets, ControllerRevisions),
// core/v1 (Pods, ConfigMaps), authorization/v1 (access reviews),
// authentication/v1 (SelfSubjectReview), coordination/v1 (Leases) and
// OpenShift's image.openshift.io/v1 (ImageStreams, ImageStreamTags,
// ImageStreamImports).
//
// The clients are client-go's generic ones (k8s.io/client-go/gentype, the
// code every generated typed client is made of) over a scheme of just these
// groups. client-go's generated clientsets, even one typed group of them,
// link the scheme, apply configurations and discovery of every API group
// Kubernetes serves; this package links none of that. Consumers name the small
// interfaces below, so the real clients, internal/kubefake and any adapter fit.
package kubeclient

import (
	"context"
	"fmt"
	"net/http"
	"reflect"

	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/rest"
)

// Scheme knows the types of the API groups deploybot uses, and no others.
var Scheme = runtime.NewScheme()

// Codecs and ParameterCodec encode and decode the Scheme's types.
var (
	Codecs         = serializer.NewCodecFactory(Scheme)
	ParameterCodec = runtime.NewParameterCodec(Scheme)
)

// AddToScheme adds the API groups of this package to a scheme (fakes build
// their object trackers on it).
var AddToScheme = schemeBuilder.AddToScheme

var schemeBuilder = runtime.SchemeBuilder{
	appsv1.AddToScheme,
	corev1.AddToScheme,
	authorizationv1.AddToScheme,
	authenticationv1.AddToScheme,
	coordinationv1.AddToScheme,
	imagev1.Install,
}

func init() {
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	if err := AddToScheme(Scheme); err != nil {
		panic(fmt.Sprintf("kubeclient: building the scheme: %v", err))
	}
}

// Resource is a client of one namespaced (or cluster-scoped) resource with
// list, watch and patch: what gentype.ClientWithList and
// gentype.FakeClientWithList both implement.
type Resource[T runtime.Object, L runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	UpdateStatus(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// Creator is a client of a create-only resource: the reviews and
// ImageStreamImport, which the API server answers and does not store.
type Creator[T runtime.Object] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
}

// Interface is the Kubernetes side of one environment's clients, shaped like
// client-go's kubernetes.Interface so call sites read the same
// (kube.AppsV1().Deployments(ns).Get(...)).
type Interface interface {
	AppsV1() AppsV1
	CoreV1() CoreV1
	AuthorizationV1() AuthorizationV1
	AuthenticationV1() AuthenticationV1
	CoordinationV1() CoordinationV1
}

// AppsV1 is the part of apps/v1 deploybot reads and changes.
type AppsV1 interface {
	Deployments(namespace string) Resource[*appsv1.Deployment, *appsv1.DeploymentList]
	StatefulSets(namespace string) Resource[*appsv1.StatefulSet, *appsv1.StatefulSetList]
	ReplicaSets(namespace string) Resource[*appsv1.ReplicaSet, *appsv1.ReplicaSetList]
	ControllerRevisions(namespace string) Resource[*appsv1.ControllerRevision, *appsv1.ControllerRevisionList]
}

// CoreV1 is the part of core/v1 deploybot uses: pods to follow rollouts,
// ConfigMaps for the Kubernetes store.
type CoreV1 interface {
	Pods(namespace string) Resource[*corev1.Pod, *corev1.PodList]
	ConfigMaps(namespace string) Resource[*corev1.ConfigMap, *corev1.ConfigMapList]
}

// AuthorizationV1 asks the API server what a user may do.
type AuthorizationV1 interface {
	LocalSubjectAccessReviews(namespace string) Creator[*authorizationv1.LocalSubjectAccessReview]
	SubjectAccessReviews() Creator[*authorizationv1.SubjectAccessReview]
	SelfSubjectAccessReviews() Creator[*authorizationv1.SelfSubjectAccessReview]
}

// AuthenticationV1 asks the API server who the bot's credentials are.
type AuthenticationV1 interface {
	SelfSubjectReviews() Creator[*authenticationv1.SelfSubjectReview]
}

// CoordinationV1 holds the Leases of leader election.
type CoordinationV1 interface {
	Leases(namespace string) Resource[*coordinationv1.Lease, *coordinationv1.LeaseList]
}

// ImageV1 is the part of OpenShift's image.openshift.io/v1 deploybot uses.
type ImageV1 interface {
	ImageStreams(namespace string) Resource[*imagev1.ImageStream, *imagev1.ImageStreamList]
	ImageStreamTags(namespace string) Resource[*imagev1.ImageStreamTag, *imagev1.ImageStreamTagList]
	ImageStreamImports(namespace string) Creator[*imagev1.ImageStreamImport]
}

// Clientset is the real Interface and ImageV1, one REST client per API group
// over one HTTP client.
type Clientset struct {
	apps, core, authz, authn, coord, image rest.Interface
}

var (
	_ Interface = (*Clientset)(nil)
	_ ImageV1   = (*Clientset)(nil)
)

// NewForConfig builds the clients from a REST config, as client-go's
// kubernetes.NewForConfig does.
func NewForConfig(cfg *rest.Config) (*Clientset, error) {
	c := *cfg
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	httpClient, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, fmt.Errorf("building the HTTP client: %w", err)
	}
	cs := &Clientset{}
	for _, g := range []struct {
		into *rest.Interface
		gv   schema.GroupVersion
	}{
		{&cs.apps, appsv1.SchemeGroupVersion},
		{&cs.core, corev1.SchemeGroupVersion},
		{&cs.authz, authorizationv1.SchemeGroupVersion},
		{&cs.authn, authenticationv1.SchemeGroupVersion},
		{&cs.coord, coordinationv1.SchemeGroupVersion},
		{&cs.image, imagev1.SchemeGroupVersion},
	} {
		rc, err := restClient(c, httpClient, g.gv)
		if err != nil {
			return nil, fmt.Errorf("building the %s client: %w", g.gv, err)
		}
		*g.into = rc
	}
	return cs, nil
}

func restClient(cfg rest.Config, h *http.Client, gv schema.GroupVersion) (rest.Interface, error) {
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	if gv.Group == "" {
		cfg.APIPath = "/api"
	}
	cfg.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(Scheme, Codecs).WithoutConversion()
	return rest.RESTClientForConfigAndClient(&cfg, h)
}

// AppsV1 implements Interface.
func (c *Clientset) AppsV1() AppsV1 { return apps{c.apps} }

// CoreV1 implements Interface.
func (c *Clientset) CoreV1() CoreV1 { return core{c.core} }

// AuthorizationV1 implements Interface.
func (c *Clientset) AuthorizationV1() AuthorizationV1 { return authz{c.authz} }

// AuthenticationV1 implements Interface.
func (c *Clientset) AuthenticationV1() AuthenticationV1 { return authn{c.authn} }

// CoordinationV1 implements Interface.
func (c *Clientset) CoordinationV1() CoordinationV1 { return coord{c.coord} }

// ImageStreams implements ImageV1.
func (c *Clientset) ImageStreams(ns string) Resource[*imagev1.ImageStream, *imagev1.ImageStreamList] {
	return withList[*imagev1.ImageStream, *imagev1.ImageStreamList](c.image, "imagestreams", ns, false)
}

// ImageStreamTags implements ImageV1.
func (c *Clientset) ImageStreamTags(ns string) Resource[*imagev1.ImageStreamTag, *imagev1.ImageStreamTagList] {
	return withList[*imagev1.ImageStreamTag, *imagev1.ImageStreamTagList](c.image, "imagestreamtags", ns, false)
}

// ImageStreamImports implements ImageV1.
func (c *Clientset) ImageStreamImports(ns string) Creator[*imagev1.ImageStreamImport] {
	return createOnly[*imagev1.ImageStreamImport](c.image, "imagestreamimports", ns, false)
}

type apps struct{ rc rest.Interface }

func (g apps) Deployments(ns string) Resource[*appsv1.Deployment, *appsv1.DeploymentList] {
	return withList[*appsv1.Deployment, *appsv1.DeploymentList](g.rc, "deployments", ns, true)
}

func (g apps) StatefulSets(ns string) Resource[*appsv1.StatefulSet, *appsv1.StatefulSetList] {
	return withList[*appsv1.StatefulSet, *appsv1.StatefulSetList](g.rc, "statefulsets", ns, true)
}

func (g apps) ReplicaSets(ns string) Resource[*appsv1.ReplicaSet, *appsv1.ReplicaSetList] {
	return withList[*appsv1.ReplicaSet, *appsv1.ReplicaSetList](g.rc, "replicasets", ns, true)
}

func (g apps) ControllerRevisions(ns string) Resource[*appsv1.ControllerRevision, *appsv1.ControllerRevisionList] {
	return withList[*appsv1.ControllerRevision, *appsv1.ControllerRevisionList](g.rc, "controllerrevisions", ns, true)
}

type core struct{ rc rest.Interface }

func (g core) Pods(ns string) Resource[*corev1.Pod, *corev1.PodList] {
	return withList[*corev1.Pod, *corev1.PodList](g.rc, "pods", ns, true)
}

func (g core) ConfigMaps(ns string) Resource[*corev1.ConfigMap, *corev1.ConfigMapList] {
	return withList[*corev1.ConfigMap, *corev1.ConfigMapList](g.rc, "configmaps", ns, true)
}

type authz struct{ rc rest.Interface }

func (g authz) LocalSubjectAccessReviews(ns string) Creator[*authorizationv1.LocalSubjectAccessReview] {
	return createOnly[*authorizationv1.LocalSubjectAccessReview](g.rc, "localsubjectaccessreviews", ns, true)
}

func (g authz) SubjectAccessReviews() Creator[*authorizationv1.SubjectAccessReview] {
	return createOnly[*authorizationv1.SubjectAccessReview](g.rc, "subjectaccessreviews", "", true)
}

func (g authz) SelfSubjectAccessReviews() Creator[*authorizationv1.SelfSubjectAccessReview] {
	return createOnly[*authorizationv1.SelfSubjectAccessReview](g.rc, "selfsubjectaccessreviews", "", true)
}

type authn struct{ rc rest.Interface }

func (g authn) SelfSubjectReviews() Creator[*authenticationv1.SelfSubjectReview] {
	return createOnly[*authenticationv1.SelfSubjectReview](g.rc, "selfsubjectreviews", "", true)
}

type coord struct{ rc rest.Interface }

func (g coord) Leases(ns string) Resource[*coordinationv1.Lease, *coordinationv1.LeaseList] {
	return withList[*coordinationv1.Lease, *coordinationv1.LeaseList](g.rc, "leases", ns, true)
}

// object is what gentype needs of a type: a runtime.Object with metadata.
type object interface {
	runtime.Object
	metav1.Object
}

// withList is gentype.NewClientWithList for resource on rc. Built-in types
// prefer protobuf on the wire, as client-go's generated clients do; OpenShift's
// types stay JSON because a cluster may serve them as CRDs (no protobuf).
func withList[T object, L runtime.Object](rc rest.Interface, resource, ns string, protobuf bool) Resource[T, L] {
	var opts []gentype.Option[T]
	if protobuf {
		opts = append(opts, gentype.PrefersProtobuf[T]())
	}
	return gentype.NewClientWithList[T, L](resource, rc, ParameterCodec, ns, Zero[T], Zero[L], opts...)
}

func createOnly[T object](rc rest.Interface, resource, ns string, protobuf bool) Creator[T] {
	var opts []gentype.Option[T]
	if protobuf {
		opts = append(opts, gentype.PrefersProtobuf[T]())
	}
	return gentype.NewClient[T](resource, rc, ParameterCodec, ns, Zero[T], opts...)
}

// Zero returns a new, empty object of the type T points to (gentype's
// emptyObjectCreator and emptyListCreator).
func Zero[T runtime.Object]() T {
	var t T
	return reflect.New(reflect.TypeOf(t).Elem()).Interface().(T)
}
