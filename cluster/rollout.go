package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/plan"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultRolloutDeadline is how long Follow waits for a StatefulSet (or a
// Deployment without progressDeadlineSeconds) when the caller sets none.
const DefaultRolloutDeadline = 10 * time.Minute

// DefaultStuckAfter is how long a pod of an OrderedReady StatefulSet may sit
// not Ready on an old revision, without a container failure reason, before
// Follow calls the rollout stuck: long enough for a pod that is merely
// starting, short enough not to keep a chat waiting for the deadline.
const DefaultStuckAfter = 30 * time.Second

// progressDeadlineExceeded is the Progressing condition reason the
// Deployment controller sets when a rollout stalls past progressDeadlineSeconds.
const progressDeadlineExceeded = "ProgressDeadlineExceeded"

// followed is one workload Follow watches.
type followed struct {
	service    string
	ref        plan.WorkloadRef
	stream     string
	tag        string
	start      time.Time
	digest     string // image the workload must end up running; "" = any
	deadline   time.Time
	deadlineOK bool // deadline came from the object or the caller
	done       bool
	result     plan.RolloutResult
	last       plan.Progress
	reported   bool

	// A Deployment's progressDeadlineSeconds and the last progress Follow
	// knows of, so that when Follow's own deadline passes before the
	// deployment controller has said ProgressDeadlineExceeded, the reason
	// still names the deadline the Deployment has (see progressStalled).
	progressDeadline time.Duration
	progressAt       time.Time
	counts           deploymentCounts
	rolling          bool // the controller works on the target template
}

// deploymentCounts are the status fields whose changes the deployment
// controller counts as progress.
type deploymentCounts struct {
	replicas, updated, ready, available int32
}

// Follow watches the workloads of the Plan's changed targets until each one
// has settled, has certainly failed (a new pod in ImagePullBackOff,
// ErrImagePull, CrashLoopBackOff or InvalidImageName, the Deployment's
// ProgressDeadlineExceeded, or an OrderedReady StatefulSet stuck on a pod
// that will never be Ready) or its deadline passed; a Deployment that has
// by then gone its progressDeadlineSeconds without progress is reported as
// such even when the deployment controller has not said so yet. deadline 0
// means each Deployment's progressDeadlineSeconds, or DefaultRolloutDeadline. It reports
// Progress whenever a workload's state changes and returns one
// RolloutResult per workload. Triggered workloads count as rolled out only
// once their template runs the target image, so a Follow that starts before
// the image-trigger controller has acted does not report success early.
func (s *Set) Follow(ctx context.Context, p plan.Plan, res plan.Result, deadline time.Duration, report func(plan.Progress)) []plan.RolloutResult {
	rep := serialReporter(report)
	ws := followTargets(p, res)
	if len(ws) == 0 {
		return nil
	}
	start := time.Now()
	for _, w := range ws {
		w.start = start
		w.deadline = start.Add(DefaultRolloutDeadline)
		if deadline > 0 {
			w.deadline, w.deadlineOK = start.Add(deadline), true
		}
	}
	c, err := s.Env(p.Env)
	if err != nil {
		return finishAll(ws, rep, fmt.Sprintf("cannot follow the rollout: %v", err))
	}
	stuckAfter := s.stuckAfter
	if stuckAfter == 0 {
		stuckAfter = DefaultStuckAfter
	}

	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	wctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer running.Wait() // the informers stop after cancel, before we return
	defer cancel()

	var (
		deps   appslisters.DeploymentLister
		sets   appslisters.StatefulSetLister
		synced = map[string]cache.SharedIndexInformer{}
	)
	watch := func(resource string, inf cache.SharedIndexInformer) error {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("cannot watch %s: %w", resource, err)
		}
		synced[resource] = inf
		running.Go(func() { inf.RunWithContext(wctx) })
		return nil
	}
	for _, w := range ws {
		switch {
		case w.ref.Kind == plan.KindDeployment && deps == nil:
			inf := informer(c, c.Kube.AppsV1().Deployments(c.Namespace), &appsv1.Deployment{})
			if err := watch("deployments", inf); err != nil {
				return finishAll(ws, rep, err.Error())
			}
			deps = appslisters.NewDeploymentLister(inf.GetIndexer())
		case w.ref.Kind == plan.KindStatefulSet && sets == nil:
			inf := informer(c, c.Kube.AppsV1().StatefulSets(c.Namespace), &appsv1.StatefulSet{})
			if err := watch("statefulsets", inf); err != nil {
				return finishAll(ws, rep, err.Error())
			}
			sets = appslisters.NewStatefulSetLister(inf.GetIndexer())
		}
	}
	podInf := informer(c, c.Kube.CoreV1().Pods(c.Namespace), &corev1.Pod{})
	if err := watch("pods", podInf); err != nil {
		return finishAll(ws, rep, err.Error())
	}
	pods := corelisters.NewPodLister(podInf.GetIndexer())

	// A list that keeps failing (no access, API down) would block the sync
	// for ever; give up when the last deadline passes.
	last := start
	for _, w := range ws {
		if w.deadline.After(last) {
			last = w.deadline
		}
	}
	syncCtx, cancelSync := context.WithDeadline(wctx, last)
	defer cancelSync()
	// Wait for every informer without polling, as the informer factory does.
	var checkers []cache.DoneChecker
	for _, inf := range synced {
		checkers = append(checkers, inf.HasSyncedChecker())
	}
	cache.WaitFor(syncCtx, "", checkers...)
	for _, resource := range slices.Sorted(maps.Keys(synced)) {
		if !synced[resource].HasSynced() {
			reason := fmt.Sprintf("cannot watch %s in %s: not synced before the deadline", resource, c.Namespace)
			if ctx.Err() != nil {
				reason = "stopped following the rollout: " + ctx.Err().Error()
			}
			return finishAll(ws, rep, reason)
		}
	}

	ev := evaluator{ns: c.Namespace, deps: deps, sets: sets, pods: pods, stuckAfter: stuckAfter}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := time.Time{}
		pending := 0
		for _, w := range ws {
			if w.done {
				continue
			}
			wake := ev.step(w, now, rep)
			if w.done {
				continue
			}
			pending++
			if !wake.IsZero() && (next.IsZero() || wake.Before(next)) {
				next = wake
			}
			if next.IsZero() || w.deadline.Before(next) {
				next = w.deadline
			}
		}
		if pending == 0 {
			break
		}
		timer.Reset(time.Until(next))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			return finishAll(ws, rep, "stopped following the rollout: "+ctx.Err().Error())
		}
	}
	return results(ws)
}

// followTargets lists the workloads of the Plan's changed targets, once each.
func followTargets(p plan.Plan, res plan.Result) []*followed {
	if p.Action == plan.ActionHold {
		return nil // a hold changes no image: nothing rolls
	}
	var ws []*followed
	seen := map[plan.WorkloadRef]bool{}
	for i, t := range p.Targets {
		if t.Unchanged {
			continue
		}
		tr, ok := resultFor(res, i, t)
		if !ok || tr.Outcome != plan.PhaseChanged {
			continue
		}
		for _, w := range t.Workloads {
			if p.Action == plan.ActionRollback && w.Triggered {
				continue // not rolled back: the tag was pinned instead
			}
			kind, err := plan.NormalizeKind(w.Kind)
			if err != nil {
				continue
			}
			key := plan.WorkloadRef{Kind: kind, Name: w.Name}
			if seen[key] {
				continue
			}
			seen[key] = true
			f := &followed{service: t.Service, ref: w, stream: t.Stream, tag: t.Tag}
			f.ref.Kind = kind
			if p.Action != plan.ActionRollback && w.Triggered {
				f.digest = tr.To.Digest
				if f.digest == "" {
					f.digest = t.To.Digest
				}
			}
			ws = append(ws, f)
		}
	}
	return ws
}

// resultFor finds the result of plan target i: Execute returns them in
// order, but a Result from elsewhere is matched by service.
func resultFor(res plan.Result, i int, t plan.Target) (plan.TargetResult, bool) {
	if i < len(res.Targets) && res.Targets[i].Service == t.Service {
		return res.Targets[i], true
	}
	for _, r := range res.Targets {
		if r.Service == t.Service {
			return r, true
		}
	}
	return plan.TargetResult{}, false
}

func finishAll(ws []*followed, rep func(plan.Progress), reason string) []plan.RolloutResult {
	for _, w := range ws {
		if !w.done {
			w.finish(plan.PhaseFailed, reason, rep)
		}
	}
	return results(ws)
}

func results(ws []*followed) []plan.RolloutResult {
	out := make([]plan.RolloutResult, len(ws))
	for i, w := range ws {
		out[i] = w.result
	}
	return out
}

// finish ends following w with outcome, reporting it.
func (w *followed) finish(outcome, reason string, rep func(plan.Progress)) {
	w.done = true
	w.result = plan.RolloutResult{Workload: w.ref, Outcome: outcome, Reason: reason}
	p := w.last
	p.Service, p.Workload, p.Phase, p.Message = w.service, w.ref, outcome, reason
	w.last, w.reported = p, true
	rep(p)
}

// update reports p if it differs from what was last reported for w.
func (w *followed) update(p plan.Progress, rep func(plan.Progress)) {
	p.Service, p.Workload = w.service, w.ref
	if w.reported && p == w.last {
		return
	}
	w.last, w.reported = p, true
	rep(p)
}

// evaluator judges workloads from the informers' caches.
type evaluator struct {
	ns         string
	deps       appslisters.DeploymentLister
	sets       appslisters.StatefulSetLister
	pods       corelisters.PodLister
	stuckAfter time.Duration
}

// state is what one look at a workload says.
type state struct {
	phase   string
	message string
	desired int32
	updated int32
	ready   int32
	wake    time.Time // when to look again even without an event
}

// step looks at w once, reports a change and finishes w when its state is
// final or its deadline passed. It returns when to look again without an event.
func (e evaluator) step(w *followed, now time.Time, rep func(plan.Progress)) time.Time {
	var st state
	switch w.ref.Kind {
	case plan.KindDeployment:
		d, err := e.deps.Deployments(e.ns).Get(w.ref.Name)
		if err != nil {
			st = missing(w, err)
			break
		}
		w.progressDeadline = 0
		if d.Spec.ProgressDeadlineSeconds != nil {
			w.progressDeadline = time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
		}
		if !w.deadlineOK && w.progressDeadline > 0 {
			w.deadline = w.start.Add(w.progressDeadline)
			w.deadlineOK = true
		}
		st = e.deployment(w, d, now)
	default:
		sts, err := e.sets.StatefulSets(e.ns).Get(w.ref.Name)
		if err != nil {
			st = missing(w, err)
			break
		}
		st = e.statefulSet(w, sts, now)
	}
	switch st.phase {
	case plan.PhaseSettled, plan.PhaseFailed, plan.PhaseStuck:
		w.last.Desired, w.last.Updated, w.last.Ready = st.desired, st.updated, st.ready
		w.finish(st.phase, st.message, rep)
		return time.Time{}
	}
	if !now.Before(w.deadline) {
		reason := fmt.Sprintf("did not settle in time: %d of %d updated, %d ready", st.updated, st.desired, st.ready)
		if stalled, ok := w.progressStalled(now); ok {
			reason = fmt.Sprintf("progress deadline of %ds passed: %d of %d updated, %d ready, no progress for %s",
				w.progressDeadline/time.Second, st.updated, st.desired, st.ready, stalled.Round(time.Second))
		}
		if st.message != "" {
			reason += "; " + st.message
		}
		w.last.Desired, w.last.Updated, w.last.Ready = st.desired, st.updated, st.ready
		w.finish(plan.PhaseFailed, reason, rep)
		return time.Time{}
	}
	w.update(plan.Progress{Phase: st.phase, Desired: st.desired, Updated: st.updated, Ready: st.ready, Message: st.message}, rep)
	return st.wake
}

func missing(w *followed, err error) state {
	if apierrors.IsNotFound(err) {
		return state{phase: plan.PhaseFailed, message: fmt.Sprintf("%s %s no longer exists", strings.ToLower(w.ref.Kind), w.ref.Name)}
	}
	return state{phase: plan.PhaseRolling, message: err.Error()}
}

// atTarget reports whether the workload's template runs the target image; for
// a triggered workload the container its trigger names must, and a paused
// trigger means it never will.
func (e evaluator) atTarget(w *followed, annotations map[string]string, spec *corev1.PodSpec) (ok bool, paused bool) {
	if w.digest == "" {
		return true, false
	}
	if t, found := findTrigger(triggers(annotations), e.ns, w.stream, w.tag); found {
		if ref, ok := t.Container(); ok {
			img, _ := containerImage(ref, spec)
			return strings.Contains(img, w.digest), t.Paused
		}
		if t.Paused {
			return false, true
		}
	}
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for _, c := range list {
			if strings.Contains(c.Image, w.digest) {
				return true, false
			}
		}
	}
	return false, false
}

// noteProgress records when the Deployment last made progress by the
// deployment controller's own measure (DeploymentProgressing in its util
// package): more updated, ready or available replicas, fewer old ones, or a
// Progressing condition updated since. Nothing before Follow started counts.
func (w *followed) noteProgress(d *appsv1.Deployment, now time.Time) {
	c := deploymentCounts{replicas: d.Status.Replicas, updated: d.Status.UpdatedReplicas, ready: d.Status.ReadyReplicas, available: d.Status.AvailableReplicas}
	if !w.rolling {
		w.rolling, w.counts = true, c
		if w.progressAt.IsZero() {
			w.progressAt = w.start
		}
	}
	old := w.counts
	if c.updated > old.updated || c.replicas-c.updated < old.replicas-old.updated || c.ready > old.ready || c.available > old.available {
		w.progressAt = now
	}
	w.counts = c
	for _, cond := range d.Status.Conditions {
		// The API server's clock may run ahead of ours: a progress time in
		// the future counts as now.
		if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionTrue {
			if at := cond.LastUpdateTime.Time; at.After(w.progressAt) {
				w.progressAt = at
				if at.After(now) {
					w.progressAt = now
				}
			}
		}
	}
}

// progressStalled reports how long the Deployment has gone without progress
// when that is at least its progressDeadlineSeconds: the deployment
// controller will call it ProgressDeadlineExceeded but has not yet (it
// re-checks on its own schedule, which a busy controller manager stretches).
func (w *followed) progressStalled(now time.Time) (time.Duration, bool) {
	if w.ref.Kind != plan.KindDeployment || !w.rolling || w.progressDeadline <= 0 {
		return 0, false
	}
	stalled := now.Sub(w.progressAt)
	return stalled, stalled >= w.progressDeadline
}

func (e evaluator) deployment(w *followed, d *appsv1.Deployment, now time.Time) state {
	st := state{phase: plan.PhaseRolling, desired: replicas(d.Spec.Replicas), updated: d.Status.UpdatedReplicas, ready: d.Status.ReadyReplicas}
	if ok, paused := e.atTarget(w, d.Annotations, &d.Spec.Template.Spec); !ok {
		if paused {
			st.phase, st.message = plan.PhaseFailed, fmt.Sprintf("its image trigger for %s:%s is paused, so it does not follow the tag", w.stream, w.tag)
		} else {
			st.message = fmt.Sprintf("waiting for the image trigger to set %s", plan.ShortDigest(w.digest))
		}
		st.updated = 0 // the template does not name the new image yet
		return st
	}
	if d.Status.ObservedGeneration < d.Generation {
		st.message = "waiting for the deployment controller"
		// The status still describes the previous template: none of the
		// replicas counted as updated run the new one yet.
		st.updated = 0
		return st
	}
	w.noteProgress(d, now)
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == progressDeadlineExceeded {
			st.phase, st.message = plan.PhaseFailed, progressDeadlineExceeded+": "+c.Message
			return st
		}
	}
	pods, err := e.selectedPods(d.Spec.Selector)
	if err != nil {
		st.message = err.Error()
		return st
	}
	want := templateImages(&d.Spec.Template)
	for _, p := range pods {
		if !sameImages(want, templateImages(&corev1.PodTemplateSpec{Spec: p.Spec})) {
			continue // a pod of an older ReplicaSet
		}
		if reason := podFailure(p); reason != "" {
			st.phase, st.message = plan.PhaseFailed, p.Name+": "+reason
			return st
		}
		if st.message == "" && !podReady(p) {
			st.message = p.Name + ": " + podWaiting(p)
		}
	}
	if deploymentSettled(d) {
		st.phase, st.message = plan.PhaseSettled, ""
	}
	return st
}

func (e evaluator) statefulSet(w *followed, sts *appsv1.StatefulSet, now time.Time) state {
	st := state{phase: plan.PhaseRolling, desired: replicas(sts.Spec.Replicas), updated: sts.Status.UpdatedReplicas, ready: sts.Status.ReadyReplicas}
	if ok, paused := e.atTarget(w, sts.Annotations, &sts.Spec.Template.Spec); !ok {
		if paused {
			st.phase, st.message = plan.PhaseFailed, fmt.Sprintf("its image trigger for %s:%s is paused, so it does not follow the tag", w.stream, w.tag)
		} else {
			st.message = fmt.Sprintf("waiting for the image trigger to set %s", plan.ShortDigest(w.digest))
		}
		st.updated = 0 // the template does not name the new image yet
		return st
	}
	if sts.Status.ObservedGeneration < sts.Generation || sts.Status.UpdateRevision == "" {
		st.message = "waiting for the statefulset controller"
		// The status still describes the previous template: none of the
		// replicas counted as updated run the new one yet.
		st.updated = 0
		return st
	}
	all, err := e.selectedPods(sts.Spec.Selector)
	if err != nil {
		st.message = err.Error()
		return st
	}
	var owned []corev1.Pod
	for _, p := range all {
		if !metav1.IsControlledBy(p, sts) {
			continue
		}
		owned = append(owned, *p)
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] != sts.Status.UpdateRevision {
			continue
		}
		if reason := podFailure(p); reason != "" {
			st.phase, st.message = plan.PhaseFailed, p.Name+": "+reason
			return st
		}
		if st.message == "" && !podReady(p) {
			st.message = p.Name + ": " + podWaiting(p)
		}
	}
	for _, sp := range stuckPods(sts, owned) {
		if sp.Reason == "not Ready" {
			p := findPod(owned, sp.Name)
			since := notReadySince(p)
			if now.Sub(since) < e.stuckAfter {
				wake := since.Add(e.stuckAfter)
				if st.wake.IsZero() || wake.Before(st.wake) {
					st.wake = wake
				}
				continue
			}
		}
		st.phase = plan.PhaseStuck
		st.message = fmt.Sprintf("%s: %s on an old revision; with OrderedReady the StatefulSet will not replace it, it must be deleted (undo --force)", sp.Name, sp.Reason)
		return st
	}
	if statefulSetSettled(sts) {
		st.phase, st.message = plan.PhaseSettled, ""
	}
	return st
}

func (e evaluator) selectedPods(ls *metav1.LabelSelector) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("invalid selector: %w", err)
	}
	if sel.Empty() {
		sel = labels.Nothing() // an empty selector would claim every pod
	}
	return e.pods.Pods(e.ns).List(sel)
}

func findPod(pods []corev1.Pod, name string) *corev1.Pod {
	for i := range pods {
		if pods[i].Name == name {
			return &pods[i]
		}
	}
	return nil
}

// notReadySince is when the pod's Ready condition last turned False, or its
// creation when it never had one.
func notReadySince(p *corev1.Pod) time.Time {
	if p == nil {
		return time.Time{}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return p.CreationTimestamp.Time
}

// podWaiting says why a pod is not Ready yet: a container's waiting reason,
// or "not Ready".
func podWaiting(p *corev1.Pod) string {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
				return cs.State.Waiting.Reason
			}
		}
	}
	return "not Ready"
}

func sameImages(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
