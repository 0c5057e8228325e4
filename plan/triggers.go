package plan

import (
	"strconv"
	"strings"
)

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
