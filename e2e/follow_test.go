package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/plan"
)

// Rollouts run by the real deployment and statefulset controllers on kwok's
// fake node, followed by deploybot's Follow through watches.

const followEnv = "prod"

// progressLog collects what Follow reports.
type progressLog struct {
	mu     sync.Mutex
	events []plan.Progress
}

func (l *progressLog) report(p plan.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, p)
}

func (l *progressLog) all() []plan.Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *progressLog) String() string {
	var b strings.Builder
	for _, p := range l.all() {
		fmt.Fprintf(&b, "\n  %s %s/%s %d/%d updated, %d ready: %s", p.Phase, p.Workload.Kind, p.Workload.Name, p.Updated, p.Desired, p.Ready, p.Message)
	}
	return b.String()
}

func followSet(t *testing.T, cp *controlplane.ControlPlane, ns string, opts ...cluster.Option) *cluster.Set {
	t.Helper()
	env, err := cluster.Connect(cp.AdminConfig(), ns)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.NewSet(map[string]cluster.EnvClient{followEnv: env}, opts...)
}

// followRuns numbers the runs of TestFollowRollout in this process, so that
// `go test -count=N` gives each run namespaces of its own on the shared
// control plane.
var followRuns atomic.Int32

func TestFollowRollout(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	admin := clientFor(t, cp.AdminConfig())
	run := followRuns.Add(1)

	// A three-replica rollout one pod at a time (maxSurge 1, maxUnavailable
	// 0) with each new pod counting as available only after two seconds, so
	// the intermediate states last long enough for any watcher to see them.
	t.Run("progress until settled", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 2*time.Minute)
		ns := fmt.Sprintf("follow-progress-%d", run)
		createNamespaces(ctx, t, cp, ns)
		d := followDeployment(ns, "web", "registry.example/web:v1", 3)
		d.Spec.MinReadySeconds = 2
		one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
		d.Spec.Strategy = appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero},
		}
		createDeployment(ctx, t, admin, d)
		waitDeploymentRevision(ctx, t, admin, ns, "web", 1, true)
		updateDeploymentImage(ctx, t, admin, ns, "web", "registry.example/web:v2")
		waitDeploymentRevision(ctx, t, admin, ns, "web", 2, true)

		set := followSet(t, cp, ns)
		rollback := followRollbackPlan(ns, plan.KindDeployment, "web", 1)
		res, err := set.Execute(ctx, rollback, nil)
		if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
			t.Fatalf("executing the rollback: %+v, %v", res, err)
		}
		var log progressLog
		start := time.Now()
		rollouts := set.Follow(ctx, rollback, res, time.Minute, log.report)
		t.Logf("Follow took %v and reported:%s", time.Since(start).Round(time.Millisecond), &log)

		if len(rollouts) != 1 || rollouts[0].Outcome != plan.PhaseSettled {
			t.Fatalf("rollout result %+v, want settled", rollouts)
		}
		events := log.all()
		intermediate := map[int32]bool{}
		for _, p := range events[:len(events)-1] {
			if p.Phase != plan.PhaseRolling {
				t.Errorf("before the end Follow reported %q (%s), want only %q", p.Phase, p.Message, plan.PhaseRolling)
			}
			if p.Desired == 3 && p.Updated > 0 && p.Updated < 3 {
				intermediate[p.Updated] = true
			}
		}
		if len(intermediate) < 2 {
			t.Errorf("Follow reported updated counts %v in between, want both 1 and 2 of 3", intermediate)
		}
		last := events[len(events)-1]
		if last.Phase != plan.PhaseSettled || last.Desired != 3 || last.Updated != 3 || last.Ready != 3 {
			t.Errorf("last report %+v, want settled with 3 of 3 updated and ready", last)
		}
		if res.Rollouts = rollouts; res.Failed() {
			t.Errorf("Result.Failed() is true for %+v", res)
		}
	})

	// Rolling back onto an image whose pods never become Ready must end in
	// a failure that says why, within the deadline, not in silence.
	controllerReason := []string{"ProgressDeadlineExceeded", `"fragile-a`, "has timed out progressing"}
	broken := []struct {
		name             string
		progressDeadline int32         // the Deployment's progressDeadlineSeconds
		followDeadline   time.Duration // Follow's own deadline
		wantReasons      [][]string    // the reason says every word of one of these
		within           time.Duration
		// controllerVerdict: then wait for the deployment controller's
		// Progressing=False ProgressDeadlineExceeded and follow again,
		// which must report the controller's reason at once.
		controllerVerdict bool
	}{
		{
			name:             "progressDeadlineSeconds",
			progressDeadline: 4,
			followDeadline:   20 * time.Second,
			// The deployment controller re-checks the deadline on its own
			// schedule, which a busy controller manager stretches (once
			// past 60s on a loaded 2-core machine). Until it has said
			// ProgressDeadlineExceeded, Follow names the deadline itself.
			wantReasons: [][]string{
				controllerReason,
				{"progress deadline of 4s passed", "1 of 1 updated", "no progress for", "not Ready"},
			},
			within:            30 * time.Second,
			controllerVerdict: true,
		},
		{
			name:             "follow deadline",
			progressDeadline: 600,
			followDeadline:   4 * time.Second,
			wantReasons:      [][]string{{"did not settle in time", "1 of 1 updated", "not Ready"}},
			within:           20 * time.Second,
		},
	}
	for i, tc := range broken {
		t.Run("broken image/"+tc.name, func(t *testing.T) {
			t.Parallel()
			// Generous: the controller's verdict is waited for, not timed.
			ctx := testContext(t, 4*time.Minute)
			ns := fmt.Sprintf("follow-broken-%d-%d", i, run)
			name := fmt.Sprintf("fragile-%c", 'a'+i)
			createNamespaces(ctx, t, cp, ns)
			// Revision 1 is the broken image, revision 2 a good one; the
			// undo goes back to revision 1.
			d := followDeployment(ns, name, "registry.example/web:broken", 1)
			d.Spec.ProgressDeadlineSeconds = &tc.progressDeadline
			createDeployment(ctx, t, admin, d)
			waitDeploymentRevision(ctx, t, admin, ns, name, 1, false)
			updateDeploymentImage(ctx, t, admin, ns, name, "registry.example/web:v2")
			waitDeploymentRevision(ctx, t, admin, ns, name, 2, true)

			set := followSet(t, cp, ns)
			rollback := followRollbackPlan(ns, plan.KindDeployment, name, 1)
			res, err := set.Execute(ctx, rollback, nil)
			if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
				t.Fatalf("executing the rollback: %+v, %v", res, err)
			}
			follow := func(wantReasons [][]string, within time.Duration) {
				t.Helper()
				var log progressLog
				start := time.Now()
				rollouts := set.Follow(ctx, rollback, res, tc.followDeadline, log.report)
				took := time.Since(start)
				t.Logf("Follow took %v and reported:%s", took.Round(time.Millisecond), &log)

				if len(rollouts) != 1 || rollouts[0].Outcome != plan.PhaseFailed {
					t.Fatalf("rollout result %+v, want failed", rollouts)
				}
				if !slices.ContainsFunc(wantReasons, func(words []string) bool { return containsAll(rollouts[0].Reason, words) }) {
					t.Errorf("failure reason %q says none of %q", rollouts[0].Reason, wantReasons)
				}
				if took > within {
					t.Errorf("Follow took %v to report the failure, want at most %v", took, within)
				}
				events := log.all()
				if last := events[len(events)-1]; last.Phase != plan.PhaseFailed || last.Message != rollouts[0].Reason {
					t.Errorf("last report %+v, want the failure with its reason", last)
				}
				if r := withRollouts(res, rollouts); !r.Failed() {
					t.Errorf("Result.Failed() is false for %+v", r)
				}
			}
			follow(tc.wantReasons, tc.within)
			if !tc.controllerVerdict {
				return
			}
			waitFor(ctx, t, "the deployment controller's Progressing=False ProgressDeadlineExceeded", func() (bool, string) {
				d, err := admin.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				for _, c := range d.Status.Conditions {
					if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
						return true, ""
					}
				}
				return false, fmt.Sprintf("conditions %+v", d.Status.Conditions)
			})
			follow([][]string{controllerReason}, 10*time.Second)
		})
	}

	// The forced-rollback situation: an OrderedReady StatefulSet rolled
	// onto a broken image waits forever for its not-Ready pod, even after
	// the template is rolled back. deploybot must say so (Follow: stuck;
	// planning undo again: refuse and offer --force) and `undo --force`
	// must recover it by deleting exactly that pod.
	t.Run("stuck statefulset and --force", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 2*time.Minute)
		ns, name := fmt.Sprintf("follow-stuck-%d", run), "worker"
		good, bad := "registry.example/packit/worker:v1", "registry.example/packit/worker:broken"
		createNamespaces(ctx, t, cp, ns)
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.StatefulSetSpec{
				Replicas:            int32p(2),
				ServiceName:         name,
				PodManagementPolicy: appsv1.OrderedReadyPodManagement,
				Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template:            podTemplate(name, good),
			},
		}
		if _, err := admin.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitStatefulSetPods(ctx, t, admin, ns, name, "all pods Ready on "+good, func(s *appsv1.StatefulSet, pods []corev1.Pod) bool {
			return len(pods) == 2 && s.Status.CurrentRevision == s.Status.UpdateRevision && allReadyOn(pods, good)
		})

		// The bad rollout: the controller replaces worker-1 first, and
		// that pod never becomes Ready.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := admin.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Template.Spec.Containers[0].Image = bad
			_, err = admin.AppsV1().StatefulSets(ns).Update(ctx, s, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		waitStatefulSetPods(ctx, t, admin, ns, name, name+"-1 Running on "+bad, func(s *appsv1.StatefulSet, pods []corev1.Pod) bool {
			p := findPod(pods, name+"-1")
			return p != nil && p.Status.Phase == corev1.PodRunning && !podReady(p) && p.Spec.Containers[0].Image == bad &&
				p.Labels[appsv1.ControllerRevisionHashLabelKey] == s.Status.UpdateRevision
		})

		set := followSet(t, cp, ns, cluster.WithStuckAfter(2*time.Second))
		cfg := followConfig(t, ns, name)
		deps := commands.Deps{Config: cfg, Cluster: set}
		caller := plan.Caller{Platform: "terminal", ChatID: "alice", Name: "alice", User: "alice"}

		// Still rolling forward, not stuck: nothing to force yet.
		if stuck, err := set.StuckPods(ctx, followEnv, name); err != nil || len(stuck) != 0 {
			t.Fatalf("StuckPods while the bad revision is the update revision: %+v, %v; want none", stuck, err)
		}

		// 1. undo, as a user would: back to the previous revision.
		rollback := buildPlan(ctx, t, deps, caller, "undo worker prod")
		if rollback.Action != plan.ActionRollback || len(rollback.Targets) != 1 || rollback.Targets[0].ToRevision != 1 || len(rollback.Targets[0].DeletePods) != 0 {
			t.Fatalf("undo plan %+v, want a rollback to revision 1 deleting nothing", rollback)
		}
		res, err := set.Execute(ctx, rollback, nil)
		if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
			t.Fatalf("executing the undo: %+v, %v", res, err)
		}
		var log progressLog
		start := time.Now()
		rollouts := set.Follow(ctx, rollback, res, time.Minute, log.report)
		t.Logf("Follow after undo took %v and reported:%s", time.Since(start).Round(time.Millisecond), &log)
		if len(rollouts) != 1 || rollouts[0].Outcome != plan.PhaseStuck ||
			!strings.Contains(rollouts[0].Reason, name+"-1") || !strings.Contains(rollouts[0].Reason, "--force") {
			t.Fatalf("rollout after undo: %+v, want stuck on %s-1 with the advice to use --force", rollouts, name)
		}

		// 2. StuckPods names exactly the pod the controller waits for.
		stuck, err := set.StuckPods(ctx, followEnv, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(stuck) != 1 || stuck[0].Name != name+"-1" || stuck[0].Reason != "not Ready" {
			t.Fatalf("StuckPods = %+v, want %s-1 not Ready", stuck, name)
		}
		// The controller really does wait: the pod is still there, still on
		// the bad image, after Follow gave up on it.
		pods := listPods(ctx, t, admin, ns, name)
		if p := findPod(pods, name+"-1"); p == nil || p.Spec.Containers[0].Image != bad || podReady(p) {
			t.Fatalf("%s-1 should still be the broken pod: %s", name, podSummary(pods))
		}

		// 3. undo without --force refuses and says how to proceed; it never
		// deletes a pod silently.
		var ue *commands.UserError
		if _, err := commands.BuildPlan(ctx, deps, caller, parseCommand(t, cfg, "undo worker prod")); !errors.As(err, &ue) ||
			!strings.Contains(err.Error(), name+"-1") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("planning undo again without --force: %v, want a refusal naming %s-1 and --force", err, name)
		}

		// 4. undo --force: the current revision again, and the stuck pod deleted.
		rollback = buildPlan(ctx, t, deps, caller, "undo worker prod --force")
		if got := rollback.Targets[0].DeletePods; !slices.Equal(got, []string{name + "-1"}) {
			t.Fatalf("undo --force deletes %q, want [%s-1]", got, name)
		}
		if !slices.Contains(rollback.Access, plan.Access{Verb: "delete", Resource: "pods", Namespace: ns, Name: name + "-1"}) {
			t.Errorf("undo --force plan does not ask for delete pods/%s-1: %+v", name, rollback.Access)
		}
		log = progressLog{}
		res, err = set.Execute(ctx, rollback, log.report)
		if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
			t.Fatalf("executing undo --force: %+v, %v", res, err)
		}
		rollouts = set.Follow(ctx, rollback, res, time.Minute, log.report)
		t.Logf("undo --force reported:%s", &log)
		if len(rollouts) != 1 || rollouts[0].Outcome != plan.PhaseSettled {
			t.Fatalf("rollout after undo --force: %+v, want settled", rollouts)
		}
		if !slices.ContainsFunc(log.all(), func(p plan.Progress) bool { return strings.Contains(p.Message, "deleted stuck pod "+name+"-1") }) {
			t.Errorf("undo --force did not report deleting %s-1", name)
		}
		pods = listPods(ctx, t, admin, ns, name)
		if len(pods) != 2 || !allReadyOn(pods, good) {
			t.Fatalf("after undo --force: %s, want both pods Ready on %s", podSummary(pods), good)
		}
		if stuck, err := set.StuckPods(ctx, followEnv, name); err != nil || len(stuck) != 0 {
			t.Fatalf("StuckPods after recovery: %+v, %v; want none", stuck, err)
		}
	})
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func withRollouts(res plan.Result, rollouts []plan.RolloutResult) plan.Result {
	res.Rollouts = rollouts
	return res
}

func followDeployment(ns, name, image string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image),
		},
	}
}

func createDeployment(ctx context.Context, t *testing.T, cs kubernetes.Interface, d *appsv1.Deployment) {
	t.Helper()
	if _, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment %s/%s: %v", d.Namespace, d.Name, err)
	}
}

func updateDeploymentImage(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		_, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("setting the image of deployment %s/%s: %v", ns, name, err)
	}
}

// waitDeploymentRevision waits until the controller has made revision rev of
// the Deployment and, if settled, finished rolling it out.
func waitDeploymentRevision(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, rev int, settled bool) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("deployment %s/%s at revision %d (settled %v)", ns, name, rev, settled), func() (bool, string) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		want := *d.Spec.Replicas
		detail := fmt.Sprintf("revision %s, %+v", d.Annotations["deployment.kubernetes.io/revision"], st)
		ok := st.ObservedGeneration >= d.Generation && d.Annotations["deployment.kubernetes.io/revision"] == fmt.Sprint(rev)
		if settled {
			ok = ok && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
		}
		return ok, detail
	})
}

func followRollbackPlan(ns, kind, name string, toRevision int64) plan.Plan {
	p := plan.Plan{
		Action:    plan.ActionRollback,
		Env:       followEnv,
		Namespace: ns,
		Targets: []plan.Target{{
			Service:    name,
			Workloads:  []plan.WorkloadRef{{Kind: kind, Name: name}},
			ToRevision: toRevision,
		}},
	}
	p.Access = plan.AccessFor(p)
	return p
}

// followConfig is a deploybot config with one env (prod, in ns) and one
// service whose workload is the StatefulSet name (without image triggers:
// there is no image-trigger controller here, so undo rolls it back itself).
func followConfig(t *testing.T, ns, name string) *config.Config {
	t.Helper()
	cfg := &config.Config{
		Environments: []config.Environment{{Name: followEnv, Namespace: ns}},
		Services: []config.Service{{
			Name:       name,
			Repository: "registry.example/packit/" + name,
			Workloads:  []config.Workload{{Kind: plan.KindStatefulSet, Name: name}},
		}},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

func parseCommand(t *testing.T, cfg *config.Config, text string) plan.Command {
	t.Helper()
	r := commands.Parse(cfg, commands.Input{Text: text})
	if r.Kind != commands.RunKind {
		t.Fatalf("parsing %q: %s %+v", text, r.Kind, r.Reply)
	}
	return r.Command
}

// buildPlan plans the command as the bot would, from the live cluster.
func buildPlan(ctx context.Context, t *testing.T, deps commands.Deps, caller plan.Caller, text string) plan.Plan {
	t.Helper()
	p, err := commands.BuildPlan(ctx, deps, caller, parseCommand(t, deps.Config, text))
	if err != nil {
		t.Fatalf("planning %q: %v", text, err)
	}
	return p
}

func listPods(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, app string) []corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatalf("listing pods in %s: %v", ns, err)
	}
	return pods.Items
}

func findPod(pods []corev1.Pod, name string) *corev1.Pod {
	for i := range pods {
		if pods[i].Name == name {
			return &pods[i]
		}
	}
	return nil
}

func allReadyOn(pods []corev1.Pod, image string) bool {
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil || !podReady(p) || p.Spec.Containers[0].Image != image {
			return false
		}
	}
	return len(pods) > 0
}

func waitStatefulSetPods(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, what string, ok func(*appsv1.StatefulSet, []corev1.Pod) bool) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("statefulset %s/%s: %s", ns, name, what), func() (bool, string) {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err.Error()
		}
		return ok(s, pods.Items), fmt.Sprintf("status %+v, pods %s", s.Status, podSummary(pods.Items))
	})
}
