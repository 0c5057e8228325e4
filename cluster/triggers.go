package cluster

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/plan"
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
func ParseTriggers(annotation string) ([]plan.Trigger, error) {
	if strings.TrimSpace(annotation) == "" {
		return nil, nil
	}
	var ts []plan.Trigger
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

// containerImage returns the image of the referenced container in spec.
func containerImage(r plan.ContainerRef, spec *corev1.PodSpec) (string, bool) {
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
