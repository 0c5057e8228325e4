package gitrepo

import (
	"context"
	"errors"
	"fmt"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// RemoteOf is the remote of a configured repository, with the credentials
// the config names: a token (from the environment or a mounted file) as
// HTTP basic auth, or an SSH key file (host keys from SSH_KNOWN_HOSTS or
// ~/.ssh/known_hosts).
func RemoteOf(r *config.Repository) (Remote, error) {
	rem := Remote{URL: r.URL}
	switch {
	case r.SSHKeyFile != "":
		keys, err := gitssh.NewPublicKeysFromFile("git", r.SSHKeyFile, "")
		if err != nil {
			return Remote{}, fmt.Errorf("repository %s: reading its SSH key: %w", r.Name, err)
		}
		rem.Auth = keys
	default:
		tok, err := r.Token()
		if err != nil {
			return Remote{}, err
		}
		if tok != "" {
			user := r.Username
			if user == "" {
				user = "deploybot"
			}
			rem.Auth = &githttp.BasicAuth{Username: user, Password: tok}
		}
	}
	return rem, nil
}

// Configured answers for the repositories of a config: the commands'
// GitLog (what an import brings).
type Configured struct{ C *Client }

// Log lists the commits of repo's rolling branch between two revisions.
func (c Configured) Log(ctx context.Context, repo *config.Repository, from, to string) ([]plan.Commit, bool, error) {
	rem, err := RemoteOf(repo)
	if err != nil {
		return nil, false, err
	}
	commits, ok, err := c.C.Log(ctx, rem, repo.RollingBranch(), from, to)
	if err != nil || !ok {
		return nil, ok, err
	}
	return planCommits(commits), true, nil
}

// Compare says what moving repo's stable branch to to (its rolling
// branch's head when empty) brings: the commands' Git.
func (c Configured) Compare(ctx context.Context, repo *config.Repository, to string) (stable, target string, commits []plan.Commit, err error) {
	rem, err := RemoteOf(repo)
	if err != nil {
		return "", "", nil, err
	}
	cmp, err := c.C.Compare(ctx, rem, repo.RollingBranch(), repo.StableBranch(), to)
	if err != nil {
		return "", "", nil, err
	}
	return cmp.Stable, cmp.Target, planCommits(cmp.Commits), nil
}

// Push moves repo's stable branch from old to new: first it fetches again
// and checks that new is still a fast-forward of a stable that is still
// at old (a *MovedError if not, nothing pushed), then it pushes guarded by
// old on the remote, so that a move by someone else in between is refused
// by the push itself. It fetches, too, when another replica planned the
// release and this one has never seen new.
func (c Configured) Push(ctx context.Context, repo *config.Repository, old, new string) error {
	rem, err := RemoteOf(repo)
	if err != nil {
		return err
	}
	cmp, err := c.C.Recheck(ctx, rem, repo.RollingBranch(), repo.StableBranch(), new)
	var refusal *Refusal
	switch {
	case err == nil && cmp.Stable != old:
		return &MovedError{Branch: repo.StableBranch(), Expected: old, Actual: cmp.Stable}
	case errors.As(err, &refusal):
		// Refused now though planned fine: stable moved meanwhile (to new
		// or past it, or sideways). Say where it is.
		if actual, herr := c.C.Head(ctx, rem, repo.StableBranch()); herr == nil && actual != old {
			return &MovedError{Branch: repo.StableBranch(), Expected: old, Actual: actual}
		}
		return err
	case err != nil:
		return err
	}
	return c.C.Push(ctx, rem, repo.StableBranch(), old, new)
}

func planCommits(commits []Commit) []plan.Commit {
	out := make([]plan.Commit, len(commits))
	for i, cm := range commits {
		out[i] = plan.Commit{SHA: cm.SHA, Subject: cm.Subject, Author: cm.Author}
	}
	return out
}
