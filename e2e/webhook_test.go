package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/registrytest"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

// The registry-webhook flow on real servers, with no fake in between but
// the chat platform: an image pushed with remote.Write to the CNCF
// Distribution registry, whose notifications reach the bot's webhook
// endpoint (webhook.Server as `deploybot serve` builds it, on an httptest
// server); the bot re-resolves the tag in the registry and, for the
// scheduled env, opens `import ENV` as the schedule, which patches a
// Deployment and an OrderedReady StatefulSet on kube-apiserver;
// kube-controller-manager rolls them, kwok makes the pods Ready. Another env
// on the same tag, not scheduled, gets a heads-up and keeps its images. The
// bot's leader loop does not run, so no poll or cron can stand in for the
// webhook.

// webhookRuns numbers the runs of TestKubernetesWebhookFlow in this process.
var webhookRuns atomic.Int32

const (
	hookEnv    = "hook"        // tag hook, scheduled: a push is imported at once
	noticeEnv  = "hook-notice" // tag hook, not scheduled: a push is a heads-up
	hookTag    = "hook"
	hookRepo   = "shop/app" // one service, app, runs in both workloads
	hookChan   = "hook-deploys"
	noticeChan = "hook-notices"
)

// webhookConfigYAML is the bot's config: both envs on tag hook, each on its
// own namespace and announcing in its own channel. The scheduled env needs
// one approval, which autoApproveScheduled gives its scheduled imports (and
// config validation wants a cron schedule beside autoApproveScheduled: a
// daily one that never comes due here, the leader loop not running).
func webhookConfigYAML(namespaces map[string]string, repoHost, dockerConfig string) string {
	return fmt.Sprintf(`environments:
  - name: %[1]s
    platform: kubernetes
    namespace: %[2]s
    tag: %[5]s
    scheduled: true
    schedule: "0 3 * * *"
    approvals: {count: 1}
    autoApproveScheduled: true
    channel: {platform: terminal, id: %[6]s}
  - name: %[3]s
    platform: kubernetes
    namespace: %[4]s
    tag: %[5]s
    channel: {platform: terminal, id: %[7]s}
services:
  - name: app
    repository: %[8]s/%[9]s
    workloads:
      - {kind: Deployment, name: web, container: web}
      - {kind: StatefulSet, name: worker, container: worker}
registry:
  dockerConfig: %[10]s
  insecure: [%[8]s]
identities:
  users:
    - {platform: terminal, id: alice, user: alice, groups: [deployers]}
`, hookEnv, namespaces[hookEnv], noticeEnv, namespaces[noticeEnv], hookTag, hookChan, noticeChan, repoHost, hookRepo, dockerConfig)
}

func TestKubernetesWebhookFlow(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	ctx := testContext(t, 5*time.Minute)
	admin := clientFor(t, cp.AdminConfig())
	run := webhookRuns.Add(1)
	nss := map[string]string{
		hookEnv:   fmt.Sprintf("hook-%d", run),
		noticeEnv: fmt.Sprintf("hook-notice-%d", run),
	}
	hookNS, noticeNS := nss[hookEnv], nss[noticeEnv]
	createNamespaces(ctx, t, cp, hookNS, noticeNS)
	applyRBAC(ctx, t, admin, shopRBAC(hookNS, noticeNS))

	// The endpoint listens before the registry starts, which must know its
	// URL. Until the bot exists the tap answers the registry 200 and drops
	// what it sends (the set-up push).
	tap := &hookTap{}
	mux := http.NewServeMux()
	mux.Handle("POST "+webhook.Path+"{source}", tap)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	token := randomToken(t)
	hookURL := hs.URL + webhook.Path + string(webhook.Distribution)
	reg := registrytest.Start(t, registrytest.WithNotifications(hookURL, http.Header{"Authorization": {"Bearer " + token}}))
	ref := func(d string) string { return reg.Host() + "/" + hookRepo + ":" + hookTag + "@" + d }

	app1 := pushImage(ctx, t, reg, hookRepo, hookTag, "1111111")
	for _, ns := range nss {
		createShopWorkloads(ctx, t, admin, ns, ref(app1), ref(app1), 2, 2, nil)
	}
	for _, ns := range nss {
		waitShopRolled(ctx, t, admin, ns, ref(app1), ref(app1))
	}
	// The set-up push's notification is in; what the registry sends from
	// now on goes to the bot.
	tap.waitPush(ctx, t, reg.Host(), app1)

	cfg := parseKubeConfig(t, webhookConfigYAML(nss, reg.Host(), writeFile(t, "dockerconfig.json", reg.DockerConfigJSON())))
	sb := newShopBot(t, cp, cfg, bot.WithRolloutDeadline(3*time.Minute), bot.WithScheduleIdentity(botUser, groupsOf(cp, botUser)))
	waitShopRBAC(ctx, t, cp, sb.checker, nss)
	hooks := newWebhookServer(t, cfg, token, sb)
	tap.forward.Store(hooks)

	// 1. push → notification → re-resolve → import as the schedule →
	// patched templates → rolled → settled; the other env gets a heads-up.
	var importID string
	var app2 string
	t.Run("push imports the scheduled env", func(t *testing.T) {
		noticeBefore := readShop(ctx, t, admin, noticeNS)
		changed := watchTemplateChange(ctx, t, admin, hookNS)
		noticeChanged := watchTemplateChange(ctx, t, admin, noticeNS)

		pushStart := time.Now()
		app2 = pushImage(ctx, t, reg, hookRepo, hookTag, "2222222")
		pushed := time.Now()
		got := tap.waitPush(ctx, t, reg.Host(), app2)
		if got.status != http.StatusAccepted {
			t.Fatalf("the registry's notification of the push was answered %d %q, want 202", got.status, got.answer)
		}
		t.Logf("the registry's notification: %s %s → %d %s", got.header.Get("Content-Type"), got.body, got.status, strings.TrimSpace(got.answer))

		// The bot acts on an accepted delivery in the background; the
		// import's message is posted before it is done.
		hooks.Wait()
		ids := sb.chat.requestsIn(hookChan)
		if len(ids) == 0 && logged(sb.logs.String(), `msg="registry push"`, "env="+hookEnv+" ", "to="+app1, "did=unchanged") {
			// Distribution dispatches the push event from its manifest
			// store's Put, before the handler points the tag at the new
			// manifest (distribution v3.1.2 registry/handlers/manifests.go:
			// manifests.Put, then tags.Tag; distribution/distribution#2625),
			// and the bot's one HEAD right away can still see the old digest.
			t.Fatalf("the bot re-resolved %s:%s to the old digest %s and took the push for nothing new (did=unchanged): the registry notified before it had moved the tag, and the bot does not look again; posts: %v",
				hookRepo, hookTag, plan.ShortDigest(app1), sb.chat.texts())
		}
		if len(ids) != 1 {
			t.Fatalf("the push opened %d requests in %s, want one import; posts: %v", len(ids), hookChan, sb.chat.texts())
		}
		importID = ids[0]
		final := sb.waitFinal(ctx, t, importID)
		settled := time.Now()
		t.Logf("request #%s at the end:\n%s", importID, final)
		if !containsAll(final, []string{"import " + hookEnv, "succeeded", "2/2 workloads settled", plan.ShortDigest(app2)}) || strings.Contains(final, "Failed:") {
			t.Fatalf("the import of the push did not end succeeded and settled with %s:\n%s", plan.ShortDigest(app2), final)
		}
		r, err := sb.store.Get(ctx, importID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.Succeeded || r.Requester.Platform != lifecycle.SchedulePlatform || r.Requester.User != botUser || r.Channel != hookChan {
			t.Errorf("request #%s is %s, by %+v in %q; want succeeded, opened by the schedule as %s in %s", importID, r.State, r.Requester, r.Channel, botUser, hookChan)
		}
		if len(r.Approvals) != 1 || r.Approvals[0].By.Platform != lifecycle.SchedulePlatform {
			t.Errorf("request #%s has approvals %+v; want the one the schedule gave itself (autoApproveScheduled)", importID, r.Approvals)
		}
		if note := postWith(sb.chat, hookChan, "Pushed to the registry at"); !strings.Contains(note, plan.ShortDigest(app2)) {
			t.Errorf("no announcement of the push naming %s in %s: %v", plan.ShortDigest(app2), hookChan, sb.chat.texts())
		}

		var firstChange time.Time
		select {
		case firstChange = <-changed:
		case <-time.After(30 * time.Second):
			t.Fatal("the watch saw no template change, yet the import succeeded")
		}
		want := shopState{web: ref(app2), worker: ref(app2)}
		if s := readShop(ctx, t, admin, hookNS); s != want {
			t.Fatalf("after the import the workloads are %s, want %s", s, want)
		}
		waitShopRolled(ctx, t, admin, hookNS, want.web, want.worker)

		// The env on the same tag without scheduled: a heads-up naming
		// the command, and nothing changed.
		// Posted before the delivery was done (hooks.Wait above).
		headsUp := postWith(sb.chat, noticeChan, "New image for "+noticeEnv)
		if headsUp == "" {
			t.Fatalf("no heads-up in %s; posts: %v", noticeChan, sb.chat.texts())
		}
		t.Logf("heads-up in %s: %s", noticeChan, headsUp)
		if !containsAll(headsUp, []string{"`import " + noticeEnv + " app`", plan.ShortDigest(app1) + " → " + plan.ShortDigest(app2)}) {
			t.Errorf("the heads-up does not name `import %s app` and %s → %s: %s", noticeEnv, plan.ShortDigest(app1), plan.ShortDigest(app2), headsUp)
		}
		hooks.Wait()
		if ids := sb.chat.requestsIn(noticeChan); len(ids) > 0 {
			t.Errorf("requests were opened in %s: %v", noticeChan, ids)
		}
		if reqs := requestsOf(ctx, t, sb.store); len(reqs) != 1 {
			t.Errorf("the store has %d requests, want only #%s: %v", len(reqs), importID, reqs)
		}
		if s := readShop(ctx, t, admin, noticeNS); s != noticeBefore {
			t.Errorf("%s's workloads are %s, want them unchanged: %s", noticeEnv, s, noticeBefore)
		}
		select {
		case at := <-noticeChanged:
			t.Errorf("a template of %s changed at %v", noticeNS, at)
		default:
		}
		for env, did := range map[string]string{hookEnv: "import", noticeEnv: "heads-up"} {
			if !logged(sb.logs.String(), `msg="registry push"`, "env="+env+" service=app ", "did="+did+" ") {
				t.Errorf("no registry push of %s logged with did=%s", env, did)
			}
		}

		t.Logf("timings: remote.Write of the image %v; webhook received %v after the push started (%v after remote.Write returned); push → first template change (rollout starting) %v; push → chat message settled %v",
			pushed.Sub(pushStart).Round(time.Millisecond), got.at.Sub(pushStart).Round(time.Millisecond), got.at.Sub(pushed).Round(time.Millisecond),
			firstChange.Sub(pushed).Round(time.Millisecond), settled.Sub(pushed).Round(time.Millisecond))
	})
	if t.Failed() {
		return
	}

	// 2. A notification with a wrong token is refused 401 and changes
	// nothing. It is the registry's own envelope of a real push, which the
	// tap keeps from the bot, so the registry has a new image the bot
	// would act on: the same envelope with the right token is.
	t.Run("wrong token refused", func(t *testing.T) {
		tap.forward.Store(nil)
		app3 := pushImage(ctx, t, reg, hookRepo, hookTag, "3333333")
		held := tap.waitPush(ctx, t, reg.Host(), app3)
		tap.forward.Store(hooks)

		posts, reqs, logLen := sb.chat.postCount(), len(requestsOf(ctx, t, sb.store)), len(sb.logs.String())
		before := map[string]shopState{hookNS: readShop(ctx, t, admin, hookNS), noticeNS: readShop(ctx, t, admin, noticeNS)}
		for _, auth := range []string{"Bearer not-" + token, "", "Bearer " + token + "x"} {
			status, answer := postHook(ctx, t, hookURL, auth, held)
			t.Logf("Authorization %q → %d %s", auth, status, strings.TrimSpace(answer))
			if status != http.StatusUnauthorized {
				t.Errorf("a notification with Authorization %q was answered %d %q, want 401", auth, status, answer)
			}
		}
		hooks.Wait()
		if n := sb.chat.postCount(); n != posts {
			t.Errorf("the refused notifications posted %d messages: %v", n-posts, sb.chat.texts()[posts:])
		}
		if n := len(requestsOf(ctx, t, sb.store)); n != reqs {
			t.Errorf("the refused notifications opened %d requests", n-reqs)
		}
		for ns, s := range before {
			if got := readShop(ctx, t, admin, ns); got != s {
				t.Errorf("after the refused notifications %s's workloads are %s, want %s", ns, got, s)
			}
		}
		logs := sb.logs.String()[logLen:]
		if strings.Contains(logs, `msg="registry push"`) || !strings.Contains(logs, "registry webhook refused") {
			t.Errorf("the bot log after the refused notifications should say refused and show no push:\n%s", logs)
		}

		// The right token: accepted (the refusals left nothing for the
		// replay guard) and acted on.
		status, answer := postHook(ctx, t, hookURL, "Bearer "+token, held)
		if status != http.StatusAccepted {
			t.Fatalf("the same notification with the right token was answered %d %q, want 202", status, answer)
		}
		hooks.Wait()
		// noticeEnv still runs app1.
		headsUp := postWith(sb.chat, noticeChan, plan.ShortDigest(app1)+" → "+plan.ShortDigest(app3))
		if !strings.Contains(headsUp, "`import "+noticeEnv+" app`") {
			t.Errorf("the accepted notification gave no heads-up of %s in %s: %v", plan.ShortDigest(app3), noticeChan, sb.chat.texts())
		}
		// The scheduled env imports it, unless its run of this minute
		// (#importID) was opened already: then it is a heads-up.
		if ids := sb.chat.requestsIn(hookChan); len(ids) > 1 {
			final := sb.waitFinal(ctx, t, ids[len(ids)-1])
			t.Logf("%s imported %s in #%s:\n%s", hookEnv, plan.ShortDigest(app3), ids[len(ids)-1], final)
			if !containsAll(final, []string{"succeeded", plan.ShortDigest(app3)}) {
				t.Errorf("the import of %s did not succeed:\n%s", plan.ShortDigest(app3), final)
			}
			waitShopRolled(ctx, t, admin, hookNS, ref(app3), ref(app3))
		} else {
			note := postWith(sb.chat, hookChan, "New image for "+hookEnv)
			t.Logf("%s, with #%s of this minute open before: %s", hookEnv, importID, note)
			if !containsAll(note, []string{"#" + importID, plan.ShortDigest(app3), "`import " + hookEnv + " app`"}) {
				t.Errorf("the scheduled env neither imported %s nor said why not: %v", plan.ShortDigest(app3), sb.chat.texts())
			}
		}
		if got := readShop(ctx, t, admin, noticeNS); got != before[noticeNS] {
			t.Errorf("%s's workloads are %s, want them unchanged: %s", noticeEnv, got, before[noticeNS])
		}
	})
}

// newWebhookServer builds the registry webhooks as `deploybot serve` does
// (cmd/deploybot newWebhooks) for DEPLOYBOT_WEBHOOK_SECRET_DISTRIBUTION=token:
// the store as the replay guard, the bot's Pushed as the receiver.
func newWebhookServer(t *testing.T, cfg *config.Config, token string, sb *shopBot) *webhook.Server {
	t.Helper()
	var hosts webhook.Hosts
	if w := cfg.Webhooks; w != nil {
		hosts = webhook.Hosts{Distribution: w.DistributionHost, Harbor: w.HarborHost}
	}
	log := slog.New(slog.NewTextHandler(sb.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := webhook.New(map[webhook.Source]string{webhook.Distribution: token}, sb.store, sb.b.Pushed, webhook.WithHosts(hosts), webhook.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// hookTap sits at the webhook path in front of the bot's webhook.Server,
// which it hands every request unchanged; it records when each came and
// what it was answered. With no server set it answers 200 and hands nothing
// on.
type hookTap struct {
	forward atomic.Pointer[webhook.Server]
	mu      sync.Mutex
	seen    []tapped
}

type tapped struct {
	at     time.Time
	header http.Header
	body   []byte
	status int
	answer string
}

func (h *hookTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	if srv := h.forward.Load(); srv != nil {
		srv.ServeHTTP(rec, r)
	} else {
		rec.WriteString("dropped: the bot is not listening yet\n")
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, tapped{at: at, header: r.Header.Clone(), body: body, status: rec.Code, answer: rec.Body.String()})
}

// waitPush waits for the notification of the push of digest to host's
// hookRepo:hookTag and returns it.
func (h *hookTap) waitPush(ctx context.Context, t *testing.T, host, digest string) tapped {
	t.Helper()
	var got tapped
	waitFor(ctx, t, "the registry's notification of the push of "+plan.ShortDigest(digest), func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, d := range h.seen {
			var env struct {
				Events []struct {
					Action string `json:"action"`
					Target struct {
						Repository string `json:"repository"`
						Tag        string `json:"tag"`
						Digest     string `json:"digest"`
					} `json:"target"`
					Request struct {
						Host string `json:"host"`
					} `json:"request"`
				} `json:"events"`
			}
			if json.Unmarshal(d.body, &env) != nil {
				continue
			}
			for _, ev := range env.Events {
				if ev.Action == "push" && ev.Target.Repository == hookRepo && ev.Target.Tag == hookTag && ev.Target.Digest == digest && ev.Request.Host == host {
					got = d
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d notifications", len(h.seen))
	})
	return got
}

// postHook sends d's body with d's Content-Type and the Authorization
// header auth (none if empty) to url, as a registry would, and returns the
// answer.
func postHook(ctx context.Context, t *testing.T, url, auth string, d tapped) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", d.header.Get("Content-Type"))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// postWith is the text of the last post in channel containing sub, or "".
func postWith(c *kubeChat, channel, sub string) string {
	var found string
	for _, p := range c.texts() {
		if text, ok := strings.CutPrefix(p, channel+": "); ok && strings.Contains(text, sub) {
			found = text
		}
	}
	return found
}

// requestsOf lists the IDs of the store's requests.
func requestsOf(ctx context.Context, t *testing.T, st *store.Memory) []string {
	t.Helper()
	rs, err := st.List(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID+" ("+r.Plan.Env+" "+string(r.State)+")")
	}
	return ids
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// logged reports whether a line of logs contains every one of subs.
func logged(logs string, subs ...string) bool {
	for _, l := range strings.Split(logs, "\n") {
		if containsAll(l, subs) {
			return true
		}
	}
	return false
}
