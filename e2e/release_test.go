package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/gitrepo"
	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/internal/gittest"
	"github.com/deploybot/deploybot/internal/registrytest"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/release"
	"github.com/deploybot/deploybot/store"
)

// The release flow on real parts, the chat platform aside: three git
// repositories served by git's own http-backend (internal/gittest, behind
// a reverse proxy that counts pushes and can let "someone else" push just
// before the bot's push reaches the server), the bot's go-git client
// (gitrepo) pushing their stable branches, a small CI in the test that
// builds (pushes to the real CNCF Distribution registry) an image labelled
// with the new stable SHA for every service a repository builds, the
// Releaser waiting for those images, and the import that follows rolling
// the Deployments on kube-apiserver with kube-controller-manager and kwok.
// The git CLI, run in the bare repositories, is the oracle of what was
// pushed.

// releaseRuns numbers the runs of TestRelease in this process (-count=N).
var releaseRuns atomic.Int32

const (
	relEnv      = "rel"
	relTag      = "rel"
	relChan     = "releases"
	relGitUser  = "deploybot-git"
	relTokenEnv = "DEPLOYBOT_E2E_RELEASE_TOKEN"
	relBadEnv   = "DEPLOYBOT_E2E_RELEASE_BAD_TOKEN"
)

// relRepos are the git repositories and the services each builds.
var relRepos = []struct {
	name     string
	services []string
}{
	{"backend", []string{"api", "worker"}},
	{"frontend", []string{"web"}},
	{"docs", []string{"docs"}},
}

// relServices are the services, one Deployment each, in config order.
var relServices = []string{"api", "worker", "web", "docs"}

// relConfig is the bot's config. urls are the repositories' URLs, tokenEnv
// the variable their token is read from, timeout release.timeout.
func relConfig(t *testing.T, ns, regHost, dockerConfig string, urls map[string]string, tokenEnv string, timeout time.Duration) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `environments:
  - name: %s
    platform: kubernetes
    namespace: %s
    tag: %s
    confirm: true
    approvals: {count: 1}
services:
`, relEnv, ns, relTag)
	for _, s := range relServices {
		fmt.Fprintf(&b, "  - name: %[1]s\n    repository: %[2]s/rel/%[1]s\n    workloads:\n      - {kind: Deployment, name: %[1]s, container: %[1]s}\n", s, regHost)
	}
	b.WriteString("repositories:\n")
	for _, r := range relRepos {
		fmt.Fprintf(&b, "  - {name: %s, url: %q, env: %s, services: [%s], tokenEnv: %s, username: %s}\n",
			r.name, urls[r.name], relEnv, strings.Join(r.services, ", "), tokenEnv, relGitUser)
	}
	fmt.Fprintf(&b, `release:
  timeout: %s
registry:
  dockerConfig: %s
  insecure: [%s]
identities:
  users:
    - {platform: terminal, id: alice, user: alice, groups: [deployers]}
    - {platform: terminal, id: bob, user: bob, groups: [deployers]}
    - {platform: terminal, id: carol, user: carol, groups: [viewers]}
`, timeout, dockerConfig, regHost)
	return parseKubeConfig(t, b.String())
}

func TestRelease(t *testing.T) {
	// Not parallel: the repositories' tokens are in the environment
	// (t.Setenv).
	testStart := time.Now()
	cp := controlPlane(t)
	ctx := testContext(t, 3*time.Minute)
	admin := clientFor(t, cp.AdminConfig())
	reg := registrytest.Start(t)
	ns := fmt.Sprintf("rel-%d", releaseRuns.Add(1))
	createNamespaces(ctx, t, cp, ns)
	applyRBAC(ctx, t, admin, relRBAC(ns))

	// The git server, its three repositories: main a few commits ahead of
	// stable.
	token := randomToken(t)
	t.Setenv(relTokenEnv, token)
	t.Setenv(relBadEnv, "not-"+token)
	srv := gittest.NewServer(t, relGitUser, token)
	proxy := startGitProxy(t, srv.URL)
	repos := map[string]*gittest.Repo{}
	urls := map[string]string{}
	subjects := map[string][]string{
		"backend":  {"api: add /healthz", "worker: retry on 503"},
		"frontend": {"web: dark mode", "web: fix the footer", "web: bump dependencies"},
		"docs":     {"docs: release notes for 1.4"},
	}
	for _, r := range relRepos {
		repo := srv.NewRepo(t, r.name)
		first := repo.Commit(t, "main", r.name+": initial import", "Alice")
		repo.SetBranch(t, "stable", first)
		for _, s := range subjects[r.name] {
			repo.Commit(t, "main", s, "Alice")
		}
		repos[r.name] = repo
		urls[r.name] = proxy.url(r.name)
	}
	stable := func(repo string) string { return repos[repo].Ref(t, "stable") }
	main := func(repo string) string { return repos[repo].Ref(t, "main") }

	// What runs: each service's image built from its repository's stable.
	host := reg.Host()
	running := map[string]string{} // service → image reference
	for _, r := range relRepos {
		for _, s := range r.services {
			d := pushImage(ctx, t, reg, "rel/"+s, relTag, stable(r.name))
			running[s] = host + "/rel/" + s + ":" + relTag + "@" + d
			createDeployment(ctx, t, admin, followDeployment(ns, s, running[s], 1))
		}
	}
	for _, s := range relServices {
		waitDeployed(ctx, t, admin, ns, s, running[s])
	}

	// CI: builds every service of a repository when its stable moves.
	ci := startCI(ctx, t, reg, repos)

	dockerConfig := writeFile(t, "dockerconfig.json", reg.DockerConfigJSON())
	cfg := relConfig(t, ns, host, dockerConfig, urls, relTokenEnv, 30*time.Second)
	rb := newReleaseBot(t, cp, cfg)
	waitRelRBAC(ctx, t, cp, rb, ns)
	t.Logf("set-up done in %v", time.Since(testStart).Round(time.Millisecond))

	// refused checks a command that must open nothing and push nothing.
	refused := func(t *testing.T, b *shopBot, user, text string, want ...string) string {
		t.Helper()
		before := map[string]string{}
		for _, r := range relRepos {
			before[r.name] = stable(r.name)
		}
		pushes, posts := proxy.pushCount(), b.chat.postCount()
		reply, id := sayAs(ctx, t, b, user, text)
		t.Logf("%s: %s →\n%s", user, text, reply)
		if id != "" {
			t.Errorf("%s opened request #%s:\n%s", text, id, b.chat.lastText(id))
		}
		if n := b.chat.postCount(); n != posts {
			t.Errorf("%s posted %d messages: %v", text, n-posts, b.chat.texts()[posts:])
		}
		if !containsAll(reply, want) {
			t.Errorf("%s answered:\n%s\nwant it to say %q", text, reply, want)
		}
		for _, r := range relRepos {
			if got := stable(r.name); got != before[r.name] {
				t.Errorf("after %s, git rev-parse stable in %s = %s, was %s", text, r.name, got, before[r.name])
			}
		}
		if n := proxy.pushCount(); n != pushes {
			t.Errorf("%s made %d receive-pack (push) requests", text, n-pushes)
		}
		return reply
	}

	// 1. A release of all three repositories, then the import it offers.
	t.Run("release three repositories and import", func(t *testing.T) {
		from := map[string]string{}
		for _, r := range relRepos {
			from[r.name] = stable(r.name)
		}
		reply, id := sayAs(ctx, t, rb, kubeUser, "release "+relEnv)
		t.Logf("alice: release %s →\n%s", relEnv, reply)
		if id == "" {
			t.Fatalf("release %s opened no request:\n%s", relEnv, reply)
		}
		for _, r := range relRepos {
			want := []string{fmt.Sprintf("%s: stable %s → %s", r.name, short(from[r.name]), short(main(r.name)))}
			want = append(want, subjects[r.name]...)
			want = append(want, "then waits for the "+relEnv+" images of "+strings.Join(r.services, ", "))
			if !containsAll(reply, want) {
				t.Errorf("the plan does not show %s's move and its commits %q:\n%s", r.name, want, reply)
			}
			// git log stable..main is what the plan lists.
			for _, line := range repos[r.name].Log(t, "stable..main") {
				if !strings.Contains(reply, line[:7]) {
					t.Errorf("the plan does not list %s's commit %q (git log stable..main)", r.name, line)
				}
			}
		}
		final, timing := rb.approveAndWait(ctx, t, proxy, id)
		if !containsAll(final, []string{"succeeded", "4/4 images built", "Built: `import " + relEnv + " api worker web docs` imports them."}) || strings.Contains(final, "Failed:") {
			t.Fatalf("the release did not succeed with 4 images built and the import offered:\n%s", final)
		}
		for _, r := range relRepos {
			got := stable(r.name)
			if got != main(r.name) {
				t.Errorf("git rev-parse stable in %s = %s, want main's %s", r.name, got, main(r.name))
			}
			if !repos[r.name].IsAncestor(t, from[r.name], got) {
				t.Errorf("in %s the old stable %s is not an ancestor of the new one %s (not a fast-forward)", r.name, short(from[r.name]), short(got))
			}
			for _, s := range r.services {
				img := ci.image(s, got)
				if img.digest == "" {
					t.Errorf("CI built no %s image from %s", s, short(got))
					continue
				}
				want := fmt.Sprintf("%s image: built %s from %s after", s, plan.ShortDigest(img.digest), short(got))
				if !strings.Contains(final, want) {
					t.Errorf("the final message does not say %q:\n%s", want, final)
				}
				t.Logf("timing %s/%s: bot's push of stable → CI saw it %v → image in the registry %v; the bot: %q",
					r.name, s, img.saw.Sub(timing.pushed[r.name]).Round(time.Millisecond), img.pushed.Sub(timing.pushed[r.name]).Round(time.Millisecond),
					lineWith(final, s+" image: built"))
			}
		}
		last, _ := rb.chat.last(id)
		if !slices.ContainsFunc(last.Buttons, func(b bot.Button) bool { return b.Action == bot.ActionImport }) {
			t.Errorf("the final message has no Import button: %+v", last.Buttons)
		}
		t.Logf("timing: approve → last push %v, approve → final message %v", timing.lastPush.Sub(timing.approved).Round(time.Millisecond), timing.final.Sub(timing.approved).Round(time.Millisecond))

		// The import it offers, through the bot, rolls the Deployments.
		importText := "import " + relEnv + " api worker web docs"
		reply, iid := sayAs(ctx, t, rb, kubeUser, importText)
		t.Logf("alice: %s →\n%s", importText, reply)
		if iid == "" {
			t.Fatalf("%s opened no request:\n%s", importText, reply)
		}
		start := time.Now()
		ifinal, _ := rb.approveAndWait(ctx, t, nil, iid)
		if !containsAll(ifinal, []string{"succeeded", "4/4 workloads settled"}) || strings.Contains(ifinal, "Failed:") {
			t.Fatalf("the import did not succeed with 4 workloads settled:\n%s", ifinal)
		}
		for _, r := range relRepos {
			for _, s := range r.services {
				want := host + "/rel/" + s + ":" + relTag + "@" + ci.image(s, stable(r.name)).digest
				waitDeployed(ctx, t, admin, ns, s, want)
				running[s] = want
			}
		}
		t.Logf("timing: import confirm+approve → settled and verified on the API server %v", time.Since(start).Round(time.Millisecond))
	})
	if t.Failed() {
		return
	}

	// 9. carol may read but not import into the env, so she may not release.
	t.Run("carol may not release", func(t *testing.T) {
		repos["frontend"].Commit(t, "main", "web: fix a typo", "Bob")
		reply := refused(t, rb, "carol", "release "+relEnv, "carol may not do this in "+relEnv+"; the cluster's RBAC refuses:", "patch deployments.apps web in "+ns)
		if strings.Contains(reply, "deployments.apps api") || strings.Contains(reply, "deployments.apps docs") {
			t.Errorf("the refusal names workloads of repositories that are even:\n%s", reply)
		}
	})

	// 2. Repositories that are even are shown and skipped, not pushed.
	t.Run("even repositories skipped", func(t *testing.T) {
		refused(t, rb, kubeUser, "release "+relEnv+" backend", "backend: stable at "+short(stable("backend")), "even with the rolling branch, skipped")
		before := map[string]string{"backend": stable("backend"), "docs": stable("docs")}
		pushes := proxy.pushes("backend") + proxy.pushes("docs")
		reply, id := sayAs(ctx, t, rb, kubeUser, "release "+relEnv)
		t.Logf("alice: release %s →\n%s", relEnv, reply)
		if id == "" {
			t.Fatalf("release %s opened no request:\n%s", relEnv, reply)
		}
		for _, r := range []string{"backend", "docs"} {
			if want := fmt.Sprintf("%s: stable at %s, even with the rolling branch, skipped", r, short(before[r])); !strings.Contains(reply, want) {
				t.Errorf("the plan does not say %q:\n%s", want, reply)
			}
		}
		frontendFrom := stable("frontend")
		final, _ := rb.approveAndWait(ctx, t, proxy, id)
		if !containsAll(final, []string{"succeeded", "1/1 images built", "`import " + relEnv + " web`"}) {
			t.Fatalf("the release of frontend alone did not succeed with web built:\n%s", final)
		}
		for r, sha := range before {
			if got := stable(r); got != sha {
				t.Errorf("git rev-parse stable in even %s = %s, was %s", r, got, sha)
			}
		}
		if n := proxy.pushes("backend") + proxy.pushes("docs"); n != pushes {
			t.Errorf("%d pushes went to the even repositories", n-pushes)
		}
		if got := stable("frontend"); got != main("frontend") || !repos["frontend"].IsAncestor(t, frontendFrom, got) {
			t.Errorf("frontend's stable is %s, want main's %s, fast-forwarded from %s", short(got), short(main("frontend")), short(frontendFrom))
		}
	})

	// 3. --to a commit that is not on main.
	t.Run("--to a commit not on main", func(t *testing.T) {
		side := repos["frontend"].Commit(t, "feature", "web: experiment", "Eve")
		if repos["frontend"].IsAncestor(t, side, "main") {
			t.Fatalf("the feature commit %s is on main", short(side))
		}
		refused(t, rb, kubeUser, "release "+relEnv+" frontend --to "+short(side), "frontend", short(side)+" is not a commit on main")
	})

	// 4. stable has a commit main lacks: the move would not fast-forward.
	t.Run("not a fast-forward", func(t *testing.T) {
		hotfix := repos["docs"].Commit(t, "stable", "docs: hotfix straight on stable", "Dana")
		repos["docs"].Commit(t, "main", "docs: a new page", "Alice")
		if repos["docs"].IsAncestor(t, "stable", "main") {
			t.Fatal("git merge-base --is-ancestor stable main holds; the set-up is wrong")
		}
		refused(t, rb, kubeUser, "release "+relEnv+" docs", "docs: stable ("+short(hotfix)+") is not on main", "not be a fast-forward", "merge stable into main")
		// With the others even, the whole release has nothing to do and
		// says why docs is left out.
		refused(t, rb, kubeUser, "release "+relEnv, "docs is left out", "not be a fast-forward")
		if got := stable("docs"); got != hotfix {
			t.Errorf("git rev-parse stable in docs = %s, want the hotfix %s", got, hotfix)
		}
	})

	// 5a. Someone else pushes stable between the request and its approval.
	t.Run("stable moved before the approval", func(t *testing.T) {
		b4 := repos["backend"].Commit(t, "main", "api: paginate", "Alice")
		b5 := repos["backend"].Commit(t, "main", "worker: drain on SIGTERM", "Alice")
		reply, id := sayAs(ctx, t, rb, kubeUser, "release "+relEnv+" backend")
		if id == "" {
			t.Fatalf("release backend opened no request:\n%s", reply)
		}
		from := stable("backend")
		if !strings.Contains(reply, "backend: stable "+short(from)+" → "+short(b5)) {
			t.Errorf("the plan does not move backend %s → %s:\n%s", short(from), short(b5), reply)
		}
		rb.confirm(ctx, t, id)
		pushes := proxy.pushes("backend")
		otherPush(t, repos["backend"], b4) // Dana, with the git CLI
		reply, _ = sayAs(ctx, t, rb, "bob", "approve #"+id)
		t.Logf("bob: approve #%s, after Dana pushed stable to %s →\n%s", id, short(b4), reply)
		if !containsAll(reply, []string{"#" + id, "changed since", "run the command again"}) {
			t.Errorf("bob's approval was not refused as the plan changed:\n%s", reply)
		}
		r, err := rb.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("request #%s is %s after the refused approval (reason %q); its message:\n%s", id, r.State, r.Reason, rb.chat.lastText(id))
		if r.State != store.AwaitingApproval || len(r.Approvals) != 0 {
			t.Errorf("request #%s is %s with approvals %+v, want still awaiting approval with none", id, r.State, r.Approvals)
		}
		if got := stable("backend"); got != b4 {
			t.Errorf("git rev-parse stable in backend = %s, want Dana's %s", got, b4)
		}
		if n := proxy.pushes("backend"); n != pushes {
			t.Errorf("the bot pushed to backend %d times", n-pushes)
		}
		// It holds backend's release lock: a new release waits for it.
		reply, again := sayAs(ctx, t, rb, kubeUser, "release "+relEnv+" backend")
		t.Logf("alice: release %s backend, with #%s open →\n%s", relEnv, id, reply)
		if again != "" {
			t.Errorf("a second release of backend opened #%s while #%s is open", again, id)
		}
		// The requester withdraws it.
		reply, _ = sayAs(ctx, t, rb, kubeUser, "cancel #"+id)
		t.Logf("alice: cancel #%s →\n%s", id, reply)
		final := rb.waitFinal(ctx, t, id)
		t.Logf("request #%s at the end:\n%s", id, final)
	})
	if t.Failed() {
		return
	}

	// 5b, 5c. Someone else pushes stable after the approval, while the
	// bot pushes: between the bot's last fetch and its push, so that go-git
	// sees the moved ref in the server's advertisement and refuses to send
	// (5c), or after the advertisement, just before the update reaches the
	// server, whose receive-pack then refuses it: the compare-and-swap on
	// the server (5b).
	for _, tc := range []struct {
		name  string
		phase pushPhase
	}{
		{"stable moved just before the push reaches the server", pushUpdate},
		{"stable moved between the bot's fetch and its push", pushAdvertise},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if stable("backend") == main("backend") {
				repos["backend"].Commit(t, "main", "api: something more to release", "Alice")
			}
			from, to := stable("backend"), main("backend")
			reply, id := sayAs(ctx, t, rb, kubeUser, "release "+relEnv+" backend")
			if id == "" {
				t.Fatalf("release backend opened no request:\n%s", reply)
			}
			if !strings.Contains(reply, "backend: stable "+short(from)+" → "+short(to)) {
				t.Errorf("the plan does not move backend %s → %s:\n%s", short(from), short(to), reply)
			}
			// Dana's commit: on main after the plan (the request is pinned
			// to to), pushed to stable by her while the bot pushes.
			danas := repos["backend"].Commit(t, "main", "api: Dana's urgent fix", "Dana")
			clone := cloneRepo(t, repos["backend"])
			dana := make(chan error, 1)
			proxy.beforePush("backend", tc.phase, func() {
				dana <- gitCLI(clone, "push", "--quiet", repos["backend"].AuthURL(), danas+":refs/heads/stable")
			})
			pushes := proxy.pushes("backend")
			final, _ := rb.approveAndWait(ctx, t, proxy, id)
			select {
			case err := <-dana:
				if err != nil {
					t.Fatalf("Dana's push: %v", err)
				}
			default:
				t.Fatalf("the bot's push never reached the server's %s step, where Dana pushes", tc.phase)
			}
			t.Logf("receive-pack updates the bot sent to backend: %d", proxy.pushes("backend")-pushes)
			r, err := rb.store.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("request #%s: state %s, reason %q", id, r.State, r.Reason)
			if got := stable("backend"); got != danas {
				t.Fatalf("git rev-parse stable in backend = %s, want Dana's %s (not overwritten with %s)", got, danas, to)
			}
			if r.State != store.Failed || !strings.Contains(final, "failed") {
				t.Errorf("request #%s is %s, want failed:\n%s", id, r.State, final)
			}
			if !repos["backend"].IsAncestor(t, to, danas) {
				t.Fatalf("set-up: %s is not on Dana's %s", short(to), short(danas))
			}
			// What gitrepo.MovedError says, in the final message and the
			// request's reason.
			want := fmt.Sprintf("stable was moved to %s by someone else after the release was planned from %s; nothing was pushed", short(danas), short(from))
			if !strings.Contains(final, want) || !strings.Contains(r.Reason, want) {
				t.Errorf("the final message and reason do not say %q (reason %q):\n%s", want, r.Reason, final)
				if tc.phase == pushUpdate {
					t.Logf("receive-pack refused the update (its report-status: \"ng refs/heads/stable failed to update ref\", go-git: \"command error on refs/heads/stable: failed to update ref\"); gitrepo.Client.Push asks where the branch is only for \"required to be\" and \"non-fast-forward\"")
				}
			}
		})
	}

	// 5d. The server applies the push and its answer is lost: the push is
	// the bot's own, so the release goes on (it asks where stable is).
	t.Run("the push's answer is lost", func(t *testing.T) {
		repos["backend"].Commit(t, "main", "api: one more to release", "Alice")
		from, to := stable("backend"), main("backend")
		reply, id := sayAs(ctx, t, rb, kubeUser, "release "+relEnv+" backend")
		if id == "" {
			t.Fatalf("release backend opened no request:\n%s", reply)
		}
		proxy.loseNextAnswer("backend")
		final, _ := rb.approveAndWait(ctx, t, proxy, id)
		if got := stable("backend"); got != to {
			t.Fatalf("git rev-parse stable in backend = %s, want %s (moved from %s)", short(got), short(to), short(from))
		}
		r, err := rb.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.Succeeded || !strings.Contains(final, "pushed stable "+short(from)+" → "+short(to)) || !strings.Contains(final, "2/2 images built") {
			t.Errorf("request #%s is %s (%s), want the push taken as done and the builds waited for:\n%s", id, r.State, r.Reason, final)
		}
	})

	// 6. Wrong credentials.
	t.Run("wrong credentials", func(t *testing.T) {
		repos["frontend"].Commit(t, "main", "web: something to release", "Alice")
		b := newReleaseBot(t, cp, relConfig(t, ns, host, dockerConfig, urls, relBadEnv, 30*time.Second))
		refused(t, b, kubeUser, "release "+relEnv+" frontend", "frontend: fetching main and stable from "+urls["frontend"], "refused deploybot's credentials")
		refused(t, b, kubeUser, "release "+relEnv, "refused deploybot's credentials")
	})

	// 7. An unreachable remote.
	t.Run("unreachable remote", func(t *testing.T) {
		closed := map[string]string{}
		for k, v := range urls {
			closed[k] = v
		}
		closed["frontend"] = "http://" + closedPort(t) + "/frontend.git"
		b := newReleaseBot(t, cp, relConfig(t, ns, host, dockerConfig, closed, relTokenEnv, 30*time.Second))
		refused(t, b, kubeUser, "release "+relEnv+" frontend", "frontend: fetching main and stable from "+closed["frontend"], "could not be reached", "connection refused")
	})

	// 8. A build that never arrives.
	t.Run("build never arrives", func(t *testing.T) {
		ci.disable("frontend")
		defer ci.enable("frontend")
		b := newReleaseBot(t, cp, relConfig(t, ns, host, dockerConfig, urls, relTokenEnv, 2*time.Second))
		from, to := stable("frontend"), main("frontend")
		was := ci.latest("web")
		reply, id := sayAs(ctx, t, b, kubeUser, "release "+relEnv+" frontend")
		if id == "" {
			t.Fatalf("release frontend opened no request:\n%s", reply)
		}
		final, timing := b.approveAndWait(ctx, t, proxy, id)
		r, err := b.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("request #%s: state %s, reason %q, %v from approval to the end", id, r.State, r.Reason, timing.final.Sub(timing.approved).Round(time.Millisecond))
		want := fmt.Sprintf("no image built from %s arrived within 2s; the tag still has %s built from %s", short(to), plan.ShortDigest(was.digest), short(was.revision))
		if r.State != store.Failed || !containsAll(final, []string{"failed", want}) {
			t.Errorf("request #%s is %s; want failed with %q:\n%s", id, r.State, want, final)
		}
		if strings.Contains(final, "`import ") {
			t.Errorf("a release whose build never came offers an import:\n%s", final)
		}
		if got := stable("frontend"); got != to || !repos["frontend"].IsAncestor(t, from, got) {
			t.Errorf("git rev-parse stable in frontend = %s, want %s: the push happened", short(got), short(to))
		}
	})
	t.Logf("TestRelease took %v", time.Since(testStart).Round(time.Millisecond))
}

// newReleaseBot is newShopBot with the release parts wired as
// cmd/deploybot's releases() wires them: one go-git client (bare copies on
// disk) for the commands and the Releaser, the Releaser on the config's
// registry; it polls the registry every 100ms instead of 15s.
func newReleaseBot(t *testing.T, cp *controlplane.ControlPlane, cfg *config.Config) *shopBot {
	t.Helper()
	git := gitrepo.Configured{C: gitrepo.New(gitrepo.WithTimeout(30*time.Second), gitrepo.WithDir(t.TempDir()))}
	reg, err := cluster.NewRegistry(cfg.Registry)
	if err != nil {
		t.Fatal(err)
	}
	rel := release.New(cfg, git, reg, release.WithPoll(100*time.Millisecond))
	return newShopBot(t, cp, cfg, bot.WithGit(git), bot.WithReleaser(rel), bot.WithRolloutDeadline(time.Minute))
}

// sayAs is shopBot.say as user, in the releases' channel.
func sayAs(ctx context.Context, t *testing.T, sb *shopBot, user, text string) (reply, requestID string) {
	t.Helper()
	return sb.sayIn(ctx, t, user, relChan, text)
}

// confirm is alice confirming her request id, which must then wait for
// an approval.
func (sb *shopBot) confirm(ctx context.Context, t *testing.T, id string) {
	t.Helper()
	reply, _ := sayAs(ctx, t, sb, kubeUser, "confirm #"+id)
	r, err := sb.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.AwaitingApproval {
		t.Fatalf("after alice's confirm #%s is %s, want awaiting approval; the reply:\n%s", id, r.State, reply)
	}
}

// relTiming is when a release's steps happened, seen from outside.
type relTiming struct {
	approved, lastPush, final time.Time
	pushed                    map[string]time.Time // repository → the bot's receive-pack sent
}

// approveAndWait confirms request id as alice, approves it as bob and
// waits for its final message. proxy, when set, gives the push times.
func (sb *shopBot) approveAndWait(ctx context.Context, t *testing.T, proxy *gitProxy, id string) (string, relTiming) {
	t.Helper()
	sb.confirm(ctx, t, id)
	var tm relTiming
	tm.approved = time.Now()
	reply, _ := sayAs(ctx, t, sb, "bob", "approve #"+id)
	if r, err := sb.store.Get(ctx, id); err != nil || len(r.Approvals) != 1 {
		t.Fatalf("bob's approval of #%s was not taken (%v); the reply:\n%s", id, err, reply)
	}
	final := sb.waitFinal(ctx, t, id)
	tm.final = time.Now()
	t.Logf("request #%s at the end:\n%s", id, final)
	if proxy != nil {
		tm.pushed = proxy.pushTimes()
		for _, at := range tm.pushed {
			if at.After(tm.lastPush) && at.After(tm.approved) {
				tm.lastPush = at
			}
		}
	}
	return final, tm
}

// relRBAC: alice, bob and the bot may import (patch the Deployments) in
// ns, carol may only read.
func relRBAC(ns string) rbacObjects {
	objs := shopRBAC(ns) // alice and the bot
	objs.roleBindings = append(objs.roleBindings, roleBinding(ns, "rel-bob", "shop-deployer", userSubject("bob")))
	read := []string{"get", "list", "watch"}
	objs.roles = append(objs.roles, rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "rel-viewer", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"}, Verbs: read},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: read},
		},
	})
	objs.roleBindings = append(objs.roleBindings, roleBinding(ns, "rel-carol", "rel-viewer", userSubject("carol")))
	return objs
}

// waitRelRBAC waits until the API server answers with relRBAC's bindings.
func waitRelRBAC(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, sb *shopBot, ns string) {
	t.Helper()
	patch := []plan.Access{{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: ns, Name: "web"}}
	waitFor(ctx, t, "RBAC bindings in effect", func() (bool, string) {
		for _, user := range []string{kubeUser, "bob", botUser} {
			denied, err := sb.checker.Denied(ctx, relEnv, user, groupsOf(cp, user), patch)
			if err != nil || len(denied) > 0 {
				return false, fmt.Sprintf("%s: %v %v", user, denied, err)
			}
		}
		read := []plan.Access{{Verb: "list", Group: "apps", Resource: "deployments", Namespace: ns}}
		if denied, err := sb.checker.Denied(ctx, relEnv, "carol", groupsOf(cp, "carol"), read); err != nil || len(denied) > 0 {
			return false, fmt.Sprintf("carol: %v %v", denied, err)
		}
		return true, ""
	})
}

// waitDeployed waits until Deployment name runs image, rolled out, its pod
// Ready.
func waitDeployed(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, image string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("deployment %s/%s on %s, rolled out", ns, name, image), func() (bool, string) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st, want := d.Status, *d.Spec.Replicas
		if img := d.Spec.Template.Spec.Containers[0].Image; img != image || st.ObservedGeneration < d.Generation ||
			st.UpdatedReplicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want || st.Replicas != want {
			return false, fmt.Sprintf("image %s, generation %d, status %+v", img, d.Generation, st)
		}
		pods := listPods(ctx, t, cs, ns, name)
		return int32(len(pods)) == want && allReadyOn(pods, image), podSummary(pods)
	})
}

func short(sha string) string { return plan.ShortSHA(sha) }

// otherPush is someone else (Dana) pushing sha to repo's stable with the
// git CLI, from a clone, straight to the git server.
func otherPush(t *testing.T, repo *gittest.Repo, sha string) {
	t.Helper()
	dir := cloneRepo(t, repo)
	gittest.Git(t, dir, "push", "--quiet", "origin", sha+":refs/heads/stable")
	if got := repo.Ref(t, "stable"); got != sha {
		t.Fatalf("after Dana's push stable is %s, want %s", got, sha)
	}
}

func cloneRepo(t *testing.T, repo *gittest.Repo) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), repo.Name)
	gittest.Git(t, "", "clone", "--quiet", repo.AuthURL(), dir)
	return dir
}

// gitCLI runs the git CLI outside the test's goroutine (gittest.Git fails
// the test, which only the test's goroutine may), with no user or system
// configuration.
func gitCLI(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	home, err := os.MkdirTemp("", "deploybot-e2e-git-home-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// revParse is `git rev-parse --verify --quiet refs/heads/BRANCH` in a bare
// repository, outside the test's goroutine.
func revParse(dir, branch string) (string, error) {
	cmd := exec.Command("git", "--git-dir", dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "HOME=" + os.TempDir(), "LC_ALL=C"}
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// gitProxy is a reverse proxy in front of the git server that counts each
// repository's pushes (receive-pack POSTs, the request that updates refs)
// and can run a hook just before forwarding either request of a push.
type gitProxy struct {
	srv *httptest.Server

	mu    sync.Mutex
	count map[string]int
	at    map[string]time.Time // when the last push was answered
	hooks map[string]func()    // by repository and pushPhase
	lose  map[string]bool      // repositories whose next push answer is lost
}

func startGitProxy(t *testing.T, upstream string) *gitProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &gitProxy{count: map[string]int{}, at: map[string]time.Time{}, hooks: map[string]func(){}, lose: map[string]bool{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), ".git/")
		var phase pushPhase
		switch {
		case r.Method == http.MethodGet && rest == "info/refs" && r.URL.Query().Get("service") == "git-receive-pack":
			phase = pushAdvertise
		case r.Method == http.MethodPost && rest == "git-receive-pack":
			phase = pushUpdate
		default:
			rp.ServeHTTP(w, r)
			return
		}
		key := repo + "/" + string(phase)
		p.mu.Lock()
		hook := p.hooks[key]
		delete(p.hooks, key)
		p.mu.Unlock()
		if hook != nil {
			hook()
		}
		lose := false
		if phase == pushUpdate {
			p.mu.Lock()
			p.count[repo]++
			p.at[repo] = time.Now()
			lose = p.lose[repo]
			delete(p.lose, repo)
			p.mu.Unlock()
		}
		if lose {
			// The server applies the push; its answer is lost on the way,
			// as behind a proxy that times out.
			rp.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "upstream timed out", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *gitProxy) url(repo string) string { return p.srv.URL + "/" + repo + ".git" }

// pushPhase is one of the two requests of a smart-HTTP push.
type pushPhase string

const (
	// pushAdvertise is GET info/refs?service=git-receive-pack: the server
	// lists its refs, the client checks what it requires of them.
	pushAdvertise pushPhase = "advertise"
	// pushUpdate is POST git-receive-pack: the commands "old new ref" and
	// the pack; receive-pack updates each ref only if it is still at old.
	pushUpdate pushPhase = "update"
)

// beforePush runs fn once, just before repo's next request of phase is
// forwarded.
func (p *gitProxy) beforePush(repo string, phase pushPhase, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks[repo+"/"+string(phase)] = fn
}

// loseNextAnswer makes the server apply repo's next push while the client
// gets a 502 instead of its answer.
func (p *gitProxy) loseNextAnswer(repo string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose[repo] = true
}

func (p *gitProxy) pushes(repo string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count[repo]
}

func (p *gitProxy) pushCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.count {
		n += c
	}
	return n
}

func (p *gitProxy) pushTimes() map[string]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]time.Time, len(p.at))
	for k, v := range p.at {
		out[k] = v
	}
	return out
}

// fakeCI stands for the repositories' CI: when a repository's stable
// branch moves (polled with the git CLI in the bare repository), it builds
// each service the repository builds: a new image labelled with the new
// SHA, pushed to the env's tag in the real registry.
type fakeCI struct {
	reg   *registrytest.Registry
	repos map[string]*gittest.Repo

	mu       sync.Mutex
	disabled map[string]bool
	built    map[string]string // repository → stable SHA last built
	images   []ciImage
	errs     []error
}

type ciImage struct {
	service, revision, digest string
	saw, pushed               time.Time
}

func startCI(ctx context.Context, t *testing.T, reg *registrytest.Registry, repos map[string]*gittest.Repo) *fakeCI {
	t.Helper()
	c := &fakeCI{reg: reg, repos: repos, disabled: map[string]bool{}, built: map[string]string{}}
	for name, r := range repos {
		c.built[name] = r.Ref(t, "stable")
	}
	// The images running now were built from stable.
	for _, r := range relRepos {
		for _, s := range r.services {
			c.images = append(c.images, ciImage{service: s, revision: c.built[r.name]})
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			c.step(cctx)
			select {
			case <-cctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, err := range c.errs {
			t.Errorf("CI: %v", err)
		}
	})
	return c
}

func (c *fakeCI) step(ctx context.Context) {
	for _, r := range relRepos {
		c.mu.Lock()
		off, last := c.disabled[r.name], c.built[r.name]
		c.mu.Unlock()
		if off {
			continue
		}
		sha, err := revParse(c.repos[r.name].Dir, "stable")
		if err != nil || sha == last {
			continue
		}
		saw := time.Now()
		for _, s := range r.services {
			d, err := buildImage(ctx, c.reg, "rel/"+s, relTag, sha)
			c.mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					c.errs = append(c.errs, fmt.Errorf("building %s from %s: %w", s, short(sha), err))
				}
			} else {
				c.images = append(c.images, ciImage{service: s, revision: sha, digest: d, saw: saw, pushed: time.Now()})
			}
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.built[r.name] = sha
		c.mu.Unlock()
	}
}

func (c *fakeCI) disable(repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disabled[repo] = true
}

func (c *fakeCI) enable(repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.disabled, repo)
}

// image is the last image CI built of service from revision.
func (c *fakeCI) image(service, revision string) ciImage {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.images) - 1; i >= 0; i-- {
		if im := c.images[i]; im.service == service && im.revision == revision {
			return im
		}
	}
	return ciImage{}
}

// latest is the last image CI built of service.
func (c *fakeCI) latest(service string) ciImage {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.images) - 1; i >= 0; i-- {
		if im := c.images[i]; im.service == service && im.digest != "" {
			return im
		}
	}
	return ciImage{}
}

// buildImage is pushImage for CI's goroutine: errors returned, not fatal.
func buildImage(ctx context.Context, reg *registrytest.Registry, repo, tag, revision string) (string, error) {
	img, err := random.Image(512, 1)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{"org.opencontainers.image.revision": revision}
	if img, err = mutate.Config(img, cfg); err != nil {
		return "", err
	}
	ref, err := name.ParseReference(reg.Host() + "/" + repo + ":" + tag)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithAuth(reg.Auth()), remote.WithContext(ctx)); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}
