package gittest

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testUser = "deploybot"
	testPass = "s3cret-pass"
)

// clone clones repo with the git CLI over HTTP, credentials in the URL, and
// returns the work tree.
func clone(t *testing.T, repo *Repo) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), repo.Name)
	Git(t, "", "clone", "--quiet", repo.AuthURL(), dir)
	return dir
}

func TestCloneSeesCommits(t *testing.T) {
	srv := NewServer(t, testUser, testPass)
	repo := srv.NewRepo(t, "shop")
	if want := srv.URL + "/shop.git"; repo.URL != want {
		t.Errorf("URL = %q, want %q", repo.URL, want)
	}
	if got := repo.Ref(t, "main"); got != "" {
		t.Errorf("Ref(main) of an empty repo = %q, want empty", got)
	}
	first := repo.Commit(t, "main", "first", "Alice")
	second := repo.Commit(t, "main", "second", "Bob <bob@example.org>")
	feature := repo.Commit(t, "feature", "on feature", "Carol")
	if len(first) != 40 || first == second {
		t.Fatalf("Commit returned %q then %q, want two distinct full SHAs", first, second)
	}
	if got := repo.Ref(t, "main"); got != second {
		t.Errorf("Ref(main) = %s, want %s", got, second)
	}
	if !repo.IsAncestor(t, first, second) || !repo.IsAncestor(t, second, feature) || repo.IsAncestor(t, feature, second) {
		t.Errorf("ancestry wrong: feature must start from main's tip")
	}
	if got := Git(t, repo.Dir, "log", "-1", "--format=%an <%ae>|%cn|%s", second); got != "Bob <bob@example.org>|Bob|second" {
		t.Errorf("second commit's author, committer, subject = %q", got)
	}
	if got := Git(t, repo.Dir, "log", "-1", "--format=%an <%ae>", first); got != "Alice <alice@example.com>" {
		t.Errorf("first commit's author = %q", got)
	}
	if a, b := Git(t, repo.Dir, "rev-parse", first+"^{tree}"), Git(t, repo.Dir, "rev-parse", second+"^{tree}"); a == b {
		t.Errorf("first and second commits share tree %s", a)
	}

	before := srv.Requests()
	dir := clone(t, repo)
	if srv.Requests() <= before {
		t.Errorf("Requests() = %d after a clone, was %d", srv.Requests(), before)
	}
	if got := Git(t, dir, "rev-parse", "HEAD"); got != second {
		t.Errorf("clone's HEAD = %s, want %s", got, second)
	}
	if got := Git(t, dir, "rev-parse", "origin/feature"); got != feature {
		t.Errorf("clone's origin/feature = %s, want %s", got, feature)
	}
	got := strings.Split(Git(t, dir, "log", "--format=%h %s", "origin/feature"), "\n")
	want := repo.Log(t, "feature")
	if !slices.Equal(got, want) || len(want) != 3 || !strings.HasSuffix(want[0], " on feature") {
		t.Errorf("clone's log of feature = %q, repo.Log = %q", got, want)
	}
	if got := repo.Log(t, "main..feature"); len(got) != 1 || !strings.HasSuffix(got[0], " on feature") {
		t.Errorf("Log(main..feature) = %q, want just the feature commit", got)
	}
	Git(t, dir, "fsck", "--strict")
	for _, f := range []string{"change-0001.txt", "change-0002.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("clone of main lacks %s: %v", f, err)
		}
	}
}

func TestCommitIsDeterministic(t *testing.T) {
	srv := NewServer(t, testUser, testPass)
	seq := func(name string) []string {
		r := srv.NewRepo(t, name)
		return []string{
			r.Commit(t, "main", "one", "Alice"),
			r.Commit(t, "main", "two", "Alice"),
			r.Commit(t, "topic", "three", "Bob"),
		}
	}
	a, b := seq("a"), seq("b")
	if !slices.Equal(a, b) {
		t.Errorf("the same Commit sequence gave %q and %q", a, b)
	}
}

func TestSetBranch(t *testing.T) {
	srv := NewServer(t, testUser, testPass)
	repo := srv.NewRepo(t, "svc")
	first := repo.Commit(t, "main", "first", "Alice")
	second := repo.Commit(t, "main", "second", "Alice")
	repo.SetBranch(t, "release", first)
	if got := repo.Ref(t, "release"); got != first {
		t.Errorf("Ref(release) = %s, want %s", got, first)
	}
	// A commit on an existing branch builds on that branch, not on main.
	fix := repo.Commit(t, "release", "hotfix", "Bob")
	if repo.IsAncestor(t, second, fix) || !repo.IsAncestor(t, first, fix) {
		t.Errorf("hotfix on release must descend from first only")
	}
	repo.SetBranch(t, "main", first) // a force-push rewinding main
	if got := repo.Ref(t, "main"); got != first {
		t.Errorf("Ref(main) after SetBranch = %s, want %s", got, first)
	}
	if got := repo.Ref(t, "nope"); got != "" {
		t.Errorf("Ref(nope) = %q, want empty", got)
	}
}

func TestBasicAuth(t *testing.T) {
	srv := NewServer(t, testUser, testPass)
	repo := srv.NewRepo(t, "shop")
	repo.Commit(t, "main", "first", "Alice")

	get := func(user, pass string, auth bool) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, repo.URL+"/info/refs?service=git-upload-pack", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	before := srv.Requests()
	for _, c := range []struct {
		name, user, pass string
		auth             bool
	}{
		{"none", "", "", false},
		{"wrong password", testUser, "wrong", true},
		{"wrong user", "someone", testPass, true},
		{"empty", "", "", true},
	} {
		resp := get(c.user, c.pass, c.auth)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", c.name, resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="git"` {
			t.Errorf("%s: WWW-Authenticate = %q", c.name, got)
		}
	}
	if srv.Requests() != before {
		t.Errorf("Requests() = %d after only unauthenticated requests, want %d", srv.Requests(), before)
	}
	resp := get(testUser, testPass, true)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("right credentials: status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/x-git-upload-pack-advertisement" {
		t.Errorf("right credentials: Content-Type = %q", got)
	}
	if srv.Requests() != before+1 {
		t.Errorf("Requests() = %d, want %d", srv.Requests(), before+1)
	}

	// The CLI with wrong credentials fails (and is not prompted).
	bad := strings.Replace(repo.AuthURL(), testPass, "wrong", 1)
	_, stderr, err := runGit(t, "", nil, "", "clone", bad, filepath.Join(t.TempDir(), "x"))
	if err == nil {
		t.Fatalf("git clone with a wrong password succeeded")
	}
	if !strings.Contains(stderr, "Authentication failed") && !strings.Contains(stderr, "401") {
		t.Errorf("git clone with a wrong password: %s", stderr)
	}
}

func TestPushMovesBranch(t *testing.T) {
	srv := NewServer(t, testUser, testPass)
	repo := srv.NewRepo(t, "shop")
	base := repo.Commit(t, "main", "base", "Alice")
	dir := clone(t, repo)

	if err := os.WriteFile(filepath.Join(dir, "pushed.txt"), []byte("from the CLI\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "add", "pushed.txt")
	Git(t, dir, "commit", "--quiet", "-m", "pushed by the CLI")
	head := Git(t, dir, "rev-parse", "HEAD")
	Git(t, dir, "push", "--quiet", "origin", "main")
	if got := repo.Ref(t, "main"); got != head {
		t.Errorf("Ref(main) after push = %s, want %s", got, head)
	}
	if !repo.IsAncestor(t, base, head) {
		t.Errorf("pushed commit does not descend from base")
	}

	Git(t, dir, "push", "--quiet", "origin", "HEAD:refs/heads/deploy/prod")
	if got := repo.Ref(t, "deploy/prod"); got != head {
		t.Errorf("Ref(deploy/prod) after pushing a new branch = %s, want %s", got, head)
	}

	// Someone else moves main; a non-fast-forward push is refused.
	other := repo.Commit(t, "main", "someone else", "Bob")
	Git(t, dir, "commit", "--quiet", "--allow-empty", "-m", "stale")
	if _, _, err := runGit(t, dir, nil, "", "push", "--quiet", "origin", "main"); err == nil {
		t.Errorf("non-fast-forward push succeeded")
	}
	if got := repo.Ref(t, "main"); got != other {
		t.Errorf("Ref(main) after a refused push = %s, want %s", got, other)
	}

	// A pack bigger than http.postBuffer (1 MiB) is sent chunked, which
	// net/http/cgi alone refuses.
	big := make([]byte, 3<<20/2)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "add", "big.bin")
	Git(t, dir, "commit", "--quiet", "-m", "big")
	bigHead := Git(t, dir, "rev-parse", "HEAD")
	Git(t, dir, "push", "--quiet", "origin", "HEAD:refs/heads/big")
	if got := repo.Ref(t, "big"); got != bigHead {
		t.Errorf("Ref(big) after a large push = %s, want %s", got, bigHead)
	}
	if srv.chunked.Load() == 0 {
		t.Errorf("the large push sent no chunked request; the chunked path is untested")
	}
	Git(t, repo.Dir, "fsck", "--strict")
}

// TestGzipRequests fetches many branches, so the CLI gzips its upload-pack
// request (it does above 1 KiB), which http-backend must inflate itself.
func TestGzipRequests(t *testing.T) {
	srv := NewServer(t, testUser, testPass)
	repo := srv.NewRepo(t, "many")
	repo.Commit(t, "main", "base", "Alice")
	want := map[string]string{}
	for i := range 40 {
		b := fmt.Sprintf("feature/%02d", i)
		want[b] = repo.Commit(t, b, "work "+b, "Alice")
	}
	dir := clone(t, repo)
	for b, sha := range want {
		if got := Git(t, dir, "rev-parse", "origin/"+b); got != sha {
			t.Errorf("clone's origin/%s = %s, want %s", b, got, sha)
		}
	}
	if srv.gzipped.Load() == 0 {
		t.Errorf("the clone sent no gzipped request; the gzip path is untested")
	}
}

func TestStop(t *testing.T) {
	srv := NewServer(t, testUser, testPass)
	repo := srv.NewRepo(t, "shop")
	repo.Commit(t, "main", "first", "Alice")
	Git(t, "", "ls-remote", repo.AuthURL())
	srv.Stop()
	srv.Stop() // twice is fine

	client := &http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get(repo.URL + "/info/refs?service=git-upload-pack"); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Stop answered %s, want a connection error", resp.Status)
	}
	if _, stderr, err := runGit(t, "", nil, "", "ls-remote", repo.AuthURL()); err == nil {
		t.Errorf("git ls-remote after Stop succeeded")
	} else if !strings.Contains(stderr, "Failed to connect") && !strings.Contains(stderr, "Connection refused") {
		t.Logf("git ls-remote after Stop: %s", stderr)
	}
	// The bare repository is still there for the oracle.
	if repo.Ref(t, "main") == "" {
		t.Errorf("Ref(main) after Stop is empty")
	}
}

// fatalTB records Fatalf instead of failing the real test, and fails on Skip.
type fatalTB struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped bool
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Skip(...any)          { f.skipped = true; runtime.Goexit() }
func (f *fatalTB) Skipf(string, ...any) { f.skipped = true; runtime.Goexit() }
func (f *fatalTB) SkipNow()             { f.skipped = true; runtime.Goexit() }

func TestMissingGitFailsWithInstallHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewServer(f, testUser, testPass)
	}()
	<-done
	if f.skipped {
		t.Fatalf("NewServer skipped without git")
	}
	if !strings.Contains(f.fatal, installHint) {
		t.Errorf("NewServer without git: Fatalf(%q), want the hint %q", f.fatal, installHint)
	}
}
