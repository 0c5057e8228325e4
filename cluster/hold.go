package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/deploybot/deploybot/plan"
)

// Holds. On OpenShift a hold lives on the ImageStream, in the annotation
// HoldAnnotationPrefix+TAG (the tag's hold, with what it changed), and
// acts through the cluster itself: the tag's importPolicy.scheduled goes
// off, so openshift-controller-manager's scheduled importer leaves it, and
// the image triggers on the tag of the workloads that follow it pause, so
// the image-trigger controller does not roll them. On plain Kubernetes the
// bot is the only importer, so the hold is the annotation HoldAnnotation
// on the service's workloads, which its imports read.

// HoldAnnotationPrefix, followed by a tag, holds that tag of an
// ImageStream (a plan.Hold as JSON).
const HoldAnnotationPrefix = "hold.deploybot.io/"

// HoldAnnotation holds the service of a plain Kubernetes workload.
const HoldAnnotation = "deploybot.io/hold"

// parseHold reads a hold annotation; nil when there is none. One that
// cannot be read is still a hold — someone meant to hold the service —
// with the text as its reason.
func parseHold(v string) *plan.Hold {
	if v == "" {
		return nil
	}
	var h plan.Hold
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return &plan.Hold{By: "unknown", Reason: "unreadable hold annotation: " + v}
	}
	return &h
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
	body, err := json.Marshal(h)
	if err != nil {
		return failed(t, "encoding the hold: %v", err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, t.Stream, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if parseHold(is.Annotations[HoldAnnotationPrefix+t.Tag]) != nil {
			return errors.New("it is held already (someone held it since the plan); nothing was changed")
		}
		ref := specTag(is, t.Tag)
		if ref == nil {
			return fmt.Errorf("the stream has no spec tag %s", t.Tag)
		}
		if ref.ImportPolicy.Scheduled != h.Scheduled {
			return fmt.Errorf("its scheduled import changed since the plan (now %t); nothing was changed, plan it again", ref.ImportPolicy.Scheduled)
		}
		ref.ImportPolicy.Scheduled = false
		if is.Annotations == nil {
			is.Annotations = map[string]string{}
		}
		is.Annotations[HoldAnnotationPrefix+t.Tag] = string(body)
		_, err = c.Images.ImageStreams(c.Namespace).Update(ctx, is, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return failed(t, "holding %s:%s: %v", t.Stream, t.Tag, err)
	}
	if err := c.pauseTriggers(ctx, t, h.Paused, true); err != nil {
		return failed(t, "%s:%s is held (scheduled import off), but pausing the image triggers failed: %v; `unhold` ends the hold", t.Stream, t.Tag, err)
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
		return failed(t, "resuming the image triggers: %v; %s stays held", err, t.Service)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, t.Stream, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if parseHold(is.Annotations[HoldAnnotationPrefix+t.Tag]) == nil {
			return errors.New("it is not held (someone unheld it since the plan)")
		}
		if ref := specTag(is, t.Tag); ref != nil {
			ref.ImportPolicy.Scheduled = t.Hold.Scheduled
		}
		delete(is.Annotations, HoldAnnotationPrefix+t.Tag)
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
// field of the annotation as it is.
func (c EnvClient) pauseTriggers(ctx context.Context, t plan.Target, workloads []string, paused bool) error {
	var errs []error
	for _, name := range workloads {
		kind, wname, _ := strings.Cut(name, "/")
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			_, annotations, err := c.podTemplate(ctx, kind, wname)
			if err != nil {
				return err
			}
			value, changed, err := setPaused(annotations[TriggerAnnotation], c.Namespace, t.Stream, t.Tag, paused)
			if err != nil || !changed {
				return err
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{TriggerAnnotation: value}}})
			if err != nil {
				return err
			}
			return c.mergePatchWorkload(ctx, kind, wname, patch)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// setPaused rewrites a triggers annotation with "paused" set on the
// entries that follow namespace/stream:tag; the other entries and fields
// are kept as they are.
func setPaused(annotation, namespace, stream, tag string, paused bool) (string, bool, error) {
	var entries []map[string]any
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
		if paused {
			entries[i]["paused"] = true
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

// mergePatchWorkload applies a JSON merge patch to a Deployment or
// StatefulSet.
func (c EnvClient) mergePatchWorkload(ctx context.Context, kind, name string, patch []byte) error {
	var err error
	if k, _ := plan.NormalizeKind(kind); k == plan.KindDeployment {
		_, err = c.Kube.AppsV1().Deployments(c.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	} else {
		_, err = c.Kube.AppsV1().StatefulSets(c.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	}
	return err
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
		if err := c.mergePatchWorkload(ctx, w.Kind, w.Name, patch); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", w.Kind, w.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return failed(t, "%v", err)
	}
	return plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: t.To}
}
