package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// gitLog answers GitLog from a table, as gitrepo.Configured does from the
// repository (tested against git's own http-backend in gitrepo).
type gitLog struct {
	commits []plan.Commit
	back    []plan.Commit // the commits to..from, when commits is empty
	ok      bool
	err     error
	asked   []string
	compare map[string]compareAnswer
	mu      sync.Mutex
}

// Compare answers from g.compare by repository name; a repository not in
// it was not expected to be asked.
func (g *gitLog) Compare(_ context.Context, repo *config.Repository, to string) (string, string, []plan.Commit, error) {
	g.mu.Lock() // a release Plan compares its repositories in parallel
	defer g.mu.Unlock()
	g.asked = append(g.asked, "compare "+repo.Name+" "+to)
	a, ok := g.compare[repo.Name]
	if !ok {
		return "", "", nil, fmt.Errorf("the test did not expect %s to be compared", repo.Name)
	}
	if to != "" && a.err == nil {
		a.target = to
	}
	return a.stable, a.target, a.commits, a.err
}

type compareAnswer struct {
	stable, target string
	commits        []plan.Commit
	err            error
}

func (g *gitLog) Log(_ context.Context, repo *config.Repository, from, to string) ([]plan.Commit, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, repo.Name+" "+from[:7]+".."+to[:7])
	if len(g.asked) > 1 {
		return g.back, g.ok, g.err
	}
	return g.commits, g.ok, g.err
}

// TestImportListsWhatChanged: an import Plan lists the commits between
// the running image's revision and the new one's (at most 20, then "and N
// more" with the compare link), from the repository that builds the
// service; a repository that cannot say is a note, never a failure.
func TestImportListsWhatChanged(t *testing.T) {
	revA, revB := strings.Repeat("a1", 20), strings.Repeat("b2", 20)
	var many []plan.Commit
	for i := 22; i >= 1; i-- {
		many = append(many, plan.Commit{SHA: fmt.Sprintf("%07x", i) + strings.Repeat("0", 33), Subject: fmt.Sprintf("Change %d", i), Author: "Bob Roe"})
	}
	setup := func(g *gitLog) (Deps, *fakeCluster) {
		f := newFake()
		ts := f.tags["prod/packit-worker:prod"]
		cur := f.registry[ts.SpecFrom]
		cur.Revision = revB
		f.registry[ts.SpecFrom] = cur
		f.registry[wrkRepo+"@"+ts.Current.Digest] = plan.Image{Ref: wrkRepo + "@" + ts.Current.Digest, Digest: ts.Current.Digest, Revision: revA}
		d := testDeps(f)
		d.Config.Repositories = []config.Repository{{Name: "packit", URL: "https://github.com/packit/packit.git", Services: []string{"packit-worker"}, Env: "prod"}}
		if g != nil {
			d.Git = g
		}
		return d, f
	}
	plan1 := func(t *testing.T, d Deps) plan.Plan {
		t.Helper()
		res := Parse(d.Config, Input{Text: "import prod worker", Now: t0})
		p, err := BuildPlan(context.Background(), d, alice, res.Command)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	g := &gitLog{commits: many, ok: true}
	d, _ := setup(g)
	p := plan1(t, d)
	ch := p.Targets[0].Changes
	if ch == nil || ch.Repository != "packit" || ch.From != revA || ch.To != revB || len(ch.Commits) != plan.MaxCommits || ch.More != 2 ||
		ch.Compare != "https://github.com/packit/packit/compare/"+revA+"..."+revB {
		t.Fatalf("changes = %+v", ch)
	}
	if len(g.asked) != 1 || g.asked[0] != "packit a1a1a1a..b2b2b2b" {
		t.Errorf("asked git %q, want packit a1a1a1a..b2b2b2b once", g.asked)
	}
	lines := RenderPlan(p).Sections[0].Lines
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"  22 commits in packit a1a1a1a..b2b2b2b:",
		"    0000016 Change 22 (Bob Roe)",
		"    0000003 Change 3 (Bob Roe)",
		"    and 2 more: https://github.com/packit/packit/compare/" + revA + "..." + revB,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered Plan lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Change 2 ") {
		t.Errorf("rendered Plan lists more than %d commits:\n%s", plan.MaxCommits, text)
	}
	// The digests bind an approval; what git said about them does not, so
	// a git server that stops answering between opening and approving
	// does not make the approval fail.
	other := p
	other.Targets = append([]plan.Target(nil), p.Targets...)
	other.Targets[0].Changes = &plan.Changes{Repository: "packit", From: revA, To: revB, Note: "the git server could not be reached"}
	if other.Hash() != p.Hash() {
		t.Error("the Plan hash changes with what git said")
	}
	other.Targets[0].To.Digest = "sha256:" + strings.Repeat("0", 64)
	if other.Hash() == p.Hash() {
		t.Error("the Plan hash does not cover the digest")
	}

	for _, tc := range []struct {
		name string
		g    *gitLog
		line string
	}{
		{"not on the branch", &gitLog{ok: false}, "  commits: a1a1a1a or b2b2b2b is not on packit's main, so its commits are not listed"},
		{"unreachable", &gitLog{err: errors.New("the git server could not be reached")}, "  commits: the commits between a1a1a1a and b2b2b2b could not be listed: the git server could not be reached"},
		{"going back", &gitLog{ok: true, back: many[20:]}, "  goes back 2 commits in packit (b2b2b2b..a1a1a1a undone):"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := setup(tc.g)
			p := plan1(t, d)
			text := strings.Join(RenderPlan(p).Sections[0].Lines, "\n")
			if p.Targets[0].Unchanged || !strings.Contains(text, tc.line) {
				t.Errorf("target %+v; want the import planned, showing %q:\n%s", p.Targets[0], tc.line, text)
			}
		})
	}
	t.Run("no git configured", func(t *testing.T) {
		d, _ := setup(nil)
		if p := plan1(t, d); p.Targets[0].Changes != nil {
			t.Errorf("changes without git: %+v", p.Targets[0].Changes)
		}
	})
}
