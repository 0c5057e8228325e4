package fakeopenshift

import (
	"sort"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// This file holds the ImageStream registry strategy of openshift-apiserver
// (pkg/image/apiserver/registry/imagestream/strategy.go) and the tag helpers
// of internalimageutil, on the v1 types (spec.tags and status.tags are lists
// keyed by name here, maps in the server's internal types).

// defaultStream applies the v1 defaulting the server does on decode:
// referencePolicy.type Source and importPolicy.importMode Legacy.
func defaultStream(stream *imagev1.ImageStream) {
	for i := range stream.Spec.Tags {
		defaultTagPolicies(&stream.Spec.Tags[i].ImportPolicy, &stream.Spec.Tags[i].ReferencePolicy)
	}
}

func defaultTagPolicies(ip *imagev1.TagImportPolicy, rp *imagev1.TagReferencePolicy) {
	if ip.ImportMode == "" {
		ip.ImportMode = imagev1.ImportModeLegacy
	}
	if rp.Type == "" {
		rp.Type = imagev1.SourceTagReferencePolicy
	}
}

// prepareStreamForCreate is Strategy.PrepareForCreate: status is cleared,
// generation starts at 1 and every spec tag carries it.
func prepareStreamForCreate(stream *imagev1.ImageStream) {
	stream.Status = imagev1.ImageStreamStatus{}
	stream.Generation = 1
	for i := range stream.Spec.Tags {
		stream.Spec.Tags[i].Generation = int64Ptr(1)
	}
}

// prepareInternalStreamForCreate is InternalStrategy.PrepareForCreate (a
// stream created by an import): status is kept.
func prepareInternalStreamForCreate(stream *imagev1.ImageStream) {
	stream.Generation = 1
	for i := range stream.Spec.Tags {
		stream.Spec.Tags[i].Generation = int64Ptr(1)
	}
}

// prepareStreamForUpdate is Strategy.prepareForUpdate: the main resource
// cannot change status (resetStatus, user updates) but imports can; users
// cannot set a spec tag generation except to 0; any spec change bumps
// metadata.generation; changed or zero-generation spec tags get the stream's
// generation. It also applies tagsChanged for DockerImage reference tags.
func prepareStreamForUpdate(stream, old *imagev1.ImageStream, resetStatus bool, now time.Time) {
	collapseEmptyStatusTags(stream)
	stream.Generation = old.Generation
	if resetStatus {
		stream.Status = *old.Status.DeepCopy()
	}
	// updateSpecTagGenerationsForUpdate
	for i := range stream.Spec.Tags {
		ref := &stream.Spec.Tags[i]
		if ref.Generation != nil && *ref.Generation == 0 {
			continue
		}
		if oldRef := specTag(old, ref.Name); oldRef != nil {
			ref.Generation = copyInt64Ptr(oldRef.Generation)
		}
	}
	if !specEqual(old.Spec, stream.Spec) || stream.Generation == 0 {
		stream.Generation = old.Generation + 1
	}
	// ensureSpecTagGenerationsAreSet
	for i := range stream.Spec.Tags {
		ref := &stream.Spec.Tags[i]
		oldRef := specTag(old, ref.Name)
		if oldRef == nil || tagRefChanged(*oldRef, *ref, stream.Namespace) {
			ref.Generation = nil
			if ref.Reference && ref.From != nil && ref.From.Kind == "DockerImage" {
				// tagsChanged: a reference tag records its from as the image.
				addTagEvent(stream, ref.Name, imagev1.TagEvent{
					Created:              metav1.NewTime(now),
					DockerImageReference: ref.From.Name,
					Generation:           stream.Generation,
				})
			}
		}
		if ref.Generation != nil && *ref.Generation != 0 {
			continue
		}
		ref.Generation = int64Ptr(stream.Generation)
	}
}

func collapseEmptyStatusTags(stream *imagev1.ImageStream) {
	kept := stream.Status.Tags[:0]
	for _, t := range stream.Status.Tags {
		if len(t.Items) > 0 || len(t.Conditions) > 0 {
			kept = append(kept, t)
		}
	}
	stream.Status.Tags = kept
}

// tagRefChanged reports whether a spec tag changed in a way that needs a new
// import: another source, reference flag, or generation reset to 0.
func tagRefChanged(old, next imagev1.TagReference, streamNamespace string) bool {
	if next.From == nil {
		return false
	}
	if next.From.Kind == "" && next.From.Name == "" {
		return false
	}
	oldFrom := old.From
	if oldFrom == nil {
		oldFrom = &corev1.ObjectReference{}
	}
	oldNS, nextNS := oldFrom.Namespace, next.From.Namespace
	if oldNS == "" {
		oldNS = streamNamespace
	}
	if nextNS == "" {
		nextNS = streamNamespace
	}
	if oldNS != nextNS || oldFrom.Name != next.From.Name || old.Reference != next.Reference {
		return true
	}
	if old.Generation != nil && next.Generation != nil && *old.Generation != *next.Generation && *next.Generation == 0 {
		return true
	}
	return false
}

// specEqual compares specs semantically, ignoring the order of spec.tags
// (a map in the server's internal representation).
func specEqual(a, b imagev1.ImageStreamSpec) bool {
	return apiequality.Semantic.DeepEqual(sortedSpec(a), sortedSpec(b))
}

func sortedSpec(s imagev1.ImageStreamSpec) imagev1.ImageStreamSpec {
	c := *s.DeepCopy()
	sort.Slice(c.Tags, func(i, j int) bool { return c.Tags[i].Name < c.Tags[j].Name })
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	return c
}

// streamsEqual compares two streams semantically, ignoring tag order.
func streamsEqual(a, b *imagev1.ImageStream) bool {
	ac, bc := a.DeepCopy(), b.DeepCopy()
	for _, s := range []*imagev1.ImageStream{ac, bc} {
		s.Spec = sortedSpec(s.Spec)
		sort.Slice(s.Status.Tags, func(i, j int) bool { return s.Status.Tags[i].Tag < s.Status.Tags[j].Tag })
		if len(s.Status.Tags) == 0 {
			s.Status.Tags = nil
		}
	}
	return apiequality.Semantic.DeepEqual(ac, bc)
}

// specTag returns a pointer to the named spec tag, or nil.
func specTag(stream *imagev1.ImageStream, tag string) *imagev1.TagReference {
	for i := range stream.Spec.Tags {
		if stream.Spec.Tags[i].Name == tag {
			return &stream.Spec.Tags[i]
		}
	}
	return nil
}

// setSpecTag replaces or appends the spec tag ref.Name.
func setSpecTag(stream *imagev1.ImageStream, ref imagev1.TagReference) {
	if p := specTag(stream, ref.Name); p != nil {
		*p = ref
		return
	}
	stream.Spec.Tags = append(stream.Spec.Tags, ref)
}

// statusTag returns a pointer to the named status tag, or nil.
func statusTag(stream *imagev1.ImageStream, tag string) *imagev1.NamedTagEventList {
	for i := range stream.Status.Tags {
		if stream.Status.Tags[i].Tag == tag {
			return &stream.Status.Tags[i]
		}
	}
	return nil
}

// ensureStatusTag returns the named status tag, adding an empty one.
func ensureStatusTag(stream *imagev1.ImageStream, tag string) *imagev1.NamedTagEventList {
	if p := statusTag(stream, tag); p != nil {
		return p
	}
	stream.Status.Tags = append(stream.Status.Tags, imagev1.NamedTagEventList{Tag: tag})
	return &stream.Status.Tags[len(stream.Status.Tags)-1]
}

// latestTagEvent is internalimageutil.LatestTaggedImage.
func latestTagEvent(stream *imagev1.ImageStream, tag string) *imagev1.TagEvent {
	if st := statusTag(stream, tag); st != nil && len(st.Items) > 0 {
		return &st.Items[0]
	}
	return nil
}

// addTagEvent is internalimageutil.AddTagEventToImageStream: a new image
// goes to the front of the history; the same image again only updates the
// current entry's generation (or reference).
func addTagEvent(stream *imagev1.ImageStream, tag string, next imagev1.TagEvent) bool {
	st := ensureStatusTag(stream, tag)
	if len(st.Items) == 0 {
		st.Items = []imagev1.TagEvent{next}
		return true
	}
	prev := &st.Items[0]
	sameRef := prev.DockerImageReference == next.DockerImageReference
	sameImage := prev.Image == next.Image
	sameGen := prev.Generation == next.Generation
	switch {
	case sameRef && sameImage && sameGen:
		return false
	case sameRef && sameImage:
	case sameRef:
		prev.Image = next.Image
	case sameImage:
		prev.DockerImageReference = next.DockerImageReference
	default:
		st.Conditions = nil
		st.Items = append([]imagev1.TagEvent{next}, st.Items...)
		return true
	}
	prev.Generation = next.Generation
	st.Conditions = nil
	return true
}

// resolveReference is internalimageutil.ResolveReferenceForTagEvent: the
// Local reference policy pulls through the integrated registry, Source (the
// default) from where the image was imported.
func resolveReference(stream *imagev1.ImageStream, tag string, ev *imagev1.TagEvent) string {
	if ref := specTag(stream, tag); ref != nil && ref.ReferencePolicy.Type == imagev1.LocalTagReferencePolicy &&
		stream.Status.DockerImageRepository != "" && ev.Image != "" {
		return stream.Status.DockerImageRepository + "@" + ev.Image
	}
	return ev.DockerImageReference
}

func int64Ptr(v int64) *int64 { return &v }

func copyInt64Ptr(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
