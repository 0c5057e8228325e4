package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/deploybot/deploybot/plan"
)

// Holds. On OpenShift a hold lives on the ImageStream, in the annotation
// HoldsAnnotation (a JSON object of tag → hold, with what it changed: a
// tag may not be a valid annotation name), and
// acts through the cluster itself: the tag's importPolicy.scheduled goes
// off, so openshift-controller-manager's scheduled importer leaves it, and
// the image triggers on the tag of the workloads that follow it pause, so
// the image-trigger controller does not roll them. On plain Kubernetes the
// bot is the only importer, so the hold is the annotation HoldAnnotation
// on the service's workloads, which its imports read.

// HoldsAnnotation holds tags of an ImageStream: a JSON object of tag →
// plan.Hold.
const HoldsAnnotation = "deploybot.io/holds"

// HoldAnnotation holds the service of a plain Kubernetes workload.
const HoldAnnotation = "deploybot.io/hold"

// parseHold reads a hold annotation; nil when there is none. One that
// cannot be read is still a hold — someone meant to hold the service —
// with the text as its reason, marked Foreign: deploybot did not place it,
// so unhold knows nothing it changed.
func parseHold(v string) *plan.Hold {
	if v == "" {
		return nil
	}
	var h plan.Hold
	if err := json.Unmarshal([]byte(v), &h); err != nil || h.By == "" {
		return &plan.Hold{By: "unknown", Reason: "unreadable hold annotation: " + v, Foreign: true}
	}
	return &h
}

// streamHolds reads an ImageStream's holds; a value that cannot be read
// holds every tag, as a foreign hold.
func streamHolds(annotations map[string]string) map[string]*plan.Hold {
	v := annotations[HoldsAnnotation]
	if v == "" {
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return map[string]*plan.Hold{"*": {By: "unknown", Reason: "unreadable hold annotation: " + v, Foreign: true}}
	}
	out := make(map[string]*plan.Hold, len(raw))
	for tag, h := range raw {
		out[tag] = parseHold(string(h))
	}
	return out
}

// streamHold is the hold of one tag of a stream, if any.
func streamHold(annotations map[string]string, tag string) *plan.Hold {
	hs := streamHolds(annotations)
	if h, ok := hs[tag]; ok {
		return h
	}
	return hs["*"]
}

// setStreamHold writes (or, with nil, removes) one tag's hold.
func setStreamHold(annotations map[string]string, tag string, h *plan.Hold) (map[string]string, error) {
	raw := map[string]json.RawMessage{}
	if v := annotations[HoldsAnnotation]; v != "" {
		if err := json.Unmarshal([]byte(v), &raw); err != nil {
			raw = map[string]json.RawMessage{} // unreadable: replaced by what is known
		}
	}
	if h == nil {
		delete(raw, tag)
	} else {
		b, err := json.Marshal(h)
		if err != nil {
			return nil, err
		}
		raw[tag] = b
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	if len(raw) == 0 {
		delete(annotations, HoldsAnnotation)
		return annotations, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	annotations[HoldsAnnotation] = string(b)
	return annotations, nil
}

// executeHold holds one tag: first the stream (the hold with what it
// changes, and scheduled import off), then the triggers, so that a failure
// halfway leaves a hold that unhold can end.
func (c EnvClient) executeHold(ctx context.Context, t plan.Target, _ func(plan.Progress)) plan.TargetResult {
	if t.Hold == nil || t.Stream == "" || t.Tag == "" {
		return failed(t, "the plan names no hold for %s", t.Service)
	}
	h := *t.Hold
	h.Since = time.Now().UTC().Truncate(time.Second)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, t.Stream, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if streamHold(is.Annotations, t.Tag) != nil {
			return errors.New("it is held already (someone held it since the plan); nothing was changed")
		}
		if st, _ := tagState(is, t.Tag); t.From.Digest != "" && st.Current.Digest != t.From.Digest {
			return fmt.Errorf("it moved to %s since the plan; nothing was changed, plan it again", plan.ShortDigest(st.Current.Digest))
		}
		ref := specTag(is, t.Tag)
		if ref == nil {
			return fmt.Errorf("the stream has no spec tag %s", t.Tag)
		}
		if ref.ImportPolicy.Scheduled != h.Scheduled {
			return fmt.Errorf("its scheduled import changed since the plan (now %t); nothing was changed, plan it again", ref.ImportPolicy.Scheduled)
		}
		ref.ImportPolicy.Scheduled = false
		if is.Annotations, err = setStreamHold(is.Annotations, t.Tag, &h); err != nil {
			return err
		}
		_, err = c.Images.ImageStreams(c.Namespace).Update(ctx, is, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return failed(t, "holding %s:%s: %v", t.Stream, t.Tag, err)
	}
	if err := c.pauseTriggers(ctx, t, h.Paused, true); err != nil {
		return failed(t, "%s:%s is held (scheduled import off), but pausing the image triggers failed: %v; unhold it and hold it again", t.Stream, t.Tag, err)
	}
	return plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: t.To}
}

// executeUnhold ends one tag's hold: the triggers it paused resume first,
// then the stream gets its scheduled import back and loses the hold.
func (c EnvClient) executeUnhold(ctx context.Context, t plan.Target, _ func(plan.Progress)) plan.TargetResult {
	if t.Hold == nil || t.Stream == "" || t.Tag == "" {
		return failed(t, "the plan names no hold for %s", t.Service)
	}
	if err := c.pauseTriggers(ctx, t, t.Hold.Paused, false); err != nil {
		return failed(t, "resuming the image triggers: %v; %s stays held (the others resumed; unhold again)", err, t.Service)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, t.Stream, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if streamHold(is.Annotations, t.Tag) == nil {
			return errors.New("it is not held (someone unheld it since the plan)")
		}
		if ref := specTag(is, t.Tag); ref != nil {
			ref.ImportPolicy.Scheduled = t.Hold.Scheduled
		}
		if is.Annotations, err = setStreamHold(is.Annotations, t.Tag, nil); err != nil {
			return err
		}
		_, err = c.Images.ImageStreams(c.Namespace).Update(ctx, is, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return failed(t, "ending the hold of %s:%s: %v", t.Stream, t.Tag, err)
	}
	return plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: t.To}
}

// pauseTriggers sets "paused" on the image triggers on the target's tag of
// the named workloads ("deployment/NAME"), keeping every other entry and
// field of the annotation as it is. Each write is bound to the
// workload's resourceVersion, so a concurrent hold of another tag on the
// same annotation is retried, not overwritten. On resume, a workload that
// is gone or no longer follows the tag is done.
func (c EnvClient) pauseTriggers(ctx context.Context, t plan.Target, workloads []string, paused bool) error {
	var errs []error
	for _, name := range workloads {
		kind, wname, _ := strings.Cut(name, "/")
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			return c.updateAnnotations(ctx, kind, wname, func(annotations map[string]string) (bool, error) {
				value, changed, err := setPaused(annotations[TriggerAnnotation], c.Namespace, t.Stream, t.Tag, paused)
				if err != nil || !changed {
					return false, err
				}
				annotations[TriggerAnnotation] = value
				return true, nil
			})
		})
		if !paused && apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// updateAnnotations reads a Deployment or StatefulSet, lets edit change its
// annotations and, if it did, writes them with a merge patch that carries
// the resourceVersion read, so the API server refuses it (409) when the
// workload changed meanwhile, and the caller retries.
func (c EnvClient) updateAnnotations(ctx context.Context, kind, name string, edit func(map[string]string) (bool, error)) error {
	var meta metav1.ObjectMeta
	if k, _ := plan.NormalizeKind(kind); k == plan.KindDeployment {
		d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		meta = d.ObjectMeta
	} else {
		s, err := c.Kube.AppsV1().StatefulSets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		meta = s.ObjectMeta
	}
	annotations := map[string]string{}
	for k, v := range meta.Annotations {
		annotations[k] = v
	}
	if changed, err := edit(annotations); err != nil || !changed {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": meta.ResourceVersion, "annotations": annotations}})
	if err != nil {
		return err
	}
	return c.patchWorkload(ctx, kind, name, types.MergePatchType, patch)
}

// setPaused rewrites a triggers annotation with "paused" set on the
// entries that follow namespace/stream:tag; the other entries and fields
// are kept byte for byte. An empty annotation has nothing to change.
func setPaused(annotation, namespace, stream, tag string, paused bool) (string, bool, error) {
	if strings.TrimSpace(annotation) == "" {
		return annotation, false, nil
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(annotation), &entries); err != nil {
		return "", false, fmt.Errorf("reading %s: %w", TriggerAnnotation, err)
	}
	typed, err := ParseTriggers(annotation)
	if err != nil || len(typed) != len(entries) {
		return "", false, fmt.Errorf("reading %s: %v", TriggerAnnotation, err)
	}
	changed := false
	for i, tr := range typed {
		if !tr.Follows(namespace, stream, tag) || tr.Paused == paused {
			continue
		}
		delete(entries[i], "Paused") // the controller reads it case-insensitively
		if paused {
			entries[i]["paused"] = json.RawMessage("true")
		} else {
			delete(entries[i], "paused")
		}
		changed = true
	}
	if !changed {
		return annotation, false, nil
	}
	b, err := json.Marshal(entries)
	return string(b), true, err
}

// kubeHold places (or, with nil, ends) the hold annotation on every
// workload of a plain Kubernetes service.
func (c EnvClient) kubeHold(ctx context.Context, t plan.Target, h *plan.Hold) plan.TargetResult {
	var value any // null removes the annotation
	if h != nil {
		hold := *h
		hold.Since = time.Now().UTC().Truncate(time.Second)
		b, err := json.Marshal(hold)
		if err != nil {
			return failed(t, "encoding the hold: %v", err)
		}
		value = string(b)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{HoldAnnotation: value}}})
	if err != nil {
		return failed(t, "encoding the hold: %v", err)
	}
	var errs []error
	for _, w := range t.Workloads {
		if err := c.patchWorkload(ctx, w.Kind, w.Name, types.MergePatchType, patch); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", w.Kind, w.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return failed(t, "%v", err)
	}
	return plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: t.To}
}
