package demo

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// syncReplicaSets is the kube-controller-manager ReplicaSet controller
// (pkg/controller/replicaset): each ReplicaSet gets exactly spec.replicas
// pods from its template — missing ones created at once, surplus ones
// deleted not-ready and newest first — and a status counting them
// (availableReplicas equals readyReplicas: the demo's minReadySeconds is 0).
func (k *controllers) syncReplicaSets(ctx context.Context) error {
	rsList, err := k.kube.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing replicasets: %w", err)
	}
	pods, err := k.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	byOwner := map[types.UID][]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if owner := controllerOf(&p.ObjectMeta); owner != "" {
			byOwner[owner] = append(byOwner[owner], p)
		}
	}
	var errs []error
	for i := range rsList.Items {
		rs := &rsList.Items[i]
		if err := k.syncReplicaSet(ctx, rs, byOwner[rs.UID]); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("replicaset %s/%s: %w", rs.Namespace, rs.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (k *controllers) syncReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, pods []*corev1.Pod) error {
	want := int(*rs.Spec.Replicas)
	var errs []error
	switch diff := len(pods) - want; {
	case diff < 0:
		for i := 0; i < -diff; i++ {
			if err := k.createReplicaSetPod(ctx, rs); err != nil {
				errs = append(errs, err)
			}
		}
	case diff > 0:
		// getPodsToDelete: not-ready pods first, then the newest
		sort.SliceStable(pods, func(i, j int) bool {
			ri, rj := podReady(pods[i]), podReady(pods[j])
			if ri != rj {
				return !ri
			}
			return pods[j].CreationTimestamp.Before(&pods[i].CreationTimestamp)
		})
		for _, p := range pods[:diff] {
			if err := k.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
		pods = pods[diff:]
	}
	status := appsv1.ReplicaSetStatus{ObservedGeneration: rs.Generation, Conditions: rs.Status.Conditions}
	for _, p := range pods {
		status.Replicas++
		status.FullyLabeledReplicas++
		if podReady(p) {
			status.ReadyReplicas++
			status.AvailableReplicas++
		}
	}
	if !apiequality.Semantic.DeepEqual(rs.Status, status) {
		rs.Status = status
		if _, err := k.kube.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// createReplicaSetPod creates one pod from the ReplicaSet's template, named
// like generateName would (RS name plus five safe characters).
func (k *controllers) createReplicaSetPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	k.podSeq++
	h := fnv.New32a()
	fmt.Fprintf(h, "%s#%d", rs.Name, k.podSeq)
	suffix := utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
	if len(suffix) > 5 {
		suffix = suffix[:5]
	}
	t := rs.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            rs.Name + "-" + suffix,
			Namespace:       rs.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			OwnerReferences: []metav1.OwnerReference{controllerRef(rs.Name, rs.UID, "ReplicaSet")},
		},
		Spec: t.Spec,
	}
	_, err := k.kube.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // the next tick tries another name
	}
	return err
}

// collectGarbage is the garbage collector for the objects the demo's
// controllers own: ReplicaSets, ControllerRevisions and pods whose
// controller owner is gone are deleted (background cascading deletion).
func (k *controllers) collectGarbage(ctx context.Context) error {
	alive := map[types.UID]bool{}
	deps, err := k.kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, d := range deps.Items {
		alive[d.UID] = true
	}
	sets, err := k.kube.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, s := range sets.Items {
		alive[s.UID] = true
	}
	rsList, err := k.kube.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var errs []error
	ignore := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	for _, rs := range rsList.Items {
		if owner := controllerOf(&rs.ObjectMeta); owner != "" && !alive[owner] {
			ignore(k.kube.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{}))
			continue
		}
		alive[rs.UID] = true
	}
	crs, err := k.kube.AppsV1().ControllerRevisions("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, cr := range crs.Items {
		if owner := controllerOf(&cr.ObjectMeta); owner != "" && !alive[owner] {
			ignore(k.kube.AppsV1().ControllerRevisions(cr.Namespace).Delete(ctx, cr.Name, metav1.DeleteOptions{}))
		}
	}
	pods, err := k.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if owner := controllerOf(&p.ObjectMeta); owner != "" && !alive[owner] {
			ignore(k.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}))
		}
	}
	return errors.Join(errs...)
}

// podReady is podutil.IsPodReady: the Ready condition is True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
