package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// This file is the kube-controller-manager StatefulSet controller
// (pkg/controller/statefulset/stateful_set_control.go and
// stateful_set_utils.go, pkg/controller/history), including the behaviour
// known as "forced rollback": with podManagementPolicy OrderedReady the
// controller processes pods in ordinal order and stops at the first one that
// is not Running and Ready. A pod created from a bad template that never
// becomes Ready therefore blocks everything — also after the template is
// reverted, because replacing it would need the controller to get past it.
// Only deleting that pod unblocks the set; the pod is then recreated from
// the update revision.

// controllerRevisionHashLabel labels a ControllerRevision with its hash.
const controllerRevisionHashLabel = "controller.kubernetes.io/hash"

// syncStatefulSets runs the StatefulSet controller over every StatefulSet.
func (k *controllers) syncStatefulSets(ctx context.Context) error {
	sets, err := k.kube.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing statefulsets: %w", err)
	}
	crs, err := k.kube.AppsV1().ControllerRevisions("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing controllerrevisions: %w", err)
	}
	pods, err := k.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	revsByOwner := map[types.UID][]*appsv1.ControllerRevision{}
	for i := range crs.Items {
		cr := &crs.Items[i]
		revsByOwner[controllerOf(&cr.ObjectMeta)] = append(revsByOwner[controllerOf(&cr.ObjectMeta)], cr)
	}
	podsByOwner := map[types.UID][]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		podsByOwner[controllerOf(&p.ObjectMeta)] = append(podsByOwner[controllerOf(&p.ObjectMeta)], p)
	}
	var errs []error
	for i := range sets.Items {
		s := &sets.Items[i]
		if s.DeletionTimestamp != nil {
			continue
		}
		if err := k.syncStatefulSet(ctx, s.DeepCopy(), revsByOwner[s.UID], podsByOwner[s.UID]); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("statefulset %s/%s: %w", s.Namespace, s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// syncStatefulSet is defaultStatefulSetControl.UpdateStatefulSet.
func (k *controllers) syncStatefulSet(ctx context.Context, set *appsv1.StatefulSet, revisions []*appsv1.ControllerRevision, pods []*corev1.Pod) error {
	sortRevisions(revisions)
	currentRev, updateRev, collisionCount, err := k.statefulSetRevisions(ctx, set, revisions)
	if err != nil {
		return err
	}
	currentSet, err := applyRevision(set, currentRev)
	if err != nil {
		return err
	}
	updateSet, err := applyRevision(set, updateRev)
	if err != nil {
		return err
	}

	status := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    currentRev.Name,
		UpdateRevision:     updateRev.Name,
		CollisionCount:     &collisionCount,
		Conditions:         set.Status.Conditions,
	}
	replicaCount := int(*set.Spec.Replicas)
	replicas := make([]*corev1.Pod, replicaCount)
	var condemned []*corev1.Pod
	for _, p := range pods {
		switch ord := podOrdinal(set, p); {
		case ord >= 0 && ord < replicaCount:
			replicas[ord] = p
		case ord >= replicaCount:
			condemned = append(condemned, p)
		}
	}
	for ord := range replicas {
		if replicas[ord] == nil {
			replicas[ord] = newVersionedStatefulSetPod(currentSet, updateSet, currentRev.Name, updateRev.Name, ord, set.Status.CurrentReplicas)
		}
	}
	sort.Slice(condemned, func(i, j int) bool { return podOrdinal(set, condemned[i]) > podOrdinal(set, condemned[j]) })
	var firstUnhealthy *corev1.Pod
	for _, p := range replicas {
		if !podRunningAndReady(p) {
			firstUnhealthy = p
			break
		}
	}
	if firstUnhealthy == nil {
		for i := len(condemned) - 1; i >= 0; i-- {
			if !podRunningAndReady(condemned[i]) {
				firstUnhealthy = condemned[i]
				break
			}
		}
	}
	countPods(&status, currentRev, updateRev, replicas, condemned)

	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	if err := k.updateStatefulSetPods(ctx, set, &status, updateRev, replicas, condemned, firstUnhealthy, monotonic); err != nil {
		return err
	}

	// completeRollingUpdate
	if set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		status.UpdatedReplicas == status.Replicas && status.ReadyReplicas == status.Replicas {
		status.CurrentReplicas = status.UpdatedReplicas
		status.CurrentRevision = status.UpdateRevision
	}
	if !apiequality.Semantic.DeepEqual(set.Status, status) {
		set.Status = status
		if _, err := k.kube.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, set, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return k.truncateHistory(ctx, set, pods, revisions, currentRev, updateRev)
}

// updateStatefulSetPods creates, deletes and replaces pods, stopping where
// OrderedReady (monotonic) requires waiting.
func (k *controllers) updateStatefulSetPods(ctx context.Context, set *appsv1.StatefulSet, status *appsv1.StatefulSetStatus, updateRev *appsv1.ControllerRevision, replicas, condemned []*corev1.Pod, firstUnhealthy *corev1.Pod, monotonic bool) error {
	pods := k.kube.CoreV1().Pods(set.Namespace)
	for _, p := range replicas {
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return ignoreNotFound(pods.Delete(ctx, p.Name, metav1.DeleteOptions{}))
		}
		if p.Status.Phase == "" { // not created yet
			if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
			if monotonic {
				return nil
			}
			continue
		}
		// a pod that is not Running and Ready blocks every later one —
		// and any update — however it got there
		if !podRunningAndReady(p) && monotonic {
			return nil
		}
	}
	for _, p := range condemned {
		if !podRunningAndReady(p) && monotonic && p != firstUnhealthy {
			return nil
		}
		if err := ignoreNotFound(pods.Delete(ctx, p.Name, metav1.DeleteOptions{})); err != nil || monotonic {
			return err
		}
	}
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	updateMin := 0
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		updateMin = int(*ru.Partition)
	}
	// terminate the highest ordinal not on the update revision, after
	// waiting for every higher one to be Ready on it
	for target := len(replicas) - 1; target >= updateMin; target-- {
		if podRevision(replicas[target]) != updateRev.Name {
			status.CurrentReplicas--
			return ignoreNotFound(pods.Delete(ctx, replicas[target].Name, metav1.DeleteOptions{}))
		}
		if !podRunningAndReady(replicas[target]) {
			return nil
		}
	}
	return nil
}

// statefulSetRevisions is getStatefulSetRevisions: the update revision is
// the ControllerRevision equal to the current template — the latest one
// when equal, an older equal one renumbered to the next revision (a
// rollback), or a new one.
func (k *controllers) statefulSetRevisions(ctx context.Context, set *appsv1.StatefulSet, revisions []*appsv1.ControllerRevision) (current, update *appsv1.ControllerRevision, collisionCount int32, err error) {
	if set.Status.CollisionCount != nil {
		collisionCount = *set.Status.CollisionCount
	}
	var next int64 = 1
	if n := len(revisions); n > 0 {
		next = revisions[n-1].Revision + 1
	}
	update, err = newControllerRevision(set, next, &collisionCount)
	if err != nil {
		return nil, nil, collisionCount, err
	}
	var equal []*appsv1.ControllerRevision
	for _, r := range revisions {
		if bytes.Equal(r.Data.Raw, update.Data.Raw) {
			equal = append(equal, r)
		}
	}
	crs := k.kube.AppsV1().ControllerRevisions(set.Namespace)
	switch {
	case len(equal) > 0 && equal[len(equal)-1].Name == revisions[len(revisions)-1].Name:
		update = revisions[len(revisions)-1]
	case len(equal) > 0:
		bumped := equal[len(equal)-1].DeepCopy()
		bumped.Revision = update.Revision
		if update, err = crs.Update(ctx, bumped, metav1.UpdateOptions{}); err != nil {
			return nil, nil, collisionCount, err
		}
	default:
		created, err := crs.Create(ctx, update, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// same name, other data: a hash collision; try another name next time
			collisionCount++
			set.Status.CollisionCount = &collisionCount
			_, uerr := k.kube.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, set, metav1.UpdateOptions{})
			return nil, nil, collisionCount, errors.Join(err, uerr)
		}
		if err != nil {
			return nil, nil, collisionCount, err
		}
		update = created
	}
	for _, r := range revisions {
		if r.Name == set.Status.CurrentRevision {
			current = r
		}
	}
	if current == nil || current.Name == update.Name {
		current = update
	}
	return current, update, collisionCount, nil
}

// truncateHistory deletes revisions no pod, current or update revision uses,
// oldest first, beyond revisionHistoryLimit.
func (k *controllers) truncateHistory(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revisions []*appsv1.ControllerRevision, current, update *appsv1.ControllerRevision) error {
	live := map[string]bool{current.Name: true, update.Name: true}
	for _, p := range pods {
		live[podRevision(p)] = true
	}
	var history []*appsv1.ControllerRevision
	for _, r := range revisions {
		if !live[r.Name] {
			history = append(history, r)
		}
	}
	limit := 10
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	if limit < 0 || len(history) <= limit {
		return nil
	}
	for _, r := range history[:len(history)-limit] {
		if err := ignoreNotFound(k.kube.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{})); err != nil {
			return err
		}
	}
	return nil
}

// newControllerRevision is newRevision/history.NewControllerRevision: the
// data is the patch that restores the pod template
// ({"spec":{"template":{...,"$patch":"replace"}}}), the name the set's plus
// the hash of that data, and the set's annotations are copied (which is
// where `rollout history` finds a change-cause).
func newControllerRevision(set *appsv1.StatefulSet, revision int64, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	patch, err := statefulSetPatch(set)
	if err != nil {
		return nil, err
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       set.Namespace,
			Labels:          withLabel(set.Spec.Template.Labels, controllerRevisionHashLabel, ""),
			Annotations:     map[string]string{},
			OwnerReferences: []metav1.OwnerReference{controllerRef(set.Name, set.UID, "StatefulSet")},
		},
		Data:     runtime.RawExtension{Raw: patch},
		Revision: revision,
	}
	for k, v := range set.Annotations {
		cr.Annotations[k] = v
	}
	hash := hashControllerRevision(cr, collisionCount)
	cr.Name = set.Name + "-" + hash
	cr.Labels[controllerRevisionHashLabel] = hash
	return cr, nil
}

// statefulSetPatch is getPatch in stateful_set_utils.go.
func statefulSetPatch(set *appsv1.StatefulSet) ([]byte, error) {
	data, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding statefulset: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	spec, _ := raw["spec"].(map[string]any)
	template, _ := spec["template"].(map[string]any)
	if template == nil {
		template = map[string]any{}
	}
	template["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": template}})
}

// hashControllerRevision is history.HashControllerRevision.
func hashControllerRevision(cr *appsv1.ControllerRevision, probe *int32) string {
	h := fnv.New32()
	h.Write(cr.Data.Raw)
	if probe != nil {
		h.Write([]byte(strconv.FormatInt(int64(*probe), 10)))
	}
	return utilrand.SafeEncodeString(strconv.FormatInt(int64(h.Sum32()), 10))
}

// applyRevision is ApplyRevision: the set with the revision's template.
func applyRevision(set *appsv1.StatefulSet, rev *appsv1.ControllerRevision) (*appsv1.StatefulSet, error) {
	var patch struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(rev.Data.Raw, &patch); err != nil {
		return nil, fmt.Errorf("decoding controllerrevision %s: %w", rev.Name, err)
	}
	clone := set.DeepCopy()
	clone.Spec.Template = patch.Spec.Template
	return clone, nil
}

// newVersionedStatefulSetPod is the pod for ordinal at the current revision
// when a partition (or, without rolling-update settings, the number of
// current replicas) keeps it there, else at the update revision.
func newVersionedStatefulSetPod(currentSet, updateSet *appsv1.StatefulSet, currentRevision, updateRevision string, ordinal int, currentReplicas int32) *corev1.Pod {
	strategy := currentSet.Spec.UpdateStrategy
	if strategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		((strategy.RollingUpdate == nil && ordinal < int(currentReplicas)) ||
			(strategy.RollingUpdate != nil && strategy.RollingUpdate.Partition != nil && ordinal < int(*strategy.RollingUpdate.Partition))) {
		return newStatefulSetPod(currentSet, ordinal, currentRevision)
	}
	return newStatefulSetPod(updateSet, ordinal, updateRevision)
}

// newStatefulSetPod is the pod with the set's identity for ordinal.
func newStatefulSetPod(set *appsv1.StatefulSet, ordinal int, revision string) *corev1.Pod {
	name := fmt.Sprintf("%s-%d", set.Name, ordinal)
	t := set.Spec.Template.DeepCopy()
	labels := withLabel(t.Labels, appsv1.StatefulSetPodNameLabel, name)
	labels[appsv1.PodIndexLabel] = strconv.Itoa(ordinal)
	labels[appsv1.StatefulSetRevisionLabel] = revision
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       set.Namespace,
			Labels:          labels,
			Annotations:     t.Annotations,
			OwnerReferences: []metav1.OwnerReference{controllerRef(set.Name, set.UID, "StatefulSet")},
		},
		Spec: t.Spec,
	}
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = set.Spec.ServiceName
	return pod
}

// countPods is updateStatus: created, ready, current and updated replicas.
func countPods(status *appsv1.StatefulSetStatus, current, update *appsv1.ControllerRevision, lists ...[]*corev1.Pod) {
	status.Replicas, status.ReadyReplicas, status.AvailableReplicas, status.CurrentReplicas, status.UpdatedReplicas = 0, 0, 0, 0, 0
	for _, list := range lists {
		for _, p := range list {
			if p.Status.Phase == "" {
				continue
			}
			status.Replicas++
			if podRunningAndReady(p) {
				status.ReadyReplicas++
				status.AvailableReplicas++
			}
			if podRevision(p) == current.Name {
				status.CurrentReplicas++
			}
			if podRevision(p) == update.Name {
				status.UpdatedReplicas++
			}
		}
	}
}

func podRunningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && podReady(p)
}

func podRevision(p *corev1.Pod) string { return p.Labels[appsv1.StatefulSetRevisionLabel] }

// podOrdinal parses NAME-ORDINAL; -1 when the pod is not the set's.
func podOrdinal(set *appsv1.StatefulSet, p *corev1.Pod) int {
	rest, ok := strings.CutPrefix(p.Name, set.Name+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func sortRevisions(revs []*appsv1.ControllerRevision) {
	sort.SliceStable(revs, func(i, j int) bool {
		if revs[i].Revision == revs[j].Revision {
			return revs[i].Name < revs[j].Name
		}
		return revs[i].Revision < revs[j].Revision
	})
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
