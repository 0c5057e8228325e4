package fakeopenshift

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/openshift/api/image/docker10"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clienttesting "k8s.io/client-go/testing"
)

// reactImageStreamImport stands for openshift-apiserver's ImageStreamImport
// REST Create (pkg/image/apiserver/registry/imagestreamimport/rest.go), which
// is what `oc import-image` calls:
//
//   - every spec.images[i].from (kind DockerImage) is resolved against the
//     Registry; status.images[i].status is Success with the image, or Failure
//     with the importer's reason and message (Unauthorized, NotFound, ...);
//   - with spec.import false nothing is stored (a dry run);
//   - with spec.import true, a metadata.resourceVersion that differs from the
//     stored stream's is a 409 Conflict (a UID that differs is NotFound);
//     otherwise each successful image whose digest differs from the tag's
//     current one — or whose spec tag generation is ahead of the status, as
//     after `oc tag` — becomes a new TagEvent at the front of
//     status.tags[to].items {created now, repo@digest, digest, the stream's
//     next generation}; the spec tag gets from/importPolicy (and
//     referencePolicy when unset); the ImportSuccess condition is cleared on
//     success and set False with the reason and message on failure; the
//     stream is stored (generation bumped when the spec changed) and returned
//     in status.import. A stream that does not exist is created, as the
//     server does when no resourceVersion/UID is given.
func (s *Server) reactImageStreamImport(action clienttesting.Action) (bool, runtime.Object, error) {
	a, ok := action.(clienttesting.CreateActionImpl)
	if !ok {
		return false, nil, nil
	}
	isi := a.GetObject().(*imagev1.ImageStreamImport).DeepCopy()
	ns := a.GetNamespace()
	if err := validateImport(isi); err != nil {
		return true, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	isi.Namespace = ns
	isi.CreationTimestamp = metav1.NewTime(s.now())
	if !isi.Spec.Import {
		isi.Status.Images = s.resolve(isi.Spec.Images)
		return true, isi, nil
	}
	if s.conflictOnNextImport {
		s.conflictOnNextImport = false
		return true, nil, apierrors.NewConflict(imagev1.Resource("imagestream"), isi.Name,
			fmt.Errorf("the image stream was updated from %q to %q", isi.ResourceVersion, "a newer version"))
	}

	create := false
	stream, err := s.getStream(ns, isi.Name)
	switch {
	case apierrors.IsNotFound(err):
		// consistency check: a caller that names a version expects the stream to exist
		if isi.ResourceVersion != "" || isi.UID != "" {
			return true, nil, err
		}
		create = true
		stream = &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Name: isi.Name, Namespace: ns}}
	case err != nil:
		return true, nil, err
	default:
		if isi.ResourceVersion != "" && isi.ResourceVersion != stream.ResourceVersion {
			return true, nil, apierrors.NewConflict(imagev1.Resource("imagestream"), isi.Name,
				fmt.Errorf("the image stream was updated from %q to %q", isi.ResourceVersion, stream.ResourceVersion))
		}
		if isi.UID != "" && isi.UID != stream.UID {
			return true, nil, apierrors.NewNotFound(imagev1.Resource("imagestream"), isi.Name)
		}
	}

	statuses, updated, err := s.importImages(stream, create, isi.Spec.Images)
	if err != nil {
		return true, nil, err
	}
	isi.Status.Images = statuses
	isi.Status.Import = updated
	return true, isi, nil
}

// validateImport is the part of ImageStreamImport validation callers can get
// wrong: only DockerImage sources, and whole-repository imports are not
// simulated.
func validateImport(isi *imagev1.ImageStreamImport) error {
	var errs field.ErrorList
	for i, spec := range isi.Spec.Images {
		p := field.NewPath("spec", "images").Index(i)
		if spec.From.Kind != "DockerImage" {
			errs = append(errs, field.NotSupported(p.Child("from", "kind"), spec.From.Kind, []string{"DockerImage"}))
		}
		if spec.From.Name == "" {
			errs = append(errs, field.Required(p.Child("from", "name"), ""))
		}
	}
	if isi.Spec.Repository != nil {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "repository"), "fakeopenshift does not simulate whole-repository imports"))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: imagev1.GroupName, Kind: "ImageStreamImport"}, isi.Name, errs)
	}
	return nil
}

// resolve looks every image up in the registry, like the importer does.
func (s *Server) resolve(images []imagev1.ImageImportSpec) []imagev1.ImageImportStatus {
	statuses := make([]imagev1.ImageImportStatus, len(images))
	for i, spec := range images {
		digest, err := s.registry.Lookup(spec.From.Name)
		if err != nil {
			st := metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
			if as, ok := err.(apierrors.APIStatus); ok {
				st = as.Status()
				st.Status = metav1.StatusFailure
			}
			statuses[i] = imagev1.ImageImportStatus{Status: st}
			continue
		}
		repo, _, _, _ := ParseReference(spec.From.Name)
		statuses[i] = imagev1.ImageImportStatus{
			Status: metav1.Status{Status: metav1.StatusSuccess},
			Image: &imagev1.Image{
				ObjectMeta:                 metav1.ObjectMeta{Name: digest},
				DockerImageReference:       repo + "@" + digest,
				DockerImageMetadata:        s.imageMetadata(digest),
				DockerImageMetadataVersion: "1.0",
			},
		}
	}
	return statuses
}

// createdLabel is the OCI label of when an image was built; the image
// config's Created is taken from it, as a build that sets it would.
const createdLabel = "org.opencontainers.image.created"

// imageMetadata is the image's config as the importer reports it:
// schema2OrOCIToImage (openshift-apiserver
// pkg/image/apiserver/importer/image.go) unmarshals the image config into
// a DockerImage, and Convert_image_Image_To_v1_Image
// (pkg/image/apis/image/v1/conversion.go) encodes it into
// dockerImageMetadata as a docker10.DockerImage of the legacy group,
// version "1.0". The fake's images have labels and a creation time only.
func (s *Server) imageMetadata(digest string) runtime.RawExtension {
	meta := docker10.DockerImage{
		TypeMeta:     metav1.TypeMeta{Kind: "DockerImage", APIVersion: docker10.LegacySchemeGroupVersion.String()},
		ID:           digest,
		Architecture: "amd64",
	}
	if labels := s.registry.Labels(digest); labels != nil {
		meta.Config = &docker10.DockerConfig{Labels: labels}
		if t, err := time.Parse(time.RFC3339Nano, labels[createdLabel]); err == nil {
			meta.Created = metav1.NewTime(t)
		}
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		return runtime.RawExtension{} // strings and a time: cannot fail
	}
	return runtime.RawExtension{Raw: raw}
}

// importImages resolves images and records the outcome in stream, storing
// it when anything changed. The caller holds s.mu. It returns the
// per-image statuses and the stream as stored (or unchanged).
func (s *Server) importImages(stream *imagev1.ImageStream, create bool, images []imagev1.ImageImportSpec) ([]imagev1.ImageImportStatus, *imagev1.ImageStream, error) {
	images = append([]imagev1.ImageImportSpec(nil), images...)
	for i := range images {
		defaultTagPolicies(&images[i].ImportPolicy, &images[i].ReferencePolicy)
	}
	statuses := s.resolve(images)

	defaultStream(stream)
	original := stream.DeepCopy()
	now := metav1.NewTime(s.now())
	_, hasAnnotation := stream.Annotations[imagev1.DockerImageRepositoryCheckAnnotation]
	nextGeneration := stream.Generation + 1

	for i, spec := range images {
		if spec.To == nil {
			continue
		}
		tag := spec.To.Name
		if checkImportFailure(statuses[i], stream, tag, nextGeneration, now) {
			ensureSpecTag(stream, tag, spec.From.Name, spec.ImportPolicy, spec.ReferencePolicy, false)
			continue
		}
		importSuccessful(stream, tag, spec.From.Name, statuses[i].Image, nextGeneration, now, spec.ImportPolicy, spec.ReferencePolicy)
	}
	defaultStream(stream)
	collapseEmptyStatusTags(stream)

	if stream.Annotations == nil {
		stream.Annotations = map[string]string{}
	}
	if create {
		stream.Annotations[imagev1.DockerImageRepositoryCheckAnnotation] = now.UTC().Format(time.RFC3339)
		prepareInternalStreamForCreate(stream)
		created, err := s.createStream(stream)
		return statuses, created, err
	}
	if hasAnnotation && streamsEqual(original, stream) {
		return statuses, original, nil
	}
	stream.Annotations[imagev1.DockerImageRepositoryCheckAnnotation] = now.UTC().Format(time.RFC3339)
	prepareStreamForUpdate(stream, original, false, now.Time)
	updated, err := s.writeStream(stream)
	return statuses, updated, err
}

// checkImportFailure records a failed image as an ImportSuccess=False
// condition (once per distinct reason/message; a new one also resets the
// spec tag generation to 0) and reports whether the image failed.
func checkImportFailure(status imagev1.ImageImportStatus, stream *imagev1.ImageStream, tag string, nextGeneration int64, now metav1.Time) bool {
	if status.Image != nil && status.Status.Status == metav1.StatusSuccess {
		return false
	}
	message := status.Status.Message
	if message == "" {
		message = "unknown error prevented import"
	}
	cond := imagev1.TagEventCondition{
		Type:               imagev1.ImportSuccess,
		Status:             corev1.ConditionFalse,
		Message:            message,
		Reason:             string(status.Status.Reason),
		Generation:         nextGeneration,
		LastTransitionTime: now,
	}
	if !hasTagCondition(stream, tag, cond) {
		ensureStatusTag(stream, tag).Conditions = []imagev1.TagEventCondition{cond}
		if ref := specTag(stream, tag); ref != nil {
			ref.Generation = int64Ptr(0)
		}
	}
	return true
}

func hasTagCondition(stream *imagev1.ImageStream, tag string, c imagev1.TagEventCondition) bool {
	st := statusTag(stream, tag)
	if st == nil {
		return false
	}
	for _, e := range st.Conditions {
		if e.Type == c.Type && e.Status == c.Status && e.Reason == c.Reason && e.Message == c.Message {
			return true
		}
	}
	return false
}

// ensureSpecTag makes sure the spec tag exists with from, importPolicy and
// (when not already set) referencePolicy; reset overwrites an existing one.
func ensureSpecTag(stream *imagev1.ImageStream, tag, from string, ip imagev1.TagImportPolicy, rp imagev1.TagReferencePolicy, reset bool) {
	ref := specTag(stream, tag)
	if ref != nil && !reset {
		return
	}
	if ref == nil {
		stream.Spec.Tags = append(stream.Spec.Tags, imagev1.TagReference{Name: tag})
		ref = &stream.Spec.Tags[len(stream.Spec.Tags)-1]
	}
	ref.From = &corev1.ObjectReference{Kind: "DockerImage", Name: from}
	ref.Generation = int64Ptr(0)
	ref.ImportPolicy = ip
	// importing an image does not change an explicitly set reference policy
	if ref.ReferencePolicy.Type == "" {
		ref.ReferencePolicy = rp
	}
}

// importSuccessful records a successfully imported image in the tag.
func importSuccessful(stream *imagev1.ImageStream, tag, from string, image *imagev1.Image, nextGeneration int64, now metav1.Time, ip imagev1.TagImportPolicy, rp imagev1.TagReferencePolicy) {
	ev := imagev1.TagEvent{
		Created:              now,
		DockerImageReference: image.DockerImageReference,
		Image:                image.Name,
		Generation:           nextGeneration,
	}
	changed := differentTagEvent(stream, tag, ev) || differentTagGeneration(stream, tag)
	if changed || specTag(stream, tag) == nil {
		ensureSpecTag(stream, tag, from, ip, rp, true)
		addTagEvent(stream, tag, ev)
	}
	// always reset the import policy
	specTag(stream, tag).ImportPolicy = ip
	if st := statusTag(stream, tag); st != nil {
		st.Conditions = nil
	}
}

func differentTagEvent(stream *imagev1.ImageStream, tag string, next imagev1.TagEvent) bool {
	prev := latestTagEvent(stream, tag)
	if prev == nil {
		return true
	}
	return !(prev.DockerImageReference == next.DockerImageReference && prev.Image == next.Image)
}

func differentTagGeneration(stream *imagev1.ImageStream, tag string) bool {
	ref := specTag(stream, tag)
	if ref == nil || ref.Generation == nil {
		return true
	}
	prev := latestTagEvent(stream, tag)
	if prev == nil {
		return true
	}
	return *ref.Generation > prev.Generation
}
