package demo

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/plan"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubernetesConfig is the shipped examples/kubernetes.yaml: envs dev
// (latest) and prod (prod), services web (Deployment web) and worker
// (StatefulSet worker).
func kubernetesConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse(examples.Kubernetes)
	if err != nil {
		t.Fatalf("parsing examples/kubernetes.yaml: %v", err)
	}
	return cfg
}

const (
	shopProd   = "shop-prod"
	shopWeb    = "registry.demo.local/shop/web"
	shopWorker = "registry.demo.local/shop/worker"
)

func startKubeDemo(t *testing.T) (*Cluster, context.Context) {
	t.Helper()
	c, err := New(kubernetesConfig(t), WithTick(testTick), WithErrorHandler(func(err error) { t.Logf("controller error: %v", err) }))
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

// kubeImages are the template images of the prod workloads of web and
// worker.
func kubeImages(t *testing.T, c *Cluster) (web, worker string) {
	t.Helper()
	ctx := context.Background()
	d, err := c.Kube("prod").AppsV1().Deployments(shopProd).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Kube("prod").AppsV1().StatefulSets(shopProd).Get(ctx, "worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image, s.Spec.Template.Spec.Containers[0].Image
}

// TestKubernetesSeededState: a plain Kubernetes environment gets no image
// streams and no trigger annotations; its listed workloads run
// REPO:TAG@DIGEST in the listed container, with historyLen revisions each,
// and the digests are the same in every demo (the session transcripts
// compare them).
func TestKubernetesSeededState(t *testing.T) {
	cfg := kubernetesConfig(t)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pinned := regexp.MustCompile(`^registry\.demo\.local/shop/(web|worker):prod@sha256:[0-9a-f]{64}$`)
	web, worker := kubeImages(t, c)
	for _, img := range []string{web, worker} {
		if !pinned.MatchString(img) {
			t.Errorf("seeded image %q, want REPO:prod@sha256:…", img)
		}
	}
	d, _ := c.Kube("prod").AppsV1().Deployments(shopProd).Get(ctx, "web", metav1.GetOptions{})
	s, _ := c.Kube("prod").AppsV1().StatefulSets(shopProd).Get(ctx, "worker", metav1.GetOptions{})
	if _, ok := d.Annotations[triggerKey]; ok {
		t.Errorf("deployment web has a trigger annotation on plain Kubernetes: %v", d.Annotations)
	}
	if _, ok := s.Annotations[triggerKey]; ok {
		t.Errorf("statefulset worker has a trigger annotation on plain Kubernetes: %v", s.Annotations)
	}
	if n := d.Spec.Template.Spec.Containers[0].Name; n != "web" {
		t.Errorf("deployment web's container is %q, want the listed web", n)
	}
	if s.Spec.PodManagementPolicy != "OrderedReady" {
		t.Errorf("statefulset worker is %s, want OrderedReady", s.Spec.PodManagementPolicy)
	}
	rss, _ := c.Kube("prod").AppsV1().ReplicaSets(shopProd).List(ctx, metav1.ListOptions{})
	crs, _ := c.Kube("prod").AppsV1().ControllerRevisions(shopProd).List(ctx, metav1.ListOptions{})
	if len(rss.Items) != historyLen || len(crs.Items) != historyLen {
		t.Errorf("%d ReplicaSets, %d ControllerRevisions; want %d each", len(rss.Items), len(crs.Items), historyLen)
	}
	if iss, _ := c.Images("prod").ImageV1().ImageStreams(shopProd).List(ctx, metav1.ListOptions{}); len(iss.Items) != 0 {
		t.Errorf("%d image streams in a plain Kubernetes namespace", len(iss.Items))
	}
	ec := c.EnvClients()["prod"]
	if ec.Images != nil || ec.Kubernetes == nil || ec.Kubernetes.Registry == nil || ec.Kubernetes.Scheduled || len(ec.Kubernetes.Services) != 2 {
		t.Errorf("EnvClients[prod] = %+v, Kubernetes %+v", ec, ec.Kubernetes)
	}
	if !c.EnvClients()["dev"].Kubernetes.Scheduled {
		t.Error("dev is scheduled: true, its EnvClient not")
	}
	// Settled from the first tick on, like the OpenShift envs.
	for i := 0; i < 3; i++ {
		if err := c.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []struct{ kind, name, image string }{{"Deployment", "web", web}, {"StatefulSet", "worker", worker}} {
		if ok, state := workloadOnImage(t, c, "prod", shopProd, w.kind, w.name, w.image); !ok {
			t.Errorf("after 3 ticks: %s", state)
		}
	}

	again, err := New(kubernetesConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if w2, k2 := kubeImages(t, again); w2 != web || k2 != worker {
		t.Errorf("a second demo seeds %s, %s; the first %s, %s", w2, k2, web, worker)
	}
}

// TestKubernetesImportRolls reads the demo registry through the registry
// client under the config's host, imports its newer images by executing a
// Plan and watches both workloads roll to REPO:TAG@DIGEST; the registry is
// reachable only while the demo runs, again after a restart.
func TestKubernetesImportRolls(t *testing.T) {
	c, ctx := startKubeDemo(t)
	set := cluster.NewSet(c.EnvClients())
	var targets []plan.Target
	for _, s := range []struct{ service, kind, repo string }{{"web", plan.KindDeployment, shopWeb}, {"worker", plan.KindStatefulSet, shopWorker}} {
		ts, err := set.Tag(ctx, "prod", s.service, "prod")
		if err != nil {
			t.Fatal(err)
		}
		img, err := set.RegistryImage(ctx, "prod", s.service, "prod")
		if err != nil {
			t.Fatal(err)
		}
		if img.Digest == ts.Current.Digest || len(ts.History) != historyLen || img.Ref != s.repo+":prod@"+img.Digest {
			t.Fatalf("%s: registry %+v, running %+v with %d revisions; want a newer image than the %d seeded", s.service, img, ts.Current, len(ts.History), historyLen)
		}
		if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(img.Revision) || img.Source != "https://git.demo.local/shop/"+s.service {
			t.Errorf("%s: labels revision %q, source %q", s.service, img.Revision, img.Source)
		}
		targets = append(targets, plan.Target{Service: s.service, Stream: s.service, Tag: "prod",
			From: plan.Image{Ref: ts.Current.Ref, Digest: ts.Current.Digest}, To: img,
			Workloads: []plan.WorkloadRef{{Kind: s.kind, Name: s.service, Containers: s.service}}})
	}
	p := plan.Plan{Action: plan.ActionImport, Env: "prod", Platform: plan.PlatformKubernetes, Namespace: shopProd, Targets: targets}
	res, err := set.Execute(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Targets {
		if r.Outcome != plan.PhaseChanged {
			t.Fatalf("import: %+v", res)
		}
	}
	for i, w := range []struct{ kind, name string }{{"Deployment", "web"}, {"StatefulSet", "worker"}} {
		waitFor(t, w.name+" on the imported image", func() (bool, string) {
			return workloadOnImage(t, c, "prod", shopProd, w.kind, w.name, targets[i].To.Ref)
		})
	}

	c.Stop()
	if _, err := c.RegistryClient().Resolve(ctx, shopWeb, "prod"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Resolve with the demo stopped: %v, want the registry not running", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := c.PushImage(ctx, "web", "prod", historyLen+2)
	if err != nil {
		t.Fatal(err)
	}
	if img, err := set.RegistryImage(ctx, "prod", "web", "prod"); err != nil || img.Digest != d {
		t.Errorf("after a push and a restart: %+v, %v; want %s", img, err, d)
	}
	if _, err := c.RegistryClient().Resolve(ctx, "quay.io/packit/packit-worker", "prod"); err == nil || !strings.Contains(err.Error(), "reaches only its own registry") {
		t.Errorf("Resolve of another registry: %v", err)
	}
}

// TestKubernetesAccess: a plain Kubernetes import, revert and undo pass the
// access check for the users that may run them (and admin, whom the
// example maps), and not for carol.
func TestKubernetesAccess(t *testing.T) {
	cfg := kubernetesConfig(t)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]kubeclient.Interface{}
	for name, ec := range c.EnvClients() {
		clients[name] = ec.Kube
	}
	checker := access.NewChecker(clients)
	workloads := []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "web", Containers: "web"}, {Kind: plan.KindStatefulSet, Name: "worker", Containers: "worker"}}
	for _, tt := range []struct {
		user, env string
		action    plan.Action
		want      bool
	}{
		{"alice", "dev", plan.ActionImport, true},
		{"alice", "prod", plan.ActionPin, true},
		{"bob", "prod", plan.ActionImport, true},
		{"bob", "dev", plan.ActionImport, false},
		{"admin", "prod", plan.ActionRollback, true},
		{"carol", "prod", plan.ActionImport, false},
		{BotUser, "dev", plan.ActionImport, true},
	} {
		t.Run(fmt.Sprintf("%s %s %s", tt.user, tt.action, tt.env), func(t *testing.T) {
			ns := map[string]string{"dev": "shop-dev", "prod": shopProd}[tt.env]
			p := plan.Plan{Action: tt.action, Env: tt.env, Platform: plan.PlatformKubernetes, Namespace: ns,
				Targets: []plan.Target{{Service: "web", Stream: "web", Tag: "prod", Workloads: workloads}}}
			denied, err := checker.Denied(context.Background(), tt.env, tt.user, nil, plan.AccessFor(p))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(denied) == 0; got != tt.want {
				t.Errorf("allowed = %v (%+v), want %v", got, denied, tt.want)
			}
		})
	}
}
