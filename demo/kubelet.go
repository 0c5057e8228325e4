package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/internal/fakeopenshift"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// syncPods stands for the kubelet (and the scheduler that put the pod on a
// node): a pod is ContainerCreating for one tick after it appears, then
// every container pulls its image from the Registry —
//
//   - an image the registry does not have: ErrImagePull, then
//     ImagePullBackOff; the pod stays Pending;
//   - a broken image (Cluster.BrokenDigest): the container starts and
//     crashes: Running, not Ready, waiting in CrashLoopBackOff with a
//     growing restart count;
//   - otherwise: Running and Ready.
//
// A short name such as packit-worker:prod resolves through the namespace's
// ImageStream when its lookupPolicy is local (OpenShift's image policy
// admission does that at pod creation).
func (k *controllers) syncPods(ctx context.Context) error {
	pods, err := k.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	present := map[types.UID]bool{}
	var errs []error
	for i := range pods.Items {
		p := &pods.Items[i]
		present[p.UID] = true
		first, seen := k.firstSeen[p.UID]
		if !seen {
			first = k.ticks
			if p.Status.Phase != corev1.PodPending {
				// already started before the kubelet (re)started: not new
				first--
			}
			k.firstSeen[p.UID] = first
		}
		status := k.podStatus(ctx, p, k.ticks-first)
		if apiequality.Semantic.DeepEqual(p.Status, status) {
			continue
		}
		p.Status = status
		if _, err := k.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	for uid := range k.firstSeen {
		if !present[uid] {
			delete(k.firstSeen, uid)
		}
	}
	return errors.Join(errs...)
}

// podStatus is the status the kubelet reports for p, age ticks after it
// first saw the pod. Timestamps already set are kept, so an unchanged pod
// yields an unchanged status.
func (k *controllers) podStatus(ctx context.Context, p *corev1.Pod, age int64) corev1.PodStatus {
	now := metav1.NewTime(k.now())
	old := p.Status
	s := corev1.PodStatus{
		Phase:     corev1.PodPending,
		QOSClass:  old.QOSClass,
		HostIP:    "10.0.0.1",
		StartTime: old.StartTime,
	}
	if s.StartTime == nil {
		s.StartTime = &now
	}
	previous := map[string]corev1.ContainerStatus{}
	for _, cs := range old.ContainerStatuses {
		previous[cs.Name] = cs
	}
	allReady, anyRunning, allPulled := true, false, true
	for _, c := range p.Spec.Containers {
		prev := previous[c.Name]
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, RestartCount: prev.RestartCount}
		switch {
		case age < 1:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			allPulled = false
		default:
			digest, ok := k.resolveImage(ctx, p.Namespace, c.Image)
			switch {
			case !ok:
				reason := "ErrImagePull"
				if w := prev.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
					reason = "ImagePullBackOff"
				}
				msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
				if reason == "ErrImagePull" {
					msg = fmt.Sprintf("failed to pull and unpack image %q: manifest unknown", c.Image)
				}
				cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
				allPulled = false
			case k.broken(digest):
				cs.ImageID = imageID(c.Image, digest)
				// the container starts and exits again and again; the
				// restart count grows every few ticks like the kubelet's backoff
				restarts := int32(age/3) + 1
				if restarts < cs.RestartCount {
					restarts = cs.RestartCount
				}
				cs.RestartCount = restarts
				cs.State.Waiting = &corev1.ContainerStateWaiting{
					Reason:  "CrashLoopBackOff",
					Message: fmt.Sprintf("back-off 10s restarting failed container=%s pod=%s", c.Name, p.Name),
				}
				cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
				if prev.LastTerminationState.Terminated != nil {
					cs.LastTerminationState.Terminated.FinishedAt = prev.LastTerminationState.Terminated.FinishedAt
				}
				if cs.RestartCount != prev.RestartCount || cs.LastTerminationState.Terminated.FinishedAt.IsZero() {
					cs.LastTerminationState.Terminated.FinishedAt = now
				}
				anyRunning = true
			default:
				cs.ImageID = imageID(c.Image, digest)
				started := now
				if r := prev.State.Running; r != nil {
					started = r.StartedAt
				}
				cs.State.Running = &corev1.ContainerStateRunning{StartedAt: started}
				cs.Ready = true
				cs.Started = boolPtr(true)
				anyRunning = true
			}
		}
		if !cs.Ready {
			allReady = false
		}
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	if anyRunning && allPulled {
		s.Phase = corev1.PodRunning
		s.PodIP = "10.128.0.10"
	}
	ready := corev1.ConditionFalse
	if allReady && s.Phase == corev1.PodRunning {
		ready = corev1.ConditionTrue
	}
	s.Conditions = []corev1.PodCondition{
		podCondition(old, corev1.PodScheduled, corev1.ConditionTrue, "", now),
		podCondition(old, corev1.PodInitialized, corev1.ConditionTrue, "", now),
		podCondition(old, corev1.ContainersReady, ready, notReadyReason(ready, "ContainersNotReady"), now),
		podCondition(old, corev1.PodReady, ready, notReadyReason(ready, "ContainersNotReady"), now),
	}
	return s
}

// resolveImage returns the digest the kubelet would run for image.
func (k *controllers) resolveImage(ctx context.Context, ns, image string) (string, bool) {
	if d, err := k.registry.Lookup(image); err == nil {
		return d, true
	}
	if k.pullable != nil {
		if d, ok := k.pullable(image); ok {
			return d, true
		}
	}
	repo, tag, _, err := fakeopenshift.ParseReference(image)
	if err != nil || strings.Contains(repo, "/") || tag == "" {
		return "", false
	}
	is, err := k.images.ImageStreams(ns).Get(ctx, repo, metav1.GetOptions{})
	if err != nil || !is.Spec.LookupPolicy.Local {
		return "", false
	}
	for _, st := range is.Status.Tags {
		if st.Tag == tag && len(st.Items) > 0 {
			return st.Items[0].Image, true
		}
	}
	return "", false
}

func imageID(image, digest string) string {
	if repo, _, _, err := fakeopenshift.ParseReference(image); err == nil {
		return repo + "@" + digest
	}
	return digest
}

// podCondition keeps the transition time of an unchanged condition.
func podCondition(old corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus, reason string, now metav1.Time) corev1.PodCondition {
	c := corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: now}
	for _, o := range old.Conditions {
		if o.Type == t && o.Status == s {
			c.LastTransitionTime = o.LastTransitionTime
		}
	}
	return c
}

func notReadyReason(s corev1.ConditionStatus, reason string) string {
	if s == corev1.ConditionTrue {
		return ""
	}
	return reason
}

func boolPtr(b bool) *bool { return &b }
