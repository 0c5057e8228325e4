package cluster_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/plan"
)

const fedmsg = "packit-service-fedmsg"

// fedmsgHistory is an untriggered Deployment at revision 3 (img:3) with
// ReplicaSets for revisions 1-3, one ReplicaSet of another Deployment that
// the selector also matches, and one with an unparsable revision.
func fedmsgHistory() []runtime.Object {
	d := deployment(fedmsg, "img:3", 2, map[string]string{
		"deployment.kubernetes.io/revision": "3",
		corev1.LastAppliedConfigAnnotation:  "LA",
		"note":                              "only on the deployment",
		cluster.ChangeCauseAnnotation:       "deploy 3",
	})
	rs := func(name, image, rev string, age time.Duration, owner types.UID, extra map[string]string) *appsv1.ReplicaSet {
		tmpl := podTemplate(fedmsg, image)
		tmpl.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "hash-" + name
		ann := map[string]string{
			"deployment.kubernetes.io/revision":         rev,
			"deployment.kubernetes.io/desired-replicas": "2",
			"deployment.kubernetes.io/max-replicas":     "3",
		}
		for k, v := range extra {
			ann[k] = v
		}
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: testNS, UID: types.UID("uid-" + name),
				Labels:            map[string]string{"app": fedmsg, appsv1.DefaultDeploymentUniqueLabelKey: "hash-" + name},
				Annotations:       ann,
				CreationTimestamp: metav1.NewTime(testNow.Add(-age)),
				OwnerReferences:   controllerRef("Deployment", fedmsg, owner),
			},
			Spec: appsv1.ReplicaSetSpec{Replicas: int32p(0), Template: tmpl},
		}
	}
	return []runtime.Object{
		d,
		rs("fedmsg-1", "img:1", "1", 72*time.Hour, d.UID, map[string]string{cluster.ChangeCauseAnnotation: "deploy 1", "custom": "from-rs1",
			// a hold long ended, copied here while it lasted: not restored
			cluster.HoldAnnotation: `{"by":"alice","reason":"old"}`}),
		rs("fedmsg-2", "img:2", "2", 48*time.Hour, d.UID, map[string]string{cluster.ChangeCauseAnnotation: "deploy 2"}),
		rs("fedmsg-3", "img:3", "3", 24*time.Hour, d.UID, map[string]string{cluster.ChangeCauseAnnotation: "deploy 3"}),
		rs("foreign-9", "img:9", "9", 12*time.Hour, "uid-someone-else", nil),
		rs("broken", "img:x", "x", 6*time.Hour, d.UID, nil),
	}
}

func TestDeploymentRevisions(t *testing.T) {
	f := newFixture(t, fedmsgHistory(), nil)
	got, err := f.set.Revisions(context.Background(), testEnv, "Deployment", fedmsg)
	if err != nil {
		t.Fatalf("Revisions: %v", err)
	}
	want := []plan.Revision{
		{Number: 1, Images: map[string]string{fedmsg: "img:1"}, ChangeCause: "deploy 1", Created: testNow.Add(-72 * time.Hour)},
		{Number: 2, Images: map[string]string{fedmsg: "img:2"}, ChangeCause: "deploy 2", Created: testNow.Add(-48 * time.Hour)},
		{Number: 3, Images: map[string]string{fedmsg: "img:3"}, ChangeCause: "deploy 3", Created: testNow.Add(-24 * time.Hour), Current: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Revisions = %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		g.Created = g.Created.UTC()
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("revision %d = %+v, want %+v", i, g, want[i])
		}
	}
}

func rollbackPlan(kind, name string, toRevision int64, deletePods ...string) plan.Plan {
	return plan.Plan{
		Action: plan.ActionRollback, Env: testEnv, Namespace: testNS,
		Targets: []plan.Target{{
			Service:    name,
			Workloads:  []plan.WorkloadRef{{Kind: kind, Name: name}},
			ToRevision: toRevision,
			DeletePods: deletePods,
		}},
	}
}

func patchActions(f *fixture) []clienttesting.PatchAction {
	var out []clienttesting.PatchAction
	for _, a := range f.kube.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok && a.GetVerb() == "patch" {
			out = append(out, p)
		}
	}
	return out
}

func TestUndoDeployment(t *testing.T) {
	tests := []struct {
		name            string
		toRevision      int64
		paused          bool
		wantOutcome     string
		wantError       string
		wantMessage     string
		wantImage       string
		wantAnnotations map[string]string
	}{
		{
			name: "to the previous revision", toRevision: 0,
			wantOutcome: plan.PhaseChanged, wantMessage: "rolled back", wantImage: "img:2",
			// The skip list is kept from the Deployment, the rest comes from
			// the ReplicaSet; the Deployment's other annotations go, as with kubectl.
			wantAnnotations: map[string]string{
				"deployment.kubernetes.io/revision": "3",
				corev1.LastAppliedConfigAnnotation:  "LA",
				cluster.ChangeCauseAnnotation:       "deploy 2",
			},
		},
		{
			name: "to revision 1", toRevision: 1,
			wantOutcome: plan.PhaseChanged, wantMessage: "rolled back", wantImage: "img:1",
			wantAnnotations: map[string]string{
				"deployment.kubernetes.io/revision": "3",
				corev1.LastAppliedConfigAnnotation:  "LA",
				cluster.ChangeCauseAnnotation:       "deploy 1",
				"custom":                            "from-rs1",
			},
		},
		{name: "already at the revision", toRevision: 3, wantOutcome: plan.PhaseUnchanged,
			wantMessage: "skipped rollback (current template already matches revision 3)", wantImage: "img:3"},
		{name: "revision not in history", toRevision: 7, wantOutcome: plan.PhaseFailed,
			wantError: "unable to find specified revision 7 in history", wantImage: "img:3"},
		{name: "the other deployment's replica set is not history", toRevision: 9, wantOutcome: plan.PhaseFailed,
			wantError: "unable to find specified revision 9 in history", wantImage: "img:3"},
		{name: "paused deployment refused", toRevision: 0, paused: true, wantOutcome: plan.PhaseFailed,
			wantError: "you cannot rollback a paused deployment", wantImage: "img:3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := fedmsgHistory()
			objs[0].(*appsv1.Deployment).Spec.Paused = tc.paused
			f := newFixture(t, objs, nil)
			var log progressLog
			res, err := f.set.Execute(context.Background(), rollbackPlan("Deployment", fedmsg, tc.toRevision), log.report)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			tr := res.Targets[0]
			if tr.Outcome != tc.wantOutcome || !strings.Contains(tr.Error, tc.wantError) || (tc.wantError == "" && tr.Error != "") {
				t.Fatalf("target result = %+v, want outcome %s error %q", tr, tc.wantOutcome, tc.wantError)
			}
			if tc.wantMessage != "" {
				found := false
				for _, p := range log.snapshot() {
					if p.Workload.Name == fedmsg && p.Message == tc.wantMessage {
						found = true
					}
				}
				if !found {
					t.Errorf("no progress with message %q in %+v", tc.wantMessage, log.snapshot())
				}
			}
			d, err := f.kube.AppsV1().Deployments(testNS).Get(context.Background(), fedmsg, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if img := d.Spec.Template.Spec.Containers[0].Image; img != tc.wantImage {
				t.Errorf("template image = %s, want %s", img, tc.wantImage)
			}
			patches := patchActions(f)
			if tc.wantOutcome != plan.PhaseChanged {
				if len(patches) != 0 {
					t.Errorf("%d patches sent, want none", len(patches))
				}
				return
			}
			if len(patches) != 1 || patches[0].GetPatchType() != types.JSONPatchType {
				t.Fatalf("patches = %v, want exactly one JSON patch", patches)
			}
			var ops []map[string]any
			if err := json.Unmarshal(patches[0].GetPatch(), &ops); err != nil || len(ops) != 2 ||
				ops[0]["path"] != "/spec/template" || ops[1]["path"] != "/metadata/annotations" {
				t.Errorf("patch = %s, want replace /spec/template and /metadata/annotations", patches[0].GetPatch())
			}
			if _, ok := d.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
				t.Errorf("template kept the pod-template-hash label: %v", d.Spec.Template.Labels)
			}
			if !reflect.DeepEqual(d.Annotations, tc.wantAnnotations) {
				t.Errorf("annotations = %v, want %v", d.Annotations, tc.wantAnnotations)
			}
		})
	}
}

// workerHistory is an untriggered OrderedReady StatefulSet at revision 2
// (img:2) with the ControllerRevisions the StatefulSet controller would have
// written for revisions 1 and 2, plus one owned by another set.
func workerHistory() []runtime.Object {
	sts := statefulSet("worker", "img:2", 2, "worker-2", nil)
	cr := func(name, image string, rev int64, owner types.UID, cause string) *appsv1.ControllerRevision {
		s := sts.DeepCopy()
		s.Spec.Template.Spec.Containers[0].Image = image
		data, err := cluster.StatefulSetPatch(s)
		if err != nil {
			panic(err)
		}
		return &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: testNS, Labels: map[string]string{"app": "worker"},
				Annotations:       map[string]string{cluster.ChangeCauseAnnotation: cause},
				CreationTimestamp: metav1.NewTime(testNow.Add(-time.Duration(10-rev) * time.Hour)),
				OwnerReferences:   controllerRef("StatefulSet", "worker", owner),
			},
			Data:     runtime.RawExtension{Raw: data},
			Revision: rev,
		}
	}
	return []runtime.Object{
		sts,
		cr("worker-1", "img:1", 1, sts.UID, "first"),
		cr("worker-2", "img:2", 2, sts.UID, "second"),
		cr("other-3", "img:9", 3, "uid-other", ""),
	}
}

func TestStatefulSetRevisions(t *testing.T) {
	f := newFixture(t, workerHistory(), nil)
	got, err := f.set.Revisions(context.Background(), testEnv, "StatefulSet", "worker")
	if err != nil {
		t.Fatalf("Revisions: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Revisions = %+v, want 2 (the other set's revision excluded)", got)
	}
	want := []struct {
		n       int64
		image   string
		cause   string
		current bool
	}{{1, "img:1", "first", false}, {2, "img:2", "second", true}}
	for i, w := range want {
		g := got[i]
		if g.Number != w.n || g.Images["worker"] != w.image || g.ChangeCause != w.cause || g.Current != w.current {
			t.Errorf("revision %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestUndoStatefulSet(t *testing.T) {
	tests := []struct {
		name        string
		toRevision  int64
		wantOutcome string
		wantImage   string
		wantError   string
	}{
		{"to the previous revision", 0, plan.PhaseChanged, "img:1", ""},
		{"to revision 1", 1, plan.PhaseChanged, "img:1", ""},
		{"already at revision 2", 2, plan.PhaseUnchanged, "img:2", ""},
		{"another set's revision is not history", 3, plan.PhaseFailed, "img:2", "unable to find specified revision 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, workerHistory(), nil)
			res, err := f.set.Execute(context.Background(), rollbackPlan("StatefulSet", "worker", tc.toRevision), nil)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if tr := res.Targets[0]; tr.Outcome != tc.wantOutcome || !strings.Contains(tr.Error, tc.wantError) {
				t.Fatalf("result = %+v, want %s %q", tr, tc.wantOutcome, tc.wantError)
			}
			sts, err := f.kube.AppsV1().StatefulSets(testNS).Get(context.Background(), "worker", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if img := sts.Spec.Template.Spec.Containers[0].Image; img != tc.wantImage {
				t.Errorf("template image = %s, want %s", img, tc.wantImage)
			}
			patches := patchActions(f)
			if tc.wantOutcome == plan.PhaseChanged && (len(patches) != 1 || patches[0].GetPatchType() != types.StrategicMergePatchType) {
				t.Errorf("patches = %v, want one strategic merge patch", patches)
			}
			if tc.wantOutcome != plan.PhaseChanged && len(patches) != 0 {
				t.Errorf("patches = %v, want none", patches)
			}
		})
	}
}

func TestUndoStatefulSetWithoutHistory(t *testing.T) {
	objs := workerHistory()[:2] // the set and revision 1 only
	f := newFixture(t, objs, nil)
	res, err := f.set.Execute(context.Background(), rollbackPlan("StatefulSet", "worker", 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Targets[0]; tr.Outcome != plan.PhaseFailed || !strings.Contains(tr.Error, "no last revision to roll back to") {
		t.Errorf("result = %+v, want no last revision", tr)
	}
}

func TestStuckPods(t *testing.T) {
	sts := statefulSet("worker", "img:1", 4, "rev-good", nil)
	sts.Status.CurrentRevision = "rev-bad"
	other := statefulSet("other", "img:1", 1, "rev-good", nil)
	otherPod := stsPod(other, 0, "rev-bad", false, "CrashLoopBackOff")
	otherPod.Labels["app"] = "worker" // selected by worker's selector, but not its pod
	parallel := statefulSet("parallel", "img:1", 1, "rev-good", nil)
	parallel.Spec.PodManagementPolicy = appsv1.ParallelPodManagement

	objs := []runtime.Object{
		sts, other, parallel, otherPod,
		stsPod(sts, 0, "rev-good", true, ""),
		stsPod(sts, 1, "rev-bad", true, ""),
		stsPod(sts, 2, "rev-bad", false, "CrashLoopBackOff"),
		stsPod(sts, 3, "rev-bad", false, ""),
		stsPod(parallel, 0, "rev-bad", false, "ImagePullBackOff"),
	}
	f := newFixture(t, objs, nil)
	tests := []struct {
		name string
		sts  string
		want []plan.StuckPod
	}{
		{"old revision and not Ready", "worker", []plan.StuckPod{
			{Name: "worker-2", Revision: "rev-bad", Reason: "CrashLoopBackOff"},
			{Name: "worker-3", Revision: "rev-bad", Reason: "not Ready"},
		}},
		{"parallel sets replace pods themselves", "parallel", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.set.StuckPods(context.Background(), testEnv, tc.sts)
			if err != nil {
				t.Fatalf("StuckPods: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("StuckPods = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestUndoForceDeletesOnlyStuckPods(t *testing.T) {
	objs := workerHistory()
	sts := objs[0].(*appsv1.StatefulSet)
	objs = append(objs,
		stsPod(sts, 0, "worker-1", true, ""),
		stsPod(sts, 1, "worker-2", false, "CrashLoopBackOff"),
	)
	f := newFixture(t, objs, nil)
	var log progressLog
	res, err := f.set.Execute(context.Background(), rollbackPlan("StatefulSet", "worker", 1, "worker-1", "worker-0"), log.report)
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Targets[0]; tr.Outcome != plan.PhaseChanged {
		t.Fatalf("result = %+v, want changed", tr)
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Get(context.Background(), "worker-1", metav1.GetOptions{}); err == nil {
		t.Errorf("stuck pod worker-1 still exists")
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Get(context.Background(), "worker-0", metav1.GetOptions{}); err != nil {
		t.Errorf("Ready pod worker-0 was deleted: %v", err)
	}
	var deletes []clienttesting.DeleteAction
	for _, a := range f.kube.Actions() {
		if d, ok := a.(clienttesting.DeleteAction); ok && a.GetVerb() == "delete" {
			deletes = append(deletes, d)
		}
	}
	if len(deletes) != 1 || deletes[0].GetName() != "worker-1" {
		t.Fatalf("deletes = %v, want worker-1 only", deletes)
	}
	pre := deletes[0].GetDeleteOptions().Preconditions
	if pre == nil || pre.UID == nil || *pre.UID != "uid-pod-worker-1" {
		t.Errorf("delete preconditions = %+v, want the pod's UID", pre)
	}
	msgs := ""
	for _, p := range log.snapshot() {
		msgs += p.Message + "\n"
	}
	if !strings.Contains(msgs, "deleted stuck pod worker-1 (CrashLoopBackOff)") || !strings.Contains(msgs, "pod worker-0 is Ready now; not deleted") {
		t.Errorf("progress messages:\n%s", msgs)
	}
}

func TestUndoForceRefusesForeignPod(t *testing.T) {
	objs := workerHistory()
	other := statefulSet("other", "img:1", 1, "x", nil)
	objs = append(objs, stsPod(other, 0, "x", false, "CrashLoopBackOff"))
	f := newFixture(t, objs, nil)
	res, err := f.set.Execute(context.Background(), rollbackPlan("StatefulSet", "worker", 1, "other-0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Targets[0]; tr.Outcome != plan.PhaseFailed || !strings.Contains(tr.Error, "which this plan does not name") {
		t.Errorf("result = %+v, want a refusal", tr)
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Get(context.Background(), "other-0", metav1.GetOptions{}); err != nil {
		t.Errorf("foreign pod deleted: %v", err)
	}
}

// undo --force on a set whose template is already back at the good revision
// (a forced-rollback situation): the rollback is skipped, the stuck pod is
// deleted, and that is the change the rollout follows.
func TestUndoForceOnAlreadyRolledBackSet(t *testing.T) {
	objs := workerHistory()
	sts := objs[0].(*appsv1.StatefulSet)
	objs = append(objs, stsPod(sts, 1, "worker-3-bad", false, "CrashLoopBackOff"))
	f := newFixture(t, objs, nil)
	var log progressLog
	res, err := f.set.Execute(context.Background(), rollbackPlan("StatefulSet", "worker", 2, "worker-1"), log.report)
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.Targets[0]; tr.Outcome != plan.PhaseChanged {
		t.Fatalf("result = %+v, want changed (a pod was deleted)", tr)
	}
	if len(patchActions(f)) != 0 {
		t.Errorf("the set was patched although it already runs revision 2")
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Get(context.Background(), "worker-1", metav1.GetOptions{}); err == nil {
		t.Errorf("stuck pod worker-1 still exists")
	}
	var msgs []string
	for _, p := range log.snapshot() {
		msgs = append(msgs, p.Message)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "skipped rollback (current template already matches revision 2)") {
		t.Errorf("progress messages %q lack kubectl's skip message", msgs)
	}
}
