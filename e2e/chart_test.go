package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/plan"
)

// The chart on the real control plane: rendered with the pinned Helm,
// applied with kubectl into a namespace that enforces the `restricted` Pod
// Security Standard, the bot's pods come up Running (kwok runs them without
// pulling the image), and the chart's own RBAC lets the bot's service
// account make exactly the calls the code makes, nothing more.

const (
	chartRelease = "deploybot-chart" // the release's namespace
	chartStg     = "chart--stg"
	chartProd    = "chart--prod"
	// chartSA is the bot's identity: the ServiceAccount the chart creates.
	chartSA = "system:serviceaccount:" + chartRelease + ":deploybot"
)

var chartValues = `
image:
  repository: deploybot.invalid/deploybot
  tag: e2e
config:
  environments:
    - {name: stg, namespace: ` + chartStg + `, tag: stg, confirm: true}
    - {name: prod, namespace: ` + chartProd + `, tag: prod, confirm: true, approvals: {count: 1}}
  services:
    - {name: packit-service, repository: quay.io/packit/packit-service}
    - {name: packit-worker, repository: quay.io/packit/packit-worker}
  execution: impersonate
  store:
    backend: kubernetes
`

// renderChart runs the pinned Helm (hack/helm.sh) and returns the manifests.
func renderChart(t *testing.T, kubeVersion string) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(chartValues), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "helm.sh"), "template", "deploybot", filepath.Join(root, "charts", "deploybot"),
		"--namespace", chartRelease, "--kube-version", kubeVersion, "-f", values)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// chartAccess is one API call and where the bot makes it.
type chartAccess struct {
	plan.Access
	clusterScoped bool
}

// botCalls is every call the bot makes, derived from the code: what
// executing and following each kind of Plan needs (plan.AccessFor, the
// access matrix's commands), the reads of status/images/history, the access
// checks (access.Checker), the store and the leader election in its own
// namespace, and impersonation (execution: impersonate).
func botCalls() []chartAccess {
	var out []chartAccess
	add := func(a plan.Access) {
		ca := chartAccess{Access: a}
		if !slices.Contains(out, ca) {
			out = append(out, ca)
		}
	}
	for _, ns := range []struct{ ns, tag string }{{chartStg, "stg"}, {chartProd, "prod"}} {
		for _, c := range matrixCommands {
			for _, a := range c.calls(ns.ns, ns.tag) {
				add(a)
			}
		}
		// status reads a StatefulSet's update revision (cluster/workloads.go).
		add(plan.Access{Verb: "get", Group: "apps", Resource: "controllerrevisions", Namespace: ns.ns})
		add(plan.Access{Verb: "create", Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews", Namespace: ns.ns})
		// The deploy feed watches the streams and workloads (cluster/watch.go).
		for _, verb := range []string{"list", "watch"} {
			add(plan.Access{Verb: verb, Group: "image.openshift.io", Resource: "imagestreams", Namespace: ns.ns})
			add(plan.Access{Verb: verb, Group: "apps", Resource: "deployments", Namespace: ns.ns})
			add(plan.Access{Verb: verb, Group: "apps", Resource: "statefulsets", Namespace: ns.ns})
		}
	}
	for _, verb := range []string{"get", "list", "create", "update", "delete"} {
		add(plan.Access{Verb: verb, Resource: "configmaps", Namespace: chartRelease})
	}
	for _, verb := range []string{"get", "create", "update"} {
		add(plan.Access{Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Namespace: chartRelease})
	}
	for _, res := range []string{"users", "groups"} {
		out = append(out, chartAccess{Access: plan.Access{Verb: "impersonate", Resource: res}, clusterScoped: true})
	}
	return out
}

// notBotCalls are calls the bot never makes and must not be able to make.
var notBotCalls = []chartAccess{
	{Access: plan.Access{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: chartProd, Name: "packit-service"}},
	{Access: plan.Access{Verb: "create", Group: "apps", Resource: "deployments", Namespace: chartProd}},
	{Access: plan.Access{Verb: "update", Group: "apps", Resource: "deployments", Namespace: chartProd, Name: "packit-service"}},
	{Access: plan.Access{Verb: "update", Group: "apps", Resource: "statefulsets", Namespace: chartStg, Name: "tokman"}},
	{Access: plan.Access{Verb: "patch", Group: "apps", Resource: "replicasets", Namespace: chartStg}},
	{Access: plan.Access{Verb: "get", Resource: "secrets", Namespace: chartProd, Name: "x"}},
	{Access: plan.Access{Verb: "list", Resource: "secrets", Namespace: chartRelease}},
	{Access: plan.Access{Verb: "get", Resource: "secrets", Namespace: chartRelease, Name: "deploybot"}},
	{Access: plan.Access{Verb: "create", Resource: "pods", Namespace: chartStg}},
	{Access: plan.Access{Verb: "update", Resource: "pods", Namespace: chartStg, Name: "tokman-0"}},
	{Access: plan.Access{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: chartStg, Name: "tokman-0"}},
	{Access: plan.Access{Verb: "delete", Group: "image.openshift.io", Resource: "imagestreams", Namespace: chartProd, Name: "packit-worker"}},
	{Access: plan.Access{Verb: "create", Group: "image.openshift.io", Resource: "imagestreams", Namespace: chartProd}},
	{Access: plan.Access{Verb: "get", Resource: "configmaps", Namespace: chartProd, Name: "x"}},
	{Access: plan.Access{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: chartRelease, Name: "deploybot-leader"}},
	{Access: plan.Access{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: chartProd}},
	{Access: plan.Access{Verb: "create", Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews", Namespace: "default"}},
	{Access: plan.Access{Verb: "get", Group: "image.openshift.io", Resource: "imagestreams", Namespace: "default", Name: "packit-worker"}},
	{Access: plan.Access{Verb: "list", Group: "apps", Resource: "deployments", Namespace: "default"}},
	{Access: plan.Access{Verb: "impersonate", Resource: "serviceaccounts", Namespace: chartRelease}},
	{Access: plan.Access{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, clusterScoped: true},
	{Access: plan.Access{Verb: "list", Resource: "namespaces"}, clusterScoped: true},
	{Access: plan.Access{Verb: "get", Resource: "nodes"}, clusterScoped: true},
}

func TestChartOnControlPlane(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	ctx := testContext(t, 4*time.Minute)
	admin := clientFor(t, cp.AdminConfig())
	ensureImageStreamCRD(t, cp)

	// The bot's namespace enforces `restricted`; the apps' namespaces hold
	// the objects the bot's calls touch.
	createNamespaces(ctx, t, cp, chartRelease, chartStg, chartProd)
	labels := `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted","pod-security.kubernetes.io/enforce-version":"latest"}}}`
	if _, err := admin.CoreV1().Namespaces().Patch(ctx, chartRelease, types.MergePatchType, []byte(labels), metav1.PatchOptions{}); err != nil {
		t.Fatalf("labelling %s restricted: %v", chartRelease, err)
	}
	createMatrixObjects(ctx, t, cp, admin, chartStg, "stg")
	createMatrixObjects(ctx, t, cp, admin, chartProd, "prod")
	if _, err := admin.CoreV1().Secrets(chartRelease).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "deploybot"},
		StringData: map[string]string{"slack-signing-secret": "e2e-not-a-secret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the tokens Secret: %v", err)
	}

	// Enforcement is on: a pod that is not restricted is refused, so the
	// bot's pods below were admitted because they are.
	_, err := admin.CoreV1().Pods(chartRelease).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "not-restricted"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity \"restricted:latest\"") {
		t.Fatalf("an unrestricted pod in %s: %v, want refused by PodSecurity restricted", chartRelease, err)
	}

	version, err := admin.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	manifests := renderChart(t, version.GitVersion)
	path := filepath.Join(t.TempDir(), "deploybot.yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := cp.Kubectl(ctx, "apply", "--server-side", "--field-manager=e2e", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	t.Logf("kubectl apply:\n%s", out)
	// PodSecurity warns at apply time about a Deployment whose pods it
	// would refuse; there must be no such warning (nor any other).
	if strings.Contains(string(out), "Warning") {
		t.Errorf("kubectl apply warned:\n%s", out)
	}

	t.Run("pods Running", func(t *testing.T) {
		var pods []corev1.Pod
		waitFor(ctx, t, "2 deploybot pods Running and Ready", func() (bool, string) {
			list, err := admin.CoreV1().Pods(chartRelease).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=deploybot,app.kubernetes.io/instance=deploybot"})
			if err != nil {
				return false, err.Error()
			}
			pods = list.Items
			running := 0
			for _, p := range pods {
				if p.Status.Phase == corev1.PodRunning && podReady(&p) {
					running++
				}
			}
			if running == 2 {
				return true, ""
			}
			d, err := admin.AppsV1().Deployments(chartRelease).Get(ctx, "deploybot", metav1.GetOptions{})
			detail := podSummary(pods)
			if err == nil {
				detail += fmt.Sprintf(" deployment conditions %+v", d.Status.Conditions)
			}
			return false, detail
		})
		for _, p := range pods {
			if p.Spec.ServiceAccountName != "deploybot" || p.Spec.SecurityContext.RunAsUser != nil {
				t.Errorf("pod %s: service account %q, runAsUser %v; want deploybot and no fixed UID", p.Name, p.Spec.ServiceAccountName, p.Spec.SecurityContext.RunAsUser)
			}
		}
		t.Logf("pods: %s", podSummary(pods))
	})

	t.Run("RBAC", func(t *testing.T) {
		checkChartRBAC(ctx, t, cp, admin)
	})
}

// asServiceAccount is the admin's config impersonating a service account
// of the release namespace, with the groups the API server gives it.
func asServiceAccount(cp *controlplane.ControlPlane, user string) *rest.Config {
	cfg := cp.AdminConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{
		"system:serviceaccounts", "system:serviceaccounts:" + chartRelease, "system:authenticated",
	}}
	return cfg
}

func selfReview(ctx context.Context, cs kubernetes.Interface, a chartAccess) (bool, error) {
	attrs := &authorizationv1.ResourceAttributes{Namespace: a.Namespace, Verb: a.Verb, Group: a.Group, Resource: a.Resource, Subresource: a.Subresource, Name: a.Name}
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}

// grants lists what a SelfSubjectRulesReview says the caller may do in ns,
// as "verb group/resource" (resource names are ignored: the chart sets none).
func grants(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) []string {
	t.Helper()
	r, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectRulesReview in %s: %v", ns, err)
	}
	if r.Status.Incomplete {
		t.Fatalf("SelfSubjectRulesReview in %s is incomplete: %s", ns, r.Status.EvaluationError)
	}
	var out []string
	for _, rule := range r.Status.ResourceRules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					out = append(out, v+" "+g+"/"+res)
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func checkChartRBAC(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, admin kubernetes.Interface) {
	bot := clientFor(t, asServiceAccount(cp, chartSA))
	calls := botCalls()
	waitFor(ctx, t, "the chart's RBAC in effect", func() (bool, string) {
		for _, a := range calls {
			ok, err := selfReview(ctx, bot, a)
			if err != nil || !ok {
				return false, fmt.Sprintf("%+v: %v %v", a, ok, err)
			}
		}
		return true, ""
	})

	// Every call the code makes is allowed (the wait above), and every call
	// outside it that matters is refused.
	for _, a := range notBotCalls {
		if ok, err := selfReview(ctx, bot, a); err != nil || ok {
			t.Errorf("the bot may %s %s/%s %q in %q (err %v): the chart grants more than the bot needs", a.Verb, a.Group, a.Resource, a.Name, a.Namespace, err)
		}
	}

	// Nothing more: per namespace, the rules the API server reports for the
	// bot minus those every service account has anyway (a service account
	// with no binding of its own) are exactly the calls above.
	nobody := clientFor(t, asServiceAccount(cp, "system:serviceaccount:"+chartRelease+":nobody"))
	for _, ns := range []string{chartStg, chartProd, chartRelease, "default"} {
		baseline := grants(ctx, t, nobody, ns)
		var extra []string
		for _, g := range grants(ctx, t, bot, ns) {
			if !slices.Contains(baseline, g) {
				extra = append(extra, g)
			}
		}
		var want []string
		for _, a := range calls {
			if a.clusterScoped || a.Namespace == ns {
				want = append(want, a.Verb+" "+a.Group+"/"+a.Resource)
			}
		}
		sort.Strings(want)
		want = slices.Compact(want)
		if strings.Join(extra, "\n") != strings.Join(want, "\n") {
			t.Errorf("in %s the bot may:\n  %s\nthe code calls:\n  %s", ns, strings.Join(extra, "\n  "), strings.Join(want, "\n  "))
		}
	}

	// Real calls: what the SelfSubjectAccessReviews allow, the API server
	// lets through (dry-run for writes), and the refusals are 403s.
	waitFor(ctx, t, "the statefulsets' pods", func() (bool, string) {
		for _, ns := range []string{chartStg, chartProd} {
			for _, name := range []string{"packit-worker-short-running-1", "packit-worker-long-running-1", "tokman-1"} {
				if _, err := admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
					return false, ns + "/" + name + ": " + err.Error()
				}
			}
		}
		return true, ""
	})
	p := newProber(t, cp, nil)
	httpBot := p.httpClient(t, asServiceAccount(cp, chartSA))
	realCalls := 0
	for _, a := range calls {
		switch {
		case a.clusterScoped:
			continue // impersonation: below
		case a.Namespace == chartRelease:
			if err := stateCall(ctx, bot, a.Access); err != nil {
				t.Errorf("%s %s/%s in %s as the bot: %v", a.Verb, a.Group, a.Resource, a.Namespace, err)
			}
		case a.Resource == "localsubjectaccessreviews":
			_, err := bot.AuthorizationV1().LocalSubjectAccessReviews(a.Namespace).Create(ctx, &authorizationv1.LocalSubjectAccessReview{
				ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace},
				Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: a.Namespace, Verb: "get", Resource: "pods"}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Errorf("creating a localsubjectaccessreview in %s as the bot: %v", a.Namespace, err)
			}
		default:
			if a.Verb == "get" && a.Name == "" {
				a.Name = anyName(ctx, t, admin, a.Access)
			}
			if r := p.call(ctx, t, httpBot, a.Access); !r.allowed {
				t.Errorf("%s %s/%s %q in %s as the bot: %s", a.Verb, a.Group, a.Resource, a.Name, a.Namespace, r)
			}
		}
		realCalls++
	}
	for _, a := range notBotCalls {
		if a.clusterScoped || a.Subresource != "" || a.Resource == "localsubjectaccessreviews" || a.Verb == "impersonate" {
			continue
		}
		if r := p.call(ctx, t, httpBot, a.Access); r.allowed || r.code != http.StatusForbidden {
			t.Errorf("%s %s/%s %q in %s as the bot: %s, want 403", a.Verb, a.Group, a.Resource, a.Name, a.Namespace, r)
		}
		realCalls++
	}
	// execution: impersonate, for real: acting as alice through the bot's
	// own credentials.
	botAsAlice := impersonatingBot(t, cp, "alice")
	if _, err := botAsAlice.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Namespace: chartStg}},
	}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the bot impersonating alice: %v", err)
	}
	t.Logf("the chart's RBAC: %d calls the code makes allowed, %d others refused; %d real calls as %s", len(calls), len(notBotCalls), realCalls, chartSA)
}

// impersonatingBot is a client with the bot service account's own token
// (from a TokenRequest) that impersonates user: what execution: impersonate
// does. Impersonation cannot be nested, so the token is the bot's.
func impersonatingBot(t *testing.T, cp *controlplane.ControlPlane, user string) kubernetes.Interface {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	admin := clientFor(t, cp.AdminConfig())
	expiry := int64(600)
	tok, err := admin.CoreV1().ServiceAccounts(chartRelease).CreateToken(ctx, "deploybot", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for the bot's service account: %v", err)
	}
	cfg := rest.AnonymousClientConfig(cp.AdminConfig())
	cfg.BearerToken = tok.Status.Token
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return clientFor(t, cfg)
}

// stateCall makes one call of the store or the leader election as the bot,
// dry-run where it writes, and fails only on a refusal.
func stateCall(ctx context.Context, cs kubernetes.Interface, a plan.Access) error {
	dry := []string{metav1.DryRunAll}
	cms := cs.CoreV1().ConfigMaps(a.Namespace)
	leases := cs.CoordinationV1().Leases(a.Namespace)
	var err error
	switch a.Resource + " " + a.Verb {
	case "configmaps get":
		_, err = cms.Get(ctx, "deploybot-pauses", metav1.GetOptions{})
	case "configmaps list":
		_, err = cms.List(ctx, metav1.ListOptions{Limit: 1})
	case "configmaps create":
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "e2e-probe"}}, metav1.CreateOptions{DryRun: dry})
	case "configmaps update":
		_, err = cms.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "deploybot"}}, metav1.UpdateOptions{DryRun: dry})
	case "configmaps delete":
		err = cms.Delete(ctx, "deploybot", metav1.DeleteOptions{DryRun: dry})
	case "leases get":
		_, err = leases.Get(ctx, "deploybot-leader", metav1.GetOptions{})
	case "leases create":
		_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "e2e-probe"}}, metav1.CreateOptions{DryRun: dry})
	case "leases update":
		_, err = leases.Update(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "deploybot-leader"}}, metav1.UpdateOptions{DryRun: dry})
	default:
		return fmt.Errorf("no probe for %s %s", a.Verb, a.Resource)
	}
	// Not found (nothing to get or update) and conflicts come after
	// authorization: they show the call was allowed.
	if err != nil && (apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err)) {
		return nil
	}
	return err
}

// anyName names an object the call's resource has in its namespace, so a
// get meets a real object.
func anyName(ctx context.Context, t *testing.T, admin kubernetes.Interface, a plan.Access) string {
	t.Helper()
	if a.Group != "apps" || a.Resource != "controllerrevisions" {
		t.Fatalf("no object to name for %s %s/%s", a.Verb, a.Group, a.Resource)
	}
	list, err := admin.AppsV1().ControllerRevisions(a.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(list.Items) == 0 {
		t.Fatalf("finding a controllerrevision in %s: %v (%d found)", a.Namespace, err, len(list.Items))
	}
	return list.Items[0].Name
}
