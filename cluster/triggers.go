package cluster

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// TriggerAnnotation is the annotation through which OpenShift's image-trigger
// controller makes a Deployment or StatefulSet follow an ImageStream tag.
const TriggerAnnotation = "image.openshift.io/triggers"

// ParseTriggers parses the JSON of an image.openshift.io/triggers annotation,
// e.g. [{"from":{"kind":"ImageStreamTag","name":"packit-service:prod"},
// "fieldPath":"spec.template.spec.containers[?(@.name==\"packit-service\")].image"}].
// An empty annotation means no triggers. Entries without a source name or
// field path are errors: the controller could not act on them either.
func ParseTriggers(annotation string) ([]Trigger, error) {
	if strings.TrimSpace(annotation) == "" {
		return nil, nil
	}
	var ts []Trigger
	if err := json.Unmarshal([]byte(annotation), &ts); err != nil {
		return nil, fmt.Errorf("parsing %s annotation: %w", TriggerAnnotation, err)
	}
	for i, t := range ts {
		if t.From.Kind == "" || t.From.Name == "" {
			return nil, fmt.Errorf("parsing %s annotation: trigger %d has no from.kind or from.name", TriggerAnnotation, i)
		}
		if t.FieldPath == "" {
			return nil, fmt.Errorf("parsing %s annotation: trigger %d has no fieldPath", TriggerAnnotation, i)
		}
	}
	return ts, nil
}

// Follows reports whether the trigger follows the ImageStream tag stream:tag
// in namespace (a trigger without a namespace means its workload's own).
func (t Trigger) Follows(namespace, stream, tag string) bool {
	return t.From.Kind == "ImageStreamTag" &&
		t.From.Name == stream+":"+tag &&
		(t.From.Namespace == "" || t.From.Namespace == namespace)
}

// ContainerRef names the container a trigger's fieldPath points at: by
// name, or by index when Index >= 0.
type ContainerRef struct {
	Name  string
	Index int
	Init  bool
}

// Container returns the container whose image the trigger rewrites, parsing
// the fieldPath the way the image-trigger controller does
// (library-go ContainerForObjectFieldPath): spec.template.spec. followed by
// containers[...] or initContainers[...], whose selector is an index or
// ?(@.name=="NAME"), followed by .image. ok is false for anything else.
func (t Trigger) Container() (ref ContainerRef, ok bool) {
	const specPath = "spec.template.spec"
	p := strings.TrimPrefix(t.FieldPath, specPath)
	if p == t.FieldPath {
		return ContainerRef{}, false
	}
	p = strings.TrimPrefix(p, ".")
	switch {
	case strings.HasPrefix(p, "containers["):
		p = strings.TrimPrefix(p, "containers[")
	case strings.HasPrefix(p, "initContainers["):
		p, ref.Init = strings.TrimPrefix(p, "initContainers["), true
	default:
		return ContainerRef{}, false
	}
	end := strings.Index(p, "]")
	if end == -1 {
		return ContainerRef{}, false
	}
	selector, remainder := p[:end], strings.TrimPrefix(p[end+1:], ".")
	if remainder != "image" {
		return ContainerRef{}, false
	}
	if i, err := strconv.Atoi(selector); err == nil {
		if i < 0 {
			return ContainerRef{}, false
		}
		ref.Index = i
		return ref, true
	}
	name := strings.TrimSuffix(strings.TrimPrefix(selector, `?(@.name=="`), `")`)
	if name == selector || name == "" {
		return ContainerRef{}, false
	}
	ref.Name, ref.Index = name, -1
	return ref, true
}

// image returns the image of the referenced container in spec.
func (r ContainerRef) image(spec *corev1.PodSpec) (string, bool) {
	cs := spec.Containers
	if r.Init {
		cs = spec.InitContainers
	}
	if r.Index >= 0 {
		if r.Index < len(cs) {
			return cs[r.Index].Image, true
		}
		return "", false
	}
	for _, c := range cs {
		if c.Name == r.Name {
			return c.Image, true
		}
	}
	return "", false
}
