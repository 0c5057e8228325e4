// Package gitrepo is deploybot's git client, in pure Go (go-git; the image
// has no git binary): it reads the rolling and stable branches of a
// configured repository, lists the commits a release would bring, and
// moves the stable branch by fast-forward only, guarded by the SHA it was
// planned from (compare-and-swap on the remote ref), so a branch someone
// else moved in the meantime is refused, never overwritten.
//
// RemoteOf and Configured read a config's repositories section.
//
// Each repository is kept between calls, in memory or (WithDir) as a bare
// repository on disk; a call fetches only what is new. Calls on one repository are
// serialised; different repositories proceed in parallel.
package gitrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/deploybot/deploybot/plan"
)

// Remote is one repository: its URL and how to authenticate (nil for
// anonymous), as go-git's transport takes it (http.BasicAuth for a token,
// ssh.PublicKeys for a key).
type Remote struct {
	URL  string
	Auth transport.AuthMethod
}

// Commit is one commit of a release.
type Commit struct {
	SHA     string
	Subject string
	Author  string
	When    time.Time
}

// Short is the commit's abbreviated SHA.
func (c Commit) Short() string { return Short(c.SHA) }

// Short abbreviates a SHA to 7 characters, as git log --oneline does.
func Short(sha string) string { return plan.ShortSHA(sha) }

// Comparison is what moving the stable branch to Target would bring.
type Comparison struct {
	// Stable is the stable branch's SHA now, Target what it would move to
	// (the rolling branch's head unless asked otherwise).
	Stable, Target string
	// Commits are those on Target and not on Stable, newest first.
	Commits []Commit
}

// Even reports whether stable already has everything of Target.
func (c Comparison) Even() bool { return len(c.Commits) == 0 }

// Refusal is a release that cannot be made as asked: a --to commit that
// is not on the rolling branch, or a move that would not fast-forward.
type Refusal struct{ Msg string }

func (r *Refusal) Error() string { return r.Msg }

// UserFacing marks a refusal as the user's to fix (another --to, a merge),
// not a failure to read the repository.
func (r *Refusal) UserFacing() bool { return true }

// Errors of talking to a remote, for errors.Is.
var (
	// ErrDenied: the remote refused the credentials (or there were none).
	ErrDenied = errors.New("the git server refused deploybot's credentials")
	// ErrUnreachable: the remote did not answer.
	ErrUnreachable = errors.New("the git server could not be reached")
	// ErrNotFound: no such repository or branch.
	ErrNotFound = errors.New("no such repository or branch")
)

// MovedError is a push refused because the stable branch is no longer at
// the SHA the release was planned (and approved) from.
type MovedError struct {
	Branch   string
	Expected string
	Actual   string
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("%s was moved to %s by someone else after the release was planned from %s; nothing was pushed",
		e.Branch, Short(e.Actual), Short(e.Expected))
}

// Client reads and pushes repositories.
type Client struct {
	mu    sync.Mutex
	repos map[string]*repo // by URL
	// timeout bounds one fetch or push.
	timeout time.Duration
	// dir, when set, holds each repository on disk (bare), so its
	// history is not kept in memory; "" keeps it in memory.
	dir string
}

type repo struct {
	mu sync.Mutex
	r  *git.Repository
	// failed and failedAt remember a fetch that found the server
	// unreachable, for failFor, so a Plan of ten services waits for it
	// once, not ten times.
	failed   error
	failedAt time.Time
	// walked caches the history of the branch heads seen last.
	walked map[plumbing.Hash]map[plumbing.Hash]struct{}
}

// failFor is how long a failed fetch is answered from memory.
const failFor = time.Minute

// Option configures a Client.
type Option func(*Client)

// WithTimeout bounds each fetch and push (default 2 minutes).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithDir keeps each repository as a bare repository under dir instead of
// in memory (go-git's memory storage holds every object of the history
// unpacked: tens of MB for a small repository).
func WithDir(dir string) Option { return func(c *Client) { c.dir = dir } }

// New returns a client with nothing fetched yet.
func New(opts ...Option) *Client {
	c := &Client{repos: map[string]*repo{}, timeout: 2 * time.Minute}
	for _, o := range opts {
		o(c)
	}
	return c
}

// repo returns the in-memory copy of rem, made on first use.
func (c *Client) repo(rem Remote) (*repo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.repos[rem.URL]; ok {
		return r, nil
	}
	var g *git.Repository
	var err error
	if c.dir == "" {
		g, err = git.Init(memory.NewStorage(), nil)
	} else {
		sum := sha256.Sum256([]byte(rem.URL))
		path := filepath.Join(c.dir, hex.EncodeToString(sum[:8])+".git")
		if g, err = git.PlainOpen(path); errors.Is(err, git.ErrRepositoryNotExists) {
			g, err = git.PlainInit(path, true)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("making a local copy of %s: %w", rem.URL, err)
	}
	if _, err := g.Remote("origin"); err != nil {
		if _, err := g.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{rem.URL}}); err != nil {
			return nil, fmt.Errorf("adding the remote %s: %w", rem.URL, err)
		}
	}
	r := &repo{r: g}
	c.repos[rem.URL] = r
	return r, nil
}

// remoteRef is where a fetched branch is kept.
func remoteRef(branch string) plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName("origin", branch)
}

// fetch brings branches up to date from the remote; r.mu is held. A fetch
// that failed less than failFor ago fails again without asking.
func (c *Client) fetch(ctx context.Context, r *repo, rem Remote, branches ...string) error {
	if r.failed != nil && time.Since(r.failedAt) < failFor {
		return r.failed
	}
	err := c.fetchNow(ctx, r, rem, branches...)
	r.failed, r.failedAt = nil, time.Time{}
	if errors.Is(err, ErrUnreachable) {
		// Only the slow failure is remembered: a refusal answers at once,
		// and other credentials may be tried next.
		r.failed, r.failedAt = err, time.Now()
	}
	return err
}

func (c *Client) fetchNow(ctx context.Context, r *repo, rem Remote, branches ...string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var specs []gitconfig.RefSpec
	for _, b := range branches {
		specs = append(specs, gitconfig.RefSpec("+"+plumbing.NewBranchReferenceName(b).String()+":"+remoteRef(b).String()))
	}
	err := r.r.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RemoteURL: rem.URL, RefSpecs: specs, Auth: rem.Auth, Tags: git.NoTags, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return classify(fmt.Sprintf("fetching %s from %s", strings.Join(branches, " and "), rem.URL), err)
	}
	return nil
}

// classify wraps a go-git error as one of this package's.
func classify(doing string, err error) error {
	var noMatch git.NoMatchingRefSpecError
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "unable to authenticate"): // SSH: golang.org/x/crypto/ssh's handshake
		// go-git's text says no more than ErrDenied does
		return fmt.Errorf("%s: %w", doing, ErrDenied)
	case errors.Is(err, transport.ErrRepositoryNotFound), errors.As(err, &noMatch):
		return fmt.Errorf("%s: %w (%s)", doing, ErrNotFound, strings.TrimSpace(err.Error()))
	case errors.Is(err, context.DeadlineExceeded), isNetError(err):
		return fmt.Errorf("%s: %w (%s)", doing, ErrUnreachable, strings.TrimSpace(err.Error()))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// isNetError reports a connection that failed below git: refused, reset,
// no route, no such host, a timeout.
func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &ue) || errors.As(err, &oe) {
		return true
	}
	// go-git's HTTP transport flattens some of these into text.
	s := err.Error()
	for _, m := range []string{"connection refused", "connection reset", "no such host", "no route to host", "i/o timeout"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// head is the SHA a fetched branch points at.
func head(r *repo, branch string) (plumbing.Hash, error) {
	ref, err := r.r.Reference(remoteRef(branch), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("branch %s: %w", branch, ErrNotFound)
	}
	return ref.Hash(), nil
}

// Compare fetches rolling and stable and returns what moving stable to to
// (a full or abbreviated SHA on rolling; rolling's head when empty) brings.
// A to that is not on rolling, or a stable that is not an ancestor of it
// (the move would not fast-forward), is a *Refusal saying which.
func (c *Client) Compare(ctx context.Context, rem Remote, rolling, stable, to string) (Comparison, error) {
	return c.compare(ctx, rem, rolling, stable, to, false)
}

// Recheck is Compare just before a push: it asks the remote even when it
// did not answer a moment ago, for an approved release is not failed on
// what a Plan's fetch saw.
func (c *Client) Recheck(ctx context.Context, rem Remote, rolling, stable, to string) (Comparison, error) {
	return c.compare(ctx, rem, rolling, stable, to, true)
}

func (c *Client) compare(ctx context.Context, rem Remote, rolling, stable, to string, fresh bool) (Comparison, error) {
	r, err := c.repo(rem)
	if err != nil {
		return Comparison{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if fresh {
		r.failed = nil
	}
	if err := c.fetch(ctx, r, rem, rolling, stable); err != nil {
		return Comparison{}, err
	}
	onRolling, err := r.branchHistory(rolling)
	if err != nil {
		return Comparison{}, err
	}
	stableHead, err := head(r, stable)
	if err != nil {
		return Comparison{}, err
	}
	target, err := head(r, rolling)
	if err != nil {
		return Comparison{}, err
	}
	if to != "" {
		if target, err = resolveOn(onRolling, to, rolling); err != nil {
			return Comparison{}, err
		}
	}
	out := Comparison{Stable: stableHead.String(), Target: target.String()}
	if target == stableHead {
		return out, nil
	}
	if _, ok := onRolling[stableHead]; !ok {
		// stable has commits rolling has not: moving it would drop them.
		return Comparison{}, &Refusal{Msg: fmt.Sprintf("%s (%s) is not on %s: moving it would not be a fast-forward, so deploybot will not move it; someone has to merge %s into %s first",
			stable, Short(stableHead.String()), rolling, stable, rolling)}
	}
	inStable, err := r.history(stableHead)
	if err != nil {
		return Comparison{}, fmt.Errorf("reading %s's history: %w", stable, err)
	}
	if _, ok := inStable[target]; ok {
		return Comparison{}, &Refusal{Msg: fmt.Sprintf("%s is already on %s (at %s): moving %s back to it would not be a fast-forward",
			Short(target.String()), stable, Short(stableHead.String()), stable)}
	}
	onTarget, err := r.history(target)
	if err != nil {
		return Comparison{}, fmt.Errorf("reading the history of %s: %w", Short(target.String()), err)
	}
	if _, ok := onTarget[stableHead]; !ok {
		return Comparison{}, &Refusal{Msg: fmt.Sprintf("%s (%s) is not an ancestor of %s: moving it there would not be a fast-forward",
			stable, Short(stableHead.String()), Short(target.String()))}
	}
	if out.Commits, err = r.between(inStable, target); err != nil {
		return Comparison{}, fmt.Errorf("listing the commits between %s and %s: %w", stable, Short(target.String()), err)
	}
	return out, nil
}

// Log returns the commits on to and not on from (git log from..to), newest
// first, fetching branch first so both are known; ok is false when either
// is not a full SHA on the branch's history (a build from elsewhere).
func (c *Client) Log(ctx context.Context, rem Remote, branch, from, to string) (commits []Commit, ok bool, err error) {
	if len(from) != 40 || len(to) != 40 {
		return nil, false, nil // abbreviated: not looked up
	}
	r, err := c.repo(rem)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fromHash, toHash := plumbing.NewHash(from), plumbing.NewHash(to)
	if _, err := head(r, branch); err != nil || !known(r, fromHash) || !known(r, toHash) {
		if err := c.fetch(ctx, r, rem, branch); err != nil {
			return nil, false, err
		}
	}
	// Known is not enough: both must be on the branch (a commit fetched
	// for another branch is not).
	onBranch, err := r.branchHistory(branch)
	if err != nil {
		return nil, false, err
	}
	_, fromOn := onBranch[fromHash]
	_, toOn := onBranch[toHash]
	if !fromOn || !toOn {
		return nil, false, nil
	}
	seen, err := r.history(fromHash)
	if err != nil {
		return nil, false, fmt.Errorf("reading the history of %s: %w", Short(from), err)
	}
	if commits, err = r.between(seen, toHash); err != nil {
		return nil, false, fmt.Errorf("listing the commits between %s and %s: %w", Short(from), Short(to), err)
	}
	return commits, true, nil
}

// history is every commit reachable from h, h included; r.mu is held.
func (r *repo) history(h plumbing.Hash) (map[plumbing.Hash]struct{}, error) {
	cm, err := r.r.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", Short(h.String()), err)
	}
	return ancestors(cm)
}

// branchHistory is the history of a fetched branch's head, walked once
// per head (every Plan of every service asks); r.mu is held.
func (r *repo) branchHistory(branch string) (map[plumbing.Hash]struct{}, error) {
	h, err := head(r, branch)
	if err != nil {
		return nil, err
	}
	if hist, ok := r.walked[h]; ok {
		return hist, nil
	}
	hist, err := r.history(h)
	if err != nil {
		return nil, fmt.Errorf("reading %s's history: %w", branch, err)
	}
	if r.walked == nil || len(r.walked) >= 4 {
		r.walked = map[plumbing.Hash]map[plumbing.Hash]struct{}{}
	}
	r.walked[h] = hist
	return hist, nil
}

// between lists the commits reachable from tip and not in base, newest
// first (git log BASE..TIP); r.mu is held.
func (r *repo) between(base map[plumbing.Hash]struct{}, tip plumbing.Hash) ([]Commit, error) {
	cm, err := r.r.CommitObject(tip)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", Short(tip.String()), err)
	}
	var out []Commit
	err = object.NewCommitIterCTime(cm, nil, nil).ForEach(func(cm *object.Commit) error {
		if _, ok := base[cm.Hash]; !ok {
			out = append(out, Commit{SHA: cm.Hash.String(), Subject: subject(cm.Message), Author: cm.Author.Name, When: cm.Author.When})
		}
		return nil
	})
	return out, err
}

// known reports whether the repository has commit h.
func known(r *repo, h plumbing.Hash) bool {
	_, err := r.r.CommitObject(h)
	return err == nil
}

// Push moves branch from old to new on the remote: fast-forward only, and
// only while the remote's branch is still old (a *MovedError otherwise,
// nothing pushed). new must have been fetched by Compare.
func (c *Client) Push(ctx context.Context, rem Remote, branch, old, new string) error {
	r, err := c.repo(rem)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !known(r, plumbing.NewHash(new)) {
		// go-git would push nothing and call it up to date.
		return fmt.Errorf("pushing %s to %s: this deploybot has not fetched %s (another replica planned the release?); plan it again", Short(new), branch, Short(new))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	dst := plumbing.NewBranchReferenceName(branch).String()
	err = r.r.PushContext(ctx, &git.PushOptions{
		RemoteName:        "origin",
		RemoteURL:         rem.URL,
		Auth:              rem.Auth,
		RefSpecs:          []gitconfig.RefSpec{gitconfig.RefSpec(new + ":" + dst)},
		RequireRemoteRefs: []gitconfig.RefSpec{gitconfig.RefSpec(old + ":" + dst)},
	})
	if err == nil {
		return nil
	}
	// Where the branch is now decides what the error means; ask on a
	// context of its own, since ctx may be what ended the push.
	ctx, cancelAsk := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancelAsk()
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		// Up to date only if the remote really is at new.
		actual, lerr := c.remoteHead(ctx, r, rem, branch)
		switch {
		case lerr != nil:
			return lerr
		case actual == new:
			return nil
		}
		return &MovedError{Branch: branch, Expected: old, Actual: actual}
	}
	// Whatever refused it — go-git's RequireRemoteRefs check, or the
	// server's own compare-and-swap when another push landed in between
	// ("failed to update ref") — a branch no longer at old moved: ask
	// where it is now, to say so.
	// An answer lost after the server applied the push (a proxy's 502,
	// the timeout) is our own push: new is there.
	if !errors.Is(err, transport.ErrAuthenticationRequired) && !errors.Is(err, transport.ErrAuthorizationFailed) {
		actual, lerr := c.remoteHead(ctx, r, rem, branch)
		switch {
		case lerr == nil && actual == new:
			return nil
		case lerr == nil && actual != old:
			return &MovedError{Branch: branch, Expected: old, Actual: actual}
		case lerr != nil:
			return fmt.Errorf("pushing %s to %s: %w; then asking where %s is failed too (%v), so it may or may not have moved: check the repository",
				Short(new), branch, err, branch, lerr)
		}
	}
	return classify(fmt.Sprintf("pushing %s to %s", Short(new), branch), err)
}

// Head asks the remote where branch is now.
func (c *Client) Head(ctx context.Context, rem Remote, branch string) (string, error) {
	r, err := c.repo(rem)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.remoteHead(ctx, r, rem, branch)
}

// remoteHead asks the remote where branch is now.
func (c *Client) remoteHead(ctx context.Context, r *repo, rem Remote, branch string) (string, error) {
	remote, err := r.r.Remote("origin")
	if err != nil {
		return "", err
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: rem.Auth})
	if err != nil {
		return "", classify("listing the branches of "+rem.URL, err)
	}
	name := plumbing.NewBranchReferenceName(branch)
	for _, ref := range refs {
		if ref.Name() == name {
			return ref.Hash().String(), nil
		}
	}
	return "", fmt.Errorf("branch %s: %w", branch, ErrNotFound)
}

// ancestors is every commit reachable from c, c included.
func ancestors(c *object.Commit) (map[plumbing.Hash]struct{}, error) {
	seen := map[plumbing.Hash]struct{}{}
	err := object.NewCommitPreorderIter(c, nil, nil).ForEach(func(cm *object.Commit) error {
		seen[cm.Hash] = struct{}{}
		return nil
	})
	if errors.Is(err, storer.ErrStop) {
		err = nil
	}
	return seen, err
}

// resolveOn finds the commit of rolling's history that sha (4 to 40 hex
// digits) names.
func resolveOn(history map[plumbing.Hash]struct{}, sha, rolling string) (plumbing.Hash, error) {
	sha = strings.ToLower(strings.TrimSpace(sha))
	if len(sha) < 4 || len(sha) > 40 || strings.Trim(sha, "0123456789abcdef") != "" {
		return plumbing.ZeroHash, &Refusal{Msg: fmt.Sprintf("%q is not a commit SHA (4 to 40 hex digits)", sha)}
	}
	var found []plumbing.Hash
	for h := range history {
		if strings.HasPrefix(h.String(), sha) {
			found = append(found, h)
		}
	}
	switch len(found) {
	case 0:
		return plumbing.ZeroHash, &Refusal{Msg: fmt.Sprintf("%s is not a commit on %s", sha, rolling)}
	case 1:
		return found[0], nil
	}
	return plumbing.ZeroHash, &Refusal{Msg: fmt.Sprintf("%s names %d commits on %s; give more digits", sha, len(found), rolling)}
}

// subject is a commit message's first line.
func subject(msg string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return strings.TrimSpace(s)
}
