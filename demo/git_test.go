package demo

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/plan"
	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// packitYAML is examples/packit.yaml, the config with repositories.
func packitYAML(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newGitDemo builds (not starts) the demo of examples/packit.yaml.
func newGitDemo(t *testing.T, opts ...Option) *Cluster {
	t.Helper()
	c, err := New(packitYAML(t), append([]Option{WithTick(testTick), WithErrorHandler(func(err error) { t.Logf("controller error: %v", err) })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGitRepositoriesAreFixed pins the demo histories: committed
// transcripts show these SHAs, so they must not change from run to run
// (or by accident). sandcastle is even, so a release skips it.
func TestGitRepositoriesAreFixed(t *testing.T) {
	want := map[string]struct{ main, stable string }{
		"packit-service":        {"61099d0", "62391af"},
		"packit-service-fedmsg": {"15ec8ae", "214fa93"},
		"dashboard":             {"86a8b3c", "e0092e3"},
		"ogr":                   {"e43c7fe", "7a949ec"},
		"specfile":              {"d759297", "f8a66f9"},
		"packit":                {"96e976b", "a2e3b03"},
		"sandcastle":            {"f44e79a", "f44e79a"},
	}
	a, b := newGitDemo(t), newGitDemo(t)
	cfg := packitYAML(t)
	if len(cfg.Repositories) != len(want) {
		t.Fatalf("examples/packit.yaml has %d repositories, the test knows %d", len(cfg.Repositories), len(want))
	}
	for _, r := range cfg.Repositories {
		for _, branch := range []string{"main", "stable"} {
			got, err := a.GitHead(r.Name, branch)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := b.GitHead(r.Name, branch); again != got {
				t.Errorf("%s %s is %s in one demo and %s in another", r.Name, branch, got, again)
			}
			w := want[r.Name].main
			if branch == "stable" {
				w = want[r.Name].stable
			}
			if !strings.HasPrefix(got, w) {
				t.Errorf("%s %s = %s, want %s", r.Name, branch, got, w)
			}
		}
		commits, onStable, err := a.GitCommits(r.Name)
		if err != nil {
			t.Fatal(err)
		}
		ahead := len(commits) - onStable
		if (r.Name == "sandcastle") != (ahead == 0) || ahead > 6 {
			t.Errorf("%s: main is %d commits ahead of stable", r.Name, ahead)
		}
	}
	if _, err := a.GitHead("tokman", "main"); err == nil {
		t.Error("tokman has a demo repository; the config names none")
	}
}

// clone clones url with go-git into memory, as the bot's git client does.
func clone(t *testing.T, url string) *git.Repository {
	t.Helper()
	r, err := git.CloneContext(context.Background(), memory.NewStorage(), nil, &git.CloneOptions{URL: url, Tags: git.NoTags})
	if err != nil {
		t.Fatalf("cloning %s: %v", url, err)
	}
	if err := r.Fetch(&git.FetchOptions{RefSpecs: []gitconfig.RefSpec{"+refs/heads/*:refs/remotes/origin/*"}}); err != nil && err != git.NoErrAlreadyUpToDate {
		t.Fatalf("fetching %s: %v", url, err)
	}
	return r
}

func remoteHead(t *testing.T, r *git.Repository, branch string) string {
	t.Helper()
	ref, err := r.Reference(plumbing.NewRemoteReferenceName("origin", branch), true)
	if err != nil {
		t.Fatalf("branch %s: %v", branch, err)
	}
	return ref.Hash().String()
}

// TestGitCloneOverHTTPS: go-git reaches a demo repository by its config
// URL (with or without .git), sees both branches and their history; an
// https URL no demo serves still goes to go-git's HTTP client.
func TestGitCloneOverHTTPS(t *testing.T) {
	c := newGitDemo(t)
	for _, url := range []string{"https://github.com/packit/packit-service.git", "https://github.com/packit/packit-service", "https://GitHub.com/packit/packit-service/"} {
		t.Run(url, func(t *testing.T) {
			r := clone(t, url)
			for _, b := range []string{"main", "stable"} {
				want, _ := c.GitHead("packit-service", b)
				if got := remoteHead(t, r, b); got != want {
					t.Errorf("%s = %s, want %s", b, got, want)
				}
			}
			commits, _, _ := c.GitCommits("packit-service")
			head, err := r.CommitObject(plumbing.NewHash(commits[len(commits)-1].SHA))
			if err != nil {
				t.Fatal(err)
			}
			if head.Message != commits[len(commits)-1].Subject+"\n" || head.Author.Name != commits[len(commits)-1].Author {
				t.Errorf("head commit = %q by %s, want %+v", head.Message, head.Author.Name, commits[len(commits)-1])
			}
		})
	}
	t.Run("not a demo repository", func(t *testing.T) {
		_, err := git.PlainClone(t.TempDir(), true, &git.CloneOptions{URL: "https://127.0.0.1:1/packit/nothing.git"})
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("clone of an unserved URL = %v, want go-git's HTTP client to fail to connect", err)
		}
	})
}

// pushStable moves stable of the clone's origin from old to new the way
// the bot's git client does: an exact SHA refspec without force, guarded
// by RequireRemoteRefs on old.
func pushStable(r *git.Repository, refspec, old string) error {
	return r.Push(&git.PushOptions{
		RefSpecs:          []gitconfig.RefSpec{gitconfig.RefSpec(refspec)},
		RequireRemoteRefs: []gitconfig.RefSpec{gitconfig.RefSpec(old + ":refs/heads/stable")},
	})
}

// TestReleasePushBuildsImages: a fast-forward push of stable to main's
// head lands in the demo repository, and the demo's CI then pushes, for
// each service the repository builds, a new image to the env's tag
// labelled with the new SHA, which ImageRegistry reports and an
// ImageStreamImport (what import Plans ask) sees.
func TestReleasePushBuildsImages(t *testing.T) {
	now := time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)
	c := newGitDemo(t, WithBuildDelay(20*time.Millisecond), WithClock(func() time.Time { return now }))
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Stop() })

	const url = "https://github.com/packit/packit-service.git"
	r := clone(t, url)
	old, main := remoteHead(t, r, "stable"), remoteHead(t, r, "main")
	if err := pushStable(r, main+":refs/heads/stable", old); err != nil {
		t.Fatalf("pushing stable: %v", err)
	}
	if got, _ := c.GitHead("packit-service", "stable"); got != main {
		t.Fatalf("stable = %s after the push, want %s", got, main)
	}
	for _, repo := range []string{svcRepo, workerRepo} {
		waitFor(t, repo+":prod built from "+main[:7], func() (bool, string) {
			img, err := c.ImageRegistry().Resolve(ctx, repo, "prod")
			return err == nil && img.Revision == main, fmt.Sprintf("%+v, %v", img, err)
		})
		img, _ := c.ImageRegistry().Resolve(ctx, repo, "prod")
		d := fakeopenshift.Digest(repo, "prod", historyLen+2)
		want := plan.Image{Ref: repo + ":prod@" + d, Digest: d, Revision: main, Source: url, Created: now}
		if img != want {
			t.Errorf("Resolve(%s, prod) = %+v, want %+v", repo, img, want)
		}
		if again, err := c.ImageRegistry().Lookup(ctx, repo, d); err != nil || again.Revision != main || again.Ref != repo+"@"+d {
			t.Errorf("Lookup(%s, %s) = %+v, %v", repo, plan.ShortDigest(d), again, err)
		}
	}
	// An import Plan sees the same through the image API.
	set := cluster.NewSet(c.EnvClients())
	img, err := set.RegistryImage(ctx, "prod", "packit-worker", "prod")
	if err != nil || img.Revision != main || img.Source != url {
		t.Errorf("RegistryImage(prod, packit-worker) = %+v, %v; want revision %s", img, err, main)
	}
	// What other repositories' services have is untouched, and stg is not built.
	if img, _ := c.ImageRegistry().Resolve(ctx, "quay.io/packit/dashboard", "prod"); img.Digest != fakeopenshift.Digest("quay.io/packit/dashboard", "prod", historyLen+1) {
		t.Errorf("dashboard:prod = %+v, want the seeded image", img)
	}
	if img, _ := c.ImageRegistry().Resolve(ctx, svcRepo, "stg"); img.Digest != fakeopenshift.Digest(svcRepo, "stg", historyLen+1) || img.Revision != "" {
		t.Errorf("packit-service:stg = %+v, want the seeded image without labels", img)
	}
	if _, err := c.ImageRegistry().Resolve(ctx, "quay.io/someone/else", "prod"); err == nil {
		t.Error("Resolve of a repository no service has succeeded")
	}
}

// TestPushRefusals: what the demo repository refuses, as a hosting with a
// protected stable branch would, leaving stable where it was.
func TestPushRefusals(t *testing.T) {
	tests := []struct {
		name string
		push func(t *testing.T, c *Cluster, r *git.Repository, old, older, main string) error
		want string
	}{
		{name: "stable moved since it was read (RequireRemoteRefs)", want: "required to be",
			push: func(t *testing.T, c *Cluster, r *git.Repository, old, older, main string) error {
				return pushStable(r, main+":refs/heads/stable", older)
			}},
		{name: "not a fast-forward", want: "non-fast-forward",
			push: func(t *testing.T, c *Cluster, r *git.Repository, old, older, main string) error {
				return pushStable(r, older+":refs/heads/stable", old)
			}},
		{name: "forced, not a fast-forward", want: "denying non-fast-forward refs/heads/stable",
			push: func(t *testing.T, c *Cluster, r *git.Repository, old, older, main string) error {
				return pushStable(r, "+"+older+":refs/heads/stable", old)
			}},
		{name: "deleting stable", want: "refusing to delete the protected branch stable",
			push: func(t *testing.T, c *Cluster, r *git.Repository, old, older, main string) error {
				return r.Push(&git.PushOptions{RefSpecs: []gitconfig.RefSpec{":refs/heads/stable"}})
			}},
		{name: "moved between the advertisement and the update", want: "cannot lock ref 'refs/heads/stable': is at ",
			push: func(t *testing.T, c *Cluster, r *git.Repository, old, older, main string) error {
				// The check of RequireRemoteRefs passed on what was advertised;
				// the server compares again under its lock.
				return receivePack(t, "https://github.com/packit/packit-service.git", &packp.Command{
					Name: "refs/heads/stable", Old: plumbing.NewHash(older), New: plumbing.NewHash(main),
				})
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newGitDemo(t)
			r := clone(t, "https://github.com/packit/packit-service.git")
			old, main := remoteHead(t, r, "stable"), remoteHead(t, r, "main")
			commits, onStable, _ := c.GitCommits("packit-service")
			older := commits[onStable-2].SHA
			err := tc.push(t, c, r, old, older, main)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("push error = %v, want %q", err, tc.want)
			}
			if got, _ := c.GitHead("packit-service", "stable"); got != old {
				t.Errorf("stable = %s after a refused push, want %s", got, old)
			}
		})
	}
}

// receivePack sends one ref update to url's receive-pack, its objects
// being there already.
func receivePack(t *testing.T, url string, cmd *packp.Command) error {
	t.Helper()
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := hosting.NewReceivePackSession(ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AdvertisedReferences(); err != nil {
		t.Fatal(err)
	}
	req := packp.NewReferenceUpdateRequest()
	req.Commands = []*packp.Command{cmd}
	_ = req.Capabilities.Set(capability.ReportStatus)
	rs, err := s.ReceivePack(context.Background(), req)
	if err != nil {
		return err
	}
	return rs.Error()
}

// TestNewerDemoReplacesRepositories: a second demo in the same process
// serves its own repositories under the same URLs, from their seeded
// state, whatever was pushed to the first.
func TestNewerDemoReplacesRepositories(t *testing.T) {
	first := newGitDemo(t)
	r := clone(t, "https://github.com/packit/ogr.git")
	old, main := remoteHead(t, r, "stable"), remoteHead(t, r, "main")
	if err := pushStable(r, main+":refs/heads/stable", old); err != nil {
		t.Fatal(err)
	}
	if got, _ := first.GitHead("ogr", "stable"); got != main {
		t.Fatalf("stable = %s, want %s", got, main)
	}
	second := newGitDemo(t)
	if got := remoteHead(t, clone(t, "https://github.com/packit/ogr.git"), "stable"); got != old {
		t.Errorf("stable seen after a second demo = %s, want its seeded %s", got, old)
	}
	if got, _ := second.GitHead("ogr", "stable"); got != old {
		t.Errorf("second demo's stable = %s, want %s", got, old)
	}
}

// TestSeededImagesCarryRevisions: the images of services a repository
// builds are labelled from its history — the registry's newest prod image
// from stable's head, the one running from imageStep commits before — so
// an import Plan can list what changed; other images keep no labels and
// every digest stays what it was.
func TestSeededImagesCarryRevisions(t *testing.T) {
	c := newGitDemo(t)
	ctx := context.Background()
	set := cluster.NewSet(c.EnvClients())
	commits, onStable, _ := c.GitCommits("packit-service")
	stable := onStable - 1
	for _, svc := range []string{"packit-service", "packit-worker"} {
		reg, err := set.RegistryImage(ctx, "prod", svc, "prod")
		if err != nil {
			t.Fatal(err)
		}
		if reg.Digest != fakeopenshift.Digest("quay.io/packit/"+svc, "prod", historyLen+1) || reg.Revision != commits[stable].SHA {
			t.Errorf("%s: registry's prod image = %+v, want #%d built from stable's %s", svc, reg, historyLen+1, commits[stable].SHA[:7])
		}
		running := fakeopenshift.Digest("quay.io/packit/"+svc, "prod", historyLen)
		img, err := set.LookupImage(ctx, "prod", svc, "quay.io/packit/"+svc+"@"+running)
		if err != nil {
			t.Fatal(err)
		}
		if want := commits[stable-imageStep].SHA; img.Revision != want || img.Source != "https://github.com/packit/packit-service.git" || img.Created.IsZero() {
			t.Errorf("%s: running prod image = %+v, want built from %s", svc, img, want[:7])
		}
	}
	if img, _ := set.RegistryImage(ctx, "stg", "packit-service", "stg"); img.Revision != "" {
		t.Errorf("stg image = %+v; no repository builds stg, so it has no labels", img)
	}
	if img, _ := set.RegistryImage(ctx, "prod", "tokman", "prod"); img.Revision != "" {
		t.Errorf("tokman image = %+v; no repository builds it", img)
	}
}

// TestKubernetesCIBuilds: a repository whose environment is a plain
// Kubernetes one is built into the demo's OCI registry.
func TestKubernetesCIBuilds(t *testing.T) {
	cfg, err := config.Parse(examples.Kubernetes)
	if err != nil {
		t.Fatal(err)
	}
	const url = "https://git.demo.local/shop/web.git"
	cfg.Repositories = []config.Repository{{Name: "web", URL: url, Services: []string{"web"}, Env: "prod"}}
	c, err := New(cfg, WithTick(testTick), WithBuildDelay(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Stop() })
	const repo = "registry.demo.local/shop/web"
	before, err := c.ImageRegistry().Resolve(ctx, repo, "prod")
	if err != nil {
		t.Fatal(err)
	}
	stable, _ := c.GitHead("web", "stable")
	if before.Revision != stable || before.Source != url {
		t.Errorf("seeded prod image = %+v, want built from stable %s", before, stable[:7])
	}
	r := clone(t, url)
	main := remoteHead(t, r, "main")
	if err := pushStable(r, main+":refs/heads/stable", stable); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web:prod built from "+main[:7], func() (bool, string) {
		img, err := c.ImageRegistry().Resolve(ctx, repo, "prod")
		return err == nil && img.Revision == main && img.Digest != before.Digest, fmt.Sprintf("%+v, %v", img, err)
	})
	if img, _ := c.ImageRegistry().Resolve(ctx, repo, "latest"); img.Revision == main {
		t.Errorf("dev's tag was built too: %+v", img)
	}
}
