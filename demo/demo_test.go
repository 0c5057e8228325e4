package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/plan"
	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// packitConfig is modelled on examples/packit.yaml.
func packitConfig() *config.Config {
	cfg := &config.Config{
		Environments: []config.Environment{
			{Name: "stg", Namespace: "packit--stg", Tag: "stg", Scheduled: true, Confirm: true},
			{Name: "prod", Namespace: "packit--prod", Tag: "prod", Confirm: true, Approvals: config.Approvals{Count: 1}},
		},
		Services: []config.Service{
			{Name: "packit-service", Aliases: []string{"service"}, Repository: "quay.io/packit/packit-service",
				Workloads: []config.Workload{{Kind: "Deployment", Name: "packit-service"}}},
			{Name: "packit-worker", Aliases: []string{"worker"}, Repository: "quay.io/packit/packit-worker",
				Workloads: []config.Workload{
					{Kind: "StatefulSet", Name: "packit-worker-short-running"},
					{Kind: "StatefulSet", Name: "packit-worker-long-running"},
					{Kind: "Deployment", Name: "packit-service-beat"},
				}},
			{Name: "packit-service-fedmsg", Aliases: []string{"fedmsg"}, Repository: "quay.io/packit/packit-service-fedmsg"},
			{Name: "packit-dashboard", Aliases: []string{"dashboard"}, Repository: "quay.io/packit/dashboard"},
			{Name: "tokman", Repository: "quay.io/packit/tokman"},
		},
	}
	cfg.SetDefaults()
	return cfg
}

const (
	prodNS     = "packit--prod"
	workerRepo = "quay.io/packit/packit-worker"
	svcRepo    = "quay.io/packit/packit-service"
)

// testTick is fast enough for quick tests and slow enough for -race.
const testTick = 15 * time.Millisecond

func startDemo(t *testing.T, opts ...Option) (*Cluster, context.Context) {
	t.Helper()
	c, err := New(packitConfig(), append([]Option{WithTick(testTick), WithErrorHandler(func(err error) { t.Logf("controller error: %v", err) })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Stop() })
	return c, ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ticks returns how many times env's controllers have run.
func (c *Cluster) ticks(env string) int64 {
	fc := c.envs[env]
	fc.stepMu.Lock()
	defer fc.stepMu.Unlock()
	return fc.ctrl.ticks
}

// waitTicks waits until env's controllers ran n more times.
func waitTicks(t *testing.T, c *Cluster, env string, n int64) {
	t.Helper()
	start := c.ticks(env)
	waitFor(t, fmt.Sprintf("%d ticks", n), func() (bool, string) {
		return c.ticks(env) >= start+n, fmt.Sprint(c.ticks(env) - start)
	})
}

func podsOf(t *testing.T, c *Cluster, env, ns, workload string) []corev1.Pod {
	t.Helper()
	pods, err := c.Kube(env).CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "component=" + workload})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// workloadOnImage reports whether workload's spec, status and every pod are
// settled on image: rolled out, observed and Ready.
func workloadOnImage(t *testing.T, c *Cluster, env, ns, kind, name, image string) (bool, string) {
	t.Helper()
	ctx := context.Background()
	var spec string
	var settled bool
	var want int
	switch kind {
	case "Deployment":
		d, err := c.Kube(env).AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		r := *d.Spec.Replicas
		spec, want = d.Spec.Template.Spec.Containers[0].Image, int(r)
		settled = d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == r && d.Status.Replicas == r && d.Status.AvailableReplicas == r
	case "StatefulSet":
		s, err := c.Kube(env).AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		r := *s.Spec.Replicas
		spec, want = s.Spec.Template.Spec.Containers[0].Image, int(r)
		settled = s.Status.ObservedGeneration >= s.Generation && s.Status.CurrentRevision == s.Status.UpdateRevision &&
			s.Status.UpdatedReplicas == r && s.Status.ReadyReplicas == r && s.Status.Replicas == r
	}
	pods := podsOf(t, c, env, ns, name)
	state := fmt.Sprintf("%s %s: spec image %s settled %v, %d pods:", kind, name, spec, settled, len(pods))
	ok := spec == image && settled && len(pods) == want
	for _, p := range pods {
		state += fmt.Sprintf(" %s(%s ready=%v)", p.Name, p.Spec.Containers[0].Image, podReady(&p))
		if p.Spec.Containers[0].Image != image || !podReady(&p) {
			ok = false
		}
	}
	return ok, state
}

func TestImportRollsTriggeredWorkloadsAndSettles(t *testing.T) {
	c, ctx := startDemo(t)
	images := c.Images("prod").ImageV1()
	is, err := images.ImageStreams(prodNS).Get(ctx, "packit-worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// what `oc import-image packit-worker:prod` sends
	isi := &imagev1.ImageStreamImport{
		ObjectMeta: metav1.ObjectMeta{Name: "packit-worker", ResourceVersion: is.ResourceVersion},
		Spec: imagev1.ImageStreamImportSpec{Import: true, Images: []imagev1.ImageImportSpec{{
			From:            corev1.ObjectReference{Kind: "DockerImage", Name: is.Spec.Tags[0].From.Name},
			To:              &corev1.LocalObjectReference{Name: "prod"},
			ImportPolicy:    imagev1.TagImportPolicy{Scheduled: is.Spec.Tags[0].ImportPolicy.Scheduled, ImportMode: imagev1.ImportModeLegacy},
			ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
		}}},
	}
	got, err := images.ImageStreamImports(prodNS).Create(ctx, isi, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newDigest := fakeopenshift.Digest(workerRepo, "prod", historyLen+1)
	if st := got.Status.Images[0]; st.Status.Status != metav1.StatusSuccess || st.Image.Name != newDigest {
		t.Fatalf("import status = %+v, want Success with the newer digest", st)
	}
	want := workerRepo + "@" + newDigest
	for _, w := range []struct{ kind, name string }{
		{"StatefulSet", "packit-worker-short-running"},
		{"StatefulSet", "packit-worker-long-running"},
		{"Deployment", "packit-service-beat"},
	} {
		waitFor(t, w.name+" on the imported image", func() (bool, string) {
			return workloadOnImage(t, c, "prod", prodNS, w.kind, w.name, want)
		})
	}
	// the next revision was recorded where `rollout history` reads it
	rss, _ := c.Kube("prod").AppsV1().ReplicaSets(prodNS).List(ctx, metav1.ListOptions{LabelSelector: "component=packit-service-beat"})
	revs := map[string]string{}
	for _, rs := range rss.Items {
		revs[rs.Annotations[revisionAnnotation]] = rs.Spec.Template.Spec.Containers[0].Image
	}
	if revs[fmt.Sprint(historyLen+1)] != want {
		t.Errorf("beat ReplicaSet revisions = %v, want revision %d on the new image", revs, historyLen+1)
	}
	// a service that was not imported did not move
	ok, state := workloadOnImage(t, c, "prod", prodNS, "Deployment", "packit-service", svcRepo+"@"+fakeopenshift.Digest(svcRepo, "prod", historyLen))
	if !ok {
		t.Errorf("packit-service changed: %s", state)
	}
}

// pinTag does what `oc tag --source=docker REF ns/IS:TAG` does.
func pinTag(t *testing.T, c *Cluster, env, ns, istag, ref string, scheduled bool) {
	t.Helper()
	zero := int64(0)
	_, tag, _ := strings.Cut(istag, ":")
	ist := &imagev1.ImageStreamTag{
		ObjectMeta: metav1.ObjectMeta{Name: istag, Namespace: ns},
		Tag: &imagev1.TagReference{
			Name: tag, From: &corev1.ObjectReference{Kind: "DockerImage", Name: ref}, Generation: &zero,
			ImportPolicy: imagev1.TagImportPolicy{Scheduled: scheduled}, ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
		},
	}
	if _, err := c.Images(env).ImageV1().ImageStreamTags(ns).Update(context.Background(), ist, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pinning %s to %s: %v", istag, ref, err)
	}
}

func waitingReason(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil {
			return cs.State.Waiting.Reason
		}
	}
	return ""
}

func TestBrokenImageStucksOrderedReadyUntilPodDeleted(t *testing.T) {
	c, ctx := startDemo(t)
	kube := c.Kube("prod")
	const set = "packit-worker-short-running"
	before, err := kube.AppsV1().StatefulSets(prodNS).Get(ctx, set, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	goodRevision := before.Status.CurrentRevision
	broken := c.BrokenDigest("packit-worker", "prod")
	good := workerRepo + "@" + fakeopenshift.Digest(workerRepo, "prod", historyLen)

	pinTag(t, c, "prod", prodNS, "packit-worker:prod", workerRepo+"@"+broken, false)

	var stuck corev1.Pod
	waitFor(t, "the highest ordinal to crash on the broken revision", func() (bool, string) {
		s, _ := kube.AppsV1().StatefulSets(prodNS).Get(ctx, set, metav1.GetOptions{})
		p1, err := kube.CoreV1().Pods(prodNS).Get(ctx, set+"-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		stuck = *p1
		return s.Status.UpdateRevision != goodRevision && podRevision(p1) == s.Status.UpdateRevision && waitingReason(p1) == "CrashLoopBackOff",
			fmt.Sprintf("update %s, pod-1 revision %s waiting %q", s.Status.UpdateRevision, podRevision(p1), waitingReason(p1))
	})
	p0, _ := kube.CoreV1().Pods(prodNS).Get(ctx, set+"-0", metav1.GetOptions{})
	if podRevision(p0) != goodRevision || !podReady(p0) {
		t.Fatalf("pod-0 revision %s ready %v: OrderedReady must not touch it while pod-1 is not Ready", podRevision(p0), podReady(p0))
	}

	// revert the tag: the template goes back, the good ControllerRevision is
	// reused, but the controller will not replace the crashing pod by itself
	pinTag(t, c, "prod", prodNS, "packit-worker:prod", good, false)
	waitFor(t, "the set to observe the reverted template", func() (bool, string) {
		s, _ := kube.AppsV1().StatefulSets(prodNS).Get(ctx, set, metav1.GetOptions{})
		return s.Spec.Template.Spec.Containers[0].Image == good && s.Status.ObservedGeneration == s.Generation && s.Status.UpdateRevision == goodRevision,
			fmt.Sprintf("image %s observed %d/%d update %s", s.Spec.Template.Spec.Containers[0].Image, s.Status.ObservedGeneration, s.Generation, s.Status.UpdateRevision)
	})
	waitTicks(t, c, "prod", 10)
	still, err := kube.CoreV1().Pods(prodNS).Get(ctx, set+"-1", metav1.GetOptions{})
	if err != nil || still.UID != stuck.UID || waitingReason(still) != "CrashLoopBackOff" {
		t.Fatalf("pod-1 after revert: %v uid %v waiting %q — want the same crashing pod (forced rollback needs a delete)", err, still.UID, waitingReason(still))
	}

	if err := kube.CoreV1().Pods(prodNS).Delete(ctx, set+"-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the set to recover after deleting the stuck pod", func() (bool, string) {
		return workloadOnImage(t, c, "prod", prodNS, "StatefulSet", set, good)
	})
	s, _ := kube.AppsV1().StatefulSets(prodNS).Get(ctx, set, metav1.GetOptions{})
	if s.Status.CurrentRevision != goodRevision {
		t.Errorf("current revision %s, want the reused %s", s.Status.CurrentRevision, goodRevision)
	}
}

func TestRolloutUndoOnTriggeredDeploymentIsReverted(t *testing.T) {
	c, ctx := startDemo(t)
	kube := c.Kube("prod")
	d, err := kube.AppsV1().Deployments(prodNS).Get(ctx, "packit-service", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	current := d.Spec.Template.Spec.Containers[0].Image

	// kubectl rollout undo (to the previous revision, 2): the ReplicaSet's template
	// (without pod-template-hash) and annotations in one JSON patch
	rss, err := kube.AppsV1().ReplicaSets(prodNS).List(ctx, metav1.ListOptions{LabelSelector: "component=packit-service"})
	if err != nil {
		t.Fatal(err)
	}
	var target *appsv1.ReplicaSet
	for i := range rss.Items {
		if rss.Items[i].Annotations[revisionAnnotation] == fmt.Sprint(historyLen-1) {
			target = &rss.Items[i]
		}
	}
	if target == nil {
		t.Fatal("no previous revision")
	}
	tmpl := target.Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	annotations := map[string]string{}
	for k, v := range d.Annotations {
		if annotationsToSkip[k] {
			annotations[k] = v
		}
	}
	for k, v := range target.Annotations {
		if !annotationsToSkip[k] {
			annotations[k] = v
		}
	}
	patch, _ := json.Marshal([]map[string]any{
		{"op": "replace", "path": "/spec/template", "value": tmpl},
		{"op": "replace", "path": "/metadata/annotations", "value": annotations},
	})
	undone, err := kube.AppsV1().Deployments(prodNS).Patch(ctx, "packit-service", types.JSONPatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := undone.Spec.Template.Spec.Containers[0].Image; got != target.Spec.Template.Spec.Containers[0].Image || undone.Generation <= d.Generation {
		t.Fatalf("undo patch gave image %s generation %d", got, undone.Generation)
	}

	waitFor(t, "the trigger controller to put the tag's image back and the rollout to settle", func() (bool, string) {
		return workloadOnImage(t, c, "prod", prodNS, "Deployment", "packit-service", current)
	})
	final, _ := kube.AppsV1().Deployments(prodNS).Get(ctx, "packit-service", metav1.GetOptions{})
	if final.Generation <= undone.Generation {
		t.Errorf("generation %d: want the trigger's update after the undo (%d)", final.Generation, undone.Generation)
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	c, ctx := startDemo(t, WithClock(now))
	kube := c.Kube("prod")
	pinTag(t, c, "prod", prodNS, "packit-service:prod", svcRepo+"@"+c.BrokenDigest("packit-service", "prod"), false)
	waitFor(t, "the new pod to crash", func() (bool, string) {
		for _, p := range podsOf(t, c, "prod", prodNS, "packit-service") {
			if waitingReason(&p) == "CrashLoopBackOff" {
				return true, ""
			}
		}
		return false, "no crashing pod"
	})
	d, _ := kube.AppsV1().Deployments(prodNS).Get(ctx, "packit-service", metav1.GetOptions{})
	if c := deploymentCondition(d.Status, appsv1.DeploymentProgressing); c == nil || c.Status != corev1.ConditionTrue {
		t.Fatalf("progressing before the deadline: %+v", c)
	}
	// Time passes without the new pod ever becoming Ready; keep the clock
	// moving so that the deadline passes whenever the last progress was seen.
	waitFor(t, "ProgressDeadlineExceeded", func() (bool, string) {
		offset.Add(int64(30 * time.Second))
		d, _ := kube.AppsV1().Deployments(prodNS).Get(ctx, "packit-service", metav1.GetOptions{})
		c := deploymentCondition(d.Status, appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == reasonTimedOut, fmt.Sprintf("%+v", c)
	})
}

func TestSeededState(t *testing.T) {
	c, err := New(packitConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, env := range packitConfig().Environments {
		for _, svc := range packitConfig().Services {
			t.Run(env.Name+"/"+svc.Name, func(t *testing.T) {
				d := func(n int) string { return fakeopenshift.Digest(svc.Repository, env.Tag, n) }
				is, err := c.Images(env.Name).ImageV1().ImageStreams(env.Namespace).Get(ctx, svc.ImageStream, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				tag := is.Spec.Tags[0]
				if tag.From.Name != svc.Repository+":"+env.Tag || tag.ImportPolicy.Scheduled != env.Scheduled || !is.Spec.LookupPolicy.Local {
					t.Errorf("spec tag %+v lookup %v", tag, is.Spec.LookupPolicy)
				}
				var history []string
				for _, it := range is.Status.Tags[0].Items {
					history = append(history, it.Image)
				}
				if fmt.Sprint(history) != fmt.Sprint([]string{d(3), d(2), d(1)}) {
					t.Errorf("history = %v", history)
				}
				if got, _ := c.Registry().Lookup(svc.Repository + ":" + env.Tag); got != d(4) {
					t.Errorf("registry tag = %s, want the not yet imported #4", got)
				}
				broken := c.BrokenDigest(svc.Name, env.Name)
				wantBroken := svc.Name == "packit-worker" || svc.Name == "packit-service"
				if (broken != "") != wantBroken || broken == d(historyLen) || (wantBroken && broken != d(brokenN)) {
					t.Errorf("broken digest = %q", broken)
				}
				for _, w := range svc.Workloads {
					checkSeededWorkload(t, c, env, svc, w, d)
				}
			})
		}
	}
}

func checkSeededWorkload(t *testing.T, c *Cluster, env config.Environment, svc config.Service, w config.Workload, d func(int) string) {
	t.Helper()
	ctx := context.Background()
	kube := c.Kube(env.Name)
	ok, state := workloadOnImage(t, c, env.Name, env.Namespace, w.Kind, w.Name, svc.Repository+"@"+d(3))
	if !ok {
		t.Errorf("seeded %s not settled on #3: %s", w.Name, state)
	}
	switch w.Kind {
	case "Deployment":
		dep, _ := kube.AppsV1().Deployments(env.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if _, err := fakeopenshift.ParseTriggers(dep.Annotations[triggerKey]); err != nil {
			t.Errorf("trigger annotation: %v", err)
		}
		rss, _ := kube.AppsV1().ReplicaSets(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "component=" + w.Name})
		revs := map[string]string{}
		for _, rs := range rss.Items {
			if rs.Annotations[changeCauseAnnotation] == "" {
				t.Errorf("ReplicaSet %s has no change-cause", rs.Name)
			}
			revs[rs.Annotations[revisionAnnotation]] = rs.Spec.Template.Spec.Containers[0].Image
		}
		for n := 1; n <= historyLen; n++ {
			if revs[fmt.Sprint(n)] != svc.Repository+"@"+d(n) {
				t.Errorf("revision %d = %q", n, revs[fmt.Sprint(n)])
			}
		}
	case "StatefulSet":
		set, _ := kube.AppsV1().StatefulSets(env.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		crs, _ := kube.AppsV1().ControllerRevisions(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "component=" + w.Name})
		if len(crs.Items) != historyLen {
			t.Fatalf("%d ControllerRevisions", len(crs.Items))
		}
		for _, cr := range crs.Items {
			if !strings.Contains(string(cr.Data.Raw), `"$patch":"replace"`) || cr.Annotations[changeCauseAnnotation] == "" {
				t.Errorf("ControllerRevision %s data %s annotations %v", cr.Name, cr.Data.Raw, cr.Annotations)
			}
			if cr.Revision == historyLen && cr.Name != set.Status.CurrentRevision {
				t.Errorf("current revision %s is not the latest ControllerRevision %s", set.Status.CurrentRevision, cr.Name)
			}
		}
		if set.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement || *set.Spec.Replicas != 2 {
			t.Errorf("policy %s replicas %d", set.Spec.PodManagementPolicy, *set.Spec.Replicas)
		}
		for _, p := range podsOf(t, c, env.Name, env.Namespace, w.Name) {
			if podRevision(&p) != set.Status.CurrentRevision {
				t.Errorf("pod %s revision %s", p.Name, podRevision(&p))
			}
		}
	}
}

// TestSeededStateIsStable: a tick over the seeded cluster changes no spec —
// the controllers agree with the seeded history.
func TestSeededStateIsStable(t *testing.T) {
	c, err := New(packitConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, _ := c.Kube("prod").AppsV1().Deployments(prodNS).List(ctx, metav1.ListOptions{})
	for i := 1; i <= 3; i++ {
		if err := c.Step(ctx); err != nil {
			t.Fatal(err)
		}
		// every workload stays settled and every pod Ready, tick after tick
		for _, svc := range packitConfig().Services {
			for _, w := range svc.Workloads {
				image := svc.Repository + "@" + fakeopenshift.Digest(svc.Repository, "prod", historyLen)
				if ok, state := workloadOnImage(t, c, "prod", prodNS, w.Kind, w.Name, image); !ok {
					t.Errorf("after tick %d: %s", i, state)
				}
			}
		}
	}
	after, _ := c.Kube("prod").AppsV1().Deployments(prodNS).List(ctx, metav1.ListOptions{})
	gens := map[string]int64{}
	for _, d := range before.Items {
		gens[d.Name] = d.Generation
	}
	for _, d := range after.Items {
		if d.Generation != gens[d.Name] {
			t.Errorf("%s generation %d → %d", d.Name, gens[d.Name], d.Generation)
		}
	}
	crs, _ := c.Kube("prod").AppsV1().ControllerRevisions(prodNS).List(ctx, metav1.ListOptions{})
	rss, _ := c.Kube("prod").AppsV1().ReplicaSets(prodNS).List(ctx, metav1.ListOptions{})
	// 2 StatefulSets and 5 Deployments, historyLen revisions each
	if len(crs.Items) != 2*historyLen || len(rss.Items) != 5*historyLen {
		t.Errorf("%d ControllerRevisions, %d ReplicaSets after ticks", len(crs.Items), len(rss.Items))
	}
}

func TestDemoRBAC(t *testing.T) {
	c, err := New(packitConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, env, verb, group, resource string
		want                             bool
	}{
		{"alice", "stg", "create", imagev1.GroupName, "imagestreamimports", true},
		{"alice", "prod", "create", imagev1.GroupName, "imagestreamimports", true},
		{"alice", "prod", "delete", "", "pods", true},
		{"bob", "prod", "update", imagev1.GroupName, "imagestreamtags", true},
		{"bob", "prod", "patch", "apps", "deployments", true},
		{"bob", "stg", "update", imagev1.GroupName, "imagestreamtags", false},
		{"bob", "stg", "list", "apps", "statefulsets", true},
		{"carol", "prod", "get", imagev1.GroupName, "imagestreams", true},
		{"carol", "prod", "watch", "", "pods", true},
		{"carol", "prod", "create", imagev1.GroupName, "imagestreamimports", false},
		{"carol", "stg", "delete", "", "pods", false},
		{"mallory", "prod", "get", imagev1.GroupName, "imagestreams", false},
		// The bot itself, as scheduled imports run: the Helm chart's role.
		{BotUser, "prod", "get", imagev1.GroupName, "imagestreams", true},
		{BotUser, "prod", "create", imagev1.GroupName, "imagestreamimports", true},
		{BotUser, "stg", "create", imagev1.GroupName, "imagestreamimports", true},
		{BotUser, "prod", "update", imagev1.GroupName, "imagestreamtags", true},
		{BotUser, "prod", "patch", "apps", "deployments", true},
		{BotUser, "prod", "watch", "", "pods", true},
		{BotUser, "prod", "create", "authorization.k8s.io", "localsubjectaccessreviews", true},
		{BotUser, "prod", "delete", "apps", "deployments", false},
		{BotUser, "prod", "create", imagev1.GroupName, "imagestreams", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %s/%s in %s", tt.user, tt.verb, tt.group, tt.resource, tt.env), func(t *testing.T) {
			ns := map[string]string{"stg": "packit--stg", "prod": prodNS}[tt.env]
			review := &authorizationv1.LocalSubjectAccessReview{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns},
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               tt.user,
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: tt.verb, Group: tt.group, Resource: tt.resource},
				},
			}
			got, err := c.Kube(tt.env).AuthorizationV1().LocalSubjectAccessReviews(ns).Create(context.Background(), review, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != tt.want {
				t.Errorf("allowed = %v (%s), want %v", got.Status.Allowed, got.Status.Reason, tt.want)
			}
		})
	}
}

// TestScheduledImportAccess: the calls a scheduled import of every service
// makes pass the access check for the bot's identity in every environment,
// so the demo's schedule imports instead of failing on RBAC.
func TestScheduledImportAccess(t *testing.T) {
	cfg := packitConfig()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]kubeclient.Interface{}
	for name, ec := range c.EnvClients() {
		clients[name] = ec.Kube
	}
	checker := access.NewChecker(clients)
	for _, env := range cfg.Environments {
		t.Run(env.Name, func(t *testing.T) {
			p := plan.Plan{Action: plan.ActionImport, Env: env.Name, Namespace: env.Namespace}
			for _, s := range cfg.Services {
				p.Targets = append(p.Targets, plan.Target{Service: s.Name, Stream: s.Name, Tag: env.Tag,
					Workloads: []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: s.Name, Triggered: true}}})
			}
			denied, err := checker.Denied(context.Background(), env.Name, BotUser, nil, plan.AccessFor(p))
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range denied {
				t.Errorf("%s may not %s %s %s: %s", BotUser, d.Access.Verb, d.Access.Resource, d.Access.Name, d.Reason)
			}
		})
	}
}

// TestBotRoleIsTheChartsRole keeps the demo's bot role and the Helm chart's
// target role (templates/rbac-target.yaml) the same.
func TestBotRoleIsTheChartsRole(t *testing.T) {
	raw, err := os.ReadFile("../charts/deploybot/templates/rbac-target.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The Role's rules are plain YAML between "rules:" and the next document.
	text := string(raw)
	start := strings.Index(text, "\nrules:\n")
	end := strings.Index(text[start+1:], "\n---")
	if start < 0 || end < 0 {
		t.Fatal("no Role rules in rbac-target.yaml")
	}
	var role struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	if err := yaml.Unmarshal([]byte(text[start+1:start+1+end]), &role); err != nil {
		t.Fatal(err)
	}
	if got := botRules(); !reflect.DeepEqual(got, role.Rules) {
		t.Errorf("demo bot role:\n%+v\nchart role:\n%+v", got, role.Rules)
	}
}

// TestKubeletPullFailure drives the controllers with Step: a Deployment on
// an image the registry does not have ends up ImagePullBackOff.
func TestKubeletPullFailure(t *testing.T) {
	c, err := New(packitConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kube := c.Kube("prod")
	image := "quay.io/packit/nosuch@" + fakeopenshift.Digest("quay.io/packit/nosuch", "prod", 1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "nosuch", Namespace: prodNS},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: workloadLabels("nosuch")},
			Template: podTemplateFor("nosuch", image),
		},
	}
	if _, err := kube.AppsV1().Deployments(prodNS).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for i := 0; i < 6; i++ {
		if err := c.Step(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range podsOf(t, c, "prod", prodNS, "nosuch") {
			reasons = append(reasons, waitingReason(&p))
			if p.Status.Phase != corev1.PodPending {
				t.Errorf("phase %s, want Pending", p.Status.Phase)
			}
		}
	}
	// tick 1 creates the ReplicaSet and its pod; the kubelet sees it from tick 2
	if fmt.Sprint(reasons) != "[ ContainerCreating ErrImagePull ImagePullBackOff ImagePullBackOff ImagePullBackOff]" {
		t.Errorf("waiting reasons per tick = %v", reasons)
	}
	got, _ := kube.AppsV1().Deployments(prodNS).Get(ctx, "nosuch", metav1.GetOptions{})
	if got.Status.AvailableReplicas != 0 || got.Status.UpdatedReplicas != 1 || got.Annotations[revisionAnnotation] != "1" {
		t.Errorf("status %+v revision %q", got.Status, got.Annotations[revisionAnnotation])
	}
}
