package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/kubeclient"
)

// shared is the one control plane of this package. Starting one takes about
// five seconds, so the tests share it, each in its own namespaces; it starts
// on first use, so a run of only the file-store test starts none.
var shared struct {
	once sync.Once
	mu   sync.Mutex
	cp   *controlplane.ControlPlane
	dir  string
	err  error
}

// extraUsers are users the tests need beyond controlplane.DefaultUsers: dave
// is mapped to no role at all, so the access matrix has a row of denials.
var extraUsers = []controlplane.Option{controlplane.WithUser("dave", "contractors")}

func TestMain(m *testing.M) {
	// A child process of TestFileStoreCASAcrossProcesses: do its part only.
	if os.Getenv(casChildEnv) != "" {
		os.Exit(casChild())
	}
	// StartProcess installs no signal handler: stop the control plane on an
	// interrupt ourselves (a crash is covered by the processes' Pdeathsig).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: stopping the control plane\n", sig)
		stopShared(false)
		os.Exit(2)
	}()
	code := m.Run()
	stopShared(code != 0)
	os.Exit(code)
}

// stopShared stops the shared control plane, if it was started, and removes
// its data directory unless $DEPLOYBOT_CONTROLPLANE_KEEP is set.
func stopShared(failed bool) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cp == nil {
		return
	}
	if failed {
		fmt.Fprintf(os.Stderr, "e2e: control-plane logs in %s; their last lines:\n%s", shared.dir, shared.cp.LogTails(12))
	}
	shared.cp.Stop()
	shared.cp = nil
	if os.Getenv(controlplane.KeepEnv) != "" {
		fmt.Fprintf(os.Stderr, "e2e: control-plane data kept in %s\n", shared.dir)
		return
	}
	_ = os.RemoveAll(shared.dir)
}

// controlPlane returns the shared control plane, starting it on first use.
func controlPlane(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "deploybot-e2e-")
		if err != nil {
			shared.err = fmt.Errorf("creating the control plane's data dir: %w", err)
			return
		}
		start := time.Now()
		cp, err := controlplane.StartProcess(context.Background(), dir, extraUsers...)
		if err != nil {
			_ = os.RemoveAll(dir)
			shared.err = err
			return
		}
		shared.mu.Lock()
		shared.cp, shared.dir = cp, dir
		shared.mu.Unlock()
		t.Logf("control plane up in %v at %s (admin kubeconfig %s)", time.Since(start).Round(time.Millisecond), cp.Host(), cp.KubeconfigPath())
	})
	if shared.err != nil {
		t.Fatalf("starting the control plane: %v", shared.err)
	}
	return shared.cp
}

// testContext is a context that ends with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building a client for %s: %v", cfg.Host, err)
	}
	return cs
}

// botClientFor builds deploybot's own clients (package kubeclient) for cfg,
// for the production code under test; clientFor's client-go clientset is the
// test's oracle and set-up tool.
func botClientFor(t *testing.T, cfg *rest.Config) kubeclient.Interface {
	t.Helper()
	cs, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building deploybot's client for %s: %v", cfg.Host, err)
	}
	return cs
}

// createNamespaces creates namespaces and waits for their default service
// accounts, so pods can be created in them at once.
func createNamespaces(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, names ...string) {
	t.Helper()
	for _, ns := range names {
		if err := cp.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond every 100ms until it holds or ctx ends; detail describes
// what was seen last, for the failure message.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	if err := poll(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// poll is waitFor without a test: it returns an error naming the last detail.
func poll(ctx context.Context, cond func() (ok bool, detail string)) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, detail := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last seen: %s", ctx.Err(), detail)
		case <-tick.C:
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// applyRBAC creates Roles, ClusterRoles and their bindings as admin.
type rbacObjects struct {
	roles               []rbacv1.Role
	roleBindings        []rbacv1.RoleBinding
	clusterRoles        []rbacv1.ClusterRole
	clusterRoleBindings []rbacv1.ClusterRoleBinding
}

func applyRBAC(ctx context.Context, t *testing.T, admin kubernetes.Interface, objs rbacObjects) {
	t.Helper()
	create := func(what string, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s: %v", what, err)
		}
	}
	for _, r := range objs.clusterRoles {
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, &r, metav1.CreateOptions{})
		create("clusterrole "+r.Name, err)
	}
	for _, b := range objs.clusterRoleBindings {
		_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &b, metav1.CreateOptions{})
		create("clusterrolebinding "+b.Name, err)
	}
	for _, r := range objs.roles {
		_, err := admin.RbacV1().Roles(r.Namespace).Create(ctx, &r, metav1.CreateOptions{})
		create("role "+r.Namespace+"/"+r.Name, err)
	}
	for _, b := range objs.roleBindings {
		_, err := admin.RbacV1().RoleBindings(b.Namespace).Create(ctx, &b, metav1.CreateOptions{})
		create("rolebinding "+b.Namespace+"/"+b.Name, err)
	}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: name}
}

func roleBinding(ns, name, role string, subjects ...rbacv1.Subject) rbacv1.RoleBinding {
	return rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects:   subjects,
	}
}

func clusterRoleBindingFor(name, role string, subjects ...rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   subjects,
	}
}

func podReady(p *corev1.Pod) bool {
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
		img := ""
		if len(p.Spec.Containers) > 0 {
			img = p.Spec.Containers[0].Image
		}
		parts = append(parts, fmt.Sprintf("%s(%s ready=%v rev=%s %s)", p.Name, p.Status.Phase, podReady(&p), p.Labels["controller-revision-hash"], img))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func int32p(v int32) *int32 { return &v }
