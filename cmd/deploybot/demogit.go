package main

import (
	"context"
	"fmt"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/gitrepo"
	"github.com/deploybot/deploybot/plan"
)

// demoGit is the git client of `chat --demo`: it answers only for the
// repositories the demo hosts in memory (its https ones, demo/git.go), so
// a demo run with one's own config never fetches from or pushes to a real
// repository — an ssh:// one would go out with the SSH agent's keys.
type demoGit struct {
	git  gitrepo.Configured
	demo *demo.Cluster
}

func (g demoGit) hosted(repo *config.Repository) error {
	if _, err := g.demo.GitHead(repo.Name, repo.StableBranch()); err != nil {
		return fmt.Errorf("the demo hosts only the https repositories of its config, in memory, and does not reach %s (%s)", repo.Name, repo.URL)
	}
	return nil
}

func (g demoGit) Log(ctx context.Context, repo *config.Repository, from, to string) ([]plan.Commit, bool, error) {
	if err := g.hosted(repo); err != nil {
		return nil, false, err
	}
	return g.git.Log(ctx, repo, from, to)
}

func (g demoGit) Compare(ctx context.Context, repo *config.Repository, to string) (string, string, []plan.Commit, error) {
	if err := g.hosted(repo); err != nil {
		return "", "", nil, err
	}
	return g.git.Compare(ctx, repo, to)
}

func (g demoGit) Push(ctx context.Context, repo *config.Repository, old, new string) error {
	if err := g.hosted(repo); err != nil {
		return err
	}
	return g.git.Push(ctx, repo, old, new)
}
