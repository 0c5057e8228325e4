package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/plan"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"
)

// templateWait bounds how long Execute waits for the image-trigger controller
// to put a pinned image into a StatefulSet's template before it deletes the
// pods the Plan names (deleting earlier would recreate them on the bad image).
const templateWait = 5 * time.Minute

// Execute performs the Plan exactly as stored: it does not plan again, it only
// refuses what is no longer safe (an import whose registry image moved since
// approval). It returns one TargetResult per Plan target, in order, and
// reports Progress per target as it goes; report may be nil. The error is for
// a Plan that cannot run at all (unknown env or action, wrong namespace);
// per-target failures are in the Result.
func (s *Set) Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error) {
	c, err := s.Env(p.Env)
	if err != nil {
		return plan.Result{}, fmt.Errorf("executing %s plan: %w", p.Action, err)
	}
	if p.Namespace != c.Namespace {
		return plan.Result{}, fmt.Errorf("executing %s plan: it names namespace %q but environment %s is namespace %q", p.Action, p.Namespace, p.Env, c.Namespace)
	}
	if p.Kubernetes() != (c.Kubernetes != nil) {
		return plan.Result{}, fmt.Errorf("executing %s plan: it was made for a %s environment, but %s is %s now; plan it again", p.Action, platformName(p.Kubernetes()), p.Env, platformName(c.Kubernetes != nil))
	}
	var run func(context.Context, plan.Target, func(plan.Progress)) plan.TargetResult
	switch {
	case p.Kubernetes() && p.Action != plan.ActionRollback:
		run = func(ctx context.Context, t plan.Target, _ func(plan.Progress)) plan.TargetResult {
			return c.executeKube(ctx, p.Action, t)
		}
	case p.Action == plan.ActionImport:
		run = c.executeImport
	case p.Action.PinsTag():
		run = c.executePin
	case p.Action == plan.ActionTrack:
		run = c.executeTrack
	case p.Action == plan.ActionRollback:
		run = c.executeRollback
	case p.Action == plan.ActionHold:
		run = c.executeHold
	case p.Action == plan.ActionUnhold:
		run = c.executeUnhold
	default:
		return plan.Result{}, fmt.Errorf("executing plan: unknown action %q", p.Action)
	}
	rep := serialReporter(report)

	res := plan.Result{Targets: make([]plan.TargetResult, len(p.Targets))}
	todo := func(i int, t plan.Target) {
		r := run(ctx, t, rep)
		if r.Outcome != plan.PhaseFailed && len(t.DeletePods) > 0 {
			deleted, err := c.deleteStuckPods(ctx, p.Action, t, r, rep)
			switch {
			case err != nil:
				r.Outcome, r.Error = plan.PhaseFailed, err.Error()
			case deleted > 0:
				// e.g. undo --force of a set already rolled back: the
				// template stays, the recreated pods are the change.
				r.Outcome = plan.PhaseChanged
			}
		}
		res.Targets[i] = r
		rep(targetProgress(r))
	}
	var wg sync.WaitGroup
	for i, t := range p.Targets {
		if t.Unchanged {
			res.Targets[i] = plan.TargetResult{Service: t.Service, Outcome: plan.PhaseUnchanged, From: t.From, To: t.To}
			rep(targetProgress(res.Targets[i]))
			continue
		}
		if p.Action == plan.ActionImport {
			// Imports of different streams are independent; oc users run
			// them one by one only because a shell makes that easy.
			wg.Go(func() { todo(i, t) })
			continue
		}
		todo(i, t)
	}
	wg.Wait()
	return res, nil
}

func platformName(kubernetes bool) string {
	if kubernetes {
		return "plain Kubernetes"
	}
	return "OpenShift"
}

// serialReporter makes report safe to call from parallel imports, so callers
// need not lock.
func serialReporter(report func(plan.Progress)) func(plan.Progress) {
	if report == nil {
		return func(plan.Progress) {}
	}
	var mu sync.Mutex
	return func(p plan.Progress) {
		mu.Lock()
		defer mu.Unlock()
		report(p)
	}
}

func targetProgress(r plan.TargetResult) plan.Progress {
	p := plan.Progress{Service: r.Service, Phase: r.Outcome}
	switch r.Outcome {
	case plan.PhaseFailed:
		p.Message = r.Error
	case plan.PhaseChanged:
		p.Message = plan.ImageChange(r.From, r.To)
		if r.Error != "" {
			p.Message += "; " + r.Error
		}
	case plan.PhaseUnchanged:
		if r.To.Digest != "" {
			p.Message = "already at " + plan.ShortDigest(r.To.Digest)
		}
	}
	return p
}

func failed(t plan.Target, format string, args ...any) plan.TargetResult {
	return plan.TargetResult{Service: t.Service, Outcome: plan.PhaseFailed, From: t.From, To: t.To, Error: fmt.Sprintf(format, args...)}
}

// executeImport imports one tag, first making sure the registry still has
// the image the Plan was approved for.
func (c EnvClient) executeImport(ctx context.Context, t plan.Target, _ func(plan.Progress)) plan.TargetResult {
	if t.Stream == "" || t.Tag == "" {
		return failed(t, "the plan names no image stream tag for %s", t.Service)
	}
	if t.To.Digest != "" {
		now, err := c.registryImage(ctx, t.Stream, t.Tag)
		if err != nil {
			return failed(t, "checking the registry before importing: %v", err)
		}
		if now.Digest != t.To.Digest {
			return failed(t, "the registry moved since the plan was approved: planned %s, now %s",
				plan.ShortDigest(t.To.Digest), plan.ShortDigest(now.Digest))
		}
	}
	from, to, err := c.importTag(ctx, t.Stream, t.Tag)
	if err != nil {
		return failed(t, "%v", err)
	}
	r := plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: from, To: to}
	if to.Digest == from.Digest {
		r.Outcome = plan.PhaseUnchanged
	}
	if t.To.Digest != "" && to.Digest != t.To.Digest {
		// The registry moved between our check and the import: the tag now
		// points at an image nobody approved, which must be visible.
		r.Error = fmt.Sprintf("imported %s, not the planned %s: the registry moved during the import",
			plan.ShortDigest(to.Digest), plan.ShortDigest(t.To.Digest))
	}
	return r
}

// executePin points the tag at the Plan's digest reference (oc tag
// --source=docker), first making sure the tag still has the image the Plan
// was approved to move it from, as imports re-check the registry: a tag
// someone imported or pinned meanwhile is not overwritten unseen.
func (c EnvClient) executePin(ctx context.Context, t plan.Target, _ func(plan.Progress)) plan.TargetResult {
	if t.Stream == "" || t.Tag == "" || t.SpecFrom == "" {
		return failed(t, "the plan names no image stream tag or source for %s", t.Service)
	}
	if t.From.Digest != "" {
		is, err := c.Images.ImageStreams(c.Namespace).Get(ctx, t.Stream, metav1.GetOptions{})
		if err != nil {
			return failed(t, "reading image stream %s before pinning: %v", t.Stream, err)
		}
		st, _ := tagState(is, t.Tag)
		if now := st.Current.Digest; now != t.From.Digest && now != t.To.Digest {
			return failed(t, "%s:%s moved since the plan was approved: planned from %s, now %s; nothing was changed, plan it again",
				t.Stream, t.Tag, plan.ShortDigest(t.From.Digest), plan.ShortDigest(now))
		}
	}
	if err := c.setTag(ctx, t.Stream, t.Tag, t.SpecFrom, t.Scheduled); err != nil {
		return failed(t, "%v", err)
	}
	return plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: t.To}
}

// executeTrack points the tag back at the registry tag with the env's
// scheduled setting (oc tag alone would turn scheduled imports off) and
// imports, so the result says which image the tag now has.
func (c EnvClient) executeTrack(ctx context.Context, t plan.Target, _ func(plan.Progress)) plan.TargetResult {
	if t.Stream == "" || t.Tag == "" || t.SpecFrom == "" {
		return failed(t, "the plan names no image stream tag or source for %s", t.Service)
	}
	if err := c.setTag(ctx, t.Stream, t.Tag, t.SpecFrom, t.Scheduled); err != nil {
		return failed(t, "%v", err)
	}
	_, to, err := c.importTag(ctx, t.Stream, t.Tag)
	if err != nil {
		return failed(t, "the tag now tracks %s, but importing it failed: %v", t.SpecFrom, err)
	}
	return plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: to}
}

// executeRollback rolls back the target's untriggered workloads, reporting
// kubectl's message per workload; triggered ones would be reverted by the
// image-trigger controller and are handled by pinning the tag instead.
func (c EnvClient) executeRollback(ctx context.Context, t plan.Target, rep func(plan.Progress)) plan.TargetResult {
	r := plan.TargetResult{Service: t.Service, Outcome: plan.PhaseUnchanged, From: t.From, To: t.To}
	var errs []string
	for _, w := range t.Workloads {
		if w.Triggered {
			continue
		}
		msg, changed, err := c.rollback(ctx, w.Kind, w.Name, t.ToRevision)
		p := plan.Progress{Service: t.Service, Workload: w, Phase: plan.PhaseUnchanged, Message: msg}
		switch {
		case err != nil:
			p.Phase, p.Message = plan.PhaseFailed, err.Error()
			errs = append(errs, fmt.Sprintf("rolling back %s/%s: %v", w.Kind, w.Name, err))
		case changed:
			p.Phase = plan.PhaseChanged
			if r.Outcome != plan.PhaseFailed {
				r.Outcome = plan.PhaseChanged
			}
		}
		rep(p)
		if err != nil {
			r.Outcome = plan.PhaseFailed
		}
	}
	r.Error = strings.Join(errs, "; ")
	return r
}

// deleteStuckPods deletes the pods the Plan names (undo --force): pods of an
// OrderedReady StatefulSet stuck on a bad revision, which the controller will
// not replace by itself. It deletes only a pod that still exists, belongs to
// one of the target's StatefulSets and is still not Ready, with a UID
// precondition so a pod replaced meanwhile is left alone. For pin and track it first waits for the image-trigger
// controller to put the new image into the set's template, or the pod would
// come back on the bad image.
func (c EnvClient) deleteStuckPods(ctx context.Context, action plan.Action, t plan.Target, r plan.TargetResult, rep func(plan.Progress)) (deleted int, err error) {
	sets := map[string]plan.WorkloadRef{}
	for _, w := range t.Workloads {
		if k, _ := plan.NormalizeKind(w.Kind); k == plan.KindStatefulSet {
			sets[w.Name] = w
		}
	}
	if len(sets) == 0 {
		return 0, fmt.Errorf("the plan deletes pods of %s but names no StatefulSet", t.Service)
	}
	if action.PinsTag() || action == plan.ActionTrack {
		digest := r.To.Digest
		if digest == "" {
			return 0, fmt.Errorf("cannot tell when the stuck pods may be deleted: the plan has no target digest")
		}
		for name, w := range sets {
			if !w.Triggered {
				continue
			}
			if err := c.waitTemplateImage(ctx, name, digest); err != nil {
				return 0, err
			}
		}
	}
	var errs []error
	for _, name := range t.DeletePods {
		msg, gone, err := c.deleteStuckPod(ctx, name, sets)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		phase := plan.PhaseUnchanged
		if gone {
			deleted++
			phase = plan.PhaseChanged
		}
		rep(plan.Progress{Service: t.Service, Phase: phase, Message: msg})
	}
	return deleted, errors.Join(errs...)
}

// deleteStuckPod deletes one pod if it is still stuck; deleted says whether
// this call deleted it.
func (c EnvClient) deleteStuckPod(ctx context.Context, name string, sets map[string]plan.WorkloadRef) (msg string, deleted bool, err error) {
	pod, err := c.Kube.CoreV1().Pods(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("pod %s is already gone", name), false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading pod %s: %w", name, err)
	}
	owner := metav1.GetControllerOf(pod)
	if owner == nil || owner.Kind != plan.KindStatefulSet {
		return "", false, fmt.Errorf("not deleting pod %s: no StatefulSet of this plan controls it", name)
	}
	if _, ok := sets[owner.Name]; !ok {
		return "", false, fmt.Errorf("not deleting pod %s: it belongs to %s/%s, which this plan does not name", name, owner.Kind, owner.Name)
	}
	if podReady(pod) {
		return fmt.Sprintf("pod %s is Ready now; not deleted", name), false, nil
	}
	// The UID precondition makes sure the pod deleted is the one checked,
	// not a replacement of the same name. (No resourceVersion: a crash
	// looping pod's status changes all the time.)
	uid := pod.UID
	err = c.Kube.CoreV1().Pods(c.Namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	switch {
	case err == nil:
		reason := podFailure(pod)
		if reason == "" {
			reason = "not Ready"
		}
		return fmt.Sprintf("deleted stuck pod %s (%s); %s will recreate it", name, reason, owner.Name), true, nil
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("pod %s is already gone", name), false, nil
	case apierrors.IsConflict(err):
		return "", false, fmt.Errorf("not deleting pod %s: it was replaced since it was checked; look again", name)
	default:
		return "", false, fmt.Errorf("deleting pod %s: %w", name, err)
	}
}

// waitTemplateImage watches the StatefulSet until a container image of its
// template names digest.
func (c EnvClient) waitTemplateImage(ctx context.Context, name, digest string) error {
	ctx, cancel := context.WithTimeout(ctx, templateWait)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := listWatch(c, c.Kube.AppsV1().StatefulSets(c.Namespace), func(o *metav1.ListOptions) { o.FieldSelector = sel })
	_, err := watchtools.UntilWithSync(ctx, lw, &appsv1.StatefulSet{}, nil, func(ev watch.Event) (bool, error) {
		sts, ok := ev.Object.(*appsv1.StatefulSet)
		if !ok || sts.Name != name {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			return false, fmt.Errorf("statefulset %s was deleted", name)
		}
		return templateHasDigest(&sts.Spec.Template, digest), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the image trigger to set %s in statefulset %s: %w", plan.ShortDigest(digest), name, err)
	}
	return nil
}

func templateHasDigest(t *corev1.PodTemplateSpec, digest string) bool {
	for _, c := range t.Spec.Containers {
		if strings.Contains(c.Image, digest) {
			return true
		}
	}
	return false
}
