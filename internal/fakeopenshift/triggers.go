package fakeopenshift

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// TriggerAnnotation is the annotation the image trigger controller reads.
const TriggerAnnotation = "image.openshift.io/triggers"

// ObjectFieldTrigger is one entry of the image.openshift.io/triggers
// annotation, e.g.
//
//	{"from":{"kind":"ImageStreamTag","name":"packit-service:prod"},
//	 "fieldPath":"spec.template.spec.containers[?(@.name==\"packit-service\")].image"}
type ObjectFieldTrigger struct {
	From      TriggerSource `json:"from"`
	FieldPath string        `json:"fieldPath"`
	Paused    bool          `json:"paused,omitempty"`
}

// TriggerSource names the ImageStreamTag a trigger follows; Namespace empty
// means the workload's own.
type TriggerSource struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// ParseTriggers decodes the annotation the way the trigger controller does
// (calculateAnnotationTriggers): a JSON array; two triggers with the same
// fieldPath are an error.
func ParseTriggers(annotation string) ([]ObjectFieldTrigger, error) {
	var ts []ObjectFieldTrigger
	if err := json.Unmarshal([]byte(annotation), &ts); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", TriggerAnnotation, err)
	}
	for i := range ts {
		for j := i + 1; j < len(ts); j++ {
			if ts[i].FieldPath == ts[j].FieldPath {
				return nil, fmt.Errorf("parsing %s: duplicate triggers are not allowed (fieldPath %q)", TriggerAnnotation, ts[i].FieldPath)
			}
		}
	}
	return ts, nil
}

// ContainerSelector is the container a trigger's fieldPath points at.
type ContainerSelector struct {
	Init bool
	// Index is the container's position, or -1 when selected by Name.
	Index int
	Name  string
}

// podSpecPath is where Deployments and StatefulSets keep their pod spec.
const podSpecPath = "spec.template.spec."

// ParseFieldPath parses a trigger fieldPath as the trigger controller does
// (parseContainerReference/findContainerBySelector): after
// spec.template.spec. comes containers[...] or initContainers[...] whose
// selector is an index or ?(@.name=="NAME") exactly, then .image.
func ParseFieldPath(fieldPath string) (ContainerSelector, error) {
	if !strings.HasPrefix(fieldPath, podSpecPath) {
		return ContainerSelector{}, fmt.Errorf("field path %q does not start with %q", fieldPath, podSpecPath)
	}
	p := strings.TrimPrefix(fieldPath, podSpecPath)
	var sel ContainerSelector
	switch {
	case strings.HasPrefix(p, "containers["):
		p = strings.TrimPrefix(p, "containers[")
	case strings.HasPrefix(p, "initContainers["):
		sel.Init, p = true, strings.TrimPrefix(p, "initContainers[")
	default:
		return ContainerSelector{}, fmt.Errorf("field path is not valid: %s", fieldPath)
	}
	end := strings.Index(p, "]")
	if end == -1 {
		return ContainerSelector{}, fmt.Errorf("field path is not valid: %s", fieldPath)
	}
	selector, remainder := p[:end], strings.TrimPrefix(p[end+1:], ".")
	if remainder != "image" {
		return ContainerSelector{}, fmt.Errorf("field path is not valid: %s", fieldPath)
	}
	if i, err := strconv.Atoi(selector); err == nil {
		if i < 0 {
			return ContainerSelector{}, fmt.Errorf("no such container: %s", fieldPath)
		}
		sel.Index = i
		return sel, nil
	}
	// The controller only understands this exact form (no spaces, "==").
	const open, closing = `?(@.name=="`, `")`
	if !strings.HasPrefix(selector, open) || !strings.HasSuffix(selector, closing) || len(selector) <= len(open)+len(closing) {
		return ContainerSelector{}, fmt.Errorf("field path is not valid: %s", fieldPath)
	}
	name := selector[len(open) : len(selector)-len(closing)]
	if name == "" {
		return ContainerSelector{}, fmt.Errorf("field path is not valid: %s", fieldPath)
	}
	sel.Index, sel.Name = -1, name
	return sel, nil
}

// Container returns the selected container of spec, or nil.
func (c ContainerSelector) Container(spec *corev1.PodSpec) *corev1.Container {
	list := spec.Containers
	if c.Init {
		list = spec.InitContainers
	}
	if c.Index >= 0 {
		if c.Index < len(list) {
			return &list[c.Index]
		}
		return nil
	}
	for i := range list {
		if list[i].Name == c.Name {
			return &list[i]
		}
	}
	return nil
}
