package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/clock/clocktest"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/internal/registrytest"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// The plain Kubernetes flow on real servers, with no fake in between but
// the chat platform: the CNCF Distribution registry (htpasswd auth, images
// pushed with go-containerregistry's remote.Write), kube-apiserver with
// RBAC, kube-controller-manager rolling a Deployment and an OrderedReady
// StatefulSet, kwok making their pods Ready (or, for an image whose
// reference contains "broken", Running and never Ready). The bot is built as
// cmd/deploybot's build() builds it for a real cluster and driven by chat
// commands of a mapped user.

// kubeRuns numbers the runs of TestKubernetesRegistryFlow in this process,
// so -count=N gives each run namespaces of its own.
var kubeRuns atomic.Int32

const (
	shopEnv   = "shop" // tag latest
	qaEnv     = "qa"   // tag broken: its images never become Ready
	autoEnv   = "auto" // tag auto, scheduled: the bot polls the registry
	webRepo   = "shop/web"
	workerRep = "shop/worker"
	kubeUser  = "alice"
	kubeChan  = "deploys"
	autoChan  = "auto-deploys"
	botUser   = "deploybot"
)

// kubeConfigYAML is the bot's config: the snippet with both
// services, each env on its own namespace. repoHost is the registry host
// the services name; dockerConfig the credentials file.
func kubeConfigYAML(namespaces map[string]string, repoHost, dockerConfig string) string {
	return fmt.Sprintf(`environments:
  - name: %[1]s
    platform: kubernetes
    namespace: %[2]s
    tag: latest
  - name: %[3]s
    platform: kubernetes
    namespace: %[4]s
    tag: broken
  - name: %[5]s
    platform: kubernetes
    namespace: %[6]s
    tag: auto
    scheduled: true
    pollInterval: 1m
    channel: {platform: terminal, id: %[7]s}
services:
  - name: web
    repository: %[8]s/shop/web
    workloads:
      - {kind: Deployment, name: web, container: web}
  - name: worker
    repository: %[8]s/shop/worker
    workloads:
      - {kind: StatefulSet, name: worker, container: worker}
registry:
  dockerConfig: %[9]s
  insecure: [%[8]s]
identities:
  users:
    - {platform: terminal, id: alice, user: alice, groups: [deployers]}
`, shopEnv, namespaces[shopEnv], qaEnv, namespaces[qaEnv], autoEnv, namespaces[autoEnv], autoChan, repoHost, dockerConfig)
}

func TestKubernetesRegistryFlow(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	ctx := testContext(t, 15*time.Minute)
	admin := clientFor(t, cp.AdminConfig())
	reg := registrytest.Start(t)
	run := kubeRuns.Add(1)
	nss := map[string]string{
		shopEnv: fmt.Sprintf("shop-%d", run),
		qaEnv:   fmt.Sprintf("shop-qa-%d", run),
		autoEnv: fmt.Sprintf("shop-auto-%d", run),
	}
	ns := nss[shopEnv]
	createNamespaces(ctx, t, cp, nss[shopEnv], nss[qaEnv], nss[autoEnv])
	applyRBAC(ctx, t, admin, shopRBAC(nss[shopEnv], nss[qaEnv], nss[autoEnv]))

	host := reg.Host()
	webRef := func(tag, d string) string { return host + "/" + webRepo + ":" + tag + "@" + d }
	workerRef := func(tag, d string) string { return host + "/" + workerRep + ":" + tag + "@" + d }

	// The first images, and the workloads running them.
	web1 := pushImage(ctx, t, reg, webRepo, "latest", "1111111")
	worker1 := pushImage(ctx, t, reg, workerRep, "latest", "1111111")
	createShopWorkloads(ctx, t, admin, ns, webRef("latest", web1), workerRef("latest", worker1), 2, 2, nil)
	waitShopRolled(ctx, t, admin, ns, webRef("latest", web1), workerRef("latest", worker1))

	cfgText := kubeConfigYAML(nss, host, writeFile(t, "dockerconfig.json", reg.DockerConfigJSON()))
	cfg := parseKubeConfig(t, cfgText)
	sb := newShopBot(t, cp, cfg, bot.WithRolloutDeadline(3*time.Minute))
	waitShopRBAC(ctx, t, cp, sb.checker, nss)

	out, _ := sb.say(ctx, t, "status "+shopEnv)
	t.Logf("status %s before the push:\n%s", shopEnv, out)
	if !strings.Contains(out, plan.ShortDigest(web1)) || !strings.Contains(out, plan.ShortDigest(worker1)) {
		t.Errorf("status does not show the running digests %s, %s:\n%s", plan.ShortDigest(web1), plan.ShortDigest(worker1), out)
	}

	// 1. push → import → patched templates → rolled → settled.
	var web2, worker2 string
	t.Run("push and import", func(t *testing.T) {
		changed := watchTemplateChange(ctx, t, admin, ns)
		pushStart := time.Now()
		web2 = pushImage(ctx, t, reg, webRepo, "latest", "2222222")
		worker2 = pushImage(ctx, t, reg, workerRep, "latest", "2222222")
		pushed := time.Now()
		reply, id := sb.say(ctx, t, "import "+shopEnv)
		commandSent := time.Now()
		if id == "" {
			t.Fatalf("import %s opened no request; it answered:\n%s", shopEnv, reply)
		}
		final := sb.waitFinal(ctx, t, id)
		settled := time.Now()
		t.Logf("request message at the end:\n%s", final)
		if !containsAll(final, []string{"succeeded", "2/2 workloads settled", plan.ShortDigest(web2), plan.ShortDigest(worker2)}) {
			t.Fatalf("import did not end succeeded and settled with the new digests:\n%s", final)
		}
		var firstChange time.Time
		select {
		case firstChange = <-changed:
		case <-time.After(30 * time.Second):
			t.Fatal("the watch saw no template change, yet the import succeeded")
		}
		got := readShop(ctx, t, admin, ns)
		want := shopState{web: webRef("latest", web2), worker: workerRef("latest", worker2)}
		if got != want {
			t.Fatalf("after import the workloads are %s, want %s", got, want)
		}
		waitShopRolled(ctx, t, admin, ns, want.web, want.worker)
		t.Logf("timings: push of 2 images %v; push → `import %s` sent %v (no registry webhook exists yet: the command stands in for the notification, sent as soon as the push returned); push → first template change (rollout starting) %v; push → chat message settled %v",
			pushed.Sub(pushStart).Round(time.Millisecond), shopEnv, commandSent.Sub(pushed).Round(time.Millisecond),
			firstChange.Sub(pushed).Round(time.Millisecond), settled.Sub(pushed).Round(time.Millisecond))
	})
	if t.Failed() {
		return
	}

	// 2. images, revert, track, undo.
	t.Run("images revert track undo", func(t *testing.T) {
		out, _ := sb.say(ctx, t, "images web "+shopEnv)
		t.Logf("images web %s:\n%s", shopEnv, out)
		newLine, oldLine := lineWith(out, plan.ShortDigest(web2)), lineWith(out, plan.ShortDigest(web1))
		if newLine == "" || oldLine == "" {
			t.Fatalf("images lists not both digests %s and %s:\n%s", plan.ShortDigest(web2), plan.ShortDigest(web1), out)
		}
		if !strings.HasPrefix(strings.TrimSpace(newLine), "*") || strings.HasPrefix(strings.TrimSpace(oldLine), "*") {
			t.Errorf("images should mark %s (running) and not %s:\n%s", plan.ShortDigest(web2), plan.ShortDigest(web1), out)
		}
		if strings.Index(out, plan.ShortDigest(web2)) > strings.Index(out, plan.ShortDigest(web1)) {
			t.Errorf("images should list the newest first:\n%s", out)
		}

		// revert: pinned to the old digest, annotated.
		final := sb.run(ctx, t, "revert worker "+shopEnv+" "+plan.ShortDigest(worker1))
		pinned := host + "/" + workerRep + "@" + worker1
		got := readShop(ctx, t, admin, ns)
		if got.worker != pinned || got.workerPin != pinned || got.web != webRef("latest", web2) || got.webPin != "" {
			t.Fatalf("after revert the workloads are %s, want worker at and pinned to %s, web untouched\n%s", got, pinned, final)
		}
		waitShopRolled(ctx, t, admin, ns, got.web, got.worker)
		out, _ = sb.say(ctx, t, "status "+shopEnv+" worker")
		t.Logf("status after revert:\n%s", out)
		if !strings.Contains(out, "pinned") {
			t.Errorf("status after revert does not say worker is pinned:\n%s", out)
		}

		// track: the pin goes, the registry's image comes back.
		final = sb.run(ctx, t, "track worker "+shopEnv)
		got = readShop(ctx, t, admin, ns)
		if got.worker != workerRef("latest", worker2) || got.workerPin != "" {
			t.Fatalf("after track the workloads are %s, want worker at %s without the pin annotation\n%s", got, workerRef("latest", worker2), final)
		}
		waitShopRolled(ctx, t, admin, ns, got.web, got.worker)

		// undo: a plain rollback to the previous ReplicaSet's image.
		final = sb.run(ctx, t, "undo web "+shopEnv)
		got = readShop(ctx, t, admin, ns)
		if got.web != webRef("latest", web1) || got.webPin != "" {
			t.Fatalf("after undo the workloads are %s, want web back at %s\n%s", got, webRef("latest", web1), final)
		}
		waitShopRolled(ctx, t, admin, ns, got.web, got.worker)
		out, _ = sb.say(ctx, t, "history web "+shopEnv)
		t.Logf("history web after undo:\n%s", out)
	})
	if t.Failed() {
		return
	}

	// 3. an image that never becomes Ready: import reported failed, with why.
	t.Run("broken image", func(t *testing.T) {
		qa := nss[qaEnv]
		deadline := int32(10)
		createShopWorkloads(ctx, t, admin, qa, webRef("latest", web1), workerRef("latest", worker1), 1, 2, &deadline)
		waitShopRolled(ctx, t, admin, qa, webRef("latest", web1), workerRef("latest", worker1))
		webBad := pushImage(ctx, t, reg, webRepo, "broken", "badbad1")
		workerBad := pushImage(ctx, t, reg, workerRep, "broken", "badbad1")
		// A bot of its own, to wait less than the main one for the
		// StatefulSet (which has no progress deadline).
		qb := newShopBot(t, cp, cfg, bot.WithRolloutDeadline(40*time.Second))
		start := time.Now()
		final := qb.open(ctx, t, "import "+qaEnv)
		t.Logf("broken import reported in %v", time.Since(start).Round(time.Millisecond))
		if !containsAll(final, []string{"failed", "Failed:"}) {
			t.Fatalf("the import of never-Ready images did not end failed:\n%s", final)
		}
		if !strings.Contains(final, "progress deadline") && !strings.Contains(final, "ProgressDeadlineExceeded") {
			t.Errorf("the failure does not name the Deployment's progress deadline:\n%s", final)
		}
		if !strings.Contains(final, "worker") || !containsAny(final, "did not settle", "not Ready", "readiness probe failed") {
			t.Errorf("the failure does not say why the StatefulSet did not settle:\n%s", final)
		}
		got := readShop(ctx, t, admin, qa)
		if got.web != webRef("broken", webBad) || got.worker != workerRef("broken", workerBad) {
			t.Errorf("the failed import should have set the broken images (it is the rollout that failed): %s", got)
		}
	})

	// 4. refusals: a clear reply, no request, nothing changed.
	t.Run("refusals", func(t *testing.T) {
		// A newer image waits in the registry, so each refusal has
		// something it would otherwise have imported.
		web4 := pushImage(ctx, t, reg, webRepo, "latest", "4444444")
		pushImage(ctx, t, reg, workerRep, "latest", "4444444")
		before := readShop(ctx, t, admin, ns)
		refused := func(t *testing.T, b *shopBot, text string, want ...string) {
			t.Helper()
			posts := b.chat.postCount()
			reply, id := b.say(ctx, t, text)
			t.Logf("%s →\n%s", text, reply)
			if id != "" {
				t.Errorf("%s opened request #%s:\n%s", text, id, b.chat.lastText(id))
			}
			if !containsAll(reply, want) {
				t.Errorf("%s answered %q, want it to say %q", text, reply, want)
			}
			if n := b.chat.postCount(); n != posts {
				t.Errorf("%s posted %d messages", text, n-posts)
			}
			if got := readShop(ctx, t, admin, ns); got != before {
				t.Errorf("after %s the workloads are %s, want them unchanged: %s", text, got, before)
			}
		}

		t.Run("wrong credentials", func(t *testing.T) {
			wrong := writeDockerConfig(t, reg.User(), "not-the-password", host)
			b := newShopBot(t, cp, parseKubeConfig(t, kubeConfigYAML(nss, host, wrong)))
			refused(t, b, "import "+shopEnv, "refused deploybot's credentials", "HTTP 401")
		})
		t.Run("429 with Retry-After", func(t *testing.T) {
			proxy := startRateLimitingProxy(t, reg, 40*time.Second)
			creds := writeDockerConfig(t, reg.User(), reg.Password(), proxy.host())
			b := newShopBot(t, cp, parseKubeConfig(t, kubeConfigYAML(nss, proxy.host(), creds)))
			refused(t, b, "import "+shopEnv, "rate-limiting", "try again in 40s")
			limited := proxy.limited.Load()
			// Within the Retry-After the bot asks that registry nothing.
			refused(t, b, "import "+shopEnv, "rate-limiting", "try again in")
			if n := proxy.limited.Load(); n != limited || limited == 0 {
				t.Errorf("the proxy answered 429 %d times, then %d after a second import within Retry-After; want once, then no more requests", limited, n)
			}
			t.Logf("the proxy answered %d manifest requests 429 and passed %d others (ping, auth)", proxy.limited.Load(), proxy.passed.Load())
		})
		t.Run("deleted tag", func(t *testing.T) {
			deleteManifest(ctx, t, reg, webRepo, "latest", web4)
			refused(t, sb, "import "+shopEnv+" web", `has no tag "latest"`, webRepo)
		})
		t.Run("unreachable registry", func(t *testing.T) {
			closed := closedPort(t)
			creds := writeDockerConfig(t, reg.User(), reg.Password(), closed)
			b := newShopBot(t, cp, parseKubeConfig(t, kubeConfigYAML(nss, closed, creds)))
			refused(t, b, "import "+shopEnv, "cannot reach", "connection refused")
		})
	})

	// 5. scheduled: the poller imports a push without a command. The bot
	// runs on a fake clock, so the one-minute poll interval passes at once.
	t.Run("scheduled poll", func(t *testing.T) {
		auto := nss[autoEnv]
		webA := pushImage(ctx, t, reg, webRepo, "auto", "aaaaaa1")
		workerA := pushImage(ctx, t, reg, workerRep, "auto", "aaaaaa1")
		createShopWorkloads(ctx, t, admin, auto, webRef("auto", webA), workerRef("auto", workerA), 1, 1, nil)
		waitShopRolled(ctx, t, admin, auto, webRef("auto", webA), workerRef("auto", workerA))
		clock := clocktest.New(time.Now())
		ab := newShopBot(t, cp, cfg, bot.WithClock(clock), bot.WithSweepInterval(24*time.Hour),
			bot.WithScheduleIdentity(botUser, groupsOf(cp, botUser)))
		// What runs was imported before (the history a running bot has).
		for svc, img := range map[string]string{"web": webRef("auto", webA), "worker": workerRef("auto", workerA)} {
			_, d, _ := strings.Cut(img, "@")
			if err := ab.store.RecordImage(ctx, store.ImageRecord{Env: autoEnv, Service: svc, Digest: d, Ref: img, Seen: clock.Now(), Imported: clock.Now(), By: kubeUser}); err != nil {
				t.Fatal(err)
			}
		}
		leadCtx, stopLead := context.WithCancel(ctx)
		led := make(chan struct{})
		go func() { defer close(led); ab.b.Lead(leadCtx) }()
		t.Cleanup(func() { stopLead(); <-led })
		// The first poll (at once) finds nothing new; then the poll loop
		// and the sweeper sleep on the fake clock.
		waitFor(ctx, t, "the first registry poll done", func() (bool, string) {
			n := clock.Sleepers()
			return n >= 2, fmt.Sprintf("%d sleepers", n)
		})
		if n := ab.chat.postCount(); n != 0 {
			t.Fatalf("the first poll, with nothing new, posted %d messages: %v", n, ab.chat.texts())
		}
		webB := pushImage(ctx, t, reg, webRepo, "auto", "bbbbbb2")
		pushed := time.Now()
		clock.Add(time.Minute)
		var id string
		waitFor(ctx, t, "the poller's import request in "+autoChan, func() (bool, string) {
			ids := ab.chat.requestsIn(autoChan)
			if len(ids) == 0 {
				return false, fmt.Sprintf("posts: %v", ab.chat.texts())
			}
			id = ids[0]
			return true, ""
		})
		final := ab.waitFinal(ctx, t, id)
		t.Logf("the poller's request, %v after the push (and a minute of fake clock):\n%s", time.Since(pushed).Round(time.Millisecond), final)
		if !containsAll(final, []string{"import " + autoEnv, "succeeded", plan.ShortDigest(webB)}) {
			t.Fatalf("the scheduled import did not succeed with %s:\n%s", plan.ShortDigest(webB), final)
		}
		got := readShop(ctx, t, admin, auto)
		if got.web != webRef("auto", webB) || got.worker != workerRef("auto", workerA) {
			t.Fatalf("after the scheduled import the workloads are %s, want web at %s and worker unchanged", got, webRef("auto", webB))
		}
		waitShopRolled(ctx, t, admin, auto, got.web, got.worker)

		// Held, the worker is left by the poller, which does not count its
		// new image as seen: the first poll after unhold imports it.
		if final := ab.open(ctx, t, "hold "+autoEnv+` worker --reason "crash-loops"`); !strings.Contains(final, "succeeded") {
			t.Fatalf("hold did not succeed:\n%s", final)
		}
		workerB := pushImage(ctx, t, reg, workerRep, "auto", "bbbbbb2")
		clock.Add(time.Minute)
		waitFor(ctx, t, "the poll while held done", func() (bool, string) {
			n := clock.Sleepers()
			return n >= 2, fmt.Sprintf("%d sleepers", n)
		})
		if ids := ab.chat.requestsIn(autoChan); len(ids) != 1 {
			t.Fatalf("the poll opened a request for a held worker: %v", ab.chat.texts())
		}
		if got := readShop(ctx, t, admin, auto); got.worker != workerRef("auto", workerA) {
			t.Fatalf("the held worker moved: %s", got)
		}
		if final := ab.open(ctx, t, "unhold "+autoEnv+" worker"); !strings.Contains(final, "succeeded") {
			t.Fatalf("unhold did not succeed:\n%s", final)
		}
		clock.Add(time.Minute)
		waitFor(ctx, t, "the poller's import of the worker after unhold", func() (bool, string) {
			ids := ab.chat.requestsIn(autoChan)
			if len(ids) < 2 {
				return false, fmt.Sprintf("posts: %v", ab.chat.texts())
			}
			id = ids[1]
			return true, ""
		})
		final = ab.waitFinal(ctx, t, id)
		if !containsAll(final, []string{"succeeded", plan.ShortDigest(workerB)}) {
			t.Fatalf("after unhold the poll did not import %s:\n%s", plan.ShortDigest(workerB), final)
		}
		t.Logf("after unhold the poller imported the worker:\n%s", final)
	})
}

// shopRBAC: in each namespace alice (the mapped chat user) and the bot's
// service-account user may read and patch the workloads and read what a
// rollout and its history need; the bot may ask access reviews.
func shopRBAC(namespaces ...string) rbacObjects {
	read := []string{"get", "list", "watch"}
	objs := rbacObjects{clusterRoles: []rbacv1.ClusterRole{{
		ObjectMeta: metav1.ObjectMeta{Name: "deploybot-kube-flow-access-review"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}, Verbs: []string{"create"}},
		},
	}}}
	for _, ns := range namespaces {
		objs.roles = append(objs.roles, rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "shop-deployer", Namespace: ns},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: append([]string{"patch", "update"}, read...)},
				{APIGroups: []string{"apps"}, Resources: []string{"replicasets", "controllerrevisions"}, Verbs: read},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: append([]string{"delete"}, read...)},
			},
		})
		objs.roleBindings = append(objs.roleBindings,
			roleBinding(ns, "shop-deployers", "shop-deployer", userSubject(kubeUser), userSubject(botUser)),
			rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "deploybot-access-review", Namespace: ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "deploybot-kube-flow-access-review"},
				Subjects:   []rbacv1.Subject{userSubject(botUser)},
			})
	}
	return objs
}

func groupsOf(cp *controlplane.ControlPlane, user string) []string {
	for _, u := range cp.Users() {
		if u.Name == user {
			return u.Groups
		}
	}
	return nil
}

// waitShopRBAC waits until the API server answers with the bindings above.
func waitShopRBAC(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, checker *access.Checker, nss map[string]string) {
	t.Helper()
	waitFor(ctx, t, "RBAC bindings in effect", func() (bool, string) {
		for env, ns := range nss {
			for _, user := range []string{kubeUser, botUser} {
				calls := []plan.Access{{Verb: "patch", Group: "apps", Resource: "statefulsets", Namespace: ns, Name: "worker"}, {Verb: "list", Resource: "pods", Namespace: ns}}
				denied, err := checker.Denied(ctx, env, user, groupsOf(cp, user), calls)
				if err != nil || len(denied) > 0 {
					return false, fmt.Sprintf("%s in %s: %v %v", user, env, denied, err)
				}
			}
		}
		return true, ""
	})
}

func parseKubeConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("the config does not parse: %v\n%s", err, text)
	}
	return cfg
}

// createShopWorkloads creates Deployment web and OrderedReady StatefulSet
// worker in ns.
func createShopWorkloads(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, web, worker string, webReplicas, workerReplicas int32, progressDeadline *int32) {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas:                int32p(webReplicas),
			Selector:                &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template:                podTemplate("web", web),
			ProgressDeadlineSeconds: progressDeadline,
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment %s/web: %v", ns, err)
	}
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            int32p(workerReplicas),
			ServiceName:         "worker",
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "worker"}},
			Template:            podTemplate("worker", worker),
		},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating statefulset %s/worker: %v", ns, err)
	}
}

// shopState is what the bot may change: each workload's container image and
// pin annotation.
type shopState struct {
	web, webPin, worker, workerPin string
}

func (s shopState) String() string {
	return fmt.Sprintf("deployment/web %s (pin %q), statefulset/worker %s (pin %q)", s.web, s.webPin, s.worker, s.workerPin)
}

func readShop(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) shopState {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading deployment %s/web: %v", ns, err)
	}
	s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "worker", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading statefulset %s/worker: %v", ns, err)
	}
	return shopState{
		web: d.Spec.Template.Spec.Containers[0].Image, webPin: d.Annotations[cluster.PinnedAnnotation],
		worker: s.Spec.Template.Spec.Containers[0].Image, workerPin: s.Annotations[cluster.PinnedAnnotation],
	}
}

// waitShopRolled waits until the controllers have rolled both workloads out
// on these images: every replica updated and Ready, no old pod left.
func waitShopRolled(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, web, worker string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("%s: web on %s and worker on %s, all pods Ready", ns, web, worker), func() (bool, string) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st, want := d.Status, *d.Spec.Replicas
		if d.Spec.Template.Spec.Containers[0].Image != web || st.ObservedGeneration < d.Generation ||
			st.UpdatedReplicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want || st.Replicas != want {
			return false, fmt.Sprintf("deployment: image %s, generation %d, status %+v", d.Spec.Template.Spec.Containers[0].Image, d.Generation, st)
		}
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "worker", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ss, wantS := s.Status, *s.Spec.Replicas
		if s.Spec.Template.Spec.Containers[0].Image != worker || ss.ObservedGeneration < s.Generation ||
			ss.CurrentRevision != ss.UpdateRevision || ss.UpdatedReplicas != wantS || ss.ReadyReplicas != wantS {
			return false, fmt.Sprintf("statefulset: image %s, generation %d, status %+v", s.Spec.Template.Spec.Containers[0].Image, s.Generation, ss)
		}
		for app, img := range map[string]string{"web": web, "worker": worker} {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
			if err != nil {
				return false, err.Error()
			}
			n := map[string]int32{"web": want, "worker": wantS}[app]
			if int32(len(pods.Items)) != n || !allReadyOn(pods.Items, img) {
				return false, app + " pods " + podSummary(pods.Items)
			}
		}
		return true, ""
	})
}

// watchTemplateChange watches Deployment web and StatefulSet worker in ns
// and sends the time the first of them gets another container image.
func watchTemplateChange(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) <-chan time.Time {
	t.Helper()
	out := make(chan time.Time, 1)
	var once sync.Once
	wctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dw, err := cs.AppsV1().Deployments(ns).Watch(wctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "web").String(), ResourceVersion: d.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := cs.AppsV1().StatefulSets(ns).Watch(wctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "worker").String(), ResourceVersion: s.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	follow := func(w watch.Interface, image func(any) (string, bool), was string) {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if img, ok := image(ev.Object); ok && img != was {
				once.Do(func() { out <- time.Now() })
				return
			}
		}
	}
	go follow(dw, func(o any) (string, bool) {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			return "", false
		}
		return d.Spec.Template.Spec.Containers[0].Image, true
	}, d.Spec.Template.Spec.Containers[0].Image)
	go follow(sw, func(o any) (string, bool) {
		s, ok := o.(*appsv1.StatefulSet)
		if !ok {
			return "", false
		}
		return s.Spec.Template.Spec.Containers[0].Image, true
	}, s.Spec.Template.Spec.Containers[0].Image)
	return out
}

// shopBot is a bot built as cmd/deploybot's build() builds one for a real
// cluster: cluster.Connect per environment (as the bot's own user), the
// plain Kubernetes part with the registry client and the store as the
// image history, the access checker on the same clients; the chat platform
// is a recorder.
type shopBot struct {
	b       *bot.Bot
	chat    *kubeChat
	store   *store.Memory
	checker *access.Checker
	logs    *syncBuffer
}

func newShopBot(t *testing.T, cp *controlplane.ControlPlane, cfg *config.Config, opts ...bot.Option) *shopBot {
	t.Helper()
	rc, err := cluster.NewRegistry(cfg.Registry) // as serve builds it
	if err != nil {
		t.Fatal(err)
	}
	sb := &shopBot{chat: &kubeChat{}, store: store.NewMemory(), logs: &syncBuffer{}}
	envs := map[string]cluster.EnvClient{}
	kube := map[string]kubeclient.Interface{}
	for _, e := range cfg.Environments {
		ec, err := cluster.Connect(fast(cp.UserConfig(botUser)), e.Namespace)
		if err != nil {
			t.Fatalf("environment %s: %v", e.Name, err)
		}
		if e.Kubernetes() {
			ec.Images = nil
			ec.Kubernetes = &cluster.Kubernetes{Registry: rc, History: sb.store, Services: cluster.KubernetesServices(cfg), Scheduled: e.Scheduled}
		}
		envs[e.Name] = ec
		kube[e.Name] = ec.Kube
	}
	set := cluster.NewSet(envs)
	sb.checker = access.NewChecker(kube)
	logger := slog.New(slog.NewTextHandler(sb.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sb.b = bot.New(cfg, set, sb.checker, sb.store, set, append([]bot.Option{bot.WithPlatform(sb.chat), bot.WithLogger(logger)}, opts...)...)
	t.Cleanup(func() {
		sb.b.Close()
		if t.Failed() {
			t.Logf("bot log:\n%s", sb.logs.String())
		}
	})
	return sb
}

// say sends text as alice in the deploys channel and returns the reply and
// the ID of the request it opened, if any (its message is the answer then).
func (sb *shopBot) say(ctx context.Context, t *testing.T, text string) (reply, requestID string) {
	t.Helper()
	return sb.sayIn(ctx, t, kubeUser, kubeChan, text)
}

// sayIn is say as user in channel.
func (sb *shopBot) sayIn(ctx context.Context, t *testing.T, user, channel, text string) (reply, requestID string) {
	t.Helper()
	before := sb.chat.postCount()
	var resp repReplies
	req := bot.Request{Platform: terminal.Name, User: bot.ChatUser{ID: user, Name: user}, Channel: channel, Text: text}
	if err := sb.b.Handle(ctx, req, &resp); err != nil {
		t.Fatalf("Handle(%q) as %s: %v", text, user, err)
	}
	reply = resp.text()
	for _, p := range sb.chat.postsSince(before) {
		if p.reply.RequestID != "" {
			requestID = p.reply.RequestID
			if reply == "" {
				reply = strings.Join(terminal.Render(p.reply.Output), "\n")
			}
			break
		}
	}
	return reply, requestID
}

// open sends a mutating command, which must open a request, and returns
// its last message once the request has ended.
func (sb *shopBot) open(ctx context.Context, t *testing.T, text string) string {
	t.Helper()
	reply, id := sb.say(ctx, t, text)
	if id == "" {
		t.Fatalf("%s opened no request; it answered:\n%s", text, reply)
	}
	final := sb.waitFinal(ctx, t, id)
	t.Logf("%s:\n%s", text, final)
	return final
}

// run is open for a request that must succeed with every workload settled.
func (sb *shopBot) run(ctx context.Context, t *testing.T, text string) string {
	t.Helper()
	final := sb.open(ctx, t, text)
	if !strings.Contains(final, "succeeded") || !strings.Contains(final, "workloads settled") || strings.Contains(final, "Failed:") {
		t.Fatalf("%s did not succeed with its workloads settled:\n%s", text, final)
	}
	return final
}

// waitFinal waits for request id's message to reach a terminal state and
// returns it as the terminal renders it.
func (sb *shopBot) waitFinal(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	var text string
	waitFor(ctx, t, "request #"+id+" to end", func() (bool, string) {
		r, ok := sb.chat.last(id)
		if !ok {
			return false, "no message"
		}
		text = strings.Join(terminal.Render(r.Output), "\n")
		return r.Final, text
	})
	return text
}

// kubeChat records what the bot posts and updates, as a chat platform.
type kubeChat struct {
	mu    sync.Mutex
	posts []kubePost
	msgs  map[string][]bot.Reply // by request ID, posts and updates
}

type kubePost struct {
	channel string
	reply   bot.Reply
}

func (c *kubeChat) Name() string { return terminal.Name }

func (c *kubeChat) Post(_ context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts = append(c.posts, kubePost{channel, r})
	if r.RequestID != "" {
		if c.msgs == nil {
			c.msgs = map[string][]bot.Reply{}
		}
		c.msgs[r.RequestID] = append(c.msgs[r.RequestID], r)
	}
	return store.MessageRef{Platform: terminal.Name, Channel: channel, ID: fmt.Sprintf("m%d", len(c.posts))}, nil
}

func (c *kubeChat) Update(_ context.Context, _ store.MessageRef, r bot.Reply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[string][]bot.Reply{}
	}
	c.msgs[r.RequestID] = append(c.msgs[r.RequestID], r)
	return nil
}

func (c *kubeChat) postCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.posts)
}

func (c *kubeChat) postsSince(n int) []kubePost {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.posts[n:])
}

func (c *kubeChat) requestsIn(channel string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, p := range c.posts {
		if p.channel == channel && p.reply.RequestID != "" {
			ids = append(ids, p.reply.RequestID)
		}
	}
	return ids
}

func (c *kubeChat) last(id string) (bot.Reply, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.msgs[id]
	if len(m) == 0 {
		return bot.Reply{}, false
	}
	return m[len(m)-1], true
}

func (c *kubeChat) lastText(id string) string {
	r, _ := c.last(id)
	return strings.Join(terminal.Render(r.Output), "\n")
}

func (c *kubeChat) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.posts {
		out = append(out, p.channel+": "+strings.Join(terminal.Render(p.reply.Output), " / "))
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the bot's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lineWith is the first line of s containing sub, or "".
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}
