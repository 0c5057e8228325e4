package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/plan"
)

// The kubectl oracle: the same workload exists twice, in two namespaces with
// the same history (so even the ReplicaSet and ControllerRevision names,
// which hash the pod template, agree). kubectl from the same build as the
// API server rolls one back; deploybot's rollback rolls the other back. After
// the controllers settle, everything the rollback touches must be equal.

const (
	oracleEnv  = "oracle"
	oracleName = "web"
	imageRepo  = "registry.example/packit/web"
)

var oracleImages = []string{imageRepo + ":v1", imageRepo + ":v2", imageRepo + ":v3"}

// changeCause is what `kubectl ... --record` used to write; history shows it.
func changeCause(image string) string { return "kubectl set image " + oracleName + " " + image }

// rollbackStep is one undo done both ways, and what it must lead to.
type rollbackStep struct {
	name       string
	toRevision int64  // deploybot's Target.ToRevision; kubectl's --to-revision
	wantImage  string // the template image afterwards
	wantRev    int64  // the workload's revision number afterwards
	// wantHistory are the revision numbers `rollout history` lists afterwards.
	wantHistory []int64
}

func TestRollbackMatchesKubectl(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)

	// v1, v2, v3 are revisions 1, 2, 3. Undo to the previous revision brings
	// v2 back as revision 4; --to-revision=1 brings v1 back as revision 5.
	steps := []rollbackStep{
		{name: "previous", toRevision: 0, wantImage: oracleImages[1], wantRev: 4, wantHistory: []int64{1, 3, 4}},
		{name: "to-revision=1", toRevision: 1, wantImage: oracleImages[0], wantRev: 5, wantHistory: []int64{3, 4, 5}},
	}

	t.Run("deployment", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 3*time.Minute)
		kubectlNS, botNS := "undo-deploy-kubectl", "undo-deploy-deploybot"
		createNamespaces(ctx, t, cp, kubectlNS, botNS)
		admin := clientFor(t, cp.AdminConfig())
		set := oracleSet(t, cp, botNS)

		for _, ns := range []string{kubectlNS, botNS} {
			createOracleDeployment(ctx, t, admin, ns)
		}
		for i, img := range oracleImages {
			if i > 0 {
				for _, ns := range []string{kubectlNS, botNS} {
					setDeploymentImage(ctx, t, admin, ns, img)
				}
			}
			for _, ns := range []string{kubectlNS, botNS} {
				waitDeploymentSettled(ctx, t, admin, ns, int64(i+1), img)
			}
		}
		compareDeployments(ctx, t, admin, cp, kubectlNS, botNS)

		for _, step := range steps {
			t.Logf("undo %s", step.name)
			kubectlUndo(ctx, t, cp, kubectlNS, "deployment/"+oracleName, step.toRevision)
			p := rollbackPlan(botNS, plan.KindDeployment, step.toRevision)
			botUndo(ctx, t, set, p)
			for _, ns := range []string{kubectlNS, botNS} {
				waitDeploymentSettled(ctx, t, admin, ns, step.wantRev, step.wantImage)
			}
			got := compareDeployments(ctx, t, admin, cp, kubectlNS, botNS)
			if d := got.Annotations[cluster.ChangeCauseAnnotation]; d != changeCause(step.wantImage) {
				t.Errorf("after undo %s: change-cause %q, want %q (copied from the restored ReplicaSet)", step.name, d, changeCause(step.wantImage))
			}
			if nums := revisionNumbers(got.History); !reflect.DeepEqual(nums, step.wantHistory) {
				t.Errorf("after undo %s: history %v, want %v", step.name, nums, step.wantHistory)
			}
		}
	})

	t.Run("statefulset", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 3*time.Minute)
		kubectlNS, botNS := "undo-sts-kubectl", "undo-sts-deploybot"
		createNamespaces(ctx, t, cp, kubectlNS, botNS)
		admin := clientFor(t, cp.AdminConfig())
		set := oracleSet(t, cp, botNS)

		for _, ns := range []string{kubectlNS, botNS} {
			createOracleStatefulSet(ctx, t, admin, ns)
		}
		for i, img := range oracleImages {
			if i > 0 {
				for _, ns := range []string{kubectlNS, botNS} {
					setStatefulSetImage(ctx, t, admin, ns, img)
				}
			}
			for _, ns := range []string{kubectlNS, botNS} {
				waitStatefulSetSettled(ctx, t, admin, ns, int64(i+1), img)
			}
		}
		compareStatefulSets(ctx, t, admin, cp, kubectlNS, botNS)

		for _, step := range steps {
			t.Logf("undo %s", step.name)
			kubectlUndo(ctx, t, cp, kubectlNS, "statefulset/"+oracleName, step.toRevision)
			p := rollbackPlan(botNS, plan.KindStatefulSet, step.toRevision)
			botUndo(ctx, t, set, p)
			for _, ns := range []string{kubectlNS, botNS} {
				waitStatefulSetSettled(ctx, t, admin, ns, step.wantRev, step.wantImage)
			}
			got := compareStatefulSets(ctx, t, admin, cp, kubectlNS, botNS)
			if nums := revisionNumbers(got.History); !reflect.DeepEqual(nums, step.wantHistory) {
				t.Errorf("after undo %s: history %v, want %v", step.name, nums, step.wantHistory)
			}
		}
	})
}

// oracleSet is a cluster.Set whose one environment is ns, as admin: this
// test is about what a rollback does, the access test about who may do it.
func oracleSet(t *testing.T, cp *controlplane.ControlPlane, ns string) *cluster.Set {
	t.Helper()
	env, err := cluster.Connect(cp.AdminConfig(), ns)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.NewSet(map[string]cluster.EnvClient{oracleEnv: env})
}

func rollbackPlan(ns, kind string, toRevision int64) plan.Plan {
	p := plan.Plan{
		Action:    plan.ActionRollback,
		Env:       oracleEnv,
		Namespace: ns,
		Targets: []plan.Target{{
			Service:    oracleName,
			Workloads:  []plan.WorkloadRef{{Kind: kind, Name: oracleName}},
			ToRevision: toRevision,
		}},
	}
	p.Access = plan.AccessFor(p)
	return p
}

func kubectlUndo(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, ns, what string, toRevision int64) {
	t.Helper()
	args := []string{"-n", ns, "rollout", "undo", what}
	if toRevision != 0 {
		args = append(args, "--to-revision="+strconv.FormatInt(toRevision, 10))
	}
	out, err := cp.Kubectl(ctx, args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rolled back") {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// botUndo executes the rollback Plan and follows it until it settles.
func botUndo(ctx context.Context, t *testing.T, set *cluster.Set, p plan.Plan) {
	t.Helper()
	res, err := set.Execute(ctx, p, nil)
	if err != nil {
		t.Fatalf("executing %s: %v", p.Action, err)
	}
	if len(res.Targets) != 1 || res.Targets[0].Outcome != plan.PhaseChanged {
		t.Fatalf("executing undo (to revision %d): result %+v, want one changed target", p.Targets[0].ToRevision, res.Targets)
	}
	rollouts := set.Follow(ctx, p, res, time.Minute, nil)
	if len(rollouts) != 1 || rollouts[0].Outcome != plan.PhaseSettled {
		t.Fatalf("following undo (to revision %d): %+v, want one settled rollout", p.Targets[0].ToRevision, rollouts)
	}
}

func podTemplate(name, image string) corev1.PodTemplateSpec {
	labels := map[string]string{"app": name}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"example.com/owner": "packit"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  name,
				Image: image,
				Env:   []corev1.EnvVar{{Name: "DEPLOYMENT", Value: "prod"}},
			}},
		},
	}
}

func createOracleDeployment(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        oracleName,
			Namespace:   ns,
			Annotations: map[string]string{cluster.ChangeCauseAnnotation: changeCause(oracleImages[0])},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": oracleName}},
			Template: podTemplate(oracleName, oracleImages[0]),
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment %s/%s: %v", ns, oracleName, err)
	}
}

// setDeploymentImage does what `kubectl set image --record` did: a new image
// and a change-cause in one update.
func setDeploymentImage(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, oracleName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		d.Annotations[cluster.ChangeCauseAnnotation] = changeCause(image)
		_, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("setting the image of deployment %s/%s: %v", ns, oracleName, err)
	}
}

// waitDeploymentSettled waits until the deployment controller has rolled the
// Deployment out at revision rev with image, and no old pod is left.
func waitDeploymentSettled(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, rev int64, image string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("deployment %s/%s settled at revision %d", ns, oracleName, rev), func() (bool, string) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, oracleName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		detail := fmt.Sprintf("generation %d observed %d, revision %s, image %s, status %+v",
			d.Generation, st.ObservedGeneration, d.Annotations["deployment.kubernetes.io/revision"], d.Spec.Template.Spec.Containers[0].Image, st)
		want := *d.Spec.Replicas
		return st.ObservedGeneration >= d.Generation &&
			d.Annotations["deployment.kubernetes.io/revision"] == strconv.FormatInt(rev, 10) &&
			d.Spec.Template.Spec.Containers[0].Image == image &&
			st.UpdatedReplicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want && st.Replicas == want, detail
	})
}

func createOracleStatefulSet(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:        oracleName,
			Namespace:   ns,
			Annotations: map[string]string{cluster.ChangeCauseAnnotation: changeCause(oracleImages[0])},
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    int32p(2),
			ServiceName: oracleName,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": oracleName}},
			Template:    podTemplate(oracleName, oracleImages[0]),
		},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating statefulset %s/%s: %v", ns, oracleName, err)
	}
}

func setStatefulSetImage(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, oracleName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Template.Spec.Containers[0].Image = image
		s.Annotations[cluster.ChangeCauseAnnotation] = changeCause(image)
		_, err = cs.AppsV1().StatefulSets(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("setting the image of statefulset %s/%s: %v", ns, oracleName, err)
	}
}

// waitStatefulSetSettled waits until the StatefulSet's update revision is
// revision rev, every pod runs it and is Ready.
func waitStatefulSetSettled(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, rev int64, image string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("statefulset %s/%s settled at revision %d", ns, oracleName, rev), func() (bool, string) {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, oracleName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := s.Status
		detail := fmt.Sprintf("generation %d, image %s, status %+v", s.Generation, s.Spec.Template.Spec.Containers[0].Image, st)
		want := *s.Spec.Replicas
		if st.ObservedGeneration < s.Generation || st.UpdateRevision == "" || st.CurrentRevision != st.UpdateRevision ||
			st.UpdatedReplicas != want || st.ReadyReplicas != want || s.Spec.Template.Spec.Containers[0].Image != image {
			return false, detail
		}
		cr, err := cs.AppsV1().ControllerRevisions(ns).Get(ctx, st.UpdateRevision, metav1.GetOptions{})
		if err != nil {
			return false, detail + ": " + err.Error()
		}
		return cr.Revision == rev, fmt.Sprintf("%s; update revision %s is number %d", detail, cr.Name, cr.Revision)
	})
}

// workloadSnapshot is everything a rollback decides, for comparing the
// kubectl side with deploybot's: names and template hashes included, the
// namespace and server-set identity (UIDs, times) left out.
type workloadSnapshot struct {
	Annotations map[string]string      `json:"annotations"`
	Template    corev1.PodTemplateSpec `json:"template"`
	// Owned are the ReplicaSets or ControllerRevisions, by name.
	Owned []ownedRevision `json:"owned"`
	// UpdateRevision is a StatefulSet's status.updateRevision.
	UpdateRevision string `json:"updateRevision,omitempty"`
	// History is what deploybot's Set.Revisions reads back.
	History []revisionView `json:"history"`
	// KubectlHistory is `kubectl rollout history` (revision and change-cause).
	KubectlHistory []string `json:"kubectlHistory"`
}

type ownedRevision struct {
	Name        string                  `json:"name"`
	Revision    string                  `json:"revision"`
	History     string                  `json:"revisionHistory,omitempty"`
	ChangeCause string                  `json:"changeCause,omitempty"`
	Replicas    int32                   `json:"replicas"`
	Template    *corev1.PodTemplateSpec `json:"template,omitempty"`
	Data        string                  `json:"data,omitempty"`
}

// revisionView is a plan.Revision without its creation time.
type revisionView struct {
	Number      int64
	Images      map[string]string
	ChangeCause string
	Current     bool
}

func revisionNumbers(h []revisionView) []int64 {
	var out []int64
	for _, r := range h {
		out = append(out, r.Number)
	}
	return out
}

func deploymentSnapshot(ctx context.Context, t *testing.T, cs kubernetes.Interface, cp *controlplane.ControlPlane, ns string) workloadSnapshot {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, oracleName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading deployment %s/%s: %v", ns, oracleName, err)
	}
	snap := workloadSnapshot{Annotations: d.Annotations, Template: d.Spec.Template}
	rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + oracleName})
	if err != nil {
		t.Fatalf("listing replica sets in %s: %v", ns, err)
	}
	for _, rs := range rss.Items {
		snap.Owned = append(snap.Owned, ownedRevision{
			Name:        rs.Name,
			Revision:    rs.Annotations["deployment.kubernetes.io/revision"],
			History:     rs.Annotations["deployment.kubernetes.io/revision-history"],
			ChangeCause: rs.Annotations[cluster.ChangeCauseAnnotation],
			Replicas:    *rs.Spec.Replicas,
			Template:    &rs.Spec.Template,
		})
	}
	sort.Slice(snap.Owned, func(i, j int) bool { return snap.Owned[i].Name < snap.Owned[j].Name })
	snap.History = botHistory(ctx, t, cp, ns, plan.KindDeployment)
	snap.KubectlHistory = kubectlHistory(ctx, t, cp, ns, "deployment/"+oracleName)
	return snap
}

func statefulSetSnapshot(ctx context.Context, t *testing.T, cs kubernetes.Interface, cp *controlplane.ControlPlane, ns string) workloadSnapshot {
	t.Helper()
	s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, oracleName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading statefulset %s/%s: %v", ns, oracleName, err)
	}
	snap := workloadSnapshot{Annotations: s.Annotations, Template: s.Spec.Template, UpdateRevision: s.Status.UpdateRevision}
	crs, err := cs.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + oracleName})
	if err != nil {
		t.Fatalf("listing controller revisions in %s: %v", ns, err)
	}
	for _, cr := range crs.Items {
		snap.Owned = append(snap.Owned, ownedRevision{
			Name:        cr.Name,
			Revision:    strconv.FormatInt(cr.Revision, 10),
			ChangeCause: cr.Annotations[cluster.ChangeCauseAnnotation],
			Data:        string(cr.Data.Raw),
		})
	}
	sort.Slice(snap.Owned, func(i, j int) bool { return snap.Owned[i].Name < snap.Owned[j].Name })
	snap.History = botHistory(ctx, t, cp, ns, plan.KindStatefulSet)
	snap.KubectlHistory = kubectlHistory(ctx, t, cp, ns, "statefulset/"+oracleName)
	return snap
}

// botHistory reads the history with deploybot's Set.Revisions through an
// environment pointing at ns (the kubectl side too: deploybot must read a
// history kubectl made the same way).
func botHistory(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, ns, kind string) []revisionView {
	t.Helper()
	revs, err := oracleSet(t, cp, ns).Revisions(ctx, oracleEnv, kind, oracleName)
	if err != nil {
		t.Fatalf("reading the history of %s %s/%s: %v", kind, ns, oracleName, err)
	}
	var out []revisionView
	for _, r := range revs {
		out = append(out, revisionView{Number: r.Number, Images: r.Images, ChangeCause: r.ChangeCause, Current: r.Current})
	}
	return out
}

// kubectlHistory is `kubectl rollout history` as "N change-cause" lines.
func kubectlHistory(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, ns, what string) []string {
	t.Helper()
	out, err := cp.Kubectl(ctx, "-n", ns, "rollout", "history", what).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl rollout history %s: %v\n%s", what, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[0], 10, 64); err != nil {
			continue // the title and the header
		}
		lines = append(lines, strings.Join(f, " "))
	}
	return lines
}

// compareDeployments fails the test if the two namespaces' Deployments
// differ in anything a rollback decides, and checks deploybot's history
// reading against kubectl's. It returns the deploybot side.
func compareDeployments(ctx context.Context, t *testing.T, cs kubernetes.Interface, cp *controlplane.ControlPlane, kubectlNS, botNS string) workloadSnapshot {
	t.Helper()
	want := deploymentSnapshot(ctx, t, cs, cp, kubectlNS)
	got := deploymentSnapshot(ctx, t, cs, cp, botNS)
	compareSnapshots(t, want, got)
	return got
}

func compareStatefulSets(ctx context.Context, t *testing.T, cs kubernetes.Interface, cp *controlplane.ControlPlane, kubectlNS, botNS string) workloadSnapshot {
	t.Helper()
	want := statefulSetSnapshot(ctx, t, cs, cp, kubectlNS)
	got := statefulSetSnapshot(ctx, t, cs, cp, botNS)
	compareSnapshots(t, want, got)
	return got
}

func compareSnapshots(t *testing.T, kubectl, bot workloadSnapshot) {
	t.Helper()
	a, _ := json.MarshalIndent(kubectl, "", "  ")
	b, _ := json.MarshalIndent(bot, "", "  ")
	if string(a) != string(b) {
		t.Fatalf("deploybot's rollback differs from kubectl's\nkubectl side:\n%s\ndeploybot side:\n%s", a, b)
	}
	// deploybot's reading of the history must be kubectl's: the same
	// revision numbers with the same change-causes, oldest first.
	var fromBot []string
	for _, r := range bot.History {
		line := strconv.FormatInt(r.Number, 10)
		if r.ChangeCause != "" {
			line += " " + r.ChangeCause
		} else {
			line += " <none>"
		}
		fromBot = append(fromBot, line)
	}
	if !reflect.DeepEqual(fromBot, bot.KubectlHistory) {
		t.Fatalf("Set.Revisions reads %q, kubectl rollout history shows %q", fromBot, bot.KubectlHistory)
	}
	t.Logf("%s: rollout history (kubectl and deploybot agree): %q; current template image %s",
		bot.Annotations[cluster.ChangeCauseAnnotation], bot.KubectlHistory, bot.Template.Spec.Containers[0].Image)
	current := 0
	for _, r := range bot.History {
		if r.Current {
			current++
		}
	}
	if current != 1 {
		t.Fatalf("Set.Revisions marks %d revisions current, want 1: %+v", current, bot.History)
	}
}
