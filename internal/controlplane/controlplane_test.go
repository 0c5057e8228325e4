package controlplane_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/controlplane"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlaneSmoke(t *testing.T) {
	cp := controlplane.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}

	node, err := admin.CoreV1().Nodes().Get(ctx, controlplane.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting node: %v", err)
	}
	if !isNodeReady(node) {
		t.Fatalf("node %s is not Ready: %+v", node.Name, node.Status.Conditions)
	}

	const ns = "smoke"
	if err := cp.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}

	t.Run("deployment becomes ready", func(t *testing.T) {
		createDeployment(ctx, t, admin, ns, "web", "quay.io/example/web:1", 2)
		waitFor(ctx, t, "2 Ready pods of web", func() (bool, string) {
			pods := listPods(ctx, t, admin, ns, "web")
			ready := 0
			for _, p := range pods {
				if isPodReady(&p) {
					ready++
				}
			}
			return ready == 2, podSummary(pods)
		})
		waitFor(ctx, t, "deployment web available", func() (bool, string) {
			d, err := admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return d.Status.ReadyReplicas == 2 && d.Status.UpdatedReplicas == 2, d.Status.String()
		})
	})

	t.Run("broken image runs but is never ready", func(t *testing.T) {
		createDeployment(ctx, t, admin, ns, "broken", "x:broken", 1)
		waitFor(ctx, t, "a Running pod of broken", func() (bool, string) {
			pods := listPods(ctx, t, admin, ns, "broken")
			return len(pods) == 1 && pods[0].Status.Phase == corev1.PodRunning, podSummary(pods)
		})
		// It must stay not Ready: check throughout a few seconds.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			pods := listPods(ctx, t, admin, ns, "broken")
			if len(pods) != 1 || pods[0].Status.Phase != corev1.PodRunning || isPodReady(&pods[0]) {
				t.Fatalf("broken pod should stay Running and not Ready: %s", podSummary(pods))
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("rbac by token", func(t *testing.T) {
		carol, err := kubernetes.NewForConfig(cp.UserConfig("carol"))
		if err != nil {
			t.Fatalf("carol client: %v", err)
		}
		if _, err := carol.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("carol listing pods in %s: want Forbidden, got %v", ns, err)
		}

		// alice gets the built-in view role in ns and may then list pods.
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "alice-view", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "alice"}},
		}
		if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating role binding: %v", err)
		}
		alice, err := kubernetes.NewForConfig(cp.UserConfig("alice"))
		if err != nil {
			t.Fatalf("alice client: %v", err)
		}
		waitFor(ctx, t, "alice may list pods", func() (bool, string) {
			_, err := alice.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err == nil, errString(err)
		})
		if _, err := alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("alice listing pods in default: want Forbidden, got %v", err)
		}
	})

	t.Run("kubectl oracle", func(t *testing.T) {
		out, err := cp.Kubectl(ctx, "get", "nodes", "-o", "name").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get nodes: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "node/"+controlplane.NodeName {
			t.Fatalf("kubectl get nodes = %q, want node/%s", got, controlplane.NodeName)
		}
		out, err = cp.Kubectl(ctx, "--kubeconfig="+cp.UserKubeconfigPath("carol"), "auth", "can-i", "list", "pods", "-n", ns).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err == nil || got != "no" {
			t.Fatalf("kubectl auth can-i as carol = %q (err %v), want no", got, err)
		}
	})
}

func createDeployment(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, image string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: name, Image: image}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment %s: %v", name, err)
	}
}

func listPods(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, app string) []corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	return pods.Items
}

// waitFor polls cond until it holds or ctx ends; detail describes the state
// last seen, for the failure message.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	var detail string
	for {
		var ok bool
		if ok, detail = cond(); ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last seen: %s", what, detail)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isNodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func isPodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podSummary(pods []corev1.Pod) string {
	var parts []string
	for _, p := range pods {
		parts = append(parts, p.Name+"="+string(p.Status.Phase)+"/ready="+map[bool]string{true: "true", false: "false"}[isPodReady(&p)]+"/node="+p.Spec.NodeName)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
