package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/plan"
)

// tagTable stands in for the registry behind cluster.Registry (the registry
// client is tested against the real CNCF Distribution registry in package
// registry): what each tag names, and every digest pushed.
type tagTable struct {
	mu    sync.Mutex
	tags  map[string]string // repo:tag → digest
	known map[string]bool   // repo@digest
	heads int
}

func newTagTable() *tagTable { return &tagTable{tags: map[string]string{}, known: map[string]bool{}} }

func (r *tagTable) push(repo, tag, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tags[repo+":"+tag] = digest
	r.known[repo+"@"+digest] = true
}

func (r *tagTable) Resolve(_ context.Context, repo, tag string) (plan.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heads++
	d, ok := r.tags[repo+":"+tag]
	if !ok {
		return plan.Image{}, fmt.Errorf("%s:%s: manifest unknown", repo, tag)
	}
	return plan.Image{Ref: repo + ":" + tag + "@" + d, Digest: d}, nil
}

func (r *tagTable) Lookup(_ context.Context, repo, digest string) (plan.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known[repo+"@"+digest] {
		return plan.Image{}, fmt.Errorf("%s@%s: manifest unknown", repo, digest)
	}
	return plan.Image{Ref: repo + "@" + digest, Digest: digest}, nil
}

// recordedHistory is an image history in memory.
type recordedHistory []plan.ImageRecord

func (h recordedHistory) Images(_ context.Context, env, service string) ([]plan.ImageRecord, error) {
	var out []plan.ImageRecord
	for _, r := range h {
		if r.Env == env && r.Service == service {
			out = append(out, r)
		}
	}
	return out, nil
}

const webRepo = "registry.test:5000/shop/web"

func webDigest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// kubeFixture is a plain Kubernetes environment: Deployment web and
// StatefulSet web-worker (container web, beside a sidecar) run
// web:latest@digest 1; the registry's latest is at digest 2.
func kubeFixture(t *testing.T) (*cluster.Set, *kubefake.Clientset, *tagTable) {
	t.Helper()
	running := webRepo + ":latest@" + webDigest(1)
	dep := deployment("web", running, 2, nil)
	sts := statefulSet("web-worker", running, 2, "web-worker-1", nil)
	sts.Spec.Template.Spec.Containers[0].Name = "web"
	sts.Spec.Template.Spec.Containers = append(sts.Spec.Template.Spec.Containers, corev1.Container{Name: "proxy", Image: "docker.io/library/nginx:1.27"})
	kube := kubefake.NewClientset([]runtime.Object{dep, sts}...)
	reg := newTagTable()
	reg.push(webRepo, "latest", webDigest(1))
	reg.push(webRepo, "latest", webDigest(2))
	hist := recordedHistory{{Env: testEnv, Service: "web", Digest: webDigest(1), Ref: running, Seen: testNow.Add(-time.Hour), Imported: testNow.Add(-time.Hour), By: "alice"}}
	set := cluster.NewSet(map[string]cluster.EnvClient{testEnv: {Kube: kube, Namespace: testNS, Kubernetes: &cluster.Kubernetes{
		Registry: reg, History: hist,
		Services: map[string]cluster.Service{"web": {Name: "web", Repository: webRepo, Workloads: []cluster.ServiceWorkload{
			{Kind: "Deployment", Name: "web", Container: "web"}, {Kind: "StatefulSet", Name: "web-worker"},
		}}},
	}}})
	return set, kube, reg
}

func webTarget(from, to plan.Image) plan.Target {
	return plan.Target{Service: "web", Stream: "web", Tag: "latest", From: from, To: to, Workloads: []plan.WorkloadRef{
		{Kind: plan.KindDeployment, Name: "web", Containers: "web"}, {Kind: plan.KindStatefulSet, Name: "web-worker", Containers: "web"},
	}}
}

func images(t *testing.T, kube *kubefake.Clientset) (dep, sts map[string]string, pinned [2]string) {
	t.Helper()
	d, err := kube.AppsV1().Deployments(testNS).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := kube.AppsV1().StatefulSets(testNS).Get(context.Background(), "web-worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep, sts = map[string]string{}, map[string]string{}
	for _, c := range d.Spec.Template.Spec.Containers {
		dep[c.Name] = c.Image
	}
	for _, c := range s.Spec.Template.Spec.Containers {
		sts[c.Name] = c.Image
	}
	return dep, sts, [2]string{d.Annotations[cluster.PinnedAnnotation], s.Annotations[cluster.PinnedAnnotation]}
}

// TestKubernetesEnvironment walks a plain Kubernetes environment through
// what the commands do: read the "tag" (what runs, the recorded history),
// import the registry's image (the listed containers set to
// REPO:TAG@DIGEST, the sidecar untouched), refuse an import whose registry
// image moved since the Plan, pin to an older digest (revert) and follow
// the registry again (track).
func TestKubernetesEnvironment(t *testing.T) {
	ctx := context.Background()
	set, kube, reg := kubeFixture(t)

	ts, err := set.Tag(ctx, testEnv, "web", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Current.Digest != webDigest(1) || ts.SpecFrom != webRepo+":latest" || ts.Pinned() || len(ts.History) != 1 || ts.History[0].Digest != webDigest(1) {
		t.Fatalf("Tag = %+v", ts)
	}
	to, err := set.RegistryImage(ctx, testEnv, "web", "latest")
	if err != nil || to.Digest != webDigest(2) || to.Ref != webRepo+":latest@"+webDigest(2) {
		t.Fatalf("RegistryImage = %+v, %v", to, err)
	}
	if _, err := set.TriggeredWorkloads(ctx, testEnv, "web", "latest"); err == nil || !strings.Contains(err.Error(), "no image triggers") {
		t.Errorf("TriggeredWorkloads error = %v, want the plain Kubernetes explanation", err)
	}

	// import
	p := plan.Plan{Action: plan.ActionImport, Env: testEnv, Platform: plan.PlatformKubernetes, Namespace: testNS, Targets: []plan.Target{webTarget(plan.Image{Ref: ts.Current.Ref, Digest: ts.Current.Digest}, to)}}
	res, err := set.Execute(ctx, p, nil)
	if err != nil || res.Targets[0].Outcome != plan.PhaseChanged || res.Targets[0].To.Digest != webDigest(2) {
		t.Fatalf("import = %+v, %v", res, err)
	}
	dep, sts, pins := images(t, kube)
	if dep["web"] != to.Ref || sts["web"] != to.Ref || sts["proxy"] != "docker.io/library/nginx:1.27" || pins != [2]string{} {
		t.Fatalf("after import: deployment %v, statefulset %v, pins %v", dep, sts, pins)
	}

	// an import planned before the registry moved is refused, nothing changes
	reg.push(webRepo, "latest", webDigest(3))
	res, err = set.Execute(ctx, p, nil)
	if err != nil || res.Targets[0].Outcome != plan.PhaseFailed || !strings.Contains(res.Targets[0].Error, "registry moved") {
		t.Fatalf("stale import = %+v, %v", res, err)
	}
	if dep, _, _ := images(t, kube); dep["web"] != to.Ref {
		t.Fatalf("a refused import changed the deployment to %s", dep["web"])
	}

	// revert: pinned by digest, annotated; the "tag" now reads pinned
	pinRef := webRepo + "@" + webDigest(1)
	pin := plan.Plan{Action: plan.ActionPin, Env: testEnv, Platform: plan.PlatformKubernetes, Namespace: testNS, Targets: []plan.Target{webTarget(to, plan.Image{Ref: pinRef, Digest: webDigest(1)})}}
	pin.Targets[0].SpecFrom = pinRef
	if res, err := set.Execute(ctx, pin, nil); err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
		t.Fatalf("pin = %+v, %v", res, err)
	}
	dep, sts, pins = images(t, kube)
	if dep["web"] != pinRef || sts["web"] != pinRef || pins != [2]string{pinRef, pinRef} {
		t.Fatalf("after pin: deployment %v, statefulset %v, pins %v", dep, sts, pins)
	}
	ts, _ = set.Tag(ctx, testEnv, "web", "latest")
	if !ts.Pinned() || ts.Scheduled || ts.Current.Digest != webDigest(1) {
		t.Errorf("Tag after pin = %+v", ts)
	}
	if img, err := set.RegistryImage(ctx, testEnv, "web", "latest"); err != nil || img.Digest != webDigest(1) {
		t.Errorf("RegistryImage of a pinned service = %+v, %v; want the pinned image, as import re-imports it", img, err)
	}

	// track: the annotation goes, the registry's image comes
	track := plan.Plan{Action: plan.ActionTrack, Env: testEnv, Platform: plan.PlatformKubernetes, Namespace: testNS, Targets: []plan.Target{webTarget(plan.Image{Ref: pinRef, Digest: webDigest(1)}, plan.Image{})}}
	track.Targets[0].SpecFrom = webRepo + ":latest"
	res, err = set.Execute(ctx, track, nil)
	if err != nil || res.Targets[0].Outcome != plan.PhaseChanged || res.Targets[0].To.Digest != webDigest(3) {
		t.Fatalf("track = %+v, %v", res, err)
	}
	dep, _, pins = images(t, kube)
	if dep["web"] != webRepo+":latest@"+webDigest(3) || pins != [2]string{} {
		t.Fatalf("after track: deployment %v, pins %v", dep, pins)
	}
}

// TestKubernetesRefusals: a Plan for the other platform, a container that
// is gone and a service that is not configured are refused, and change
// nothing.
func TestKubernetesRefusals(t *testing.T) {
	ctx := context.Background()
	set, kube, _ := kubeFixture(t)
	to := plan.Image{Ref: webRepo + ":latest@" + webDigest(2), Digest: webDigest(2)}
	openshift := plan.Plan{Action: plan.ActionImport, Env: testEnv, Namespace: testNS, Targets: []plan.Target{webTarget(plan.Image{}, to)}}
	if _, err := set.Execute(ctx, openshift, nil); err == nil || !strings.Contains(err.Error(), "plan it again") {
		t.Errorf("an OpenShift plan on a plain Kubernetes env: %v", err)
	}
	gone := plan.Plan{Action: plan.ActionImport, Env: testEnv, Platform: plan.PlatformKubernetes, Namespace: testNS, Targets: []plan.Target{webTarget(plan.Image{}, to)}}
	gone.Targets[0].Workloads[1].Containers = "app" // the second workload: the first must not be half set
	res, err := set.Execute(ctx, gone, nil)
	if err != nil || res.Targets[0].Outcome != plan.PhaseFailed || !strings.Contains(res.Targets[0].Error, `no container "app"`) {
		t.Errorf("a renamed container: %+v, %v", res, err)
	}
	if dep, _, _ := images(t, kube); dep["web"] != webRepo+":latest@"+webDigest(1) || len(dep) != 1 {
		t.Errorf("a refused import changed the deployment: %v", dep)
	}
	if _, err := set.Tag(ctx, testEnv, "shop", "latest"); err == nil || !strings.Contains(err.Error(), `no service "shop"`) {
		t.Errorf("Tag of an unknown service: %v", err)
	}
}

// TestKubernetesAccessCoversExecute: every call a plain Kubernetes import
// makes is one AccessFor lists, so the requester was checked for it.
func TestKubernetesAccessCoversExecute(t *testing.T) {
	set, kube, _ := kubeFixture(t)
	to := plan.Image{Ref: webRepo + ":latest@" + webDigest(2), Digest: webDigest(2)}
	p := plan.Plan{Action: plan.ActionImport, Env: testEnv, Platform: plan.PlatformKubernetes, Namespace: testNS, Targets: []plan.Target{webTarget(plan.Image{}, to)}}
	listed := map[[3]string]bool{}
	for _, a := range plan.AccessFor(p) {
		listed[[3]string{a.Verb, a.Group, a.Resource}] = true
	}
	kube.ClearActions()
	res, err := set.Execute(context.Background(), p, nil)
	if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
		t.Fatalf("Execute = %+v, %v", res, err)
	}
	set.Follow(context.Background(), p, res, 50*time.Millisecond, nil)
	calls := 0
	for _, a := range kube.Actions() {
		calls++
		if key := [3]string{a.GetVerb(), a.GetResource().Group, a.GetResource().Resource}; !listed[key] {
			t.Errorf("a call %v was made that AccessFor does not list", key)
		}
	}
	if calls < 6 {
		t.Errorf("only %d calls recorded; the test exercises too little", calls)
	}
}

// kubeConfig is the plain Kubernetes config, on the fixture's
// namespace.
func kubeConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
environments:
  - name: ` + testEnv + `
    platform: kubernetes
    namespace: ` + testNS + `
    tag: latest
services:
  - name: web
    repository: ` + webRepo + `
    workloads:
      - {kind: Deployment, name: web, container: web}
      - {kind: StatefulSet, name: web-worker}
identities:
  users:
    - {platform: terminal, id: admin, user: admin}
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestKubernetesPlans: the commands plan against a plain Kubernetes
// environment as against OpenShift — import, revert, track and undo — and
// the Plans say so: the platform, the containers each workload gets, and
// patches instead of image stream calls in the access they need.
func TestKubernetesPlans(t *testing.T) {
	ctx := context.Background()
	set, _, _ := kubeFixture(t)
	cfg := kubeConfig(t)
	d := commands.Deps{Config: cfg, Cluster: set, Now: func() time.Time { return testNow }}
	caller := plan.Caller{Platform: "terminal", ChatID: "admin", Name: "admin", User: "admin"}
	build := func(text string) plan.Plan {
		t.Helper()
		r := commands.Parse(cfg, commands.Input{Text: text})
		if r.Kind != commands.RunKind {
			t.Fatalf("%q parsed as %v: %+v", text, r.Kind, r.Reply)
		}
		p, err := commands.BuildPlan(ctx, d, caller, r.Command)
		if err != nil {
			t.Fatalf("planning %q: %v", text, err)
		}
		return p
	}

	imp := build("import " + testEnv)
	if !imp.Kubernetes() || len(imp.Targets) != 1 || imp.Targets[0].To.Digest != webDigest(2) || imp.Targets[0].Unchanged {
		t.Fatalf("import plan = %+v", imp)
	}
	want := []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "web", Containers: "web"}, {Kind: plan.KindStatefulSet, Name: "web-worker", Containers: "web"}}
	if got := imp.Targets[0].Workloads; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("import workloads = %+v, want %+v (the sidecar is not the service's)", got, want)
	}
	for _, a := range imp.Access {
		if a.Group == "image.openshift.io" {
			t.Errorf("a plain Kubernetes plan needs %+v", a)
		}
	}
	if !slices.ContainsFunc(imp.Access, func(a plan.Access) bool {
		return a.Verb == "patch" && a.Resource == "statefulsets" && a.Name == "web-worker"
	}) {
		t.Errorf("import access %+v does not patch the statefulset", imp.Access)
	}

	pin := build("revert web " + testEnv + " " + strings.TrimPrefix(webDigest(1), "sha256:")[:12])
	if pin.Action != plan.ActionPin || pin.Targets[0].SpecFrom != webRepo+"@"+webDigest(1) || pin.Targets[0].Unchanged {
		t.Errorf("revert plan = %+v", pin)
	}
	track := build("track web " + testEnv)
	if track.Action != plan.ActionTrack || track.Targets[0].SpecFrom != webRepo+":latest" || track.Targets[0].To.Digest != webDigest(2) {
		t.Errorf("track plan = %+v", track)
	}

	out, err := commands.Run(ctx, d, caller, commands.Parse(cfg, commands.Input{Text: "images web " + testEnv}).Command)
	if err != nil || !strings.Contains(fmt.Sprint(out), strings.TrimPrefix(webDigest(1), "sha256:")[:12]) {
		t.Errorf("images = %+v, %v; want the running digest", out, err)
	}
}
