package cluster

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/plan"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// revisionAnnotation is where the Deployment controller records a
// Deployment's (and its ReplicaSets') rollout sequence number.
const revisionAnnotation = "deployment.kubernetes.io/revision"

// TriggeredWorkloads returns the Deployments and StatefulSets in the env's
// namespace whose image.openshift.io/triggers follow stream:tag, sorted by
// kind and name. Paused triggers are included (their Trigger says so).
func (s *Set) TriggeredWorkloads(ctx context.Context, env, stream, tag string) ([]plan.Workload, error) {
	c, err := s.Env(env)
	if err != nil {
		return nil, err
	}
	if c.Kubernetes != nil {
		return nil, fmt.Errorf("environment %s is plain Kubernetes, which has no image triggers: list the service's workloads in the config", env)
	}
	var out []plan.Workload
	deps, err := c.Kube.AppsV1().Deployments(c.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing deployments in %s: %w", c.Namespace, err)
	}
	for i := range deps.Items {
		w := deploymentWorkload(&deps.Items[i])
		if follows(w, c.Namespace, stream, tag) {
			out = append(out, w)
		}
	}
	sets, err := c.Kube.AppsV1().StatefulSets(c.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing statefulsets in %s: %w", c.Namespace, err)
	}
	for i := range sets.Items {
		w := statefulSetWorkload(&sets.Items[i])
		if follows(w, c.Namespace, stream, tag) {
			// The revision number lives on the ControllerRevision; read it
			// only for the sets we return.
			w.Revision = c.statefulSetRevision(ctx, &sets.Items[i])
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// follows reports whether any of the workload's triggers follows stream:tag.
func follows(w plan.Workload, namespace, stream, tag string) bool {
	_, ok := findTrigger(w.Triggers, namespace, stream, tag)
	return ok
}

func findTrigger(ts []plan.Trigger, namespace, stream, tag string) (plan.Trigger, bool) {
	for _, t := range ts {
		if t.Follows(namespace, stream, tag) {
			return t, true
		}
	}
	return plan.Trigger{}, false
}

// Workload returns one Deployment or StatefulSet and its rollout state.
func (s *Set) Workload(ctx context.Context, env, kind, name string) (plan.Workload, error) {
	c, err := s.Env(env)
	if err != nil {
		return plan.Workload{}, err
	}
	kind, err = plan.NormalizeKind(kind)
	if err != nil {
		return plan.Workload{}, err
	}
	switch kind {
	case plan.KindDeployment:
		d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return plan.Workload{}, fmt.Errorf("reading deployment %s: %w", name, err)
		}
		return deploymentWorkload(d), nil
	default:
		sts, err := c.Kube.AppsV1().StatefulSets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return plan.Workload{}, fmt.Errorf("reading statefulset %s: %w", name, err)
		}
		w := statefulSetWorkload(sts)
		w.Revision = c.statefulSetRevision(ctx, sts)
		return w, nil
	}
}

// statefulSetRevision returns the revision number of the set's update
// revision, or 0 when it cannot be read (history is best effort here; the
// rollout state does not depend on it).
func (c EnvClient) statefulSetRevision(ctx context.Context, sts *appsv1.StatefulSet) int64 {
	if sts.Status.UpdateRevision == "" {
		return 0
	}
	cr, err := c.Kube.AppsV1().ControllerRevisions(sts.Namespace).Get(ctx, sts.Status.UpdateRevision, metav1.GetOptions{})
	if err != nil {
		return 0
	}
	return cr.Revision
}

// triggers parses the object's trigger annotation; a malformed annotation
// yields no triggers, as the controller ignores it too.
func triggers(annotations map[string]string) []plan.Trigger {
	ts, err := ParseTriggers(annotations[TriggerAnnotation])
	if err != nil {
		return nil
	}
	return ts
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1 // the API server's default
	}
	return *r
}

func deploymentWorkload(d *appsv1.Deployment) plan.Workload {
	desired := replicas(d.Spec.Replicas)
	rev, _ := strconv.ParseInt(d.Annotations[revisionAnnotation], 10, 64)
	return plan.Workload{
		Kind:      plan.KindDeployment,
		Name:      d.Name,
		Namespace: d.Namespace,
		Triggers:  triggers(d.Annotations),
		Images:    templateImages(&d.Spec.Template),
		Desired:   desired,
		Updated:   d.Status.UpdatedReplicas,
		Ready:     d.Status.ReadyReplicas,
		Paused:    d.Spec.Paused,
		Settled:   deploymentSettled(d),
		Revision:  rev,
	}
}

// deploymentSettled: the controller has seen the current spec, every replica
// runs it and is ready, and no replica of an older ReplicaSet is left.
func deploymentSettled(d *appsv1.Deployment) bool {
	desired := replicas(d.Spec.Replicas)
	st := d.Status
	return st.ObservedGeneration >= d.Generation &&
		st.UpdatedReplicas == desired &&
		st.ReadyReplicas == desired &&
		st.Replicas == st.UpdatedReplicas
}

func statefulSetWorkload(s *appsv1.StatefulSet) plan.Workload {
	return plan.Workload{
		Kind:         plan.KindStatefulSet,
		Name:         s.Name,
		Namespace:    s.Namespace,
		Triggers:     triggers(s.Annotations),
		Images:       templateImages(&s.Spec.Template),
		Desired:      replicas(s.Spec.Replicas),
		Updated:      s.Status.UpdatedReplicas,
		Ready:        s.Status.ReadyReplicas,
		Settled:      statefulSetSettled(s),
		OrderedReady: orderedReady(s),
	}
}

// statefulSetSettled: the controller has seen the current spec, the rolling
// update finished (current revision caught up with the update revision) and
// every replica is ready.
func statefulSetSettled(s *appsv1.StatefulSet) bool {
	st := s.Status
	return st.ObservedGeneration >= s.Generation &&
		st.UpdateRevision != "" &&
		st.CurrentRevision == st.UpdateRevision &&
		st.ReadyReplicas == replicas(s.Spec.Replicas)
}

// orderedReady: OrderedReady is the default pod management policy.
func orderedReady(s *appsv1.StatefulSet) bool {
	return s.Spec.PodManagementPolicy == "" || s.Spec.PodManagementPolicy == appsv1.OrderedReadyPodManagement
}

// templateImages maps container name to image, init containers included.
func templateImages(t *corev1.PodTemplateSpec) map[string]string {
	m := make(map[string]string, len(t.Spec.Containers)+len(t.Spec.InitContainers))
	for _, c := range t.Spec.InitContainers {
		m[c.Name] = c.Image
	}
	for _, c := range t.Spec.Containers {
		m[c.Name] = c.Image
	}
	return m
}

// ReadySince returns since when every pod of a Deployment or StatefulSet
// has been Ready: the latest Ready transition among its pods, as kubelet
// records it. ready is the number of its pods that are Ready now and pods
// how many it has: those of its current revision's ReplicaSet (a
// Deployment) or its own (a StatefulSet), not terminating, evicted or
// finished; since is zero unless all are. promote asks it of the env an
// image is promoted from.
func (s *Set) ReadySince(ctx context.Context, env, kind, name string) (since time.Time, ready, pods int, err error) {
	c, err := s.Env(env)
	if err != nil {
		return time.Time{}, 0, 0, err
	}
	kind, err = plan.NormalizeKind(kind)
	if err != nil {
		return time.Time{}, 0, 0, err
	}
	// The workload's own pods: owned by its current ReplicaSet (a
	// Deployment) or by it (a StatefulSet), found by its selector.
	var sel *metav1.LabelSelector
	owners := map[types.UID]bool{}
	switch kind {
	case plan.KindDeployment:
		d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return time.Time{}, 0, 0, fmt.Errorf("reading deployment %s: %w", name, err)
		}
		sel = d.Spec.Selector
		selector, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return time.Time{}, 0, 0, fmt.Errorf("reading the pod selector of deployment/%s: %w", name, err)
		}
		rss, err := c.Kube.AppsV1().ReplicaSets(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
		if err != nil {
			return time.Time{}, 0, 0, fmt.Errorf("listing the replicasets of deployment/%s: %w", name, err)
		}
		for i := range rss.Items {
			rs := &rss.Items[i]
			if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == d.UID && rs.Annotations[revisionAnnotation] == d.Annotations[revisionAnnotation] {
				owners[rs.UID] = true
			}
		}
	default:
		sts, err := c.Kube.AppsV1().StatefulSets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return time.Time{}, 0, 0, fmt.Errorf("reading statefulset %s: %w", name, err)
		}
		sel = sts.Spec.Selector
		owners[sts.UID] = true
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return time.Time{}, 0, 0, fmt.Errorf("reading the pod selector of %s/%s: %w", strings.ToLower(kind), name, err)
	}
	list, err := c.Kube.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return time.Time{}, 0, 0, fmt.Errorf("listing the pods of %s/%s: %w", strings.ToLower(kind), name, err)
	}
	for i := range list.Items {
		p := &list.Items[i]
		ref := metav1.GetControllerOf(p)
		if p.DeletionTimestamp != nil || ref == nil || !owners[ref.UID] ||
			p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed { // an evicted pod stays until collected
			continue
		}
		pods++
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready++
				if t := cond.LastTransitionTime.Time; t.After(since) {
					since = t
				}
			}
		}
	}
	if pods == 0 || ready < pods {
		since = time.Time{}
	}
	return since, ready, pods, nil
}
