package fakeopenshift

import (
	"fmt"
	"strings"

	imagev1 "github.com/openshift/api/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

// reactImageStreamTags stands for openshift-apiserver's ImageStreamTag REST
// storage (pkg/image/apiserver/registry/imagestreamtag/rest.go). An
// ImageStreamTag "IS:TAG" is a view of ImageStream IS: its spec tag TAG
// (tag) and the current status item (image, generation, conditions).
//
//   - get: NotFound unless the tag has a current image;
//   - update (what `oc tag` calls first): replaces spec.tags[TAG] with tag
//     (adding it when missing — the server does not refuse an update of a
//     tag that is not there yet; a missing stream is created unless a
//     resourceVersion was given, which makes it NotFound); a resourceVersion
//     that is not the stream's is a 409 Conflict;
//   - create: AlreadyExists when the spec tag exists, else adds it;
//   - delete: removes the spec and status tag;
//   - list: one per status tag with an image.
//
// The stream is written with the ImageStream strategy, so a tag with
// generation 0 (as `oc tag` sends) gets the stream's new generation, and the
// image stream controller's import runs right after (synchronously here),
// making the status item the pinned or tracked image. The returned
// ImageStreamTag shows the stream as the server returns it: before that
// import.
func (s *Server) reactImageStreamTags(action clienttesting.Action) (bool, runtime.Object, error) {
	if s.istagsUnserved != "" && (len(s.istagsUnservedVerbs) == 0 || s.istagsUnservedVerbs[action.GetVerb()]) {
		return true, nil, unservedError(s.istagsUnserved, action)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch a := action.(type) {
	case clienttesting.GetActionImpl:
		obj, err := s.getTag(a.GetNamespace(), a.GetName())
		return true, obj, err
	case clienttesting.ListActionImpl:
		obj, err := s.listTags(a.GetNamespace())
		return true, obj, err
	case clienttesting.CreateActionImpl:
		obj, err := s.putTag(a.GetNamespace(), a.GetObject().(*imagev1.ImageStreamTag).DeepCopy(), true)
		return true, obj, err
	case clienttesting.UpdateActionImpl:
		obj, err := s.putTag(a.GetNamespace(), a.GetObject().(*imagev1.ImageStreamTag).DeepCopy(), false)
		return true, obj, err
	case clienttesting.DeleteActionImpl:
		return true, nil, s.deleteTag(a.GetNamespace(), a.GetName())
	}
	return true, nil, apierrors.NewMethodNotSupported(imageStreamTagsGVR.GroupResource(), action.GetVerb())
}

// unservedError is what a server that does not serve imagestreamtags (to
// this caller) answers.
func unservedError(reason metav1.StatusReason, action clienttesting.Action) error {
	gr := imageStreamTagsGVR.GroupResource()
	name := ""
	switch a := action.(type) {
	case clienttesting.GetActionImpl:
		name = a.GetName()
	case clienttesting.DeleteActionImpl:
		name = a.GetName()
	case clienttesting.CreateActionImpl:
		name = a.GetObject().(*imagev1.ImageStreamTag).Name
	case clienttesting.UpdateActionImpl:
		name = a.GetObject().(*imagev1.ImageStreamTag).Name
	}
	switch reason {
	case metav1.StatusReasonNotFound:
		return apierrors.NewNotFound(gr, name)
	case metav1.StatusReasonForbidden:
		return apierrors.NewForbidden(gr, name, fmt.Errorf("cannot %s resource \"imagestreamtags\" in API group \"image.openshift.io\"", action.GetVerb()))
	default:
		return apierrors.NewMethodNotSupported(gr, action.GetVerb())
	}
}

// splitTagName is imageutil.ParseImageStreamTagName: exactly one ":".
func splitTagName(istag string) (stream, tag string, err error) {
	parts := strings.Split(istag, ":")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", apierrors.NewBadRequest("ImageStreamTags must be retrieved with <name>:<tag>")
	}
	return parts[0], parts[1], nil
}

func (s *Server) getTag(ns, name string) (*imagev1.ImageStreamTag, error) {
	streamName, tag, err := splitTagName(name)
	if err != nil {
		return nil, err
	}
	stream, err := s.getStream(ns, streamName)
	if err != nil {
		return nil, err
	}
	return newISTag(tag, stream, false)
}

func (s *Server) listTags(ns string) (*imagev1.ImageStreamTagList, error) {
	obj, err := s.tracker.List(imageStreamsGVR, imagev1.SchemeGroupVersion.WithKind("ImageStream"), ns)
	if err != nil {
		return nil, err
	}
	list := &imagev1.ImageStreamTagList{}
	for i := range obj.(*imagev1.ImageStreamList).Items {
		stream := &obj.(*imagev1.ImageStreamList).Items[i]
		for _, st := range stream.Status.Tags {
			ist, err := newISTag(st.Tag, stream, false)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			list.Items = append(list.Items, *ist)
		}
	}
	return list, nil
}

// putTag is ImageStreamTag Create (create true) and Update.
func (s *Server) putTag(ns string, istag *imagev1.ImageStreamTag, create bool) (*imagev1.ImageStreamTag, error) {
	streamName, tag, err := splitTagName(istag.Name)
	if err != nil {
		return nil, err
	}
	if s.conflictOnNextTagPut {
		s.conflictOnNextTagPut = false
		return nil, apierrors.NewConflict(imageStreamTagsGVR.GroupResource(), istag.Name,
			fmt.Errorf("another caller has updated the resource version"))
	}
	stream, err := s.getStream(ns, streamName)
	newStream := false
	switch {
	case apierrors.IsNotFound(err):
		if !create && istag.ResourceVersion != "" {
			// image stream did not exist, cannot update
			return nil, apierrors.NewNotFound(imageStreamTagsGVR.GroupResource(), istag.Name)
		}
		newStream = true
		stream = &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Name: streamName, Namespace: ns}}
	case err != nil:
		return nil, err
	case !create && istag.ResourceVersion != "" && istag.ResourceVersion != stream.ResourceVersion:
		return nil, apierrors.NewConflict(imageStreamTagsGVR.GroupResource(), istag.Name,
			fmt.Errorf("another caller has updated the resource version to %s", stream.ResourceVersion))
	}
	old := stream.DeepCopy()
	existing := specTag(stream, tag)

	if create {
		if existing != nil {
			return nil, apierrors.NewAlreadyExists(imagev1.Resource("imagestreamtag"), istag.Name)
		}
		if istag.Tag != nil {
			ref := *istag.Tag.DeepCopy()
			ref.Name = tag
			setSpecTag(stream, ref)
		}
	} else {
		if existing == nil && istag.Tag == nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("imagestreamtag %s is not a spec tag in imagestream %s/%s, cannot be updated", tag, ns, streamName))
		}
		var ref imagev1.TagReference
		if istag.Tag != nil {
			ref = *istag.Tag.DeepCopy()
		} else {
			ref = *existing.DeepCopy()
		}
		ref.Name = tag
		// PrepareForUpdate: the ImageStreamTag's annotations are the tag's.
		ref.Annotations = istag.Annotations
		setSpecTag(stream, ref)
	}

	defaultStream(stream)
	var written *imagev1.ImageStream
	if newStream {
		prepareStreamForCreate(stream)
		written, err = s.createStream(stream)
	} else {
		prepareStreamForUpdate(stream, old, true, s.now())
		written, err = s.writeStream(stream)
	}
	if err != nil {
		return nil, err
	}
	out, err := newISTag(tag, written, true)
	if err != nil {
		return nil, err
	}
	if _, err := s.importPendingTags(written); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) deleteTag(ns, name string) error {
	streamName, tag, err := splitTagName(name)
	if err != nil {
		return err
	}
	stream, err := s.getStream(ns, streamName)
	if err != nil {
		return err
	}
	old := stream.DeepCopy()
	found := false
	for i, st := range stream.Status.Tags {
		if st.Tag == tag {
			stream.Status.Tags = append(stream.Status.Tags[:i], stream.Status.Tags[i+1:]...)
			found = true
			break
		}
	}
	for i, t := range stream.Spec.Tags {
		if t.Name == tag {
			stream.Spec.Tags = append(stream.Spec.Tags[:i], stream.Spec.Tags[i+1:]...)
			found = true
			break
		}
	}
	if !found {
		return apierrors.NewNotFound(imageStreamTagsGVR.GroupResource(), name)
	}
	prepareStreamForUpdate(stream, old, false, s.now())
	_, err = s.writeStream(stream)
	return err
}

// newISTag builds the ImageStreamTag view of tag in stream. Without a
// current image it is NotFound unless allowEmpty (create/update replies).
func newISTag(tag string, stream *imagev1.ImageStream, allowEmpty bool) (*imagev1.ImageStreamTag, error) {
	name := stream.Name + ":" + tag
	ev := latestTagEvent(stream, tag)
	if ev == nil || ev.Image == "" {
		if !allowEmpty {
			return nil, apierrors.NewNotFound(imageStreamTagsGVR.GroupResource(), name)
		}
		ev = &imagev1.TagEvent{Created: stream.CreationTimestamp}
	}
	ist := &imagev1.ImageStreamTag{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         stream.Namespace,
			Name:              name,
			CreationTimestamp: ev.Created,
			Annotations:       map[string]string{},
			Labels:            stream.Labels,
			ResourceVersion:   stream.ResourceVersion,
			UID:               stream.UID,
		},
		Generation:   ev.Generation,
		LookupPolicy: stream.Spec.LookupPolicy,
	}
	if st := statusTag(stream, tag); st != nil {
		ist.Conditions = append([]imagev1.TagEventCondition(nil), st.Conditions...)
	}
	if ref := specTag(stream, tag); ref != nil {
		ist.Tag = ref.DeepCopy()
		for k, v := range ref.Annotations {
			ist.Annotations[k] = v
		}
	}
	ist.Image = imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: ev.Image}}
	ist.Image.DockerImageReference = resolveReference(stream, tag, ev)
	return ist, nil
}
