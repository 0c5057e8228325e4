// Package gittest stands for a real git server in tests: git's own
// http-backend (git-http-backend, from the git package), run through
// net/http/cgi behind HTTP basic auth on an httptest server. Repositories are
// bare repositories in a temporary directory; pushes (receive-pack) are
// allowed for the authenticated user. The git CLI is the oracle: Ref, Log and
// IsAncestor read the bare repositories directly, and Commit and SetBranch
// move branches there without going through the server, as another user of
// the remote would.
//
//	srv := gittest.NewServer(t, "bot", "s3cret") // stopped in t.Cleanup
//	repo := srv.NewRepo(t, "shop")               // srv.URL + "/shop.git"
//	first := repo.Commit(t, "main", "first", "Alice")
//	// ... fetch and push repo.URL with the client under test ...
//	if got := repo.Ref(t, "main"); got != want { ... }
//
// Nothing here skips: when git or git-http-backend is missing the test fails
// with the command that installs them.
package gittest

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// installHint is the command that installs git (and git-http-backend, which
// Debian ships in the same package).
const installHint = "apt-get update && apt-get install -y git"

// Server is a smart-HTTP git server for tests, serving every bare repository
// under Root.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT, without a trailing slash;
	// a repository named NAME is at URL/NAME.git.
	URL string
	// Root is the directory holding the bare repositories (GIT_PROJECT_ROOT).
	Root string
	// User and Password are the only credentials the server accepts.
	User, Password string

	srv      *httptest.Server
	requests atomic.Int64
	gzipped  atomic.Int64 // authenticated requests with Content-Encoding: gzip
	chunked  atomic.Int64 // authenticated requests with a chunked body
	stopOnce sync.Once
}

// NewServer starts a server that accepts only user and password (HTTP basic
// auth) and stops it in t.Cleanup. It fails the test if git or
// git-http-backend is not installed.
func NewServer(t testing.TB, user, password string) *Server {
	t.Helper()
	backend := httpBackend(t)
	s := &Server{Root: t.TempDir(), User: user, Password: password}
	home := t.TempDir()
	logw := &logWriter{t: t, prefix: "git-http-backend: "}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			// With REMOTE_USER set, http-backend enables receive-pack
			// (push); it also names the pusher in reflogs.
			"REMOTE_USER=" + user,
			"HOME=" + home,
			"GIT_CONFIG_NOSYSTEM=1",
		},
		Stderr: logw,
		Logger: log.New(logw, "cgi: ", 0),
	}
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		s.requests.Add(1)
		if strings.Contains(strings.ToLower(r.Header.Get("Content-Encoding")), "gzip") {
			// http-backend inflates the body itself (it reads
			// HTTP_CONTENT_ENCODING); nothing to do but count.
			s.gzipped.Add(1)
		}
		if len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked" {
			// net/http/cgi answers 400 to chunked bodies, and the git
			// CLI sends a push bigger than http.postBuffer (1 MiB)
			// chunked. Read it whole and pass it on with a length.
			s.chunked.Add(1)
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.TransferEncoding = nil
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	t.Cleanup(s.Stop)
	return s
}

// Requests returns how many authenticated requests the server has served.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Stop makes the server unreachable: it closes the listener and the client
// connections (waiting for requests in flight). Connections to URL are then
// refused. It is safe to call more than once; NewServer's cleanup calls it.
func (s *Server) Stop() {
	s.stopOnce.Do(s.srv.Close)
}

// Repo is a bare repository served by a Server.
type Repo struct {
	// Name is the repository's name, without ".git".
	Name string
	// URL is the repository's URL, Server.URL + "/" + Name + ".git",
	// without credentials.
	URL string
	// Dir is the bare repository's directory.
	Dir string

	user, password string

	mu      sync.Mutex
	commits int // commits made by Commit, for file names and dates
}

// NewRepo creates an empty bare repository NAME.git (HEAD at main) that the
// server serves at URL/NAME.git, pushes allowed.
func (s *Server) NewRepo(t testing.TB, name string) *Repo {
	t.Helper()
	if name == "" || strings.Contains(name, "..") || strings.HasSuffix(name, ".git") {
		t.Fatalf("gittest: bad repository name %q (give it without .git)", name)
	}
	dir := filepath.Join(s.Root, filepath.FromSlash(name)+".git")
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("gittest: repository %s exists already", dir)
	}
	Git(t, "", "init", "--quiet", "--bare", "--initial-branch=main", dir)
	Git(t, dir, "config", "http.receivepack", "true")
	return &Repo{
		Name:     name,
		URL:      s.URL + "/" + name + ".git",
		Dir:      dir,
		user:     s.User,
		password: s.Password,
	}
}

// AuthURL returns URL with the server's credentials in it
// (http://user:password@127.0.0.1:PORT/NAME.git), for the git CLI.
func (r *Repo) AuthURL() string {
	u, err := url.Parse(r.URL)
	if err != nil {
		panic(err) // URL is built by NewRepo
	}
	u.User = url.UserPassword(r.user, r.password)
	return u.String()
}

// baseDate is the author and committer date of the first commit Commit makes
// in a repository (2024-01-01T00:00:00Z); each later one is a minute later,
// so the same sequence of Commit calls gives the same SHAs.
const baseDate = 1704067200

// Commit adds a commit with subject on top of branch and returns its SHA. A
// branch that does not exist yet starts from main's tip, or is a root commit
// when main does not exist either. author is a name ("Alice") or a name and
// address ("Alice <alice@example.com>"); it is also the committer. The commit
// adds a file, so every commit has its own tree. It works on the bare
// repository directly, not through the server.
func (r *Repo) Commit(t testing.TB, branch, subject, author string) string {
	t.Helper()
	branch = strings.TrimPrefix(branch, "refs/heads/")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commits++
	n := r.commits

	old := r.Ref(t, branch)
	parent := old
	if parent == "" {
		parent = r.Ref(t, "main")
	}
	var entries string
	if parent != "" {
		entries = Git(t, r.Dir, "ls-tree", parent)
	}
	blob := gitRun(t, r.Dir, nil, subject+"\n", "hash-object", "-w", "--stdin")
	entry := fmt.Sprintf("100644 blob %s\tchange-%04d.txt", blob, n)
	if entries != "" {
		entries += "\n"
	}
	tree := gitRun(t, r.Dir, nil, entries+entry+"\n", "mktree")

	name, email := parseAuthor(author)
	date := fmt.Sprintf("%d +0000", baseDate+60*(n-1))
	env := []string{
		"GIT_AUTHOR_NAME=" + name, "GIT_AUTHOR_EMAIL=" + email, "GIT_AUTHOR_DATE=" + date,
		"GIT_COMMITTER_NAME=" + name, "GIT_COMMITTER_EMAIL=" + email, "GIT_COMMITTER_DATE=" + date,
	}
	args := []string{"commit-tree", tree, "-m", subject}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	sha := gitRun(t, r.Dir, env, "", args...)
	// old "" makes update-ref check that the branch does not exist yet.
	Git(t, r.Dir, "update-ref", "-m", "gittest: "+subject, "refs/heads/"+branch, sha, old)
	return sha
}

// parseAuthor splits "Name <email>"; a bare name gets an example.com address.
func parseAuthor(author string) (name, email string) {
	author = strings.TrimSpace(author)
	if author == "" {
		author = "Test Author"
	}
	if i := strings.Index(author, "<"); i >= 0 && strings.HasSuffix(author, ">") {
		return strings.TrimSpace(author[:i]), author[i+1 : len(author)-1]
	}
	local := strings.ToLower(strings.Join(strings.Fields(author), "."))
	return author, local + "@example.com"
}

// SetBranch points branch at sha in the bare repository, creating it if need
// be, as someone else pushing (or force-pushing) would.
func (r *Repo) SetBranch(t testing.TB, branch, sha string) {
	t.Helper()
	branch = strings.TrimPrefix(branch, "refs/heads/")
	Git(t, r.Dir, "update-ref", "-m", "gittest: set", "refs/heads/"+branch, sha)
}

// Ref returns the SHA branch points at in the bare repository, or "" when
// there is no such branch.
func (r *Repo) Ref(t testing.TB, branch string) string {
	t.Helper()
	branch = strings.TrimPrefix(branch, "refs/heads/")
	out, code := gitStatus(t, r.Dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch)
	if code == 1 {
		return ""
	}
	return out
}

// Log returns `git log --format=%h %s revRange` in the bare repository, one
// "abbrev subject" line per commit, newest first; nil when there is none.
// An empty revRange means HEAD (main).
func (r *Repo) Log(t testing.TB, revRange string) []string {
	t.Helper()
	args := []string{"log", "--format=%h %s"}
	if revRange != "" {
		args = append(args, revRange)
	}
	out := Git(t, r.Dir, append(args, "--")...)
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// IsAncestor reports whether commit a is an ancestor of (or the same as)
// commit b, by `git merge-base --is-ancestor`.
func (r *Repo) IsAncestor(t testing.TB, a, b string) bool {
	t.Helper()
	_, code := gitStatus(t, r.Dir, "merge-base", "--is-ancestor", a, b)
	return code == 0
}

// Git runs git with args in dir (the current directory when dir is "") and
// returns its standard output, trimmed of surrounding white space. It fails
// the test, with git's standard error, when git fails. git runs with a clean
// environment: PATH, a temporary HOME whose .gitconfig sets only an identity
// (gittest <gittest@example.com>) and init.defaultBranch=main, no system
// config (GIT_CONFIG_NOSYSTEM=1), no prompts (GIT_TERMINAL_PROMPT=0) and
// LC_ALL=C.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gitRun(t, dir, nil, "", args...)
}

// gitRun is Git with extra environment variables and standard input.
func gitRun(t testing.TB, dir string, env []string, stdin string, args ...string) string {
	t.Helper()
	out, stderr, err := runGit(t, dir, env, stdin, args...)
	if err != nil {
		t.Fatalf("gittest: git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, stderr)
	}
	return out
}

// gitStatus runs git and returns its output and exit code, failing the test
// only when git could not run or exited with a code above 1.
func gitStatus(t testing.TB, dir string, args ...string) (string, int) {
	t.Helper()
	out, stderr, err := runGit(t, dir, nil, "", args...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return out, 1
	default:
		t.Fatalf("gittest: git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, stderr)
		return "", -1
	}
}

func runGit(t testing.TB, dir string, env []string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := gitBinary(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(t), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return strings.TrimSpace(o.String()), e.String(), err
}

// gitBinary finds git on PATH or fails the test with the install command.
func gitBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gittest: git is not installed (%v); install it with: %s", err, installHint)
	}
	return bin
}

// httpBackend returns the path of git-http-backend, in `git --exec-path`.
func httpBackend(t testing.TB) string {
	t.Helper()
	execPath := Git(t, "", "--exec-path")
	backend := filepath.Join(execPath, "git-http-backend")
	if fi, err := os.Stat(backend); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("gittest: %s is missing or not executable (%v); install it with: %s", backend, err, installHint)
	}
	return backend
}

// homes holds one HOME directory per test, made by cleanEnv.
var homes sync.Map // testing.TB → string

const gitconfig = `[user]
	name = gittest
	email = gittest@example.com
[init]
	defaultBranch = main
[advice]
	detachedHead = false
`

// cleanEnv is the environment Git runs git with.
func cleanEnv(t testing.TB) []string {
	t.Helper()
	home, ok := homes.Load(t)
	if !ok {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ".gitconfig"), []byte(gitconfig), 0o644); err != nil {
			t.Fatalf("gittest: %v", err)
		}
		home, _ = homes.LoadOrStore(t, dir)
		t.Cleanup(func() { homes.Delete(t) })
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	return []string{
		"PATH=" + path,
		"HOME=" + home.(string),
		"XDG_CONFIG_HOME=" + filepath.Join(home.(string), ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	}
}

// logWriter sends what http-backend and net/http/cgi write to t.Logf, a
// line at a time.
type logWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Logf("%s%s", w.prefix, line)
	}
	return len(p), nil
}
