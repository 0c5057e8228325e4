package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/plan"
)

// revertWorkerPlan is `undo worker --force` on a triggered OrderedReady
// StatefulSet: pin packit-worker:prod to #1 and delete the pod stuck on #2.
func revertWorkerPlan() plan.Plan {
	p := tagPlan(plan.ActionPin, worker, ref(worker, 1), false, plan.Image{Ref: ref(worker, 1), Digest: dig(worker, 1)})
	p.Targets[0].Workloads = []plan.WorkloadRef{{Kind: plan.KindStatefulSet, Name: "packit-worker-short-running", Triggered: true}}
	p.Targets[0].DeletePods = []string{"packit-worker-short-running-1"}
	return p
}

func revertWorkerFixture(t *testing.T) *fixture {
	sts := statefulSet("packit-worker-short-running", ref(worker, 2), 2, "rev-2",
		map[string]string{cluster.TriggerAnnotation: triggerAnnotation(worker, "packit-worker-short-running")})
	objs := []runtime.Object{sts,
		stsPod(sts, 0, "rev-1", true, ""),
		stsPod(sts, 1, "rev-2", false, "CrashLoopBackOff"),
	}
	f := newFixture(t, objs, []*imagev1.ImageStream{imageStream(worker, false, 2, 1)})
	f.push(worker, 2)
	return f
}

func TestPinDeletesStuckPodOnceTheTemplateIsReverted(t *testing.T) {
	f := revertWorkerFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tc := fakeopenshift.NewTriggerController(f.kube, f.images.ImageV1(), fakeopenshift.TriggerNamespace(testNS))
	ctrlDone := make(chan error, 1)
	go func() { ctrlDone <- tc.Run(ctx) }()
	defer func() { cancel(); <-ctrlDone }()

	var log progressLog
	res, err := f.set.Execute(ctx, revertWorkerPlan(), log.report)
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Targets[0]; tr.Outcome != plan.PhaseChanged {
		t.Fatalf("result = %+v, want changed", tr)
	}
	sts, err := f.kube.AppsV1().StatefulSets(testNS).Get(ctx, "packit-worker-short-running", metav1.GetOptions{})
	if err != nil || sts.Spec.Template.Spec.Containers[0].Image != ref(worker, 1) {
		t.Fatalf("statefulset template = %v, %v; want the pinned image", sts.Spec.Template.Spec.Containers[0].Image, err)
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Get(ctx, "packit-worker-short-running-1", metav1.GetOptions{}); err == nil {
		t.Errorf("stuck pod was not deleted")
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Get(ctx, "packit-worker-short-running-0", metav1.GetOptions{}); err != nil {
		t.Errorf("healthy pod was deleted")
	}
	found := false
	for _, p := range log.snapshot() {
		found = found || strings.Contains(p.Message, "deleted stuck pod packit-worker-short-running-1 (CrashLoopBackOff)")
	}
	if !found {
		t.Errorf("no deletion reported in %+v", log.snapshot())
	}
}

// Without the image-trigger controller the template keeps the bad image, so
// deleting the pod would only recreate it on that image: Execute must wait,
// and give up without deleting.
func TestPinKeepsStuckPodWhileTheTemplateIsUnchanged(t *testing.T) {
	f := revertWorkerFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := f.set.Execute(ctx, revertWorkerPlan(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Targets[0]; tr.Outcome != plan.PhaseFailed || !strings.Contains(tr.Error, "waiting for the image trigger") {
		t.Errorf("result = %+v, want failure waiting for the trigger", tr)
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Get(context.Background(), "packit-worker-short-running-1", metav1.GetOptions{}); err != nil {
		t.Errorf("pod deleted before the template was reverted: %v", err)
	}
}
