package demo

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// This file is the kube-controller-manager deployment controller
// (pkg/controller/deployment: sync.go, rolling.go, recreate.go, progress.go
// and util/deployment_util.go), reduced to what deploybot observes:
// ReplicaSets per pod template with the revision annotations `oc rollout
// history` reads, rolling and recreate updates, and status with the
// Available and Progressing conditions including ProgressDeadlineExceeded.

// Annotations the deployment controller maintains.
const (
	revisionAnnotation        = "deployment.kubernetes.io/revision"
	revisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	desiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	maxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	changeCauseAnnotation     = "kubernetes.io/change-cause"
	lastAppliedAnnotation     = "kubectl.kubernetes.io/last-applied-configuration"
)

// Progressing condition reasons (pkg/controller/deployment/util).
const (
	reasonNewRSCreated       = "NewReplicaSetCreated"
	reasonFoundNewRS         = "FoundNewReplicaSet"
	reasonRSUpdated          = "ReplicaSetUpdated"
	reasonNewRSAvailable     = "NewReplicaSetAvailable"
	reasonTimedOut           = "ProgressDeadlineExceeded"
	reasonMinimumAvailable   = "MinimumReplicasAvailable"
	reasonMinimumUnavailable = "MinimumReplicasUnavailable"
)

// annotationsToSkip are not copied between Deployments and ReplicaSets.
var annotationsToSkip = map[string]bool{
	lastAppliedAnnotation:       true,
	revisionAnnotation:          true,
	revisionHistoryAnnotation:   true,
	desiredReplicasAnnotation:   true,
	maxReplicasAnnotation:       true,
	appsv1.DeprecatedRollbackTo: true,
}

// syncDeployments runs the deployment controller over every Deployment.
func (k *controllers) syncDeployments(ctx context.Context) error {
	deps, err := k.kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing deployments: %w", err)
	}
	rsList, err := k.kube.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing replicasets: %w", err)
	}
	var errs []error
	for i := range deps.Items {
		d := &deps.Items[i]
		var owned []*appsv1.ReplicaSet
		for j := range rsList.Items {
			if isControlledBy(&rsList.Items[j].ObjectMeta, d.UID) {
				owned = append(owned, rsList.Items[j].DeepCopy())
			}
		}
		if err := k.syncDeployment(ctx, d.DeepCopy(), owned); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deployment %s/%s: %w", d.Namespace, d.Name, err))
		}
	}
	return errors.Join(errs...)
}

// syncDeployment is DeploymentController.syncDeployment for one Deployment.
func (k *controllers) syncDeployment(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	if d.DeletionTimestamp != nil {
		return nil
	}
	if d.Spec.Paused {
		newRS, oldRSs, err := k.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
		if err != nil {
			return err
		}
		return k.syncDeploymentStatus(ctx, append(oldRSs, newRS), newRS, d)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return k.rolloutRecreate(ctx, d, rsList)
	}
	return k.rolloutRolling(ctx, d, rsList)
}

// rolloutRolling is rolling.go: scale the new ReplicaSet up within
// maxSurge, then old ones down within maxUnavailable.
func (k *controllers) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := k.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, true)
	if err != nil || newRS == nil {
		return err
	}
	allRSs := append(append([]*appsv1.ReplicaSet{}, oldRSs...), newRS)

	scaledUp, err := k.reconcileNewReplicaSet(ctx, allRSs, newRS, d)
	if err != nil {
		return err
	}
	if scaledUp {
		return k.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	scaledDown, err := k.reconcileOldReplicaSets(ctx, allRSs, activeReplicaSets(oldRSs), newRS, d)
	if err != nil {
		return err
	}
	if scaledDown {
		return k.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	if deploymentComplete(d, &d.Status) {
		if err := k.cleanupDeployment(ctx, oldRSs, d); err != nil {
			return err
		}
	}
	return k.syncRolloutStatus(ctx, allRSs, newRS, d)
}

// rolloutRecreate is recreate.go: all old pods go before new ones come.
func (k *controllers) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := k.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	allRSs := append(append([]*appsv1.ReplicaSet{}, oldRSs...), newRS)
	scaledDown := false
	for _, rs := range activeReplicaSets(oldRSs) {
		if _, err := k.scaleReplicaSet(ctx, rs, 0, d); err != nil {
			return err
		}
		scaledDown = true
	}
	if scaledDown {
		return k.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	for _, rs := range oldRSs {
		if rs.Status.Replicas > 0 {
			// old pods still running: wait for them to go
			return k.syncRolloutStatus(ctx, allRSs, newRS, d)
		}
	}
	if newRS == nil {
		newRS, oldRSs, err = k.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, true)
		if err != nil || newRS == nil {
			return err
		}
		allRSs = append(append([]*appsv1.ReplicaSet{}, oldRSs...), newRS)
	}
	if _, err := k.scaleReplicaSet(ctx, newRS, *d.Spec.Replicas, d); err != nil {
		return err
	}
	if deploymentComplete(d, &d.Status) {
		if err := k.cleanupDeployment(ctx, oldRSs, d); err != nil {
			return err
		}
	}
	return k.syncRolloutStatus(ctx, allRSs, newRS, d)
}

// getAllReplicaSetsAndSyncRevision finds the ReplicaSet whose template is
// the Deployment's (creating it when asked), giving it the next revision —
// also when it is an old one being reused, which is how a rollback to an
// earlier template gets a new revision number and a revision-history.
func (k *controllers) getAllReplicaSetsAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	existing := findNewReplicaSet(d, rsList)
	var oldRSs []*appsv1.ReplicaSet
	for _, rs := range rsList {
		if existing == nil || rs.UID != existing.UID {
			oldRSs = append(oldRSs, rs)
		}
	}
	newRevision := strconv.FormatInt(maxRevision(oldRSs)+1, 10)

	if existing != nil {
		rsCopy := existing.DeepCopy()
		if setNewReplicaSetAnnotations(d, rsCopy, newRevision, true) {
			updated, err := k.kube.AppsV1().ReplicaSets(rsCopy.Namespace).Update(ctx, rsCopy, metav1.UpdateOptions{})
			return updated, oldRSs, err
		}
		needsUpdate := setDeploymentRevision(d, rsCopy.Annotations[revisionAnnotation])
		if d.Spec.ProgressDeadlineSeconds != nil && deploymentCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			k.setDeploymentCondition(&d.Status, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonFoundNewRS, fmt.Sprintf("Found new replica set %q", rsCopy.Name))
			needsUpdate = true
		}
		if needsUpdate {
			updated, err := k.kube.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
			if err != nil {
				return nil, nil, err
			}
			*d = *updated
		}
		return rsCopy, oldRSs, nil
	}
	if !create {
		return nil, oldRSs, nil
	}

	template := *d.Spec.Template.DeepCopy()
	hash := podTemplateHash(&template, d.Status.CollisionCount)
	template.Labels = withLabel(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	selector := d.Spec.Selector.DeepCopy()
	if selector == nil {
		selector = &metav1.LabelSelector{}
	}
	selector.MatchLabels = withLabel(selector.MatchLabels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	newRS := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{controllerRef(d.Name, d.UID, "Deployment")},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        int32Ptr(0),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        template,
		},
	}
	replicas := newRSNewReplicas(d, append(append([]*appsv1.ReplicaSet{}, oldRSs...), newRS), newRS)
	newRS.Spec.Replicas = &replicas
	setNewReplicaSetAnnotations(d, newRS, newRevision, false)
	created, err := k.kube.AppsV1().ReplicaSets(d.Namespace).Create(ctx, newRS, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A hash collision with a ReplicaSet of another template: count it so
		// the next sync computes another name.
		c := int32(0)
		if d.Status.CollisionCount != nil {
			c = *d.Status.CollisionCount
		}
		c++
		d.Status.CollisionCount = &c
		_, uerr := k.kube.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		return nil, nil, errors.Join(err, uerr)
	}
	if err != nil {
		return nil, nil, err
	}
	setDeploymentRevision(d, newRevision)
	if d.Spec.ProgressDeadlineSeconds != nil {
		k.setDeploymentCondition(&d.Status, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonNewRSCreated, fmt.Sprintf("Created new replica set %q", created.Name))
	}
	updated, err := k.kube.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return nil, nil, err
	}
	*d = *updated
	return created, oldRSs, nil
}

// reconcileNewReplicaSet scales the new ReplicaSet towards spec.replicas.
func (k *controllers) reconcileNewReplicaSet(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	if *newRS.Spec.Replicas == *d.Spec.Replicas {
		return false, nil
	}
	if *newRS.Spec.Replicas > *d.Spec.Replicas {
		return k.scaleReplicaSet(ctx, newRS, *d.Spec.Replicas, d)
	}
	return k.scaleReplicaSet(ctx, newRS, newRSNewReplicas(d, allRSs, newRS), d)
}

// reconcileOldReplicaSets scales old ReplicaSets down as far as
// maxUnavailable allows, unhealthy replicas first.
func (k *controllers) reconcileOldReplicaSets(ctx context.Context, allRSs, oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	if replicaCount(oldRSs) == 0 {
		return false, nil
	}
	minAvailable := *d.Spec.Replicas - maxUnavailable(d)
	newRSUnavailable := *newRS.Spec.Replicas - newRS.Status.AvailableReplicas
	maxScaledDown := replicaCount(allRSs) - minAvailable - newRSUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	sortByCreation(oldRSs)
	// cleanupUnhealthyReplicas
	var cleaned int32
	for _, rs := range oldRSs {
		if cleaned >= maxScaledDown {
			break
		}
		if *rs.Spec.Replicas == 0 || *rs.Spec.Replicas == rs.Status.AvailableReplicas {
			continue
		}
		down := min(maxScaledDown-cleaned, *rs.Spec.Replicas-rs.Status.AvailableReplicas)
		if _, err := k.scaleReplicaSet(ctx, rs, *rs.Spec.Replicas-down, d); err != nil {
			return false, err
		}
		cleaned += down
	}
	// scaleDownOldReplicaSetsForRollingUpdate
	available := availableCount(append(append([]*appsv1.ReplicaSet{}, oldRSs...), newRS))
	var scaled int32
	if available > minAvailable {
		total := available - minAvailable
		for _, rs := range oldRSs {
			if scaled >= total {
				break
			}
			if *rs.Spec.Replicas == 0 {
				continue
			}
			down := min(*rs.Spec.Replicas, total-scaled)
			if _, err := k.scaleReplicaSet(ctx, rs, *rs.Spec.Replicas-down, d); err != nil {
				return false, err
			}
			scaled += down
		}
	}
	return cleaned+scaled > 0, nil
}

// scaleReplicaSet sets a ReplicaSet's replicas and its replica annotations.
func (k *controllers) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, replicas int32, d *appsv1.Deployment) (bool, error) {
	if rs == nil {
		return false, nil
	}
	annotationsNeedUpdate := setReplicasAnnotations(rs, *d.Spec.Replicas, *d.Spec.Replicas+maxSurge(d))
	if *rs.Spec.Replicas == replicas && !annotationsNeedUpdate {
		return false, nil
	}
	scaled := *rs.Spec.Replicas != replicas
	rs.Spec.Replicas = &replicas
	updated, err := k.kube.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
	if err != nil {
		return false, err
	}
	*rs = *updated
	return scaled, nil
}

// cleanupDeployment deletes old, empty ReplicaSets beyond revisionHistoryLimit.
func (k *controllers) cleanupDeployment(ctx context.Context, oldRSs []*appsv1.ReplicaSet, d *appsv1.Deployment) error {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	diff := len(oldRSs) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	sorted := append([]*appsv1.ReplicaSet{}, oldRSs...)
	sort.SliceStable(sorted, func(i, j int) bool { return revisionOf(sorted[i]) < revisionOf(sorted[j]) })
	for _, rs := range sorted[:diff] {
		if rs.Status.Replicas != 0 || *rs.Spec.Replicas != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		if err := k.kube.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// syncDeploymentStatus writes the computed status when it changed.
func (k *controllers) syncDeploymentStatus(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	status := k.calculateStatus(allRSs, newRS, d)
	if apiequality.Semantic.DeepEqual(d.Status, status) {
		return nil
	}
	d.Status = status
	_, err := k.kube.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return err
}

// syncRolloutStatus is progress.go: status plus the Progressing condition —
// complete, progressing (lastUpdateTime moves on), or timed out after
// progressDeadlineSeconds without progress.
func (k *controllers) syncRolloutStatus(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	status := k.calculateStatus(allRSs, newRS, d)
	if d.Spec.ProgressDeadlineSeconds == nil {
		removeDeploymentCondition(&status, appsv1.DeploymentProgressing)
	}
	current := deploymentCondition(status, appsv1.DeploymentProgressing)
	if d.Spec.ProgressDeadlineSeconds != nil && newRS != nil {
		kind := "ReplicaSet"
		switch {
		case deploymentComplete(d, &status):
			k.setDeploymentCondition(&status, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonNewRSAvailable,
				fmt.Sprintf("%s %q has successfully progressed.", kind, newRS.Name))
		case deploymentProgressing(d, &status):
			// a Progressing=True condition keeps its transition time but
			// always gets a new update time when there was progress
			c := appsv1.DeploymentCondition{
				Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: reasonRSUpdated,
				Message:        fmt.Sprintf("%s %q is progressing.", kind, newRS.Name),
				LastUpdateTime: metav1.NewTime(k.now()), LastTransitionTime: metav1.NewTime(k.now()),
			}
			if current != nil && current.Status == corev1.ConditionTrue {
				c.LastTransitionTime = current.LastTransitionTime
			}
			removeDeploymentCondition(&status, appsv1.DeploymentProgressing)
			status.Conditions = append(status.Conditions, c)
		case k.deploymentTimedOut(d, &status):
			k.setDeploymentCondition(&status, appsv1.DeploymentProgressing, corev1.ConditionFalse, reasonTimedOut,
				fmt.Sprintf("%s %q has timed out progressing.", kind, newRS.Name))
		}
	}
	if apiequality.Semantic.DeepEqual(d.Status, status) {
		return nil
	}
	d.Status = status
	_, err := k.kube.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return err
}

// calculateStatus is sync.go calculateStatus plus the Available condition.
func (k *controllers) calculateStatus(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) appsv1.DeploymentStatus {
	var live []*appsv1.ReplicaSet
	for _, rs := range allRSs {
		if rs != nil {
			live = append(live, rs)
		}
	}
	available := availableCount(live)
	unavailable := replicaCount(live) - available
	if unavailable < 0 {
		unavailable = 0
	}
	status := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            actualCount(live),
		ReadyReplicas:       readyCount(live),
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		CollisionCount:      d.Status.CollisionCount,
	}
	if newRS != nil {
		status.UpdatedReplicas = newRS.Status.Replicas
	}
	status.Conditions = append(status.Conditions, d.Status.Conditions...)
	if available >= *d.Spec.Replicas-maxUnavailable(d) {
		k.setDeploymentCondition(&status, appsv1.DeploymentAvailable, corev1.ConditionTrue, reasonMinimumAvailable, "Deployment has minimum availability.")
	} else {
		k.setDeploymentCondition(&status, appsv1.DeploymentAvailable, corev1.ConditionFalse, reasonMinimumUnavailable, "Deployment does not have minimum availability.")
	}
	return status
}

// deploymentTimedOut is util.DeploymentTimedOut.
func (k *controllers) deploymentTimedOut(d *appsv1.Deployment, status *appsv1.DeploymentStatus) bool {
	c := deploymentCondition(*status, appsv1.DeploymentProgressing)
	if c == nil || c.Reason == reasonNewRSAvailable {
		return false
	}
	if c.Reason == reasonTimedOut {
		return true
	}
	deadline := c.LastUpdateTime.Add(secondsDuration(*d.Spec.ProgressDeadlineSeconds))
	return deadline.Before(k.now())
}

// setDeploymentCondition is util.SetDeploymentCondition: nothing changes
// when status and reason are the same; the transition time survives a
// change of reason only.
func (k *controllers) setDeploymentCondition(status *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, message string) {
	now := metav1.NewTime(k.now())
	c := appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: message, LastUpdateTime: now, LastTransitionTime: now}
	current := deploymentCondition(*status, t)
	if current != nil && current.Status == s && current.Reason == reason {
		return
	}
	if current != nil && current.Status == s {
		c.LastTransitionTime = current.LastTransitionTime
	}
	removeDeploymentCondition(status, t)
	status.Conditions = append(status.Conditions, c)
}

func deploymentCondition(status appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			c := status.Conditions[i]
			return &c
		}
	}
	return nil
}

func removeDeploymentCondition(status *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	var kept []appsv1.DeploymentCondition
	for _, c := range status.Conditions {
		if c.Type != t {
			kept = append(kept, c)
		}
	}
	status.Conditions = kept
}

// deploymentComplete is util.DeploymentComplete.
func deploymentComplete(d *appsv1.Deployment, s *appsv1.DeploymentStatus) bool {
	r := *d.Spec.Replicas
	return s.UpdatedReplicas == r && s.Replicas == r && s.AvailableReplicas == r && s.ObservedGeneration >= d.Generation
}

// deploymentProgressing is util.DeploymentProgressing: more updated, ready
// or available replicas, or fewer old ones, than the stored status says.
func deploymentProgressing(d *appsv1.Deployment, s *appsv1.DeploymentStatus) bool {
	old := d.Status
	return s.UpdatedReplicas > old.UpdatedReplicas ||
		s.Replicas-s.UpdatedReplicas < old.Replicas-old.UpdatedReplicas ||
		s.ReadyReplicas > old.ReadyReplicas ||
		s.AvailableReplicas > old.AvailableReplicas
}

// newRSNewReplicas is util.NewRSNewReplicas: how far the new ReplicaSet
// may grow now.
func newRSNewReplicas(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		return *d.Spec.Replicas
	}
	maxTotal := *d.Spec.Replicas + maxSurge(d)
	current := replicaCount(allRSs)
	if current >= maxTotal {
		return *newRS.Spec.Replicas
	}
	up := min(maxTotal-current, *d.Spec.Replicas-*newRS.Spec.Replicas)
	return *newRS.Spec.Replicas + up
}

// resolveFenceposts is util.ResolveFenceposts: surge rounds up,
// unavailability down, and both zero means one may be unavailable.
func resolveFenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil {
		return 0, 0
	}
	zero := intstr.FromInt32(0)
	ms, mu := ru.MaxSurge, ru.MaxUnavailable
	if ms == nil {
		ms = &zero
	}
	if mu == nil {
		mu = &zero
	}
	s, _ := intstr.GetScaledValueFromIntOrPercent(ms, int(*d.Spec.Replicas), true)
	u, _ := intstr.GetScaledValueFromIntOrPercent(mu, int(*d.Spec.Replicas), false)
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u)
}

func maxSurge(d *appsv1.Deployment) int32 {
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		return 0
	}
	s, _ := resolveFenceposts(d)
	return s
}

func maxUnavailable(d *appsv1.Deployment) int32 {
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || *d.Spec.Replicas == 0 {
		return 0
	}
	_, u := resolveFenceposts(d)
	return min(u, *d.Spec.Replicas)
}

// findNewReplicaSet returns the oldest ReplicaSet whose template equals the
// Deployment's, ignoring pod-template-hash.
func findNewReplicaSet(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sorted := append([]*appsv1.ReplicaSet{}, rsList...)
	sortByCreation(sorted)
	for _, rs := range sorted {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

// setNewReplicaSetAnnotations is util.SetNewReplicaSetAnnotations: copy
// the Deployment's annotations, raise the revision, remember the revisions
// a reused ReplicaSet had before in revision-history.
func setNewReplicaSetAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string, exists bool) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		if annotationsToSkip[k] {
			continue
		}
		if cur, ok := rs.Annotations[k]; ok && cur == v {
			continue
		}
		rs.Annotations[k] = v
		changed = true
	}
	oldRevision, had := rs.Annotations[revisionAnnotation]
	oldInt, err := strconv.ParseInt(oldRevision, 10, 64)
	if err != nil {
		if oldRevision != "" {
			return changed
		}
		oldInt = 0
	}
	newInt, _ := strconv.ParseInt(newRevision, 10, 64)
	if oldInt < newInt {
		rs.Annotations[revisionAnnotation] = newRevision
		changed = true
		if had {
			if h := rs.Annotations[revisionHistoryAnnotation]; h == "" {
				rs.Annotations[revisionHistoryAnnotation] = oldRevision
			} else {
				rs.Annotations[revisionHistoryAnnotation] = h + "," + oldRevision
			}
		}
	}
	if !exists && setReplicasAnnotations(rs, *d.Spec.Replicas, *d.Spec.Replicas+maxSurge(d)) {
		changed = true
	}
	return changed
}

func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, max int32) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	changed := false
	if v := strconv.Itoa(int(desired)); rs.Annotations[desiredReplicasAnnotation] != v {
		rs.Annotations[desiredReplicasAnnotation] = v
		changed = true
	}
	if v := strconv.Itoa(int(max)); rs.Annotations[maxReplicasAnnotation] != v {
		rs.Annotations[maxReplicasAnnotation] = v
		changed = true
	}
	return changed
}

func setDeploymentRevision(d *appsv1.Deployment, revision string) bool {
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	if d.Annotations[revisionAnnotation] == revision {
		return false
	}
	d.Annotations[revisionAnnotation] = revision
	return true
}

// podTemplateHash is controller.ComputeHash: FNV-32a of the template (here
// its JSON encoding rather than a spew dump) and the collision count,
// encoded with the safe alphabet.
func podTemplateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	b, _ := json.Marshal(t)
	h.Write(b)
	if collisionCount != nil {
		buf := make([]byte, 8)
		binary.LittleEndian.PutUint32(buf, uint32(*collisionCount))
		h.Write(buf)
	}
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

func revisionOf(rs *appsv1.ReplicaSet) int64 {
	v, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	return v
}

func maxRevision(rss []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range rss {
		if v := revisionOf(rs); v > m {
			m = v
		}
	}
	return m
}

func activeReplicaSets(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if rs != nil && *rs.Spec.Replicas > 0 {
			out = append(out, rs)
		}
	}
	return out
}

func replicaCount(rss []*appsv1.ReplicaSet) (n int32) {
	for _, rs := range rss {
		if rs != nil && rs.Spec.Replicas != nil {
			n += *rs.Spec.Replicas
		}
	}
	return n
}

func actualCount(rss []*appsv1.ReplicaSet) (n int32) {
	for _, rs := range rss {
		n += rs.Status.Replicas
	}
	return n
}

func readyCount(rss []*appsv1.ReplicaSet) (n int32) {
	for _, rs := range rss {
		n += rs.Status.ReadyReplicas
	}
	return n
}

func availableCount(rss []*appsv1.ReplicaSet) (n int32) {
	for _, rs := range rss {
		if rs != nil {
			n += rs.Status.AvailableReplicas
		}
	}
	return n
}

func sortByCreation(rss []*appsv1.ReplicaSet) {
	sort.SliceStable(rss, func(i, j int) bool {
		a, b := rss[i].CreationTimestamp, rss[j].CreationTimestamp
		if a.Equal(&b) {
			return rss[i].Name < rss[j].Name
		}
		return a.Before(&b)
	})
}

func withLabel(labels map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[k] = v
	}
	out[key] = value
	return out
}

// controllerRef is the controller owner reference a controller puts on
// what it creates.
func controllerRef(name string, uid types.UID, kind string) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &t, BlockOwnerDeletion: &t}
}

// controllerOf returns the UID of m's controller owner, or "".
func controllerOf(m *metav1.ObjectMeta) types.UID {
	for _, r := range m.OwnerReferences {
		if r.Controller != nil && *r.Controller {
			return r.UID
		}
	}
	return ""
}

func isControlledBy(m *metav1.ObjectMeta, uid types.UID) bool {
	return uid != "" && controllerOf(m) == uid
}
