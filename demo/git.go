package demo

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/registry"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
)

// The demo's git repositories: one in memory (go-git's memory storage) per
// repository of the config with an HTTPS URL, with a fixed history — the
// rolling branch a few commits ahead of the stable one, or even with it —
// built from fixed contents, authors and times, so that every run has the
// same SHAs. The bot's git client reaches them by their config URL through
// gitHosting (githosting.go); the demo's CI (ci.go) builds images when a
// push moves a stable branch. Repositories with an SSH or plain HTTP URL
// get none: the bot reaches those for real.

// repoHistory is a demo repository's history: commit subjects, oldest
// first, and how many of the newest are on the rolling branch only (0:
// stable is even with it).
type repoHistory struct {
	subjects []string
	ahead    int
}

// packitHistories are the histories of packit's repositories
// (examples/packit.yaml). A repository that builds images has at least
// imageStep*historyLen commits on stable before its head, so each seeded
// image has a commit of its own.
var packitHistories = map[string]repoHistory{
	"ogr": {ahead: 4, subjects: []string{
		"Drop Python 3.8 from the test matrix",
		"Fix pagination of GitHub pull request comments",
		"Release 0.50.0",
		"Add get_commit_statuses to the Pagure project",
		"Retry GitLab API calls on 502 Bad Gateway",
		"Add type hints to the forge factory",
		"Update pre-commit hooks",
	}},
	"specfile": {ahead: 3, subjects: []string{
		"Handle %autorelease with a base",
		"Release 0.32.0",
		"Preserve comments when updating the changelog",
		"Fix parsing of conditional macros in Source tags",
		"Require rpm 4.16 or newer",
	}},
	"packit": {ahead: 5, subjects: []string{
		"Use specfile for changelog entries",
		"Fix the description of sync-release pull requests",
		"Release 0.100.0",
		"Support Fedora ELN in the Copr chroot aliases",
		"Fix Copr build status reporting",
		"Add --resultdir to packit build locally",
		"Do not fail on missing upstream tags",
		"Document the new packit.yaml keys",
	}},
	"sandcastle": {ahead: 0, subjects: []string{
		"Use the OpenShift 4 API for sandbox pods",
		"Clean up volumes after sandboxed runs",
		"Release 0.9.0",
	}},
	"packit-service-fedmsg": {ahead: 3, subjects: []string{
		"Listen to Copr build end messages",
		"Forward Koji task state changes",
		"Pin fedora-messaging to 3.5",
		"Reconnect to the broker after a timeout",
		"Log the topic of dropped messages",
		"Build the image from quay.io/fedora/python-312",
		"Drop the unused Pagure topics",
		"Add the Fedora CI results topic",
		"Bump Python to 3.12 in the image",
		"Update pre-commit hooks",
	}},
	"dashboard": {ahead: 4, subjects: []string{
		"Show Testing Farm runs on the pipeline page",
		"Fix the usage chart for the last year",
		"Link Copr builds to their chroots",
		"Add dark mode to the job tables",
		"Paginate the projects list",
		"Upgrade to PatternFly 5",
		"Fix the sync release status icons",
		"Show the Bodhi update alias",
		"Add filters to the pipelines view",
		"Fix broken links to Koji tasks",
		"Bump react-query to v5",
	}},
	"packit-service": {ahead: 6, subjects: []string{
		"Add the VM Image Builder job type",
		"Report Testing Farm errors in the check run summary",
		"Retry Copr builds on infrastructure errors",
		"Fix the propose-downstream retrigger comment",
		"Track the Celery queue length in Prometheus",
		"Handle GitLab push events without commits",
		"Cache the project's allowlist status",
		"Run OpenScanHub scans for Copr builds",
		"Fix Copr build status reporting",
		"Add koji_build jobs for side tags",
		"Make the pull-from-upstream branch configurable",
		"Create Bodhi updates for EPEL 10",
		"Do not retrigger tests on draft pull requests",
		"Update the worker to Celery 5.4",
	}},
}

// genericSubjects make the history of a repository packitHistories does
// not know.
var genericSubjects = []string{
	"Set up CI",
	"Add the container image build",
	"Fix the health check endpoint",
	"Log requests as JSON",
	"Retry failed uploads",
	"Update dependencies",
	"Release 1.4.0",
	"Add a metrics endpoint",
	"Fix a race in the cache",
	"Update dependencies",
}

// genericAhead is how far the rolling branch of such a repository is
// ahead of stable.
const genericAhead = 3

// gitAuthors write the demo's commits: the demo users, and one more.
var gitAuthors = []struct{ name, email string }{
	{"Alice Novak", "alice@example.com"},
	{"Bob Kral", "bob@example.com"},
	{"Carol Dvorak", "carol@example.com"},
	{"Dana Svoboda", "dana@example.com"},
}

// gitEpoch is when the demo's histories start; commit i of a repository is
// a day and some hours after commit i-1. Fixed, as times are part of SHAs.
var gitEpoch = time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)

// imageStep is how many commits apart the seeded images of one tag were
// built: image n (1..historyLen+1) of a service's tag is built from the
// commit imageStep*(historyLen+1-n) before the stable branch's head, so
// the registry's newest image is stable's head and an import lists the
// commits between it and what runs.
const imageStep = 2

// gitRepo is one demo repository.
type gitRepo struct {
	cfg config.Repository
	// key is how gitHosting finds it: host and path of its URL.
	key   string
	store *lockedStorer
	// commits is the rolling branch's history, oldest first; stable is
	// the index of the stable branch's head in it.
	commits []GitCommit
	stable  int
	// pushMu serialises pushes, so each one's compare-and-swap holds.
	pushMu sync.Mutex
	// moved is signalled (never blocking) when a push moves the stable
	// branch, for the demo's CI.
	moved chan struct{}
	// built is the stable SHA CI last built or queued; the CI goroutine
	// alone touches it.
	built string
}

// GitCommit is one commit of a demo repository.
type GitCommit struct {
	SHA     string
	Subject string
	Author  string
	When    time.Time
}

// repoKey is the host and path of an HTTPS URL as the demo's git hosting
// matches it: lower case, without a port, a trailing slash or ".git".
func repoKey(host, path string) string {
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	path = strings.TrimSuffix(strings.TrimSuffix(path, "/"), ".git")
	return strings.ToLower(host + "/" + strings.TrimPrefix(path, "/"))
}

// newGitRepos builds the demo repositories of cfg's HTTPS repositories.
func newGitRepos(cfg *config.Config) (map[string]*gitRepo, error) {
	out := map[string]*gitRepo{}
	for _, r := range cfg.Repositories {
		u, err := url.Parse(r.URL)
		if r.SSH() || err != nil || u.Scheme != "https" {
			continue
		}
		g, err := newGitRepo(r, repoKey(u.Host, u.Path))
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", r.Name, err)
		}
		out[r.Name] = g
	}
	return out, nil
}

// newGitRepo writes r's history into a new memory storage.
func newGitRepo(r config.Repository, key string) (*gitRepo, error) {
	h, ok := packitHistories[r.Name]
	if !ok {
		h = repoHistory{subjects: genericSubjects, ahead: genericAhead}
	}
	st := memory.NewStorage()
	g := &gitRepo{cfg: r, key: key, store: &lockedStorer{s: st}, stable: len(h.subjects) - 1 - h.ahead, moved: make(chan struct{}, 1)}
	// Each repository starts at its own hour, so that no two share a SHA.
	sum := fnv.New32a()
	_, _ = sum.Write([]byte(r.Name))
	start := gitEpoch.Add(time.Duration(sum.Sum32()%12) * time.Hour)
	readme, err := writeBlob(st, fmt.Sprintf("# %s\n\nA demo repository of deploybot: %s.\n", r.Name, r.URL))
	if err != nil {
		return nil, err
	}
	var parent []plumbing.Hash
	var changelog strings.Builder
	for i, subject := range h.subjects {
		changelog.WriteString("- " + subject + "\n")
		log, err := writeBlob(st, changelog.String())
		if err != nil {
			return nil, err
		}
		tree := &object.Tree{Entries: []object.TreeEntry{ // sorted by name
			{Name: "CHANGELOG.md", Mode: filemode.Regular, Hash: log},
			{Name: "README.md", Mode: filemode.Regular, Hash: readme},
		}}
		treeHash, err := writeObject(st, tree.Encode)
		if err != nil {
			return nil, err
		}
		a := gitAuthors[(i+int(sum.Sum32()))%len(gitAuthors)]
		when := start.Add(time.Duration(i) * 26 * time.Hour)
		sig := object.Signature{Name: a.name, Email: a.email, When: when}
		c := &object.Commit{Author: sig, Committer: sig, Message: subject + "\n", TreeHash: treeHash, ParentHashes: parent}
		hash, err := writeObject(st, c.Encode)
		if err != nil {
			return nil, err
		}
		g.commits = append(g.commits, GitCommit{SHA: hash.String(), Subject: subject, Author: a.name, When: when})
		parent = []plumbing.Hash{hash}
	}
	if g.stable < 0 {
		return nil, errors.New("its demo history is shorter than the rolling branch's lead")
	}
	rolling, stable := plumbing.NewBranchReferenceName(r.RollingBranch()), plumbing.NewBranchReferenceName(r.StableBranch())
	for _, ref := range []*plumbing.Reference{
		plumbing.NewHashReference(rolling, parent[0]),
		plumbing.NewHashReference(stable, plumbing.NewHash(g.commits[g.stable].SHA)),
		plumbing.NewSymbolicReference(plumbing.HEAD, rolling),
	} {
		if err := st.SetReference(ref); err != nil {
			return nil, err
		}
	}
	g.built = g.commits[g.stable].SHA
	return g, nil
}

func writeBlob(st *memory.Storage, content string) (plumbing.Hash, error) {
	return writeObject(st, func(o plumbing.EncodedObject) error {
		o.SetType(plumbing.BlobObject)
		w, err := o.Writer()
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte(content)); err != nil {
			return err
		}
		return w.Close()
	})
}

func writeObject(st *memory.Storage, encode func(plumbing.EncodedObject) error) (plumbing.Hash, error) {
	o := st.NewEncodedObject()
	if err := encode(o); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("writing the demo history: %w", err)
	}
	return st.SetEncodedObject(o)
}

// head is the SHA branch points at now.
func (g *gitRepo) head(branch string) (string, error) {
	ref, err := g.store.Reference(plumbing.NewBranchReferenceName(branch))
	if err != nil {
		return "", fmt.Errorf("repository %s has no branch %s", g.cfg.Name, branch)
	}
	return ref.Hash().String(), nil
}

// imageRevision is the commit the seeded image n (1..historyLen+1) of the
// repository's services was built from.
func (g *gitRepo) imageRevision(n int) GitCommit {
	i := max(g.stable-imageStep*(historyLen+1-n), 0)
	return g.commits[i]
}

// seedLabels are the labels of the seeded image n of svc's tag in env:
// built from the demo history of the repository that builds svc for env
// (see imageStep), a few minutes after the commit; nil when no demo
// repository does.
func (c *Cluster) seedLabels(svc config.Service, env config.Environment, n int) map[string]string {
	r, ok := c.cfg.RepositoryOf(svc.Name, env.Name)
	if !ok {
		return nil
	}
	g := c.git[r.Name]
	if g == nil {
		return nil
	}
	cm := g.imageRevision(n)
	return map[string]string{
		registry.LabelRevision: cm.SHA,
		registry.LabelSource:   r.URL,
		registry.LabelCreated:  cm.When.Add(20 * time.Minute).UTC().Format(time.RFC3339),
	}
}

// gitRepo returns the demo repository named name.
func (c *Cluster) gitRepo(name string) (*gitRepo, error) {
	g, ok := c.git[name]
	if !ok {
		names := make([]string, 0, len(c.git))
		for n := range c.git {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%q is not a demo git repository (the demo has %s)", name, strings.Join(names, ", "))
	}
	return g, nil
}

// GitHead returns the SHA branch of the configured repository repo points
// at now in the demo's git hosting.
func (c *Cluster) GitHead(repo, branch string) (string, error) {
	g, err := c.gitRepo(repo)
	if err != nil {
		return "", err
	}
	return g.head(branch)
}

// GitCommits returns the demo history of the configured repository repo:
// the commits its rolling branch had when the demo was built, oldest first,
// and how many of them its stable branch had then.
func (c *Cluster) GitCommits(repo string) (commits []GitCommit, onStable int, err error) {
	g, err := c.gitRepo(repo)
	if err != nil {
		return nil, 0, err
	}
	return slices.Clone(g.commits), g.stable + 1, nil
}

// lockedStorer makes a memory storage safe for the demo's concurrent
// fetches, pushes and CI reads: go-git's memory storage is plain maps, and
// its iterators are copies, so a lock per call is enough.
type lockedStorer struct {
	mu sync.RWMutex
	s  storer.Storer
}

var _ storer.Storer = (*lockedStorer)(nil)

func (l *lockedStorer) NewEncodedObject() plumbing.EncodedObject { return l.s.NewEncodedObject() }

func (l *lockedStorer) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.SetEncodedObject(o)
}

func (l *lockedStorer) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.EncodedObject(t, h)
}

func (l *lockedStorer) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.IterEncodedObjects(t)
}

func (l *lockedStorer) HasEncodedObject(h plumbing.Hash) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.HasEncodedObject(h)
}

func (l *lockedStorer) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.EncodedObjectSize(h)
}

func (l *lockedStorer) AddAlternate(remote string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.AddAlternate(remote)
}

func (l *lockedStorer) SetReference(r *plumbing.Reference) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.SetReference(r)
}

func (l *lockedStorer) CheckAndSetReference(r, old *plumbing.Reference) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.CheckAndSetReference(r, old)
}

func (l *lockedStorer) Reference(n plumbing.ReferenceName) (*plumbing.Reference, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.Reference(n)
}

func (l *lockedStorer) IterReferences() (storer.ReferenceIter, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.IterReferences()
}

func (l *lockedStorer) RemoveReference(n plumbing.ReferenceName) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.RemoveReference(n)
}

func (l *lockedStorer) CountLooseRefs() (int, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.CountLooseRefs()
}

func (l *lockedStorer) PackRefs() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.PackRefs()
}
