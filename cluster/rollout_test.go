package cluster_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/plan"
)

// depPod is a pod of Deployment d running d's current template.
func depPod(d *appsv1.Deployment, suffix string, ready bool, waiting string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + suffix, Namespace: testNS, UID: types.UID("uid-pod-" + d.Name + "-" + suffix),
			Labels: map[string]string{"app": d.Name},
		},
		Spec: *d.Spec.Template.Spec.DeepCopy(),
	}
	setPodState(p, ready, waiting)
	return p
}

// rolledBack is the Result of a rollback of one untriggered workload, so
// Follow waits for the workload only, not for an image.
func rolledBack(kind, name string) (plan.Plan, plan.Result) {
	p := rollbackPlan(kind, name, 0)
	return p, plan.Result{Targets: []plan.TargetResult{{Service: name, Outcome: plan.PhaseChanged}}}
}

func TestFollowOutcomes(t *testing.T) {
	unsettled := func(d *appsv1.Deployment) *appsv1.Deployment {
		d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.Replicas = 1, 1, 3
		return d
	}
	dep := deployment("svc", "img:2", 2, nil)
	oldPodDep := deployment("svc", "img:2", 2, nil)
	oldPod := depPod(oldPodDep, "old", false, "CrashLoopBackOff")
	oldPod.Spec.Containers[0].Image = "img:1" // a pod of the previous ReplicaSet

	deadlineDep := unsettled(deployment("svc", "img:2", 2, nil))
	deadlineDep.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "svc-abc" has timed out progressing.`}}

	sts := func() *appsv1.StatefulSet {
		s := statefulSet("worker", "img:2", 2, "rev-new", nil)
		s.Status.CurrentRevision, s.Status.ReadyReplicas, s.Status.UpdatedReplicas = "rev-old", 1, 1
		return s
	}
	longNotReady := stsPod(sts(), 1, "rev-old", false, "")
	longNotReady.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now().Add(-time.Hour))
	freshNotReady := stsPod(sts(), 1, "rev-old", false, "")
	freshNotReady.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now())

	tests := []struct {
		name       string
		kind, wl   string
		objs       []runtime.Object
		deadline   time.Duration
		wantPhase  string
		wantReason string
	}{
		{name: "settled deployment", kind: "Deployment", wl: "svc",
			objs: []runtime.Object{dep, depPod(dep, "a", true, ""), depPod(dep, "b", true, "")}, wantPhase: plan.PhaseSettled},
		{name: "old ReplicaSet's failing pod is not this rollout's failure", kind: "Deployment", wl: "svc",
			objs: []runtime.Object{oldPodDep, oldPod}, wantPhase: plan.PhaseSettled},
		{name: "new pod cannot pull its image", kind: "Deployment", wl: "svc",
			objs:      []runtime.Object{unsettled(deployment("svc", "img:2", 2, nil)), depPod(dep, "a", false, "ImagePullBackOff")},
			wantPhase: plan.PhaseFailed, wantReason: "svc-a: ImagePullBackOff"},
		{name: "deployment progress deadline exceeded", kind: "Deployment", wl: "svc",
			objs: []runtime.Object{deadlineDep}, wantPhase: plan.PhaseFailed, wantReason: "ProgressDeadlineExceeded: ReplicaSet \"svc-abc\" has timed out progressing."},
		{name: "deadline passes", kind: "Deployment", wl: "svc", deadline: 50 * time.Millisecond,
			objs: []runtime.Object{unsettled(deployment("svc", "img:2", 2, nil)), depPod(dep, "a", false, "ContainerCreating")}, wantPhase: plan.PhaseFailed,
			wantReason: "did not settle in time: 1 of 2 updated, 1 ready; svc-a: ContainerCreating"},
		{name: "workload gone", kind: "Deployment", wl: "svc", objs: nil, wantPhase: plan.PhaseFailed, wantReason: "deployment svc no longer exists"},
		{name: "settled statefulset", kind: "StatefulSet", wl: "worker",
			objs: []runtime.Object{statefulSet("worker", "img:2", 2, "rev-new", nil)}, wantPhase: plan.PhaseSettled},
		{name: "new revision pod crash loops", kind: "StatefulSet", wl: "worker",
			objs:      []runtime.Object{sts(), stsPod(sts(), 0, "rev-old", true, ""), stsPod(sts(), 1, "rev-new", false, "CrashLoopBackOff")},
			wantPhase: plan.PhaseFailed, wantReason: "worker-1: CrashLoopBackOff"},
		{name: "OrderedReady stuck on an old failing pod", kind: "StatefulSet", wl: "worker",
			objs:       []runtime.Object{sts(), stsPod(sts(), 0, "rev-new", true, ""), stsPod(sts(), 1, "rev-old", false, "ErrImagePull")},
			wantPhase:  plan.PhaseStuck,
			wantReason: "worker-1: ErrImagePull on an old revision"},
		{name: "OrderedReady stuck on an old pod not Ready for long", kind: "StatefulSet", wl: "worker",
			objs:      []runtime.Object{sts(), stsPod(sts(), 0, "rev-new", true, ""), longNotReady},
			wantPhase: plan.PhaseStuck, wantReason: "worker-1: not Ready on an old revision"},
		{name: "an old pod just turned not Ready is not stuck yet", kind: "StatefulSet", wl: "worker", deadline: 100 * time.Millisecond,
			objs:      []runtime.Object{sts(), stsPod(sts(), 0, "rev-new", true, ""), freshNotReady},
			wantPhase: plan.PhaseFailed, wantReason: "did not settle in time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.objs, nil)
			p, res := rolledBack(tc.kind, tc.wl)
			deadline := tc.deadline
			if deadline == 0 {
				deadline = 10 * time.Second
			}
			var log progressLog
			got := f.set.Follow(context.Background(), p, res, deadline, log.report)
			if len(got) != 1 {
				t.Fatalf("Follow = %+v, want one result", got)
			}
			r := got[0]
			if r.Workload.Name != tc.wl || r.Workload.Kind != tc.kind || r.Outcome != tc.wantPhase || !strings.Contains(r.Reason, tc.wantReason) {
				t.Fatalf("Follow = %+v, want %s %q", r, tc.wantPhase, tc.wantReason)
			}
			ps := log.snapshot()
			if len(ps) == 0 || ps[len(ps)-1].Phase != tc.wantPhase || ps[len(ps)-1].Service != tc.wl {
				t.Errorf("progress = %+v, want it to end in %s", ps, tc.wantPhase)
			}
		})
	}
}

func TestFollowNothingChanged(t *testing.T) {
	f := newFixture(t, nil, nil)
	p, _ := rolledBack("Deployment", "svc")
	res := plan.Result{Targets: []plan.TargetResult{{Service: "svc", Outcome: plan.PhaseUnchanged}}}
	if got := f.set.Follow(context.Background(), p, res, time.Second, nil); got != nil {
		t.Errorf("Follow = %+v, want nothing to follow", got)
	}
}

func TestFollowStopsWhenCancelled(t *testing.T) {
	f := newFixture(t, []runtime.Object{statefulSet("worker", "img:1", 2, "", nil)}, nil)
	p, res := rolledBack("StatefulSet", "worker")
	ctx, cancel := context.WithCancel(context.Background())
	var log progressLog
	done := make(chan []plan.RolloutResult)
	go func() { done <- f.set.Follow(ctx, p, res, time.Minute, log.report) }()
	waitFor(t, "a rolling report", func() bool { return len(log.snapshot()) > 0 })
	cancel()
	select {
	case got := <-done:
		if len(got) != 1 || got[0].Outcome != plan.PhaseFailed || !strings.Contains(got[0].Reason, "context canceled") {
			t.Errorf("Follow = %+v, want failed because cancelled", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return after cancel")
	}
}

// TestImportAndFollow runs the whole flow on the fakes: Execute imports a
// newer image, the image-trigger controller (fakeopenshift) rewrites the
// triggered Deployment's image, the test plays the Deployment controller, and
// Follow watches until the rollout settles, reporting each step.
func TestImportAndFollow(t *testing.T) {
	const svc = "packit-service"
	d := deployment(svc, ref(svc, 2), 2, map[string]string{cluster.TriggerAnnotation: packitTrigger})
	f := newFixture(t, []runtime.Object{d}, []*imagev1.ImageStream{imageStream(svc, false, 2, 1)})
	f.push(svc, 3)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tc := fakeopenshift.NewTriggerController(f.kube, f.images.ImageV1(), fakeopenshift.TriggerNamespace(testNS))
	ctrlDone := make(chan error, 1)
	go func() { ctrlDone <- tc.Run(ctx) }()
	defer func() { cancel(); <-ctrlDone }()

	target := importTarget(svc, 2, 3)
	target.Workloads = []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: svc, Triggered: true}}
	rollback := importPlan(target)
	res, err := f.set.Execute(ctx, rollback, nil)
	if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
		t.Fatalf("Execute = %+v, %v", res, err)
	}

	var log progressLog
	done := make(chan []plan.RolloutResult, 1)
	go func() { done <- f.set.Follow(ctx, rollback, res, 20*time.Second, log.report) }()

	// The Deployment controller: once the trigger has set the new image,
	// start a rollout, then finish it.
	var cur *appsv1.Deployment
	waitFor(t, "the image trigger to update the deployment", func() bool {
		cur, err = f.kube.AppsV1().Deployments(testNS).Get(ctx, svc, metav1.GetOptions{})
		return err == nil && cur.Spec.Template.Spec.Containers[0].Image == ref(svc, 3)
	})
	waitFor(t, "a rolling report", func() bool {
		for _, p := range log.snapshot() {
			if p.Phase == plan.PhaseRolling {
				return true
			}
		}
		return false
	})
	cur.Status = appsv1.DeploymentStatus{ObservedGeneration: cur.Generation, Replicas: 3, UpdatedReplicas: 1, ReadyReplicas: 2}
	if cur, err = f.kube.AppsV1().Deployments(testNS).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a report of 1 updated", func() bool {
		for _, p := range log.snapshot() {
			if p.Phase == plan.PhaseRolling && p.Updated == 1 && p.Desired == 2 {
				return true
			}
		}
		return false
	})
	cur.Status = appsv1.DeploymentStatus{ObservedGeneration: cur.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2}
	if _, err := f.kube.AppsV1().Deployments(testNS).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if len(got) != 1 || got[0].Outcome != plan.PhaseSettled || got[0].Workload.Name != svc {
			t.Fatalf("Follow = %+v, want %s settled", got, svc)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Follow did not finish")
	}
	ps := log.snapshot()
	if last := ps[len(ps)-1]; last.Phase != plan.PhaseSettled || last.Ready != 2 || last.Desired != 2 {
		t.Errorf("last progress = %+v, want settled 2/2", last)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i] == ps[i-1] {
			t.Errorf("progress %d repeats %+v", i, ps[i])
		}
	}
}

// TestFollowPausedTrigger: a triggered workload is not
// done until its template has the new image; with a paused trigger it never
// will be, and Follow says so instead of waiting for the deadline.
func TestFollowPausedTrigger(t *testing.T) {
	const svc = "packit-service"
	paused := strings.Replace(packitTrigger, `"fieldPath"`, `"paused":true,"fieldPath"`, 1)
	d := deployment(svc, ref(svc, 2), 2, map[string]string{cluster.TriggerAnnotation: paused})
	f := newFixture(t, []runtime.Object{d}, nil)
	target := importTarget(svc, 2, 3)
	target.Workloads = []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: svc, Triggered: true}}
	res := plan.Result{Targets: []plan.TargetResult{{Service: svc, Outcome: plan.PhaseChanged, To: target.To}}}
	got := f.set.Follow(context.Background(), importPlan(target), res, 10*time.Second, nil)
	if len(got) != 1 || got[0].Outcome != plan.PhaseFailed || !strings.Contains(got[0].Reason, "trigger for packit-service:prod is paused") {
		t.Errorf("Follow = %+v, want a paused-trigger failure", got)
	}
}

// A watch that cannot start (here: pods may not be listed) must not hang
// Follow; it gives up at the deadline and says why.
func TestFollowGivesUpWhenItCannotWatch(t *testing.T) {
	f := newFixture(t, []runtime.Object{statefulSet("worker", "img:1", 1, "r", nil)}, nil)
	f.kube.PrependReactor("list", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no list for you"))
	})
	p, res := rolledBack("StatefulSet", "worker")
	got := f.set.Follow(context.Background(), p, res, 200*time.Millisecond, nil)
	if len(got) != 1 || got[0].Outcome != plan.PhaseFailed || !strings.Contains(got[0].Reason, "cannot watch") {
		t.Errorf("Follow = %+v, want failed because it cannot watch", got)
	}
}

// TestFollowNamesTheProgressDeadline: when Follow's own deadline passes
// before the deployment controller has marked the rollout
// ProgressDeadlineExceeded (it re-checks on its own schedule, which a busy
// controller manager stretches), the reason names the Deployment's
// progressDeadlineSeconds if that much time has passed without progress,
// and only then.
func TestFollowNamesTheProgressDeadline(t *testing.T) {
	tests := []struct {
		name             string
		progressDeadline int32         // the Deployment's progressDeadlineSeconds
		deadline         time.Duration // Follow's own
		// progress, when set, changes the Deployment this long after
		// Follow started, as the deployment controller does on progress.
		progress   func(d *appsv1.Deployment)
		progressAt time.Duration
		wantReason string // a regular expression
	}{
		{name: "no progress for longer than progressDeadlineSeconds", progressDeadline: 1, deadline: 1500 * time.Millisecond,
			wantReason: `progress deadline of 1s passed: 1 of 2 updated, 1 ready, no progress for \ds; svc-a: ContainerCreating`},
		{name: "progressDeadlineSeconds longer than Follow's deadline", progressDeadline: 600, deadline: 100 * time.Millisecond,
			wantReason: "did not settle in time: 1 of 2 updated, 1 ready; svc-a: ContainerCreating"},
		{name: "a replica became ready within progressDeadlineSeconds", progressDeadline: 2, deadline: 4 * time.Second,
			progressAt: 3 * time.Second,
			progress:   func(d *appsv1.Deployment) { d.Status.ReadyReplicas++ },
			wantReason: "did not settle in time: 1 of 2 updated, 2 ready; svc-a: ContainerCreating"},
		{name: "the controller updated its Progressing condition within progressDeadlineSeconds", progressDeadline: 2, deadline: 4 * time.Second,
			progressAt: 3 * time.Second,
			progress: func(d *appsv1.Deployment) {
				d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
					Reason: "ReplicaSetUpdated", LastUpdateTime: metav1.Now(), Message: `ReplicaSet "svc-abc" is progressing.`}}
			},
			wantReason: "did not settle in time: 1 of 2 updated, 1 ready; svc-a: ContainerCreating"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := deployment("svc", "img:2", 2, nil)
			d.Spec.ProgressDeadlineSeconds = int32p(tc.progressDeadline)
			d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.Replicas = 1, 1, 1, 3
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
				Reason: "ReplicaSetUpdated", LastUpdateTime: metav1.NewTime(time.Now().Add(-time.Hour)), Message: `ReplicaSet "svc-abc" is progressing.`}}
			f := newFixture(t, []runtime.Object{d, depPod(d, "a", false, "ContainerCreating")}, nil)
			p, res := rolledBack("Deployment", "svc")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			if tc.progress != nil {
				timer := time.AfterFunc(tc.progressAt, func() {
					cur, err := f.kube.AppsV1().Deployments(testNS).Get(ctx, "svc", metav1.GetOptions{})
					if err == nil {
						tc.progress(cur)
						_, err = f.kube.AppsV1().Deployments(testNS).Update(ctx, cur, metav1.UpdateOptions{})
					}
					if err != nil && ctx.Err() == nil {
						t.Errorf("making progress: %v", err)
					}
				})
				defer timer.Stop()
			}
			got := f.set.Follow(ctx, p, res, tc.deadline, nil)
			if len(got) != 1 || got[0].Outcome != plan.PhaseFailed || !regexp.MustCompile("^"+tc.wantReason+"$").MatchString(got[0].Reason) {
				t.Fatalf("Follow = %+v after %v, want failed with %q", got, time.Since(start).Round(time.Millisecond), tc.wantReason)
			}
		})
	}
}
