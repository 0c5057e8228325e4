package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/feed"
	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/kube"
)

// The deploy feed across replicas on the real control plane: deploybot
// replicas (each its own clients, cluster.Set and kubernetes store in one
// shared namespace, campaigning for the Lease) and one chat they all post
// to. A plain Kubernetes env's Deployment changed with `kubectl set image`
// and an OpenShift env's ImageStream (served from the CRD) changed by
// another client are each posted once, and followed to "settled" by
// whichever replica leads, the same message updated across a kill -9 of
// the leader mid-rollout.

// feedRuns numbers the runs of TestFeedAcrossReplicas in this process, so
// -count=N gives each run namespaces of its own.
var feedRuns atomic.Int32

const (
	feedShopEnv   = "shop"   // plain Kubernetes: Deployments web and api
	feedImagesEnv = "images" // OpenShift: ImageStreams web and api, tag images
	feedChannel   = "feed"
	feedTag       = "images"
)

// feedRepo is a service's repository; no registry serves it (see
// noRegistry): the feed needs none.
func feedRepo(service string) string { return "quay.io/shop/" + service }

// feedImage is the nth image of a service: REPO@DIGEST and the digest.
func feedImage(service string, n int) (ref, digest string) {
	d := fakeDigest(feedRepo(service), n)
	return feedRepo(service) + "@" + d, d
}

// feedConfigYAML is both envs with their feed in the terminal channel
// "feed". Services are global in the config, so both envs have both:
// each service's tag can be read in each env, and only what changes is
// posted.
func feedConfigYAML(shopNS, imagesNS string) string {
	return fmt.Sprintf(`environments:
  - name: %[1]s
    platform: kubernetes
    namespace: %[2]s
    tag: latest
    feed: {channel: {platform: terminal, id: %[5]s}}
  - name: %[3]s
    namespace: %[4]s
    tag: %[6]s
    feed: {channel: {platform: terminal, id: %[5]s}}
services:
  - name: web
    repository: %[7]s
    workloads: [{kind: Deployment, name: web}]
  - name: api
    repository: %[8]s
    workloads: [{kind: Deployment, name: api}]
`, feedShopEnv, shopNS, feedImagesEnv, imagesNS, feedChannel, feedTag, feedRepo("web"), feedRepo("api"))
}

// feedRBAC lets the bot read, in each env's namespace, what the feed
// watches and follows: workloads, their rollout history and pods, image
// streams.
func feedRBAC(namespaces ...string) rbacObjects {
	read := []string{"get", "list", "watch"}
	var objs rbacObjects
	for _, ns := range namespaces {
		objs.roles = append(objs.roles, rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "deploybot-feed", Namespace: ns},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets", "controllerrevisions"}, Verbs: read},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: read},
				{APIGroups: []string{"image.openshift.io"}, Resources: []string{"imagestreams"}, Verbs: read},
			},
		})
		objs.roleBindings = append(objs.roleBindings, roleBinding(ns, "deploybot-feed", "deploybot-feed", userSubject(botUser)))
	}
	return objs
}

// waitAllowed waits until the bot may make each of calls in each of the
// namespaces (RBAC is eventually consistent).
func waitAllowed(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, namespaces []string, calls []authorizationv1.ResourceAttributes) {
	t.Helper()
	as := clientFor(t, cp.UserConfig(botUser))
	waitFor(ctx, t, "the bot's feed role in force", func() (bool, string) {
		for _, ns := range namespaces {
			for _, c := range calls {
				c.Namespace = ns
				review, err := as.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
					Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &c},
				}, metav1.CreateOptions{})
				if err != nil {
					return false, err.Error()
				}
				if !review.Status.Allowed {
					return false, fmt.Sprintf("%s %s/%s in %s denied: %s", c.Verb, c.Group, c.Resource, ns, review.Status.Reason)
				}
			}
		}
		return true, ""
	})
}

// noRegistry is the plain Kubernetes env's registry: there is none, and the
// feed asks it only for image labels, which it may lack.
type noRegistry struct{}

func (noRegistry) Resolve(_ context.Context, repo, tag string) (plan.Image, error) {
	return plan.Image{}, fmt.Errorf("no registry in this test (resolving %s:%s)", repo, tag)
}

func (noRegistry) Lookup(_ context.Context, repo, digest string) (plan.Image, error) {
	return plan.Image{}, fmt.Errorf("no registry in this test (looking up %s@%s)", repo, digest)
}

// feedChat is the one chat platform every replica posts to, as one Slack
// workspace is: each message with its versions (the post, then every
// update), which replica wrote each and when. Message IDs are unique.
type feedChat struct {
	mu    sync.Mutex
	msgs  []*feedMessage
	stray []string // updates of messages never posted
}

type feedMessage struct {
	ref      store.MessageRef
	versions []feedVersion
}

type feedVersion struct {
	by   string
	at   time.Time
	text string
}

func (m feedMessage) posted() feedVersion { return m.versions[0] }
func (m feedMessage) last() feedVersion   { return m.versions[len(m.versions)-1] }
func (m feedMessage) updates() int        { return len(m.versions) - 1 }

// firstWith is the first version whose text contains sub.
func (m feedMessage) firstWith(sub string) (feedVersion, bool) {
	for _, v := range m.versions {
		if strings.Contains(v.text, sub) {
			return v, true
		}
	}
	return feedVersion{}, false
}

// updatesBy counts the updates each replica made.
func (m feedMessage) updatesBy() map[string]int {
	out := map[string]int{}
	for _, v := range m.versions[1:] {
		out[v.by]++
	}
	return out
}

func (c *feedChat) post(by, channel string, r bot.Reply) store.MessageRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := store.MessageRef{Platform: terminal.Name, Channel: channel, ID: fmt.Sprintf("msg-%d", len(c.msgs)+1)}
	c.msgs = append(c.msgs, &feedMessage{ref: ref, versions: []feedVersion{{by: by, at: time.Now(), text: replyText(r)}}})
	return ref
}

func (c *feedChat) update(by string, ref store.MessageRef, r bot.Reply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m.ref.ID == ref.ID && m.ref.Channel == ref.Channel {
			m.versions = append(m.versions, feedVersion{by: by, at: time.Now(), text: replyText(r)})
			return nil
		}
	}
	c.stray = append(c.stray, fmt.Sprintf("%s updated unknown message %+v: %s", by, ref, replyText(r)))
	return fmt.Errorf("no message %s in channel %s", ref.ID, ref.Channel)
}

// posts returns a copy of the messages whose post contains every one of
// subs.
func (c *feedChat) posts(subs ...string) []feedMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []feedMessage
	for _, m := range c.msgs {
		if containsAll(m.versions[0].text, subs) {
			out = append(out, feedMessage{ref: m.ref, versions: append([]feedVersion(nil), m.versions...)})
		}
	}
	return out
}

func (c *feedChat) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *feedChat) strays() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.stray...)
}

// dump is everything the chat saw, for failure messages.
func (c *feedChat) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages in the chat", len(c.msgs))
	for _, m := range c.msgs {
		fmt.Fprintf(&b, "\n== message %s in %s", m.ref.ID, m.ref.Channel)
		for i, v := range m.versions {
			what := "update"
			if i == 0 {
				what = "post"
			}
			fmt.Fprintf(&b, "\n-- %s by %s at %s:\n%s", what, v.by, v.at.Format("15:04:05.000"), v.text)
		}
	}
	for _, s := range c.stray {
		fmt.Fprintf(&b, "\n!! %s", s)
	}
	return b.String()
}

func replyText(r bot.Reply) string { return strings.Join(terminal.Render(r.Output), "\n") }

// feedChatView is one replica's connection to the chat; a replica killed
// reaches it no more.
type feedChatView struct {
	chat    *feedChat
	replica string
	dead    *atomic.Bool
}

func (v feedChatView) Name() string { return terminal.Name }

func (v feedChatView) Post(_ context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	if v.dead.Load() {
		return store.MessageRef{}, errors.New("killed")
	}
	return v.chat.post(v.replica, channel, r), nil
}

func (v feedChatView) Update(_ context.Context, ref store.MessageRef, r bot.Reply) error {
	if v.dead.Load() {
		return errors.New("killed")
	}
	return v.chat.update(v.replica, ref, r)
}

// severable is a replica's transport to the API server: once its replica
// is dead, every request fails, as after kill -9.
type severable struct {
	base http.RoundTripper
	dead *atomic.Bool
}

func (s severable) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.dead.Load() {
		return nil, errors.New("killed")
	}
	return s.base.RoundTrip(r)
}

// tagReads is the cluster as a replica's bot reads it, telling the test
// which tags it has read: the feed's first read of an env is its baseline,
// and a change made before it is a change the feed may not tell from the
// state it starts with. Everything else is the replica's cluster.Set.
type tagReads struct {
	*cluster.Set
	mu    sync.Mutex
	reads map[string]int // by env/stream
}

func (r *tagReads) Tag(ctx context.Context, env, stream, tag string) (plan.TagState, error) {
	ts, err := r.Set.Tag(ctx, env, stream, tag)
	if err == nil {
		r.mu.Lock()
		r.reads[env+"/"+stream]++
		r.mu.Unlock()
	}
	return ts, err
}

// missing lists the env/stream keys not read yet.
func (r *tagReads) missing(keys ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, k := range keys {
		if r.reads[k] == 0 {
			out = append(out, k)
		}
	}
	return out
}

// feedReplica is one deploybot process of the feed test.
type feedReplica struct {
	name  string
	dead  *atomic.Bool
	store *kube.Store
	tags  *tagReads
	bot   *bot.Bot
	logs  *syncBuffer
	stop  func()
}

// startFeedReplica builds a replica as `deploybot serve` builds one for
// these envs: cluster.Connect per env as the bot's user, the plain
// Kubernetes env with its store as the image history, a kubernetes store in
// stateNS, the shared chat; it campaigns for the Lease and leads while it
// holds it.
func startFeedReplica(t *testing.T, cp *controlplane.ControlPlane, cfg *config.Config, stateNS, name string, chat *feedChat) *feedReplica {
	t.Helper()
	r := &feedReplica{name: name, dead: &atomic.Bool{}, logs: &syncBuffer{}}
	rc := fast(cp.UserConfig(botUser))
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return severable{base: rt, dead: r.dead} }
	r.store = newKubeStore(t, botClientFor(t, rc), stateNS)
	envs := map[string]cluster.EnvClient{}
	kubes := map[string]kubeclient.Interface{}
	for _, e := range cfg.Environments {
		ec, err := cluster.Connect(rc, e.Namespace)
		if err != nil {
			t.Fatalf("%s: environment %s: %v", name, e.Name, err)
		}
		if e.Kubernetes() {
			ec.Images = nil
			ec.Kubernetes = &cluster.Kubernetes{Registry: noRegistry{}, History: r.store, Services: cluster.KubernetesServices(cfg), Scheduled: e.Scheduled}
		}
		envs[e.Name] = ec
		kubes[e.Name] = ec.Kube
	}
	set := cluster.NewSet(envs)
	r.tags = &tagReads{Set: set, reads: map[string]int{}}
	logger := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", name)
	r.bot = bot.New(cfg, r.tags, access.NewChecker(kubes), r.store, set,
		bot.WithPlatform(feedChatView{chat: chat, replica: name, dead: r.dead}),
		bot.WithReplicaName(name),
		bot.WithLogger(logger),
		bot.WithRolloutDeadline(45*time.Second),
		bot.WithFeedOptions(feed.WithTimings(100*time.Millisecond, time.Second, 200*time.Millisecond), feed.WithHeartbeat(200*time.Millisecond)),
	)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := r.store.Lead(ctx, kube.Election{Identity: name, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond}, r.bot.Lead)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			r.bot.Close()
		})
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, r.logs.String())
		}
	})
	return r
}

// die kills the replica as kill -9 does: nothing it does reaches the API
// server or the chat any more, then it stops.
func (r *feedReplica) die() {
	r.dead.Store(true)
	r.stop()
}

// feedWorkload is a Deployment of the feed test: replicas pods of image,
// rolled one surge pod at a time, each counted available only after
// minReady seconds so a rollout lasts a while.
func feedWorkload(ns, name, image string, replicas, minReady int32, annotations map[string]string) *appsv1.Deployment {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas:        int32p(replicas),
			MinReadySeconds: minReady,
			Selector:        &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero},
			},
			Template: podTemplate(name, image),
		},
	}
}

// rolloutState says whether the Deployment has rolled out image: every
// replica updated and available, no old one left.
func rolloutState(d *appsv1.Deployment, image string) (done bool, detail string) {
	st, want := d.Status, *d.Spec.Replicas
	img := d.Spec.Template.Spec.Containers[0].Image
	done = img == image && st.ObservedGeneration >= d.Generation &&
		st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
	return done, fmt.Sprintf("image %s, generation %d observed %d, %d replicas, %d updated, %d ready, %d available (want %d)",
		plan.ShortDigest(digestOfRef(img)), d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, want)
}

func digestOfRef(ref string) string {
	_, d, _ := strings.Cut(ref, "@")
	return d
}

func readDeployment(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading deployment %s/%s: %v", ns, name, err)
	}
	return d
}

func waitRolledOut(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, image string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("deployment %s/%s rolled out on %s", ns, name, image), func() (bool, string) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return rolloutState(d, image)
	})
}

// createFeedStream creates ImageStream name with tag images tracking
// REPO:images (not scheduled) and, written through the status subresource
// as the importer writes it, one imported image: a tag whose newest image
// came within the lookback after another would be a change to a leader
// that starts now.
func createFeedStream(ctx context.Context, t *testing.T, images imageclient.Interface, ns, name string, imported time.Time) {
	t.Helper()
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{{
			Name: feedTag, From: &corev1.ObjectReference{Kind: "DockerImage", Name: feedRepo(name) + ":" + feedTag},
			ImportPolicy: imagev1.TagImportPolicy{Scheduled: false},
		}}},
	}
	created, err := images.ImageV1().ImageStreams(ns).Create(ctx, is, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating image stream %s/%s: %v", ns, name, err)
	}
	ref, digest := feedImage(name, 1)
	created.Status.Tags = []imagev1.NamedTagEventList{{Tag: feedTag, Items: []imagev1.TagEvent{{
		Created: metav1.NewTime(imported), DockerImageReference: ref, Image: digest, Generation: 1,
	}}}}
	if _, err := images.ImageV1().ImageStreams(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("writing the status of image stream %s/%s: %v", ns, name, err)
	}
}

// TestFeedAcrossReplicas: two replicas campaign; `kubectl set image` on the
// plain Kubernetes env is posted once by the leader, which is killed
// mid-rollout; the other takes the Lease, takes the change's record over
// and brings the same message to "settled". A third replica joins; another
// client ("oc") writes a new image into the OpenShift env's ImageStream,
// the image trigger rolls the Deployment, and that is posted once and
// followed to "settled" too.
func TestFeedAcrossReplicas(t *testing.T) {
	t.Parallel()
	began := time.Now()
	cp := controlPlane(t)
	ensureImageStreamCRD(t, cp)
	ctx := testContext(t, 2*time.Minute)
	run := feedRuns.Add(1)
	shopNS, imagesNS, stateNS := fmt.Sprintf("feed-shop-%d", run), fmt.Sprintf("feed-images-%d", run), fmt.Sprintf("feed-state-%d", run)
	createNamespaces(ctx, t, cp, shopNS, imagesNS)
	stateNamespace(ctx, t, cp, stateNS)
	admin := clientFor(t, cp.AdminConfig())
	applyRBAC(ctx, t, admin, feedRBAC(shopNS, imagesNS))
	adminImages, err := imageclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}

	// shop: web rolls one surge pod at a time, each available after 4s.
	web1, _ := feedImage("web", 1)
	web2, web2Digest := feedImage("web", 2)
	shopAPI, _ := feedImage("api", 1)
	createDeployment(ctx, t, admin, feedWorkload(shopNS, "web", web1, 2, 4, nil))
	createDeployment(ctx, t, admin, feedWorkload(shopNS, "api", shopAPI, 1, 0, nil))
	// images: streams web and api with one image each; Deployment api
	// follows api:images through its trigger.
	imported := time.Now().Add(-time.Hour).Truncate(time.Second)
	createFeedStream(ctx, t, adminImages, imagesNS, "web", imported)
	createFeedStream(ctx, t, adminImages, imagesNS, "api", imported)
	api1, api1Digest := feedImage("api", 1)
	api2, api2Digest := feedImage("api", 2)
	trigger := fmt.Sprintf(`[{"from":{"kind":"ImageStreamTag","name":"api:%s"},"fieldPath":"spec.template.spec.containers[?(@.name==\"api\")].image"}]`, feedTag)
	createDeployment(ctx, t, admin, feedWorkload(imagesNS, "api", api1, 1, 0, map[string]string{cluster.TriggerAnnotation: trigger}))

	// The image trigger controller, as openshift-controller-manager runs
	// it, on the real API server.
	adminKube, err := kubeclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	var triggerErrs syncBuffer
	triggers := fakeopenshift.NewTriggerController(adminKube, adminKube, fakeopenshift.TriggerNamespace(imagesNS),
		fakeopenshift.TriggerOnError(func(err error) { fmt.Fprintf(&triggerErrs, "%s %v\n", time.Now().Format("15:04:05.000"), err) }))
	tctx, stopTriggers := context.WithCancel(ctx)
	triggersDone := make(chan struct{})
	go func() { defer close(triggersDone); _ = triggers.Run(tctx) }()
	t.Cleanup(func() {
		stopTriggers()
		<-triggersDone
		if t.Failed() && triggerErrs.String() != "" {
			t.Logf("trigger controller errors:\n%s", triggerErrs.String())
		}
	})

	waitRolledOut(ctx, t, admin, shopNS, "web", web1)
	waitRolledOut(ctx, t, admin, shopNS, "api", shopAPI)
	waitRolledOut(ctx, t, admin, imagesNS, "api", api1)
	read := []string{"get", "list", "watch"}
	var calls []authorizationv1.ResourceAttributes
	for _, v := range read {
		calls = append(calls,
			authorizationv1.ResourceAttributes{Verb: v, Group: "apps", Resource: "controllerrevisions"},
			authorizationv1.ResourceAttributes{Verb: v, Resource: "pods"},
			authorizationv1.ResourceAttributes{Verb: v, Group: "image.openshift.io", Resource: "imagestreams"})
	}
	waitAllowed(ctx, t, cp, []string{shopNS, imagesNS}, calls)

	cfg := parseKubeConfig(t, feedConfigYAML(shopNS, imagesNS))
	chat := &feedChat{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the chat:\n%s", chat.dump())
		}
	})
	setUp := time.Since(began)
	reps := map[string]*feedReplica{}
	for _, name := range []string{"pod-a", "pod-b"} {
		reps[name] = startFeedReplica(t, cp, cfg, stateNS, name, chat)
	}
	holder := func(t *testing.T, not string) string {
		t.Helper()
		var h string
		waitWithin(ctx, t, 10*time.Second, "a Lease holder other than "+not, func() (bool, string) {
			l, err := admin.CoordinationV1().Leases(stateNS).Get(ctx, "deploybot-leader", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			h = leaseHolder(l)
			_, known := reps[h]
			return known && h != not, h
		})
		return h
	}
	leader := holder(t, "")
	// The leader's feed has read every tag: what changes now is a change.
	waitWithin(ctx, t, 20*time.Second, leader+"'s first read of every tag", func() (bool, string) {
		m := reps[leader].tags.missing(feedShopEnv+"/web", feedShopEnv+"/api", feedImagesEnv+"/web", feedImagesEnv+"/api")
		return len(m) == 0, fmt.Sprintf("not read yet: %v", m)
	})
	if n := chat.count(); n != 0 {
		t.Fatalf("the feed posted before anything changed:\n%s", chat.dump())
	}
	survivor := "pod-a"
	if leader == survivor {
		survivor = "pod-b"
	}

	// 1. kubectl set image on shop, the leader killed mid-rollout.
	var shopID string
	t.Run("kubectl set image, leader killed mid-rollout", func(t *testing.T) {
		if out, err := cp.Kubectl(ctx, "set", "image", "deployment/web", "web="+web2, "-n", shopNS).CombinedOutput(); err != nil {
			t.Fatalf("kubectl set image: %v\n%s", err, out)
		}
		changed := time.Now()
		msg := waitMessage(ctx, t, chat, 10*time.Second, "the feed's post of the change", "shop: changed without deploybot", func(feedMessage) bool { return true })
		if !containsAll(msg.posted().text, []string{"(by kubectl set image)", plan.ShortDigest(web2Digest)}) || msg.posted().by != leader {
			t.Fatalf("the post is by %s, want the leader %s, naming kubectl set image and %s:\n%s", msg.posted().by, leader, plan.ShortDigest(web2Digest), chat.dump())
		}
		// The record knows where its message is before the kill: a replica
		// that dies between posting and recording the post cannot tell the
		// next one, which would post again.
		var rec *store.Request
		waitWithin(ctx, t, 10*time.Second, "the change's record with its message", func() (bool, string) {
			rec = observedRecord(ctx, t, reps[survivor].store, feedShopEnv)
			if rec == nil {
				return false, "no record"
			}
			return len(rec.Messages) == 1, fmt.Sprintf("#%s %s by %s, messages %+v", rec.ID, rec.State, rec.Executor, rec.Messages)
		})
		shopID = rec.ID
		if rec.Messages[0].ID != msg.ref.ID || rec.State != store.Executing || rec.Executor != leader {
			t.Fatalf("record #%s: %s by %s, message %+v; want Executing by %s with message %s", rec.ID, rec.State, rec.Executor, rec.Messages, leader, msg.ref.ID)
		}
		if done, detail := rolloutState(readDeployment(ctx, t, admin, shopNS, "web"), web2); done {
			t.Fatalf("the rollout is over before the leader could be killed mid-rollout: %s", detail)
		}
		killed := time.Now()
		reps[leader].die()
		if h := holder(t, leader); h != survivor {
			t.Fatalf("%s took the Lease, want %s", h, survivor)
		}
		leaseTaken := time.Now()
		waitWithin(ctx, t, 10*time.Second, survivor+" taking the change over", func() (bool, string) {
			r, err := reps[survivor].store.Get(ctx, shopID)
			if err != nil {
				return false, err.Error()
			}
			return r.Executor == survivor, fmt.Sprintf("%s by %s", r.State, r.Executor)
		})
		takenOver := time.Now()
		done, atHandOver := rolloutState(readDeployment(ctx, t, admin, shopNS, "web"), web2)
		if done {
			t.Errorf("the rollout was over when %s took the change over (not a hand-over mid-rollout): %s", survivor, atHandOver)
		}
		msg = waitMessage(ctx, t, chat, 30*time.Second, "the message settled", "shop: changed without deploybot", func(m feedMessage) bool {
			return strings.Contains(m.last().text, "shop: changed without deploybot, settled")
		})
		waitRolledOut(ctx, t, admin, shopNS, "web", web2)
		final := observedRecord(ctx, t, reps[survivor].store, feedShopEnv)
		if final == nil || final.ID != shopID {
			t.Fatalf("the store lists record %+v, want #%s", final, shopID)
		}
		if final.State != store.Succeeded || final.Executor != survivor || final.Plan.Action != plan.ActionObserved {
			t.Errorf("record #%s: %s %s by %s (%s), want %s Succeeded by %s", final.ID, final.Plan.Action, final.State, final.Executor, final.Reason, plan.ActionObserved, survivor)
		}
		if len(final.Messages) != 1 || final.Messages[0].ID != msg.ref.ID {
			t.Errorf("record #%s has messages %+v, want only %s", final.ID, final.Messages, msg.ref.ID)
		}
		first := msg.posted()
		settled, _ := msg.firstWith(", settled")
		// silent is when the message was last written before the survivor
		// wrote it: the gap readers see.
		var firstBySurvivor, silent time.Time
		for _, v := range msg.versions {
			if v.by == survivor {
				firstBySurvivor = v.at
				break
			}
			if v.at.After(killed) {
				t.Errorf("%s wrote the message after it was killed: %+v", leader, v)
			}
			silent = v.at
		}
		if firstBySurvivor.IsZero() || settled.by != survivor || msg.last().by != survivor {
			t.Errorf("the message was not updated by %s after the hand-over (settled by %q):\n%s", survivor, settled.by, chat.dump())
		}
		t.Logf("final message:\n%s", msg.last().text)
		t.Logf("shop (kubectl set image): change → post %v; %d updates %v; change → settled %v. Hand-over: %s killed %v after the change; %s held the Lease after %v, took the change over after %v and updated the message after %v, which went %v without an update (deployment at the take-over: %s)",
			first.at.Sub(changed).Round(time.Millisecond), msg.updates(), msg.updatesBy(), settled.at.Sub(changed).Round(time.Millisecond),
			leader, killed.Sub(changed).Round(time.Millisecond), survivor, leaseTaken.Sub(killed).Round(time.Millisecond),
			takenOver.Sub(killed).Round(time.Millisecond), firstBySurvivor.Sub(killed).Round(time.Millisecond), firstBySurvivor.Sub(silent).Round(time.Millisecond), atHandOver)
	})
	if t.Failed() {
		return
	}

	// 2. Another client's import into the OpenShift env's stream, with a
	// third replica campaigning.
	t.Run("oc writes a new image into the stream", func(t *testing.T) {
		reps["pod-c"] = startFeedReplica(t, cp, cfg, stateNS, "pod-c", chat)
		// pod-c campaigns; the Lease stays with the leader.
		waitWithin(ctx, t, 10*time.Second, "the Lease still with "+survivor, func() (bool, string) {
			l, err := admin.CoordinationV1().Leases(stateNS).Get(ctx, "deploybot-leader", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return leaseHolder(l) == survivor, leaseHolder(l)
		})
		before := chat.count()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			is, err := adminImages.ImageV1().ImageStreams(imagesNS).Get(ctx, "api", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for i := range is.Status.Tags {
				l := &is.Status.Tags[i]
				if l.Tag != feedTag || len(l.Items) == 0 {
					continue
				}
				l.Items = append([]imagev1.TagEvent{{
					Created: metav1.Now(), DockerImageReference: api2, Image: api2Digest, Generation: l.Items[0].Generation + 1,
				}}, l.Items...)
			}
			_, err = adminImages.ImageV1().ImageStreams(imagesNS).UpdateStatus(ctx, is, metav1.UpdateOptions{FieldManager: "oc"})
			return err
		})
		if err != nil {
			t.Fatalf("writing api's new image as oc: %v", err)
		}
		changed := time.Now()
		msg := waitMessage(ctx, t, chat, 10*time.Second, "the feed's post of the import", "images: changed without deploybot", func(feedMessage) bool { return true })
		if !containsAll(msg.posted().text, []string{"(by oc)", plan.ShortDigest(api1Digest), plan.ShortDigest(api2Digest)}) || msg.posted().by != survivor {
			t.Fatalf("the post is by %s, want the leader %s, naming oc and %s → %s:\n%s", msg.posted().by, survivor, plan.ShortDigest(api1Digest), plan.ShortDigest(api2Digest), chat.dump())
		}
		msg = waitMessage(ctx, t, chat, 30*time.Second, "the message settled", "images: changed without deploybot", func(m feedMessage) bool {
			return strings.Contains(m.last().text, "images: changed without deploybot, settled")
		})
		waitRolledOut(ctx, t, admin, imagesNS, "api", api2)
		rec := observedRecord(ctx, t, reps[survivor].store, feedImagesEnv)
		if rec == nil || rec.State != store.Succeeded || rec.Executor != survivor || len(rec.Messages) != 1 || rec.Messages[0].ID != msg.ref.ID {
			t.Errorf("record of the import: %+v, want Succeeded by %s with message %s", rec, survivor, msg.ref.ID)
		}
		if n := chat.count(); n != before+1 {
			t.Errorf("%d posts for one change, want 1:\n%s", n-before, chat.dump())
		}
		first := msg.posted()
		settled, _ := msg.firstWith(", settled")
		t.Logf("final message:\n%s", msg.last().text)
		t.Logf("images (oc, with pod-c campaigning): change → post %v; %d updates %v; change → settled %v",
			first.at.Sub(changed).Round(time.Millisecond), msg.updates(), msg.updatesBy(), settled.at.Sub(changed).Round(time.Millisecond))
	})

	if n := chat.count(); n != 2 {
		t.Errorf("%d messages in the chat, want one per change:\n%s", n, chat.dump())
	}
	if s := chat.strays(); len(s) > 0 {
		t.Errorf("updates of messages never posted: %v", s)
	}
	t.Logf("set-up %v; whole test %v", setUp.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// observedRecord is the feed's record of a change in env, or nil; it fails
// the test when there is more than one.
func observedRecord(ctx context.Context, t *testing.T, st store.Store, env string) *store.Request {
	t.Helper()
	all, err := st.List(ctx, store.ListOptions{})
	if err != nil {
		t.Fatalf("listing the records: %v", err)
	}
	var found []*store.Request
	for _, r := range all {
		if r.Plan.Action == plan.ActionObserved && r.Plan.Env == env {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil
	case 1:
		return found[0]
	}
	var ids []string
	for _, r := range found {
		ids = append(ids, fmt.Sprintf("#%s %s by %s: %s", r.ID, r.State, r.Executor, r.Command))
	}
	t.Fatalf("%d records of changes in %s, want one: %v", len(found), env, ids)
	return nil
}

// waitWithin is waitFor with a deadline of its own, so a step that does
// not happen fails in seconds, not at the test's end.
func waitWithin(ctx context.Context, t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	waitFor(wctx, t, fmt.Sprintf("%s (within %v)", what, d), cond)
}

// waitMessage waits up to d for the one message whose post contains title
// to satisfy ok, and returns it; a second such post fails the test at once.
func waitMessage(ctx context.Context, t *testing.T, chat *feedChat, d time.Duration, what, title string, ok func(feedMessage) bool) feedMessage {
	t.Helper()
	var msg feedMessage
	waitWithin(ctx, t, d, what, func() (bool, string) {
		ms := chat.posts(title)
		switch len(ms) {
		case 0:
			return false, chat.dump()
		case 1:
		default:
			t.Fatalf("%d posts of %q, want one:\n%s", len(ms), title, chat.dump())
		}
		msg = ms[0]
		return ok(msg), chat.dump()
	})
	return msg
}
