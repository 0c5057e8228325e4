package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/plan"
)

// The access matrix: for users × deploybot's commands × the two namespaces
// of an app, deploybot's verdict (access.Checker: one LocalSubjectAccessReview
// per API call, asked with the bot's own credentials) must be what the API
// server does when the user makes each call itself; and the bot executing
// with impersonation must be refused exactly where the user is.

var matrixEnvs = []struct{ env, ns, tag string }{
	{"stg", "packit--stg", "stg"},
	{"prod", "packit--prod", "prod"},
}

// matrixUsers are the rows; their groups are the token file's (what the
// config's identity mapping would name).
var matrixUsers = []string{"admin", "alice", "bob", "carol", "dave"}

// matrixCommand is one deploybot command and the API calls it makes.
type matrixCommand struct {
	name  string
	calls func(ns, tag string) []plan.Access
}

// planCalls is what plan.AccessFor says executing and following a Plan
// needs: the list the bot checks before it offers the Plan.
func planCalls(action plan.Action, targets ...plan.Target) func(ns, tag string) []plan.Access {
	return func(ns, tag string) []plan.Access {
		p := plan.Plan{Action: action, Env: "matrix", Namespace: ns}
		for _, t := range targets {
			t.Tag = tag
			p.Targets = append(p.Targets, t)
		}
		return plan.AccessFor(p)
	}
}

var (
	serviceWorkloads = []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "packit-service", Triggered: true}}
	workerWorkloads  = []plan.WorkloadRef{
		{Kind: plan.KindStatefulSet, Name: "packit-worker-short-running", Triggered: true},
		{Kind: plan.KindStatefulSet, Name: "packit-worker-long-running", Triggered: true},
		{Kind: plan.KindDeployment, Name: "packit-service-beat", Triggered: true},
	}
	serviceTarget = plan.Target{Service: "packit-service", Stream: "packit-service", Workloads: serviceWorkloads,
		SpecFrom: "quay.io/packit/packit-service@" + fakeDigest("quay.io/packit/packit-service:prod", 1)}
	workerTarget = plan.Target{Service: "packit-worker", Stream: "packit-worker", Workloads: workerWorkloads,
		SpecFrom: "quay.io/packit/packit-worker@" + fakeDigest("quay.io/packit/packit-worker:prod", 1)}
)

func withDeletePods(t plan.Target, pods ...string) plan.Target {
	t.DeletePods = pods
	return t
}

var matrixCommands = []matrixCommand{
	{"import", planCalls(plan.ActionImport, serviceTarget, workerTarget)},
	{"revert service", planCalls(plan.ActionPin, serviceTarget)},
	{"revert worker", planCalls(plan.ActionPin, workerTarget)},
	{"track worker", planCalls(plan.ActionTrack, workerTarget)},
	{"undo worker --force (pin)", planCalls(plan.ActionPin,
		withDeletePods(workerTarget, "packit-worker-short-running-1", "packit-worker-long-running-1"))},
	{"undo dashboard (rollback deployment)", planCalls(plan.ActionRollback, plan.Target{
		Service: "packit-dashboard", Workloads: []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "packit-dashboard"}}})},
	{"undo tokman --force (rollback statefulset)", planCalls(plan.ActionRollback, withDeletePods(plan.Target{
		Service: "tokman", Workloads: []plan.WorkloadRef{{Kind: plan.KindStatefulSet, Name: "tokman"}}}, "tokman-1"))},
	// The reads of status, images and history (Set.Tag, TriggeredWorkloads,
	// Workload, Revisions, StuckPods), listed by hand: they make no Plan.
	{"status/images/history (reads)", func(ns, _ string) []plan.Access {
		a := func(verb, group, resource, name string) plan.Access {
			return plan.Access{Verb: verb, Group: group, Resource: resource, Namespace: ns, Name: name}
		}
		return []plan.Access{
			a("get", "image.openshift.io", "imagestreams", "packit-worker"),
			a("list", "apps", "deployments", ""),
			a("list", "apps", "statefulsets", ""),
			a("get", "apps", "deployments", "packit-dashboard"),
			a("list", "apps", "replicasets", ""),
			a("get", "apps", "statefulsets", "tokman"),
			a("list", "apps", "controllerrevisions", ""),
			a("list", "", "pods", ""),
		}
	}},
}

// unserved are the OpenShift-only resources a CRD cannot serve.
var unserved = map[string]bool{"imagestreamtags": true, "imagestreamimports": true}

func matrixRBAC() rbacObjects {
	imageGroup := "image.openshift.io"
	all := []string{"get", "list", "watch"}
	deployer := func(ns string, restrict bool) rbacv1.Role {
		rules := []rbacv1.PolicyRule{
			{APIGroups: []string{imageGroup}, Resources: []string{"imagestreams"}, Verbs: all},
			{APIGroups: []string{imageGroup}, Resources: []string{"imagestreamimports"}, Verbs: []string{"create"}},
			{APIGroups: []string{imageGroup}, Resources: []string{"imagestreamtags"}, Verbs: []string{"get", "create"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: append([]string{"patch", "update"}, all...)},
			{APIGroups: []string{"apps"}, Resources: []string{"replicasets", "controllerrevisions"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: all},
		}
		if restrict {
			// prod: only packit-service's stream and tag may be retagged and
			// only one worker pod deleted, so object names decide cells.
			rules = append(rules,
				rbacv1.PolicyRule{APIGroups: []string{imageGroup}, Resources: []string{"imagestreams"}, Verbs: []string{"update", "patch"}, ResourceNames: []string{"packit-service"}},
				rbacv1.PolicyRule{APIGroups: []string{imageGroup}, Resources: []string{"imagestreamtags"}, Verbs: []string{"update"}, ResourceNames: []string{"packit-service:prod"}},
				rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete"}, ResourceNames: []string{"packit-worker-short-running-1"}},
			)
		} else {
			rules = append(rules,
				rbacv1.PolicyRule{APIGroups: []string{imageGroup}, Resources: []string{"imagestreams"}, Verbs: []string{"update", "patch"}},
				rbacv1.PolicyRule{APIGroups: []string{imageGroup}, Resources: []string{"imagestreamtags"}, Verbs: []string{"update"}},
				rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete"}},
			)
		}
		return rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}, Rules: rules}
	}
	viewer := func(ns string) rbacv1.Role {
		return rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "viewer", Namespace: ns}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{imageGroup}, Resources: []string{"imagestreams", "imagestreamtags"}, Verbs: all},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets", "controllerrevisions"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: all},
		}}
	}
	stg, prod := matrixEnvs[0].ns, matrixEnvs[1].ns
	return rbacObjects{
		clusterRoles: []rbacv1.ClusterRole{
			// What the bot needs to check others' access in a namespace: no
			// cluster-admin, bound per namespace below.
			{ObjectMeta: metav1.ObjectMeta{Name: "deploybot-access-review"}, Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}, Verbs: []string{"create"}},
			}},
			// execution: impersonate.
			{ObjectMeta: metav1.ObjectMeta{Name: "deploybot-impersonator"}, Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}},
			}},
		},
		clusterRoleBindings: []rbacv1.ClusterRoleBinding{
			clusterRoleBindingFor("deploybot-impersonator", "deploybot-impersonator", userSubject("deploybot")),
		},
		roles: []rbacv1.Role{
			deployer(stg, false), deployer(prod, true), viewer(stg), viewer(prod),
			// Everyone may look at pods in stg: a binding to a group the
			// user is in only implicitly.
			{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader", Namespace: stg}, Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			}},
		},
		roleBindings: []rbacv1.RoleBinding{
			roleBinding(stg, "alice-deployer", "deployer", userSubject("alice")),
			roleBinding(prod, "alice-deployer", "deployer", userSubject("alice")),
			roleBinding(prod, "bob-deployer", "deployer", userSubject("bob")),
			roleBinding(stg, "viewers", "viewer", groupSubject("viewers")),
			roleBinding(prod, "viewers", "viewer", groupSubject("viewers")),
			roleBinding(stg, "authenticated-pod-reader", "pod-reader", groupSubject("system:authenticated")),
			{
				ObjectMeta: metav1.ObjectMeta{Name: "deploybot-access-review", Namespace: stg},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "deploybot-access-review"},
				Subjects:   []rbacv1.Subject{userSubject("deploybot")},
			},
			{
				ObjectMeta: metav1.ObjectMeta{Name: "deploybot-access-review", Namespace: prod},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "deploybot-access-review"},
				Subjects:   []rbacv1.Subject{userSubject("deploybot")},
			},
		},
	}
}

// cellKey is one API call of one user; cells of different commands that
// make the same call share the API server's answer.
type cellKey struct {
	user   string
	access plan.Access
}

func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	ctx := testContext(t, 2*time.Minute)
	admin := clientFor(t, cp.AdminConfig())
	ensureImageStreamCRD(t, cp)
	for _, e := range matrixEnvs {
		createNamespaces(ctx, t, cp, e.ns)
		createMatrixObjects(ctx, t, cp, admin, e.ns, e.tag)
	}
	applyRBAC(ctx, t, admin, matrixRBAC())

	groups := map[string][]string{}
	for _, u := range cp.Users() {
		groups[u.Name] = u.Groups
	}
	bot := botClientFor(t, cp.UserConfig("deploybot"))
	clients := map[string]kubeclient.Interface{}
	for _, e := range matrixEnvs {
		clients[e.env] = bot
	}
	checker := access.NewChecker(clients)
	waitRBAC(ctx, t, checker, groups)
	// And the bot's right to impersonate: any user may review itself, so
	// this succeeds once impersonating is allowed.
	impCfg := cp.UserConfig("deploybot")
	impCfg.Impersonate = rest.ImpersonationConfig{UserName: "carol", Groups: groups["carol"]}
	asCarol := clientFor(t, impCfg)
	waitFor(ctx, t, "deploybot may impersonate", func() (bool, string) {
		_, err := asCarol.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods"}},
		}, metav1.CreateOptions{})
		return err == nil, errString(err)
	})

	// The matrix reads and deletes (dry-run) named worker pods: wait until
	// the StatefulSet controller has made them, or a busy machine turns the
	// verdict into a 404.
	waitFor(ctx, t, "the matrix's worker pods", func() (bool, string) {
		for _, e := range matrixEnvs {
			for _, name := range []string{"packit-worker-short-running-1", "packit-worker-long-running-1", "tokman-1"} {
				if _, err := admin.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
					return false, e.ns + "/" + name + ": " + err.Error()
				}
			}
		}
		return true, ""
	})

	prober := newProber(t, cp, groups)

	type disagreement struct {
		user, command, env string
		access             plan.Access
		checker, server    string
	}
	var (
		cells, allowed int
		problems       []disagreement
		summary        []string
	)
	for _, user := range matrixUsers {
		for _, e := range matrixEnvs {
			var row []string
			for _, c := range matrixCommands {
				calls := c.calls(e.ns, e.tag)
				denials, err := checker.Denied(ctx, e.env, user, groups[user], calls)
				if err != nil {
					t.Fatalf("checking %s's access for %s in %s: %v", user, c.name, e.env, err)
				}
				deniedBy := map[plan.Access]string{}
				for _, d := range denials {
					deniedBy[d.Access] = d.Reason
				}
				ndenied := 0
				for _, a := range calls {
					cells++
					botSays := "allowed"
					if reason, no := deniedBy[a]; no {
						botSays = "denied (" + reason + ")"
						ndenied++
					}
					direct := prober.verdict(ctx, t, probeDirect, user, a)
					imp := prober.verdict(ctx, t, probeImpersonated, user, a)
					if direct.allowed {
						allowed++
					}
					if (botSays == "allowed") != direct.allowed {
						problems = append(problems, disagreement{user, c.name, e.env, a, botSays, direct.String()})
					}
					if imp.allowed != direct.allowed {
						problems = append(problems, disagreement{user, c.name, e.env, a, "impersonated: " + imp.String(), direct.String()})
					}
					if unserved[a.Resource] {
						// Not served here, so the server's answer to the call
						// (403, or 404 after authorization) is backed by the
						// user's own SelfSubjectAccessReview.
						ssar := prober.selfReview(ctx, t, user, a)
						if ssar != direct.allowed {
							problems = append(problems, disagreement{user, c.name, e.env, a, fmt.Sprintf("SelfSubjectAccessReview allowed=%v", ssar), direct.String()})
						}
					}
				}
				verdict := "yes"
				if ndenied > 0 {
					verdict = fmt.Sprintf("no (%d of %d calls denied)", ndenied, len(calls))
				}
				row = append(row, fmt.Sprintf("    %-44s %s", c.name, verdict))
			}
			summary = append(summary, fmt.Sprintf("  %s in %s:\n%s", user, e.env, strings.Join(row, "\n")))
		}
	}
	t.Logf("access matrix: %d users × %d commands × %d namespaces = %d cells (API calls); %d allowed, %d denied; %d distinct calls made directly and %d with impersonation\n%s",
		len(matrixUsers), len(matrixCommands), len(matrixEnvs), cells, allowed, cells-allowed, prober.count(probeDirect), prober.count(probeImpersonated), strings.Join(summary, "\n"))
	for _, p := range problems {
		t.Errorf("%s / %s / %s: %s %s %s/%s %q: deploybot says %s, the API server %s",
			p.user, p.env, p.command, p.access.Verb, p.access.Group, p.access.Resource, p.access.Subresource, p.access.Name, p.checker, p.server)
	}
	t.Logf("%d disagreements", len(problems))
	if allowed == 0 || allowed == cells {
		t.Fatalf("the matrix has %d allowed of %d cells: it must have both", allowed, cells)
	}

	// The bot's own rights are checked too: where it may not create access
	// reviews, the Checker fails loudly instead of answering.
	noReview := access.NewChecker(map[string]kubeclient.Interface{"elsewhere": bot})
	_, err := noReview.Denied(ctx, "elsewhere", "alice", groups["alice"], []plan.Access{{Verb: "get", Resource: "pods", Namespace: "default"}})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("checking access where deploybot may not create localsubjectaccessreviews: %v, want a forbidden error", err)
	}
}

// createMatrixObjects creates what the commands touch, so an allowed call
// meets a real object (a dry-run changes nothing).
func createMatrixObjects(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, admin kubernetes.Interface, ns, tag string) {
	t.Helper()
	images, err := imageclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"packit-service", "packit-worker"} {
		is := &imagev1.ImageStream{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{{
				Name: tag,
				From: &corev1.ObjectReference{Kind: "DockerImage", Name: "quay.io/packit/" + name + ":" + tag},
			}}},
		}
		if _, err := images.ImageV1().ImageStreams(ns).Create(ctx, is, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating image stream %s/%s: %v", ns, name, err)
		}
	}
	for _, name := range []string{"packit-service", "packit-service-beat", "packit-dashboard"} {
		createDeployment(ctx, t, admin, followDeployment(ns, name, "quay.io/packit/"+name+":"+tag, 1))
	}
	for _, name := range []string{"packit-worker-short-running", "packit-worker-long-running", "tokman"} {
		s := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.StatefulSetSpec{
				Replicas:            int32p(2),
				ServiceName:         name,
				PodManagementPolicy: appsv1.ParallelPodManagement,
				Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template:            podTemplate(name, "quay.io/packit/"+name+":"+tag),
			},
		}
		if _, err := admin.AppsV1().StatefulSets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating statefulset %s/%s: %v", ns, name, err)
		}
	}
}

// waitRBAC waits until the authorizer's caches have every binding: RBAC
// objects take effect shortly after they are created.
func waitRBAC(ctx context.Context, t *testing.T, checker *access.Checker, groups map[string][]string) {
	t.Helper()
	canaries := []struct {
		env, user string
		access    plan.Access
	}{
		{"stg", "alice", plan.Access{Verb: "delete", Resource: "pods", Namespace: "packit--stg"}},
		{"prod", "alice", plan.Access{Verb: "create", Group: "image.openshift.io", Resource: "imagestreamimports", Namespace: "packit--prod"}},
		{"prod", "bob", plan.Access{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: "packit--prod"}},
		{"stg", "carol", plan.Access{Verb: "list", Group: "apps", Resource: "replicasets", Namespace: "packit--stg"}},
		{"prod", "carol", plan.Access{Verb: "list", Group: "apps", Resource: "replicasets", Namespace: "packit--prod"}},
		{"stg", "dave", plan.Access{Verb: "list", Resource: "pods", Namespace: "packit--stg"}},
	}
	waitFor(ctx, t, "RBAC bindings in effect", func() (bool, string) {
		for _, c := range canaries {
			denied, err := checker.Denied(ctx, c.env, c.user, groups[c.user], []plan.Access{c.access})
			if err != nil || len(denied) > 0 {
				return false, fmt.Sprintf("%s %+v: %v %v", c.user, c.access, denied, err)
			}
		}
		return true, ""
	})
}

type probeMode int

const (
	probeDirect       probeMode = iota // the user's own credentials
	probeImpersonated                  // deploybot impersonating the user
)

// probeResult is what the API server answered a call.
type probeResult struct {
	allowed bool
	code    int
	message string
}

func (r probeResult) String() string {
	if r.allowed {
		return fmt.Sprintf("allows it (HTTP %d)", r.code)
	}
	return fmt.Sprintf("forbids it (HTTP %d: %s)", r.code, r.message)
}

// prober makes API calls as users, once per distinct (user, call, mode).
type prober struct {
	cp      *controlplane.ControlPlane
	groups  map[string][]string
	admin   *http.Client
	clients map[string]*http.Client
	cache   map[probeMode]map[cellKey]probeResult
	users   map[string]kubernetes.Interface
}

func newProber(t *testing.T, cp *controlplane.ControlPlane, groups map[string][]string) *prober {
	t.Helper()
	p := &prober{
		cp:      cp,
		groups:  groups,
		clients: map[string]*http.Client{},
		cache:   map[probeMode]map[cellKey]probeResult{probeDirect: {}, probeImpersonated: {}},
		users:   map[string]kubernetes.Interface{},
	}
	p.admin = p.httpClient(t, cp.AdminConfig())
	return p
}

func (p *prober) httpClient(t *testing.T, cfg *rest.Config) *http.Client {
	t.Helper()
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatalf("building an HTTP client: %v", err)
	}
	return c
}

func (p *prober) clientFor(t *testing.T, mode probeMode, user string) *http.Client {
	t.Helper()
	key := fmt.Sprint(mode, "/", user)
	if c, ok := p.clients[key]; ok {
		return c
	}
	cfg := p.cp.UserConfig(user)
	if mode == probeImpersonated {
		// execution: impersonate — the bot's credentials, the user's identity.
		cfg = p.cp.UserConfig("deploybot")
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: p.groups[user]}
	}
	c := p.httpClient(t, cfg)
	p.clients[key] = c
	return c
}

func (p *prober) count(mode probeMode) int { return len(p.cache[mode]) }

// verdict makes the call a as user (dry-run for anything that writes) and
// reports whether the API server let it through authorization.
func (p *prober) verdict(ctx context.Context, t *testing.T, mode probeMode, user string, a plan.Access) probeResult {
	t.Helper()
	key := cellKey{user, a}
	if r, ok := p.cache[mode][key]; ok {
		return r
	}
	r := p.call(ctx, t, p.clientFor(t, mode, user), a)
	p.cache[mode][key] = r
	return r
}

// resourcePath is the REST path of a call's collection or object.
func resourcePath(a plan.Access, withName bool) string {
	prefix := "/api/v1"
	if a.Group != "" {
		prefix = "/apis/" + a.Group + "/v1"
	}
	path := prefix + "/namespaces/" + a.Namespace + "/" + a.Resource
	if withName && a.Name != "" {
		path += "/" + url.PathEscape(a.Name)
		if a.Subresource != "" {
			path += "/" + a.Subresource
		}
	}
	return path
}

// kinds are the kinds of the resources the matrix creates or updates.
var kinds = map[string]string{
	"imagestreams":       "ImageStream",
	"imagestreamtags":    "ImageStreamTag",
	"imagestreamimports": "ImageStreamImport",
}

func (p *prober) call(ctx context.Context, t *testing.T, client *http.Client, a plan.Access) probeResult {
	t.Helper()
	host := p.cp.Host()
	apiVersion := "v1"
	if a.Group != "" {
		apiVersion = a.Group + "/v1"
	}
	var (
		method = http.MethodGet
		path   = resourcePath(a, true)
		query  = url.Values{}
		body   []byte
		ctype  = "application/json"
	)
	switch a.Verb {
	case "get":
	case "list":
		path = resourcePath(a, false)
		query.Set("limit", "1")
	case "watch":
		path = resourcePath(a, false)
		query.Set("watch", "true")
		query.Set("timeoutSeconds", "1")
	case "create":
		method, path = http.MethodPost, resourcePath(a, false)
		query.Set("dryRun", "All")
		name := a.Name
		if name == "" {
			name = "packit-worker"
		}
		body, _ = json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": kinds[a.Resource], "metadata": map[string]any{"name": name}})
	case "update":
		method = http.MethodPut
		query.Set("dryRun", "All")
		// The object as it is, when it exists: a valid update that the
		// dry-run does not store.
		body = p.current(ctx, t, a)
		if body == nil {
			body, _ = json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": kinds[a.Resource], "metadata": map[string]any{"name": a.Name}})
		}
	case "patch":
		method, ctype = http.MethodPatch, "application/merge-patch+json"
		query.Set("dryRun", "All")
		body = []byte("{}")
	case "delete":
		method = http.MethodDelete
		query.Set("dryRun", "All")
	default:
		t.Fatalf("no probe for verb %q", a.Verb)
	}
	u := host + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	if a.Verb == "watch" && resp.StatusCode == http.StatusOK {
		// The watch started: that is the answer; do not wait for events.
		return probeResult{allowed: true, code: resp.StatusCode}
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var st metav1.Status
	_ = json.Unmarshal(raw, &st)
	r := probeResult{code: resp.StatusCode, message: st.Message, allowed: resp.StatusCode != http.StatusForbidden}
	switch {
	case resp.StatusCode == http.StatusForbidden:
		// Only an authorization refusal counts: it names the user and the verb.
		if !strings.Contains(st.Message, "cannot "+a.Verb) {
			t.Fatalf("%s %s: 403 that is not an RBAC refusal: %s", method, u, raw)
		}
	case unserved[a.Resource] && resp.StatusCode == http.StatusNotFound:
		// Authorized, then not found: the resource is not served.
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
	default:
		t.Fatalf("%s %s: unexpected answer %d: %s", method, u, resp.StatusCode, raw)
	}
	return r
}

// current returns the object a call names as admin reads it, or nil.
func (p *prober) current(ctx context.Context, t *testing.T, a plan.Access) []byte {
	t.Helper()
	if unserved[a.Resource] || a.Name == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cp.Host()+resourcePath(a, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.admin.Do(req)
	if err != nil {
		t.Fatalf("reading %s: %v", resourcePath(a, true), err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reading %s as admin: %d %s", resourcePath(a, true), resp.StatusCode, raw)
	}
	return raw
}

// selfReview asks the API server, as user, whether user may make the call.
func (p *prober) selfReview(ctx context.Context, t *testing.T, user string, a plan.Access) bool {
	t.Helper()
	cs, ok := p.users[user]
	if !ok {
		cs = clientFor(t, p.cp.UserConfig(user))
		p.users[user] = cs
	}
	ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.Namespace, Verb: a.Verb, Group: a.Group, Resource: a.Resource, Subresource: a.Subresource, Name: a.Name,
		},
	}}
	out, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectAccessReview as %s: %v", user, err)
	}
	return out.Status.Allowed
}
