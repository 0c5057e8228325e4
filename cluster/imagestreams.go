package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/registry"
	"github.com/openshift/api/image/docker10"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"
)

// imageGroup is the API group of ImageStreams and their subresources.
const imageGroup = "image.openshift.io"

// insecureRepositoryAnnotation on an ImageStream lets imports skip TLS
// verification; oc import-image honours it, so do we.
const insecureRepositoryAnnotation = "openshift.io/image.insecureRepository"

// Tag returns the ImageStream tag's spec, current image and history
// (what oc describe is/NAME shows for one tag).
func (s *Set) Tag(ctx context.Context, env, stream, tag string) (plan.TagState, error) {
	c, err := s.Env(env)
	if err != nil {
		return plan.TagState{}, err
	}
	if c.Kubernetes != nil {
		return c.kubeTag(ctx, env, stream, tag)
	}
	is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, stream, metav1.GetOptions{})
	if err != nil {
		return plan.TagState{}, fmt.Errorf("reading image stream %s: %w", stream, err)
	}
	st, ok := tagState(is, tag)
	if !ok {
		return plan.TagState{}, tagNotFound(stream, tag)
	}
	st.ChangedBy = streamTagChangedBy(is, tag)
	return st, nil
}

// tagState extracts one tag from an ImageStream; ok is false when the stream
// has neither a spec nor a status entry for it.
func tagState(is *imagev1.ImageStream, tag string) (plan.TagState, bool) {
	st := plan.TagState{Stream: is.Name, Tag: tag, Hold: streamHold(is.Annotations, tag)}
	found := false
	if ref := specTag(is, tag); ref != nil {
		found = true
		if ref.From != nil {
			st.SpecFrom = ref.From.Name
			st.SpecFromKind = ref.From.Kind
		}
		st.Scheduled = ref.ImportPolicy.Scheduled
	}
	for _, l := range is.Status.Tags {
		if l.Tag != tag {
			continue
		}
		found = true
		for _, item := range l.Items {
			st.History = append(st.History, plan.TagEvent{
				Created:    item.Created.Time,
				Ref:        item.DockerImageReference,
				Digest:     item.Image,
				Generation: item.Generation,
			})
		}
		for _, cond := range l.Conditions {
			if cond.Type == imagev1.ImportSuccess && cond.Status == corev1.ConditionFalse {
				st.ImportError = cond.Message
				if st.ImportError == "" {
					st.ImportError = cond.Reason
				}
			}
		}
	}
	if len(st.History) > 0 {
		st.Current = st.History[0]
	}
	return st, found
}

// specTag returns the stream's spec tag with the given name, or nil.
func specTag(is *imagev1.ImageStream, tag string) *imagev1.TagReference {
	for i := range is.Spec.Tags {
		if is.Spec.Tags[i].Name == tag {
			return &is.Spec.Tags[i]
		}
	}
	return nil
}

// currentImage is the tag's status.tags[].items[0], the image workloads run.
func currentImage(is *imagev1.ImageStream, tag string) plan.Image {
	for _, l := range is.Status.Tags {
		if l.Tag == tag && len(l.Items) > 0 {
			return plan.Image{Ref: l.Items[0].DockerImageReference, Digest: l.Items[0].Image}
		}
	}
	return plan.Image{}
}

func tagNotFound(stream, tag string) error {
	return apierrors.NewNotFound(schema.GroupResource{Group: imageGroup, Resource: "imagestreamtags"}, stream+":"+tag)
}

// importableSpec returns the tag's spec reference when it can be imported
// from a registry: oc import-image refuses anything but a DockerImage source.
func importableSpec(is *imagev1.ImageStream, tag string) (*imagev1.TagReference, error) {
	ref := specTag(is, tag)
	if ref == nil {
		return nil, tagNotFound(is.Name, tag)
	}
	if ref.From == nil {
		return nil, fmt.Errorf("tag %s:%s has no source to import from", is.Name, tag)
	}
	if ref.From.Kind != "DockerImage" {
		return nil, fmt.Errorf("tag %s:%s points to %s %q, it cannot be re-imported", is.Name, tag, ref.From.Kind, ref.From.Name)
	}
	return ref, nil
}

// newImport builds the ImageStreamImport oc import-image IS:TAG sends: the
// tag's spec source, the stream's resourceVersion (so a concurrent change is a
// 409), the tag's import policy as before and the Source reference policy.
// With doImport false the server only looks the image up (oc import-image
// --dry-run) and changes nothing.
func newImport(is *imagev1.ImageStream, tag string, ref *imagev1.TagReference, doImport bool) *imagev1.ImageStreamImport {
	mode := ref.ImportPolicy.ImportMode
	if mode == "" {
		mode = imagev1.ImportModeLegacy
	}
	return &imagev1.ImageStreamImport{
		ObjectMeta: metav1.ObjectMeta{
			Name:            is.Name,
			Namespace:       is.Namespace,
			ResourceVersion: is.ResourceVersion,
		},
		Spec: imagev1.ImageStreamImportSpec{
			Import: doImport,
			Images: []imagev1.ImageImportSpec{{
				From: corev1.ObjectReference{Kind: "DockerImage", Name: ref.From.Name},
				To:   &corev1.LocalObjectReference{Name: tag},
				ImportPolicy: imagev1.TagImportPolicy{
					Insecure:   ref.ImportPolicy.Insecure || is.Annotations[insecureRepositoryAnnotation] == "true",
					Scheduled:  ref.ImportPolicy.Scheduled,
					ImportMode: mode,
				},
				ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
			}},
		},
	}
}

// ImportError is a registry-side failure of one image import, as the server
// reports it in status.images[].status (the API call itself succeeded).
type ImportError struct {
	From    string
	Reason  string
	Message string
}

func (e *ImportError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Reason
	}
	if msg == "" {
		msg = "import failed"
	}
	return e.From + ": " + msg
}

// importedImage reads the per-image result of an ImageStreamImport.
func importedImage(isi *imagev1.ImageStreamImport, from, revisionLabel string) (plan.Image, error) {
	if len(isi.Status.Images) == 0 {
		return plan.Image{}, &ImportError{From: from, Message: "the server returned no import status"}
	}
	st := isi.Status.Images[0]
	if st.Status.Status == metav1.StatusFailure {
		return plan.Image{}, &ImportError{From: from, Reason: string(st.Status.Reason), Message: st.Status.Message}
	}
	if st.Image == nil || st.Image.Name == "" {
		return plan.Image{}, &ImportError{From: from, Message: "the server returned no image"}
	}
	return withLabels(plan.Image{Ref: st.Image.DockerImageReference, Digest: st.Image.Name}, imageLabels(st.Image), revisionLabel), nil
}

// imageLabels are the labels of the image's config, which the importer
// reports in dockerImageMetadata (a docker10.DockerImage: JSON in Raw from
// a server, or the decoded Object); nil when the metadata is missing or
// unreadable, as for an image built without labels.
func imageLabels(img *imagev1.Image) map[string]string {
	var meta docker10.DockerImage
	switch o := img.DockerImageMetadata.Object.(type) {
	case *docker10.DockerImage:
		meta = *o
	default:
		if len(img.DockerImageMetadata.Raw) == 0 || json.Unmarshal(img.DockerImageMetadata.Raw, &meta) != nil {
			return nil
		}
	}
	if meta.Config == nil {
		return nil
	}
	return meta.Config.Labels
}

// withLabels fills the image's revision, source and creation time from
// its OCI labels, as the registry client does for plain Kubernetes.
func withLabels(img plan.Image, labels map[string]string, revisionLabel string) plan.Image {
	if revisionLabel == "" {
		revisionLabel = registry.LabelRevision
	}
	img.Revision = labels[revisionLabel]
	img.Source = labels[registry.LabelSource]
	if t, err := time.Parse(time.RFC3339Nano, labels[registry.LabelCreated]); err == nil {
		img.Created = t
	}
	return img
}

// RegistryImage returns what importing the tag would bring now, without
// changing anything: an ImageStreamImport with spec.import false for the
// tag's spec source.
func (s *Set) RegistryImage(ctx context.Context, env, stream, tag string) (plan.Image, error) {
	c, err := s.Env(env)
	if err != nil {
		return plan.Image{}, err
	}
	if c.Kubernetes != nil {
		return c.kubeRegistryImage(ctx, stream, tag)
	}
	return c.registryImage(ctx, stream, tag)
}

func (c EnvClient) registryImage(ctx context.Context, stream, tag string) (plan.Image, error) {
	is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, stream, metav1.GetOptions{})
	if err != nil {
		return plan.Image{}, fmt.Errorf("reading image stream %s: %w", stream, err)
	}
	ref, err := importableSpec(is, tag)
	if err != nil {
		return plan.Image{}, err
	}
	isi := newImport(is, tag, ref, false)
	// A lookup does not write the stream, so it must not fail on a stale
	// resourceVersion.
	isi.ResourceVersion = ""
	res, err := c.Images.ImageStreamImports(c.Namespace).Create(ctx, isi, metav1.CreateOptions{})
	if err != nil {
		return plan.Image{}, fmt.Errorf("looking up %s for %s:%s: %w", ref.From.Name, stream, tag, err)
	}
	img, err := importedImage(res, ref.From.Name, c.RevisionLabel)
	if err != nil {
		return plan.Image{}, fmt.Errorf("looking up %s:%s: %w", stream, tag, err)
	}
	return img, nil
}

// importTag does what oc import-image IS:TAG does at the API level: Get the
// stream, Create an ImageStreamImport bound to its resourceVersion, and on 409
// Conflict (the stream changed meanwhile) start over with a fresh Get. from is
// the tag's image before, to the one after.
func (c EnvClient) importTag(ctx context.Context, stream, tag string) (from, to plan.Image, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, stream, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ref, err := importableSpec(is, tag)
		if err != nil {
			return err
		}
		from = currentImage(is, tag)
		res, err := c.Images.ImageStreamImports(c.Namespace).Create(ctx, newImport(is, tag, ref, true), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		to, err = importedImage(res, ref.From.Name, c.RevisionLabel)
		if err != nil {
			return err
		}
		// The stream the server updated is authoritative for what the tag
		// points at now (Legacy import may pick a sub-manifest).
		if res.Status.Import != nil {
			if cur := currentImage(res.Status.Import, tag); cur.Digest != "" {
				if cur.Digest == to.Digest {
					// the labels are the imported image's
					cur.Revision, cur.Source, cur.Created = to.Revision, to.Source, to.Created
				}
				to = cur
			}
		}
		return nil
	})
	if err != nil {
		return from, to, fmt.Errorf("importing %s:%s: %w", stream, tag, err)
	}
	return from, to, nil
}

// setTag does what oc tag REF NS/IS:TAG does at the API level (pin with
// REF = repo@sha256:..., track with REF = repo:tag): Update the
// ImageStreamTag; on NotFound, MethodNotSupported or Forbidden Create it; if
// Create is not possible either, set spec.tags[TAG] on the ImageStream. All
// inside RetryOnConflict. generation 0 asks the server to import afresh.
// oc tag defaults scheduled to false; the caller passes the value to keep.
func (c EnvClient) setTag(ctx context.Context, stream, tag, ref string, scheduled bool) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		zero := int64(0)
		istag := &imagev1.ImageStreamTag{
			ObjectMeta: metav1.ObjectMeta{Name: stream + ":" + tag, Namespace: c.Namespace},
			Tag: &imagev1.TagReference{
				Name:            tag,
				From:            &corev1.ObjectReference{Kind: "DockerImage", Name: ref},
				Generation:      &zero,
				ImportPolicy:    imagev1.TagImportPolicy{Scheduled: scheduled},
				ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
			},
		}
		_, err := c.Images.ImageStreamTags(c.Namespace).Update(ctx, istag, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return nil
		case apierrors.IsMethodNotSupported(err), apierrors.IsForbidden(err), apierrors.IsNotFound(err):
			_, err = c.Images.ImageStreamTags(c.Namespace).Create(ctx, istag, metav1.CreateOptions{})
			switch {
			case err == nil:
				return nil
			case apierrors.IsMethodNotSupported(err), apierrors.IsForbidden(err), notServed(err):
				// fall back to editing the stream's spec, like oc's legacy path;
				// also when the server does not serve imagestreamtags at all
				// (ImageStreams from a CustomResourceDefinition, say)
			default:
				return err
			}
		default:
			return err
		}

		is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, stream, metav1.GetOptions{})
		if err != nil {
			// Unlike oc we never create a stream: a Plan names existing ones.
			return err
		}
		if old := specTag(is, tag); old != nil && old.Generation == nil {
			// Servers without tag generations need a nil generation to re-import.
			istag.Tag.Generation = nil
		}
		if old := specTag(is, tag); old != nil {
			*old = *istag.Tag
		} else {
			is.Spec.Tags = append(is.Spec.Tags, *istag.Tag)
		}
		_, err = c.Images.ImageStreams(c.Namespace).Update(ctx, is, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("tagging %s:%s to %s: %w", stream, tag, ref, err)
	}
	return nil
}

// LookupImage returns what the registry has for ref (repo:tag or
// repo@digest), asked through the stream like `oc import-image --dry-run`
// would: an ImageStreamImport with spec.import false, so nothing changes.
// track uses it to show the registry tag's digest while the tag is pinned.
func (s *Set) LookupImage(ctx context.Context, env, stream, ref string) (plan.Image, error) {
	c, err := s.Env(env)
	if err != nil {
		return plan.Image{}, err
	}
	if c.Kubernetes != nil {
		svc, err := c.Kubernetes.service(stream)
		if err != nil {
			return plan.Image{}, err
		}
		return c.kubeLookup(ctx, svc, ref)
	}
	// What a digest names never changes: once known, it is not asked again
	// (status shows each running image's revision this way).
	key := env + "/" + ref
	if plan.IsDigestRef(ref) {
		if img, ok := s.digests.get(key); ok {
			return img, nil
		}
	}
	is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, stream, metav1.GetOptions{})
	if err != nil {
		return plan.Image{}, fmt.Errorf("reading image stream %s: %w", stream, err)
	}
	isi := newImport(is, "", &imagev1.TagReference{From: &corev1.ObjectReference{Kind: "DockerImage", Name: ref}}, false)
	isi.Spec.Images[0].To = nil
	isi.ResourceVersion = ""
	res, err := c.Images.ImageStreamImports(c.Namespace).Create(ctx, isi, metav1.CreateOptions{})
	if err != nil {
		return plan.Image{}, fmt.Errorf("looking up %s for %s: %w", ref, stream, err)
	}
	img, err := importedImage(res, ref, c.RevisionLabel)
	if err != nil {
		return plan.Image{}, fmt.Errorf("looking up %s: %w", ref, err)
	}
	if plan.IsDigestRef(ref) {
		s.digests.put(key, img)
	}
	return img, nil
}

// digestCache remembers what looking up REPO@DIGEST returned, per env: a
// digest names the same bytes forever. It is bounded by starting over when
// full; a lookup is only an ImageStreamImport away.
type digestCache struct {
	mu     sync.Mutex
	images map[string]plan.Image
}

// maxDigests bounds a digestCache.
const maxDigests = 4096

func (d *digestCache) get(key string) (plan.Image, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	img, ok := d.images[key]
	return img, ok
}

func (d *digestCache) put(key string, img plan.Image) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.images == nil || len(d.images) >= maxDigests {
		d.images = map[string]plan.Image{}
	}
	d.images[key] = img
}

// notServed reports whether err is the API server's 404 for a resource it
// does not serve, as opposed to the NotFound of a missing object: the former
// is a plain "404 page not found" that client-go turns into a NotFound with
// no object name and an UnexpectedServerResponse cause.
func notServed(err error) bool {
	var se apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &se) {
		return false
	}
	d := se.Status().Details
	if d == nil || d.Name == "" {
		return true
	}
	for _, c := range d.Causes {
		if c.Type == metav1.CauseTypeUnexpectedServerResponse {
			return true
		}
	}
	return false
}
