package main

import (
	"context"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/gitrepo"
)

// TestDemoGitReachesOnlyItsOwn: the demo's git client answers for the
// repositories the demo hosts and refuses any other, so `chat --demo` with
// one's own config never fetches or pushes a real repository.
func TestDemoGitReachesOnlyItsOwn(t *testing.T) {
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Repositories = append(cfg.Repositories, config.Repository{Name: "private", URL: "git@git.example.com:team/private.git", Env: "prod"})
	for i := range cfg.Repositories {
		cfg.Repositories[i].TokenEnv = ""
	}
	d, err := demo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := demoGit{git: gitrepo.Configured{C: gitrepo.New()}, demo: d}
	ctx := context.Background()
	ogr, _ := cfg.Repository("ogr")
	if stable, target, commits, err := g.Compare(ctx, ogr, ""); err != nil || stable == target || len(commits) == 0 {
		t.Errorf("Compare(ogr) = %s, %s, %d commits, %v; want the demo's history", stable, target, len(commits), err)
	}
	private, _ := cfg.Repository("private")
	if _, _, _, err := g.Compare(ctx, private, ""); err == nil || !strings.Contains(err.Error(), "does not reach private (git@git.example.com:team/private.git)") {
		t.Errorf("Compare(private) = %v, want a refusal", err)
	}
	if err := g.Push(ctx, private, strings.Repeat("1", 40), strings.Repeat("2", 40)); err == nil {
		t.Error("Push(private) went through")
	}
}
