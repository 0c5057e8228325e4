package cluster_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/deploybot/deploybot/cluster"
)

func TestTriggeredWorkloads(t *testing.T) {
	worker := func(ns string) map[string]string {
		a := `[{"from":{"kind":"ImageStreamTag","name":"packit-worker:prod"`
		if ns != "" {
			a += `,"namespace":"` + ns + `"`
		}
		return map[string]string{cluster.TriggerAnnotation: a + `},"fieldPath":"spec.template.spec.containers[?(@.name==\"w\")].image"}]`}
	}
	objs := []runtime.Object{
		statefulSet("packit-worker-short-running", "packit-worker:prod", 2, "r1", worker("")),
		statefulSet("packit-worker-long-running", "packit-worker:prod", 2, "r1", worker(testNS)),
		deployment("packit-service-beat", "packit-worker:prod", 1, worker("")),
		deployment("packit-service", "packit-service:prod", 1, map[string]string{cluster.TriggerAnnotation: packitTrigger}),
		deployment("other-namespace", "x", 1, worker("packit--stg")),
		deployment("garbage", "x", 1, map[string]string{cluster.TriggerAnnotation: "{nope"}),
		deployment("untriggered", "x", 1, nil),
	}
	f := newFixture(t, objs, nil)
	tests := []struct {
		name   string
		stream string
		want   []string
	}{
		{"one stream triggers several workloads", "packit-worker",
			[]string{"Deployment/packit-service-beat", "StatefulSet/packit-worker-long-running", "StatefulSet/packit-worker-short-running"}},
		{"the packit annotation", "packit-service", []string{"Deployment/packit-service"}},
		{"nothing follows an unknown stream", "tokman", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := f.set.TriggeredWorkloads(context.Background(), testEnv, tc.stream, "prod")
			if err != nil {
				t.Fatalf("TriggeredWorkloads: %v", err)
			}
			var got []string
			for _, w := range ws {
				got = append(got, w.Kind+"/"+w.Name)
				if len(w.Triggers) == 0 {
					t.Errorf("%s/%s returned without its triggers", w.Kind, w.Name)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestWorkloadRolloutState(t *testing.T) {
	settledDep := deployment("svc", "img:1", 2, map[string]string{"deployment.kubernetes.io/revision": "4"})
	unobserved := settledDep.DeepCopy()
	unobserved.Name, unobserved.Generation = "unobserved", 4
	rolling := settledDep.DeepCopy()
	rolling.Name, rolling.Status.UpdatedReplicas, rolling.Status.Replicas = "rolling", 1, 3
	oldLeft := settledDep.DeepCopy()
	oldLeft.Name, oldLeft.Status.Replicas = "old-left", 3
	paused := settledDep.DeepCopy()
	paused.Name, paused.Spec.Paused = "paused", true

	settledSts := statefulSet("worker", "img:1", 2, "worker-abc", nil)
	stsRolling := settledSts.DeepCopy()
	stsRolling.Name, stsRolling.Status.UpdateRevision, stsRolling.Status.ReadyReplicas = "worker-rolling", "worker-def", 1
	parallel := settledSts.DeepCopy()
	parallel.Name, parallel.Spec.PodManagementPolicy = "parallel", appsv1.ParallelPodManagement
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "worker-abc", Namespace: testNS}, Revision: 7}

	f := newFixture(t, []runtime.Object{settledDep, unobserved, rolling, oldLeft, paused, settledSts, stsRolling, parallel, cr}, nil)
	tests := []struct {
		name         string
		kind         string
		workload     string
		settled      bool
		revision     int64
		paused       bool
		orderedReady bool
		ready        int32
	}{
		{name: "settled deployment", kind: "deploy", workload: "svc", settled: true, revision: 4, ready: 2},
		{name: "controller has not seen the spec", kind: "Deployment", workload: "unobserved", settled: false, revision: 4, ready: 2},
		{name: "rolling deployment", kind: "deployment", workload: "rolling", settled: false, revision: 4, ready: 2},
		{name: "old replicas left", kind: "Deployment", workload: "old-left", settled: false, revision: 4, ready: 2},
		{name: "paused deployment", kind: "Deployment", workload: "paused", settled: true, revision: 4, paused: true, ready: 2},
		{name: "settled statefulset with revision number", kind: "StatefulSet", workload: "worker", settled: true, revision: 7, orderedReady: true, ready: 2},
		{name: "statefulset mid update", kind: "sts", workload: "worker-rolling", settled: false, orderedReady: true, ready: 1},
		{name: "parallel statefulset", kind: "statefulset", workload: "parallel", settled: true, revision: 7, ready: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := f.set.Workload(context.Background(), testEnv, tc.kind, tc.workload)
			if err != nil {
				t.Fatalf("Workload: %v", err)
			}
			if w.Settled != tc.settled || w.Revision != tc.revision || w.Paused != tc.paused || w.OrderedReady != tc.orderedReady || w.Ready != tc.ready || w.Desired != 2 {
				t.Errorf("Workload = %+v; want settled=%v revision=%d paused=%v orderedReady=%v ready=%d desired=2",
					w, tc.settled, tc.revision, tc.paused, tc.orderedReady, tc.ready)
			}
			for _, img := range w.Images {
				if img != "img:1" || len(w.Images) != 1 {
					t.Errorf("Images = %v, want one container running img:1", w.Images)
				}
			}
		})
	}

	if _, err := f.set.Workload(context.Background(), testEnv, "Deployment", "missing"); !apierrors.IsNotFound(err) {
		t.Errorf("missing deployment: error %v, want NotFound", err)
	}
	if _, err := f.set.Workload(context.Background(), testEnv, "DaemonSet", "x"); err == nil {
		t.Errorf("DaemonSet: no error, want unsupported kind")
	}
	if _, err := f.set.Workload(context.Background(), "nope", "Deployment", "svc"); err == nil {
		t.Errorf("unknown env: no error")
	}
}

// TestReadySince: since when every pod of a workload has been Ready is the
// latest Ready transition among its own pods (of its current ReplicaSet,
// or of the StatefulSet), as kubelet records it; a pod not Ready makes it
// zero, and terminating, evicted and other owners' pods do not count.
func TestReadySince(t *testing.T) {
	t1, t2 := metav1.NewTime(testNow.Add(-3*time.Hour)), metav1.NewTime(testNow.Add(-20*time.Minute))
	controller := func(kind, name string, uid types.UID) []metav1.OwnerReference {
		yes := true
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &yes}}
	}
	pod := func(name, app string, owner []metav1.OwnerReference, ready corev1.ConditionStatus, at metav1.Time, phase corev1.PodPhase, terminating bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: map[string]string{"app": app}, OwnerReferences: owner},
			Status:     corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: at}}},
		}
		if terminating {
			p.DeletionTimestamp = &t2
		}
		return p
	}
	web := deployment("web", "x", 2, nil)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: testNS, UID: "uid-rs-web-1",
		Labels: map[string]string{"app": "web"}, OwnerReferences: controller("Deployment", "web", web.UID)}}
	old := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: testNS, UID: "uid-rs-web-0",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"deployment.kubernetes.io/revision": "1"},
		OwnerReferences: controller("Deployment", "web", web.UID)}}
	worker := statefulSet("worker", "x", 3, "r1", nil)
	byRS, byOld, bySts, byJob := controller("ReplicaSet", "web-1", rs.UID), controller("ReplicaSet", "web-0", old.UID),
		controller("StatefulSet", "worker", worker.UID), controller("Job", "migrate", "uid-job")
	f := newFixture(t, []runtime.Object{
		web, rs, old, worker,
		pod("web-a", "web", byRS, corev1.ConditionTrue, t1, corev1.PodRunning, false),
		pod("web-b", "web", byRS, corev1.ConditionTrue, t2, corev1.PodRunning, false),
		pod("web-terminating", "web", byRS, corev1.ConditionFalse, t1, corev1.PodRunning, true),
		pod("web-evicted", "web", byRS, corev1.ConditionFalse, t1, corev1.PodFailed, false),
		pod("web-old", "web", byOld, corev1.ConditionFalse, t1, corev1.PodRunning, false),
		pod("web-job", "web", byJob, corev1.ConditionFalse, t1, corev1.PodRunning, false),
		pod("worker-0", "worker", bySts, corev1.ConditionTrue, t1, corev1.PodRunning, false),
		pod("worker-1", "worker", bySts, corev1.ConditionFalse, t2, corev1.PodRunning, false),
	}, nil)
	ctx := context.Background()
	since, ready, pods, err := f.set.ReadySince(ctx, testEnv, "deploy", "web")
	if err != nil || !since.Equal(t2.Time) || ready != 2 || pods != 2 {
		t.Errorf("ReadySince(web) = %v, %d/%d, %v; want %v, 2/2", since, ready, pods, err, t2.Time)
	}
	since, ready, pods, err = f.set.ReadySince(ctx, testEnv, "sts", "worker")
	if err != nil || !since.IsZero() || ready != 1 || pods != 2 {
		t.Errorf("ReadySince(worker) = %v, %d/%d, %v; want zero, 1/2", since, ready, pods, err)
	}
	if _, _, _, err := f.set.ReadySince(ctx, testEnv, "deploy", "gone"); err == nil {
		t.Error("ReadySince of a missing deployment did not fail")
	}
}
