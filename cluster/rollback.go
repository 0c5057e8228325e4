package cluster

// History and rollback of Deployments and StatefulSets, reproducing kubectl's
// polymorphichelpers (rollback.go, history.go) and util/deployment: the same
// objects are read, the same revision is chosen and the same single patch is
// sent, so `deploy undo` does exactly what `oc rollout undo` would.

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/deploybot/deploybot/kubeclient"

	"github.com/deploybot/deploybot/plan"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// ChangeCauseAnnotation is what rollout history shows for a revision.
const ChangeCauseAnnotation = "kubernetes.io/change-cause"

// Messages kubectl prints after an undo.
const (
	rollbackSuccess = "rolled back"
	rollbackSkipped = "skipped rollback"
)

// annotationsToSkip are kept from the Deployment and not copied from the
// ReplicaSet when rolling back (kubectl's list).
var annotationsToSkip = map[string]bool{
	corev1.LastAppliedConfigAnnotation:          true,
	revisionAnnotation:                          true,
	"deployment.kubernetes.io/revision-history": true,
	"deployment.kubernetes.io/desired-replicas": true,
	"deployment.kubernetes.io/max-replicas":     true,
	appsv1.DeprecatedRollbackTo:                 true,
	// A hold is the Deployment's now, not a revision's: the controller
	// copies annotations onto ReplicaSets and never removes them, so an
	// old ReplicaSet may carry a hold long ended (hold.go).
	HoldAnnotation: true,
}

// Revisions returns the workload's rollout history, oldest first (what
// oc rollout history shows), each revision with its container images.
func (s *Set) Revisions(ctx context.Context, env, kind, name string) ([]plan.Revision, error) {
	c, err := s.Env(env)
	if err != nil {
		return nil, err
	}
	return c.revisions(ctx, kind, name)
}

func (c EnvClient) revisions(ctx context.Context, kind, name string) ([]plan.Revision, error) {
	kind, err := plan.NormalizeKind(kind)
	if err != nil {
		return nil, err
	}
	if kind == plan.KindDeployment {
		return c.deploymentRevisions(ctx, name)
	}
	return c.statefulSetRevisions(ctx, name)
}

func (c EnvClient) deploymentRevisions(ctx context.Context, name string) ([]plan.Revision, error) {
	d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading deployment %s: %w", name, err)
	}
	rss, err := deploymentReplicaSets(ctx, c.Kube, d)
	if err != nil {
		return nil, fmt.Errorf("reading replica sets of deployment %s: %w", name, err)
	}
	newRS := findNewReplicaSet(d, rss)
	// Like kubectl, one entry per revision number; a later ReplicaSet with
	// the same number replaces an earlier one.
	byNumber := map[int64]plan.Revision{}
	for _, rs := range rss {
		v, err := rsRevision(rs)
		if err != nil {
			continue // kubectl warns and skips
		}
		byNumber[v] = plan.Revision{
			Number:      v,
			Images:      templateImages(&rs.Spec.Template),
			ChangeCause: rs.Annotations[ChangeCauseAnnotation],
			Created:     rs.CreationTimestamp.Time,
			Current:     newRS != nil && rs.UID == newRS.UID,
		}
	}
	return sortedRevisions(byNumber), nil
}

func (c EnvClient) statefulSetRevisions(ctx context.Context, name string) ([]plan.Revision, error) {
	sts, history, err := statefulSetHistory(ctx, c.Kube, c.Namespace, name)
	if err != nil {
		return nil, err
	}
	byNumber := map[int64]plan.Revision{}
	for _, h := range history {
		applied, err := applyStatefulSetHistory(sts, h)
		if err != nil {
			return nil, fmt.Errorf("decoding revision %d of statefulset %s: %w", h.Revision, name, err)
		}
		current := h.Name == sts.Status.UpdateRevision
		if sts.Status.UpdateRevision == "" {
			current, _ = statefulSetMatch(sts, h)
		}
		byNumber[h.Revision] = plan.Revision{
			Number:      h.Revision,
			Images:      templateImages(&applied.Spec.Template),
			ChangeCause: h.Annotations[ChangeCauseAnnotation],
			Created:     h.CreationTimestamp.Time,
			Current:     current,
		}
	}
	return sortedRevisions(byNumber), nil
}

func sortedRevisions(m map[int64]plan.Revision) []plan.Revision {
	out := make([]plan.Revision, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// rsRevision is deploymentutil.Revision: a missing annotation is revision 0.
func rsRevision(rs *appsv1.ReplicaSet) (int64, error) {
	v, ok := rs.Annotations[revisionAnnotation]
	if !ok {
		return 0, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

// deploymentReplicaSets lists the ReplicaSets the Deployment's selector
// matches and keeps those it controls (deploymentutil.listReplicaSets),
// following list continuation.
func deploymentReplicaSets(ctx context.Context, kube kubeclient.Interface, d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	opts := metav1.ListOptions{LabelSelector: selector.String()}
	var owned []*appsv1.ReplicaSet
	for {
		list, err := kube.AppsV1().ReplicaSets(d.Namespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			if metav1.IsControlledBy(&list.Items[i], d) {
				owned = append(owned, &list.Items[i])
			}
		}
		if list.Continue == "" {
			return owned, nil
		}
		opts.Continue = list.Continue
	}
}

// findNewReplicaSet returns the oldest ReplicaSet whose template equals the
// Deployment's, ignoring the pod-template-hash label. Like kubectl it sorts
// rss by creation (then name) in place, which fixes the order later steps
// visit them in.
func findNewReplicaSet(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sort.Sort(byCreation(rss))
	for _, rs := range rss {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

type byCreation []*appsv1.ReplicaSet

func (o byCreation) Len() int      { return len(o) }
func (o byCreation) Swap(i, j int) { o[i], o[j] = o[j], o[i] }
func (o byCreation) Less(i, j int) bool {
	a, b := o[i], o[j]
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

// equalIgnoreHash compares pod templates ignoring the pod-template-hash label,
// which the Deployment's own template never has.
func equalIgnoreHash(t1, t2 *corev1.PodTemplateSpec) bool {
	a, b := t1.DeepCopy(), t2.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return apiequality.Semantic.DeepEqual(a, b)
}

// RevisionNotFoundError says the requested revision is not in the history.
type RevisionNotFoundError struct{ Revision int64 }

func (e *RevisionNotFoundError) Error() string {
	return fmt.Sprintf("unable to find specified revision %d in history", e.Revision)
}

// rollback rolls the workload back to toRevision (0 = the previous one) and
// returns kubectl's message: "rolled back" or "skipped rollback (...)".
// changed is false when nothing was patched.
func (c EnvClient) rollback(ctx context.Context, kind, name string, toRevision int64) (msg string, changed bool, err error) {
	kind, err = plan.NormalizeKind(kind)
	if err != nil {
		return "", false, err
	}
	if toRevision < 0 {
		return "", false, &RevisionNotFoundError{Revision: toRevision}
	}
	if kind == plan.KindDeployment {
		return c.rollbackDeployment(ctx, name, toRevision)
	}
	return c.rollbackStatefulSet(ctx, name, toRevision)
}

func (c EnvClient) rollbackDeployment(ctx context.Context, name string, toRevision int64) (string, bool, error) {
	d, err := c.Kube.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", false, fmt.Errorf("reading deployment %s: %w", name, err)
	}
	rs, rev, err := deploymentRevision(ctx, c.Kube, d, toRevision)
	if err != nil {
		return "", false, err
	}
	if d.Spec.Paused {
		return "", false, fmt.Errorf("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again")
	}
	if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
		// kubectl prints the revision as requested (0 for "previous"); we
		// print the one found, which says more.
		return fmt.Sprintf("%s (current template already matches revision %d)", rollbackSkipped, rev), false, nil
	}
	tmpl := rs.Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)

	annotations := map[string]string{}
	for k := range annotationsToSkip {
		if v, ok := d.Annotations[k]; ok {
			annotations[k] = v
		}
	}
	for k, v := range rs.Annotations {
		if !annotationsToSkip[k] {
			annotations[k] = v
		}
	}
	patch, err := deploymentPatch(tmpl, annotations)
	if err != nil {
		return "", false, fmt.Errorf("failed restoring revision %d: %w", rev, err)
	}
	if _, err := c.Kube.AppsV1().Deployments(c.Namespace).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		return "", false, fmt.Errorf("failed restoring revision %d: %w", rev, err)
	}
	return rollbackSuccess, true, nil
}

// deploymentPatch is the one JSON patch kubectl sends: replace the pod
// template and the annotations.
func deploymentPatch(tmpl *corev1.PodTemplateSpec, annotations map[string]string) ([]byte, error) {
	return json.Marshal([]interface{}{
		map[string]interface{}{"op": "replace", "path": "/spec/template", "value": tmpl},
		map[string]interface{}{"op": "replace", "path": "/metadata/annotations", "value": annotations},
	})
}

// deploymentRevision picks the ReplicaSet of toRevision, or for 0 the one with
// the second highest revision, exactly as kubectl does.
func deploymentRevision(ctx context.Context, kube kubeclient.Interface, d *appsv1.Deployment, toRevision int64) (*appsv1.ReplicaSet, int64, error) {
	rss, err := deploymentReplicaSets(ctx, kube, d)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to retrieve replica sets from deployment %s: %w", d.Name, err)
	}
	// kubectl visits the old ReplicaSets first and the new one last.
	newRS := findNewReplicaSet(d, rss)
	var all []*appsv1.ReplicaSet
	for _, rs := range rss {
		if newRS == nil || rs.UID != newRS.UID {
			all = append(all, rs)
		}
	}
	if newRS != nil {
		all = append(all, newRS)
	}
	var (
		latest, previous       *appsv1.ReplicaSet
		latestRev, previousRev = int64(-1), int64(-1)
	)
	for _, rs := range all {
		v, err := rsRevision(rs)
		if err != nil {
			continue
		}
		if toRevision == 0 {
			if latestRev < v {
				previousRev, previous = latestRev, latest
				latestRev, latest = v, rs
			} else if previousRev < v {
				previousRev, previous = v, rs
			}
		} else if toRevision == v {
			return rs, v, nil
		}
	}
	if toRevision > 0 {
		return nil, 0, &RevisionNotFoundError{Revision: toRevision}
	}
	if previous == nil {
		return nil, 0, fmt.Errorf("no rollout history found for deployment %q", d.Name)
	}
	return previous, previousRev, nil
}

// statefulSetHistory returns the StatefulSet and the ControllerRevisions its
// selector matches and it controls.
func statefulSetHistory(ctx context.Context, kube kubeclient.Interface, namespace, name string) (*appsv1.StatefulSet, []*appsv1.ControllerRevision, error) {
	sts, err := kube.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("reading statefulset %s: %w", name, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, nil, fmt.Errorf("reading selector of statefulset %s: %w", name, err)
	}
	list, err := kube.AppsV1().ControllerRevisions(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, nil, fmt.Errorf("reading history of statefulset %s: %w", name, err)
	}
	var history []*appsv1.ControllerRevision
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], sts) {
			history = append(history, &list.Items[i])
		}
	}
	return sts, history, nil
}

// applyStatefulSetHistory returns the StatefulSet as the revision describes
// it: the revision's data is a strategic merge patch replacing spec.template.
func applyStatefulSetHistory(sts *appsv1.StatefulSet, h *appsv1.ControllerRevision) (*appsv1.StatefulSet, error) {
	cur, err := json.Marshal(sts)
	if err != nil {
		return nil, err
	}
	patched, err := strategicpatch.StrategicMergePatch(cur, h.Data.Raw, sts)
	if err != nil {
		return nil, err
	}
	out := &appsv1.StatefulSet{}
	if err := json.Unmarshal(patched, out); err != nil {
		return nil, err
	}
	return out, nil
}

// StatefulSetPatch returns the patch the StatefulSet controller stores in a
// ControllerRevision's data for the set's current template:
// {"spec":{"template":{...,"$patch":"replace"}}}. kubectl compares it byte
// for byte with a revision's data to see whether the set already runs it.
func StatefulSetPatch(sts *appsv1.StatefulSet) ([]byte, error) {
	b, err := json.Marshal(sts)
	if err != nil {
		return nil, err
	}
	var raw map[string]interface{}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	spec, _ := raw["spec"].(map[string]interface{})
	template, _ := spec["template"].(map[string]interface{})
	if template == nil {
		template = map[string]interface{}{}
	}
	template["$patch"] = "replace"
	return json.Marshal(map[string]interface{}{"spec": map[string]interface{}{"template": template}})
}

func statefulSetMatch(sts *appsv1.StatefulSet, h *appsv1.ControllerRevision) (bool, error) {
	p, err := StatefulSetPatch(sts)
	if err != nil {
		return false, err
	}
	return bytes.Equal(p, h.Data.Raw), nil
}

// findHistory returns the revision toRevision, or for 0 the second newest.
func findHistory(toRevision int64, history []*appsv1.ControllerRevision) *appsv1.ControllerRevision {
	if toRevision == 0 {
		if len(history) <= 1 {
			return nil
		}
		sorted := append([]*appsv1.ControllerRevision(nil), history...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Revision < sorted[j].Revision })
		return sorted[len(sorted)-2]
	}
	for _, h := range history {
		if h.Revision == toRevision {
			return h
		}
	}
	return nil
}

func (c EnvClient) rollbackStatefulSet(ctx context.Context, name string, toRevision int64) (string, bool, error) {
	sts, history, err := statefulSetHistory(ctx, c.Kube, c.Namespace, name)
	if err != nil {
		return "", false, err
	}
	if toRevision == 0 && len(history) <= 1 {
		return "", false, fmt.Errorf("no last revision to roll back to")
	}
	h := findHistory(toRevision, history)
	if h == nil {
		return "", false, &RevisionNotFoundError{Revision: toRevision}
	}
	done, err := statefulSetMatch(sts, h)
	if err != nil {
		return "", false, fmt.Errorf("comparing statefulset %s with revision %d: %w", name, h.Revision, err)
	}
	if done {
		return fmt.Sprintf("%s (current template already matches revision %d)", rollbackSkipped, h.Revision), false, nil
	}
	if _, err := c.Kube.AppsV1().StatefulSets(c.Namespace).Patch(ctx, name, types.StrategicMergePatchType, h.Data.Raw, metav1.PatchOptions{}); err != nil {
		return "", false, fmt.Errorf("failed restoring revision %d: %w", h.Revision, err)
	}
	return rollbackSuccess, true, nil
}

// podFailureReasons are container waiting reasons that mean a pod will not
// become Ready without a change to its spec or image.
var podFailureReasons = map[string]bool{
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"CrashLoopBackOff":           true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podFailure returns the waiting reason of the first container that is in a
// failure state, or "".
func podFailure(p *corev1.Pod) string {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if w := cs.State.Waiting; w != nil && podFailureReasons[w.Reason] {
				return w.Reason
			}
		}
	}
	return ""
}

// StuckPods returns the pods of an OrderedReady StatefulSet that sit on an
// old revision and are not Ready. The controller waits for them forever and
// will not replace them after a rollback ("forced rollback"): they must be
// deleted. Parallel sets get nil.
func (s *Set) StuckPods(ctx context.Context, env, name string) ([]plan.StuckPod, error) {
	c, err := s.Env(env)
	if err != nil {
		return nil, err
	}
	sts, err := c.Kube.AppsV1().StatefulSets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading statefulset %s: %w", name, err)
	}
	pods, err := c.statefulSetPods(ctx, sts)
	if err != nil {
		return nil, err
	}
	return stuckPods(sts, pods), nil
}

func (c EnvClient) statefulSetPods(ctx context.Context, sts *appsv1.StatefulSet) ([]corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("reading selector of statefulset %s: %w", sts.Name, err)
	}
	list, err := c.Kube.CoreV1().Pods(sts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, fmt.Errorf("listing pods of statefulset %s: %w", sts.Name, err)
	}
	return list.Items, nil
}

// stuckPods picks, among pods, those of the OrderedReady set sts that are on
// an old revision and not Ready.
func stuckPods(sts *appsv1.StatefulSet, pods []corev1.Pod) []plan.StuckPod {
	if !orderedReady(sts) || sts.Status.UpdateRevision == "" {
		return nil
	}
	var out []plan.StuckPod
	for i := range pods {
		p := &pods[i]
		if !metav1.IsControlledBy(p, sts) || p.DeletionTimestamp != nil {
			continue
		}
		rev := p.Labels[appsv1.ControllerRevisionHashLabelKey]
		if rev == sts.Status.UpdateRevision || podReady(p) {
			continue
		}
		reason := podFailure(p)
		if reason == "" {
			reason = "not Ready"
		}
		out = append(out, plan.StuckPod{Name: p.Name, Revision: rev, Reason: reason})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
