package fakeopenshift

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/deploybot/deploybot/internal/kubefake"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"
)

var (
	imageStreamsGVR    = imagev1.SchemeGroupVersion.WithResource("imagestreams")
	imageStreamTagsGVR = imagev1.SchemeGroupVersion.WithResource("imagestreamtags")
)

// Server is the openshift-apiserver (image API) and the import half of the
// openshift-controller-manager image stream controller, installed as
// reactors on one image fake Clientset. It keeps its state in the
// Clientset's object tracker, so Get, List and Watch of ImageStreams keep
// working through the fake's default reactors.
type Server struct {
	// mu serializes every read-modify-write of stored ImageStreams; reactors
	// already run under the Clientset's lock, but ImportScheduled does not.
	mu       sync.Mutex
	tracker  clienttesting.ObjectTracker
	registry *Registry
	now      func() time.Time

	// rv is the last resourceVersion handed out. The object tracker does not
	// maintain metadata.resourceVersion, so the server does, as etcd would.
	rv  int64
	uid int64

	istagsUnserved       metav1.StatusReason
	istagsUnservedVerbs  map[string]bool // empty: all verbs
	conflictOnNextUpdate bool
	conflictOnNextImport bool
	conflictOnNextTagPut bool
}

// Option configures Install.
type Option func(*Server)

// WithClock makes the server stamp tag events, conditions and annotations
// with now() instead of time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithoutImageStreamTags simulates a server that does not serve the
// imagestreamtags resource to the caller: requests with the given verbs
// (all verbs when none are given) fail with reason, which should be
// metav1.StatusReasonMethodNotAllowed (apierrors.IsMethodNotSupported: old
// servers without update), NotFound (the resource is not served) or
// Forbidden (no RBAC for it). This is what makes `oc tag` fall back from
// update to create, and from there to updating ImageStream.spec.tags:
// WithoutImageStreamTags(metav1.StatusReasonMethodNotAllowed, "update")
// leaves create working.
func WithoutImageStreamTags(reason metav1.StatusReason, verbs ...string) Option {
	return func(s *Server) {
		s.istagsUnserved = reason
		s.istagsUnservedVerbs = map[string]bool{}
		for _, v := range verbs {
			s.istagsUnservedVerbs[v] = true
		}
	}
}

// WithConflictOnNextUpdate makes the next client update of an ImageStream
// fail with 409 Conflict, once (see ConflictOnNextUpdate).
func WithConflictOnNextUpdate() Option { return func(s *Server) { s.conflictOnNextUpdate = true } }

// Install adds the reactors to client and returns the Server behind them.
// Objects already in the client's tracker (NewSimpleClientset(objs...)) are
// served as they are; objects without a resourceVersion get one on their
// first write.
func Install(client *kubefake.ImageClientset, reg *Registry, opts ...Option) *Server {
	s := &Server{tracker: client.Tracker(), registry: reg, now: time.Now, rv: 1000}
	for _, o := range opts {
		o(s)
	}
	client.PrependReactor("*", "imagestreams", s.reactImageStreams)
	client.PrependReactor("*", "imagestreamtags", s.reactImageStreamTags)
	client.PrependReactor("create", "imagestreamimports", s.reactImageStreamImport)
	return s
}

// Registry returns the registry imports resolve against.
func (s *Server) Registry() *Registry { return s.registry }

// ConflictOnNextUpdate makes the next client update (or patch) of an
// ImageStream fail with 409 Conflict, once, as if someone else had written
// the stream between the caller's Get and Update. Use it to test
// retry.RetryOnConflict around the `oc tag` ImageStream fallback.
func (s *Server) ConflictOnNextUpdate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conflictOnNextUpdate = true
}

// ConflictOnNextImport makes the next ImageStreamImport with spec.import
// fail with 409 Conflict, once, as the real server does when the stream's
// resourceVersion moved on since the caller read it.
func (s *Server) ConflictOnNextImport() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conflictOnNextImport = true
}

// ConflictOnNextTagUpdate makes the next ImageStreamTag update or create
// fail with 409 Conflict, once.
func (s *Server) ConflictOnNextTagUpdate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conflictOnNextTagPut = true
}

// ImportScheduled re-imports every spec tag with importPolicy.scheduled true
// in every stream, as the openshift-controller-manager scheduled importer
// does about every 15 minutes. Callers decide when (the demo runs it on a
// timer); it returns the first storage error.
func (s *Server) ImportScheduled() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, err := s.tracker.List(imageStreamsGVR, imagev1.SchemeGroupVersion.WithKind("ImageStream"), "")
	if err != nil {
		return fmt.Errorf("listing image streams for scheduled import: %w", err)
	}
	for i := range obj.(*imagev1.ImageStreamList).Items {
		stream := &obj.(*imagev1.ImageStreamList).Items[i]
		var images []imagev1.ImageImportSpec
		for _, t := range stream.Spec.Tags {
			if t.ImportPolicy.Scheduled && t.From != nil && t.From.Kind == "DockerImage" && !t.Reference {
				images = append(images, importSpecFor(t))
			}
		}
		if len(images) == 0 {
			continue
		}
		if _, _, err := s.importImages(stream, false, images); err != nil {
			return fmt.Errorf("scheduled import of %s/%s: %w", stream.Namespace, stream.Name, err)
		}
	}
	return nil
}

// importSpecFor is the ImageImportSpec the image stream controller builds for
// a spec tag that needs importing.
func importSpecFor(t imagev1.TagReference) imagev1.ImageImportSpec {
	return imagev1.ImageImportSpec{
		From:            *t.From.DeepCopy(),
		To:              &corev1.LocalObjectReference{Name: t.Name},
		ImportPolicy:    t.ImportPolicy,
		ReferencePolicy: t.ReferencePolicy,
	}
}

// getStream reads a stored ImageStream.
func (s *Server) getStream(ns, name string) (*imagev1.ImageStream, error) {
	obj, err := s.tracker.Get(imageStreamsGVR, ns, name)
	if err != nil {
		return nil, err
	}
	return obj.(*imagev1.ImageStream), nil
}

// nextRV hands out the next resourceVersion (etcd's revision counter).
func (s *Server) nextRV() string {
	s.rv++
	return strconv.FormatInt(s.rv, 10)
}

// createStream stores a new stream: metadata system fields as
// rest.FillObjectMetaSystemFields does, plus a resourceVersion.
func (s *Server) createStream(stream *imagev1.ImageStream) (*imagev1.ImageStream, error) {
	if stream.CreationTimestamp.IsZero() {
		stream.CreationTimestamp = metav1.NewTime(s.now())
	}
	if stream.UID == "" {
		s.uid++
		stream.UID = types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", s.uid))
	}
	stream.ResourceVersion = s.nextRV()
	if err := s.tracker.Create(imageStreamsGVR, stream, stream.Namespace); err != nil {
		return nil, err
	}
	return stream.DeepCopy(), nil
}

// writeStream stores an updated stream with a new resourceVersion.
func (s *Server) writeStream(stream *imagev1.ImageStream) (*imagev1.ImageStream, error) {
	stream.ResourceVersion = s.nextRV()
	if err := s.tracker.Update(imageStreamsGVR, stream, stream.Namespace); err != nil {
		return nil, err
	}
	return stream.DeepCopy(), nil
}

// reactImageStreams stands for the ImageStream REST storage of
// openshift-apiserver (registry/imagestream/etcd with the strategy in
// registry/imagestream/strategy.go): creates and updates get a
// resourceVersion, an update carrying a stale resourceVersion is a 409
// Conflict, the main resource ignores status (the status subresource ignores
// spec), spec changes bump metadata.generation and stamp changed spec tags
// with it. After a write, tags whose spec generation is ahead of their status
// are imported at once — the image stream controller in
// openshift-controller-manager does that asynchronously in a real cluster.
// Get, list, watch and delete fall through to the tracker.
func (s *Server) reactImageStreams(action clienttesting.Action) (bool, runtime.Object, error) {
	switch a := action.(type) {
	case clienttesting.CreateActionImpl:
		if a.GetSubresource() != "" {
			return false, nil, nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		stream := a.GetObject().(*imagev1.ImageStream).DeepCopy()
		if stream.Namespace == "" {
			stream.Namespace = a.GetNamespace()
		}
		if _, err := s.getStream(stream.Namespace, stream.Name); err == nil {
			return true, nil, apierrors.NewAlreadyExists(imageStreamsGVR.GroupResource(), stream.Name)
		}
		defaultStream(stream)
		prepareStreamForCreate(stream)
		created, err := s.createStream(stream)
		if err != nil {
			return true, nil, err
		}
		out, err := s.importPendingTags(created)
		return true, out, err
	case clienttesting.UpdateActionImpl:
		s.mu.Lock()
		defer s.mu.Unlock()
		stream := a.GetObject().(*imagev1.ImageStream).DeepCopy()
		out, err := s.updateStream(a.GetNamespace(), stream, a.GetSubresource() == "status", true)
		return true, out, err
	case clienttesting.PatchActionImpl:
		if a.GetPatchType() == types.ApplyPatchType {
			return true, nil, apierrors.NewMethodNotSupported(imageStreamsGVR.GroupResource(), "apply")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		old, err := s.getStream(a.GetNamespace(), a.GetName())
		if err != nil {
			return true, nil, err
		}
		patched, err := kubefake.ApplyPatch(a, old)
		if err != nil {
			return true, nil, err
		}
		stream := patched.(*imagev1.ImageStream)
		// A patch applies to the stored object, so it cannot be stale
		// unless it carries its own resourceVersion precondition.
		if stream.ResourceVersion == "" {
			stream.ResourceVersion = old.ResourceVersion
		}
		out, err := s.updateStream(a.GetNamespace(), stream, a.GetSubresource() == "status", true)
		return true, out, err
	}
	return false, nil, nil
}

// updateStream is the ImageStream update path shared by update and patch.
func (s *Server) updateStream(ns string, stream *imagev1.ImageStream, status, fromClient bool) (*imagev1.ImageStream, error) {
	if fromClient && s.conflictOnNextUpdate {
		s.conflictOnNextUpdate = false
		return nil, apierrors.NewConflict(imageStreamsGVR.GroupResource(), stream.Name,
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	old, err := s.getStream(ns, stream.Name)
	if err != nil {
		return nil, err
	}
	if stream.ResourceVersion != "" && stream.ResourceVersion != old.ResourceVersion {
		return nil, apierrors.NewConflict(imageStreamsGVR.GroupResource(), stream.Name,
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	stream.Namespace = ns
	stream.UID, stream.CreationTimestamp = old.UID, old.CreationTimestamp
	defaultStream(stream)
	if status {
		// StatusStrategy.PrepareForUpdate: spec comes from the stored object.
		stream.Spec = *old.Spec.DeepCopy()
		stream.Generation = old.Generation
		stream.Annotations, stream.Labels = old.Annotations, old.Labels
	} else {
		prepareStreamForUpdate(stream, old, true, s.now())
	}
	written, err := s.writeStream(stream)
	if err != nil {
		return nil, err
	}
	if status {
		return written, nil
	}
	return s.importPendingTags(written)
}

// importPendingTags stands for the openshift-controller-manager image stream
// controller (pkg/image/controller/imagestream_controller.go): a DockerImage
// spec tag whose generation is ahead of the latest generation observed in
// its status (tag event or ImportSuccess condition) gets an
// ImageStreamImport. That is how `oc tag` (generation 0 → the stream's new
// generation) leads to the tag's image changing. The real controller runs
// the import shortly after the write; here it runs before the reactor
// returns, so callers see the imported image immediately.
func (s *Server) importPendingTags(stream *imagev1.ImageStream) (*imagev1.ImageStream, error) {
	var images []imagev1.ImageImportSpec
	for _, t := range stream.Spec.Tags {
		if t.From == nil || t.From.Kind != "DockerImage" || t.Reference || t.Generation == nil {
			continue
		}
		if *t.Generation > latestObservedTagGeneration(stream, t.Name) {
			images = append(images, importSpecFor(t))
		}
	}
	if len(images) == 0 {
		return stream, nil
	}
	_, updated, err := s.importImages(stream, false, images)
	if err != nil {
		return nil, fmt.Errorf("importing pending tags of %s/%s: %w", stream.Namespace, stream.Name, err)
	}
	return updated, nil
}

// latestObservedTagGeneration is the newest generation the status records
// for tag: the current tag event's, or a newer failed import's condition.
func latestObservedTagGeneration(stream *imagev1.ImageStream, tag string) int64 {
	st := statusTag(stream, tag)
	if st == nil {
		return 0
	}
	var latest int64
	if len(st.Items) > 0 {
		latest = st.Items[0].Generation
	}
	for _, c := range st.Conditions {
		if c.Type == imagev1.ImportSuccess && c.Generation > latest {
			latest = c.Generation
		}
	}
	return latest
}
