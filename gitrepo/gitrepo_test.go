package gitrepo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/gitrepo"
	"github.com/deploybot/deploybot/internal/gittest"
)

// The tests run against git's own http-backend (internal/gittest) with
// basic auth, and read the result with the real git CLI.

const (
	user     = "deploybot"
	password = "s3cret-token"
)

func remote(r *gittest.Repo) gitrepo.Remote {
	return gitrepo.Remote{URL: r.URL, Auth: &githttp.BasicAuth{Username: user, Password: password}}
}

// stableAt checks with the git CLI where the server's stable is.
func stableAt(t *testing.T, repo *gittest.Repo, want string) {
	t.Helper()
	if now := repo.Ref(t, "stable"); now != want {
		t.Fatalf("git rev-parse stable = %s, want %s", now, want)
	}
}

// fixture is a repository with stable at the first commit and main three
// commits ahead of it.
func fixture(t *testing.T, s *gittest.Server, name string) (repo *gittest.Repo, shas []string) {
	t.Helper()
	repo = s.NewRepo(t, name)
	base := repo.Commit(t, "main", "Initial commit", "Alice Doe")
	repo.SetBranch(t, "stable", base)
	for i, subj := range []string{"Fix the fedmsg listener", "Bump specfile to 0.32", "Add the dashboard link"} {
		shas = append(shas, repo.Commit(t, "main", subj, []string{"Bob Roe", "Carol Poe", "Alice Doe"}[i]))
	}
	return repo, append([]string{base}, shas...)
}

// TestRelease: the comparison lists main's new commits newest first, the
// push moves stable there, and the real git CLI sees stable at main.
func TestRelease(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "packit-service")
	c := gitrepo.New()
	ctx := context.Background()

	cmp, err := c.Compare(ctx, remote(repo), "main", "stable", "")
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Stable != shas[0] || cmp.Target != shas[3] || cmp.Even() {
		t.Fatalf("comparison %s → %s, want %s → %s", cmp.Stable, cmp.Target, shas[0], shas[3])
	}
	var got []string
	for _, cm := range cmp.Commits {
		got = append(got, cm.Short()+" "+cm.Subject+" ("+cm.Author+")")
	}
	oracle := repo.Log(t, "stable..main") // "%h %s", newest first
	if len(got) != len(oracle) {
		t.Fatalf("commits %q, git log stable..main says %q", got, oracle)
	}
	for i := range got {
		if !strings.HasPrefix(got[i], oracle[i]+" (") {
			t.Errorf("commit %d = %q, git log says %q", i, got[i], oracle[i])
		}
	}
	if err := c.Push(ctx, remote(repo), "stable", cmp.Stable, cmp.Target); err != nil {
		t.Fatal(err)
	}
	stableAt(t, repo, shas[3])
	t.Logf("after the push, git log stable..main: %q; stable at %s", repo.Log(t, "stable..main"), gitrepo.Short(repo.Ref(t, "stable")))

	// Now even: nothing to release.
	cmp, err = c.Compare(ctx, remote(repo), "main", "stable", "")
	if err != nil || !cmp.Even() {
		t.Fatalf("after the release: %+v %v, want even", cmp, err)
	}
}

// TestReleaseTo: --to a commit of main moves stable to it and no further;
// a commit not on main, or one stable is past, is refused with why.
func TestReleaseTo(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "ogr")
	other := repo.Commit(t, "feature", "Experimental change", "Dave Moe") // not on main
	c := gitrepo.New()
	ctx := context.Background()

	cmp, err := c.Compare(ctx, remote(repo), "main", "stable", shas[2][:9])
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Target != shas[2] || len(cmp.Commits) != 2 || cmp.Commits[0].SHA != shas[2] || cmp.Commits[1].SHA != shas[1] {
		t.Fatalf("--to %s: %+v", gitrepo.Short(shas[2]), cmp)
	}
	for _, tc := range []struct{ to, want string }{
		{other[:10], "is not a commit on main"},
		{"zzzz", "is not a commit SHA"},
		{"“abc”", "is not a commit SHA"},
	} {
		_, err := c.Compare(ctx, remote(repo), "main", "stable", tc.to)
		var ref *gitrepo.Refusal
		if !errors.As(err, &ref) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--to %q: %v, want a refusal saying %q", tc.to, err, tc.want)
		}
	}
	if err := c.Push(ctx, remote(repo), "stable", cmp.Stable, cmp.Target); err != nil {
		t.Fatal(err)
	}
	// stable is at shas[2] now: --to shas[1] would move it back.
	_, err = c.Compare(ctx, remote(repo), "main", "stable", shas[1])
	if err == nil || !strings.Contains(err.Error(), "would not be a fast-forward") {
		t.Errorf("--to a commit stable is past: %v, want refused as not a fast-forward", err)
	}
	stableAt(t, repo, shas[2])
}

// TestNotFastForward: a stable with a commit main does not have is never
// moved: the comparison refuses, and so does a push asked anyway.
func TestNotFastForward(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "specfile")
	hotfix := repo.Commit(t, "stable", "Hotfix only on stable", "Erin Loe")
	c := gitrepo.New()
	ctx := context.Background()
	_, err := c.Compare(ctx, remote(repo), "main", "stable", "")
	if err == nil || !strings.Contains(err.Error(), "would not be a fast-forward") {
		t.Fatalf("compare: %v, want refused as not a fast-forward", err)
	}
	if err := c.Push(ctx, remote(repo), "stable", hotfix, shas[3]); err == nil {
		t.Fatal("a non-fast-forward push went through")
	}
	stableAt(t, repo, hotfix)
}

// TestMovedMeanwhile: someone pushes stable between the comparison (the
// approved Plan) and the push: the push is refused, names where stable is
// now, and overwrites nothing.
func TestMovedMeanwhile(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "sandcastle")
	c := gitrepo.New()
	ctx := context.Background()
	cmp, err := c.Compare(ctx, remote(repo), "main", "stable", "")
	if err != nil {
		t.Fatal(err)
	}
	repo.SetBranch(t, "stable", shas[1]) // someone else, by hand
	err = c.Push(ctx, remote(repo), "stable", cmp.Stable, cmp.Target)
	var moved *gitrepo.MovedError
	if !errors.As(err, &moved) || moved.Actual != shas[1] || moved.Expected != shas[0] {
		t.Fatalf("push after stable moved: %v, want a MovedError naming %s", err, gitrepo.Short(shas[1]))
	}
	stableAt(t, repo, shas[1])
	t.Logf("refused: %v", err)
}

// TestRemoteFailures: wrong credentials and an unreachable server are
// told apart, and change nothing.
func TestRemoteFailures(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "dashboard")
	c := gitrepo.New()
	ctx := context.Background()
	wrong := gitrepo.Remote{URL: repo.URL, Auth: &githttp.BasicAuth{Username: user, Password: "wrong"}}
	if _, err := c.Compare(ctx, wrong, "main", "stable", ""); !errors.Is(err, gitrepo.ErrDenied) {
		t.Errorf("compare with wrong credentials: %v, want ErrDenied", err)
	}
	if err := gitrepo.New().Push(ctx, wrong, "stable", shas[0], shas[3]); err == nil {
		t.Error("a push with wrong credentials went through")
	}
	if _, err := c.Compare(ctx, remote(repo), "main", "nosuch", ""); !errors.Is(err, gitrepo.ErrNotFound) {
		t.Errorf("compare with a missing branch: %v, want ErrNotFound", err)
	}
	stableAt(t, repo, shas[0])
	s.Stop()
	short := gitrepo.New(gitrepo.WithTimeout(5 * time.Second))
	if _, err := short.Compare(ctx, remote(repo), "main", "stable", ""); !errors.Is(err, gitrepo.ErrUnreachable) {
		t.Errorf("compare against a stopped server: %v, want ErrUnreachable", err)
	}
}

// TestLog lists the commits between two builds' revisions, as an import
// Plan shows them, and says when a revision is not on the branch.
func TestLog(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "packit")
	c := gitrepo.New()
	commits, ok, err := c.Log(context.Background(), remote(repo), "main", shas[1], shas[3])
	if err != nil || !ok || len(commits) != 2 || commits[0].SHA != shas[3] || commits[1].SHA != shas[2] {
		t.Fatalf("Log(%s..%s) = %+v %v %v", gitrepo.Short(shas[1]), gitrepo.Short(shas[3]), commits, ok, err)
	}
	if _, ok, err := c.Log(context.Background(), remote(repo), "main", shas[1], strings.Repeat("ab", 20)); err != nil || ok {
		t.Errorf("Log to an unknown revision: ok=%v err=%v, want not ok", ok, err)
	}
}

// TestConfigured reads a configured repository with its token from the
// environment, as import Plans do, and refuses without it.
func TestConfigured(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "packit-service-fedmsg")
	t.Setenv("TEST_GIT_TOKEN", password)
	cfg := &config.Repository{Name: "fedmsg", URL: repo.URL, Username: user, TokenEnv: "TEST_GIT_TOKEN"}
	g := gitrepo.Configured{C: gitrepo.New()}
	commits, ok, err := g.Log(context.Background(), cfg, shas[0], shas[3])
	if err != nil || !ok || len(commits) != 3 || commits[0].Subject != "Add the dashboard link" || commits[0].Author != "Alice Doe" {
		t.Fatalf("Log = %+v %v %v", commits, ok, err)
	}
	t.Setenv("TEST_GIT_TOKEN", "")
	if _, _, err := g.Log(context.Background(), cfg, shas[0], shas[2]); err == nil || !strings.Contains(err.Error(), "TEST_GIT_TOKEN that holds its token is empty") {
		t.Errorf("Log without the token: %v", err)
	}
	anon := &config.Repository{Name: "fedmsg", URL: repo.URL}
	if _, _, err := (gitrepo.Configured{C: gitrepo.New()}).Log(context.Background(), anon, shas[0], shas[2]); !errors.Is(err, gitrepo.ErrDenied) {
		t.Errorf("Log without credentials: %v, want ErrDenied", err)
	}
}

// TestPushNeedsThePlannedCommit: a client that never fetched the planned
// commit (another replica planned the release) refuses to push, instead
// of go-git's "already up to date" with nothing pushed.
func TestPushNeedsThePlannedCommit(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "fresh")
	err := gitrepo.New().Push(context.Background(), remote(repo), "stable", shas[0], shas[3])
	if err == nil || !strings.Contains(err.Error(), "has not fetched") {
		t.Fatalf("push from a client that never fetched: %v", err)
	}
	stableAt(t, repo, shas[0])
}

// TestOnDisk: WithDir keeps the repository on disk; a second client on
// the same directory reads it without fetching the history again, and a
// commit only on another branch is not "on main".
func TestOnDisk(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "ondisk")
	side := repo.Commit(t, "feature", "Side work", "Dave Moe")
	dir := t.TempDir()
	ctx := context.Background()
	c := gitrepo.New(gitrepo.WithDir(dir))
	cmp, err := c.Compare(ctx, remote(repo), "main", "stable", "")
	if err != nil || len(cmp.Commits) != 3 {
		t.Fatalf("compare on disk: %+v %v", cmp, err)
	}
	if err := c.Push(ctx, remote(repo), "stable", cmp.Stable, cmp.Target); err != nil {
		t.Fatal(err)
	}
	stableAt(t, repo, shas[3])
	before := s.Requests()
	again := gitrepo.New(gitrepo.WithDir(dir))
	if _, ok, err := again.Log(ctx, remote(repo), "main", shas[0], shas[3]); err != nil || !ok {
		t.Fatalf("log from the directory: ok=%v %v", ok, err)
	}
	if _, ok, _ := again.Log(ctx, remote(repo), "main", shas[0], side); ok {
		t.Error("a commit only on another branch was listed as on main")
	}
	t.Logf("a second client on the same directory made %d requests", s.Requests()-before)
}

// TestUnreachableIsRememberedBriefly: a Plan of many services waits for
// an unreachable server once.
func TestUnreachableIsRememberedBriefly(t *testing.T) {
	s := gittest.NewServer(t, user, password)
	repo, shas := fixture(t, s, "gone")
	s.Stop()
	c := gitrepo.New(gitrepo.WithTimeout(5 * time.Second))
	ctx := context.Background()
	if _, _, err := c.Log(ctx, remote(repo), "main", shas[0], shas[3]); !errors.Is(err, gitrepo.ErrUnreachable) {
		t.Fatalf("first: %v", err)
	}
	start := time.Now()
	for range 10 {
		if _, _, err := c.Log(ctx, remote(repo), "main", shas[0], shas[3]); !errors.Is(err, gitrepo.ErrUnreachable) {
			t.Fatalf("again: %v", err)
		}
	}
	t.Logf("10 more Logs against the unreachable server took %v", time.Since(start))
}
