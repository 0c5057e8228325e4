package gitrepo

import (
	"context"
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
	out := make([]plan.Commit, len(commits))
	for i, cm := range commits {
		out[i] = plan.Commit{SHA: cm.SHA, Subject: cm.Subject, Author: cm.Author}
	}
	return out, true, nil
}
