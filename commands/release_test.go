package commands

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// refusal stands for gitrepo.Refusal: a move the user must change.
type refusal string

func (r refusal) Error() string    { return string(r) }
func (r refusal) UserFacing() bool { return true }

func releaseDeps(g *gitLog) Deps {
	d := testDeps(newFake())
	d.Config.Repositories = []config.Repository{
		{Name: "ogr", URL: "https://github.com/packit/ogr.git", Env: "prod"},
		{Name: "packit-service", URL: "https://github.com/packit/packit-service.git", Env: "prod", Services: []string{"packit-service", "packit-worker"}},
		{Name: "sandcastle", URL: "https://github.com/packit/sandcastle.git", Env: "prod"},
		{Name: "stg-only", URL: "https://gitlab.com/packit/stg-only.git", Env: "stg", Services: []string{"tokman"}},
	}
	d.Git = g
	return d
}

func sha(c string) string { return strings.Repeat(c, 40) }

// TestReleasePlan: a release Plan shows per repository stable old → new
// with the commits between, "even, skipped" where they are, and what it
// then waits for; it needs what importing the built services needs, and
// binds to the SHAs (not to what git said about them).
func TestReleasePlan(t *testing.T) {
	g := &gitLog{compare: map[string]compareAnswer{
		"ogr":            {stable: sha("1"), target: sha("2"), commits: []plan.Commit{{SHA: sha("2"), Subject: "Support GitLab merge request pipelines", Author: "Ann Lee"}}},
		"packit-service": {stable: sha("3"), target: sha("4"), commits: []plan.Commit{{SHA: sha("4"), Subject: "Fix Copr build status reporting", Author: "Bob Roe"}, {SHA: sha("5"), Subject: "Retry Testing Farm requests"}}},
		"sandcastle":     {stable: sha("6"), target: sha("6")},
	}}
	d := releaseDeps(g)
	if res := Parse(d.Config, Input{Text: "release", Now: t0}); res.Kind != ReplyKind ||
		!strings.Contains(flatten(res.Reply), "These repositories build for prod, stg: release one environment at a time") {
		t.Errorf("release with repositories for two envs: %v %q", res.Kind, flatten(res.Reply))
	}
	res := Parse(d.Config, Input{Text: "release prod", Now: t0})
	if res.Kind != RunKind || res.Command.Env != "prod" || len(res.Command.Repositories) != 0 {
		t.Fatalf("parse = %+v", res)
	}
	p, err := BuildPlan(context.Background(), d, alice, res.Command)
	if err != nil {
		t.Fatal(err)
	}
	if p.Action != plan.ActionRelease || p.Env != "prod" || len(p.Targets) != 3 || !p.Changes() {
		t.Fatalf("plan = %+v", p)
	}
	text := strings.Join(RenderPlan(p).Sections[0].Lines, "\n")
	for _, want := range []string{
		"ogr: stable 1111111 → 2222222",
		"  1 commit in ogr 1111111..2222222:",
		"    2222222 Support GitLab merge request pipelines (Ann Lee)",
		"  builds no image itself",
		"packit-service: stable 3333333 → 4444444",
		"  2 commits in packit-service 3333333..4444444:",
		"  then waits for the prod images of packit-service, packit-worker",
		"sandcastle: stable at 6666666, even with the rolling branch, skipped",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered Plan lacks %q:\n%s", want, text)
		}
	}
	if c := p.Targets[1].Changes.Compare; c != "https://github.com/packit/packit-service/compare/"+sha("3")+"..."+sha("4") {
		t.Errorf("compare link %q", c)
	}
	// Access: ogr is a library, which every service's image takes in, so
	// the release needs what importing every service into prod needs.
	if got := streamsOf(t, p.Access); got != "packit-service,packit-worker,packit-dashboard,tokman,packit-service-fedmsg" ||
		!containsAccess(p.Access, "create", "imagestreamimports") {
		t.Errorf("access to streams %s (%+v), want the import of every service", got, p.Access)
	}
	// packit-service alone needs what importing the two it builds needs.
	one := Parse(d.Config, Input{Text: "release packit-service", Now: t0})
	if p1, err := BuildPlan(context.Background(), d, alice, one.Command); err != nil {
		t.Fatal(err)
	} else if got := streamsOf(t, p1.Access); got != "packit-service,packit-worker" {
		t.Errorf("release packit-service: access to streams %s, want packit-service,packit-worker", got)
	}
	pins := p.Pins()
	if len(pins) != 3 || pins["ogr"] != sha("2") || pins["sandcastle"] != sha("6") {
		t.Errorf("pins = %v", pins)
	}
	// The SHAs bind; the commit list does not.
	other := p
	other.Targets = append([]plan.Target(nil), p.Targets...)
	other.Targets[0].Changes = nil
	if other.Hash() != p.Hash() {
		t.Error("the hash depends on the commit list")
	}
	other.Notes = append(other.Notes, "sandcastle is left out: dial tcp 140.82.121.4:443: i/o timeout")
	if other.Hash() != p.Hash() {
		t.Error("the hash depends on the notes' wording")
	}
	other.Targets[0].To.Revision = sha("9")
	if other.Hash() == p.Hash() {
		t.Error("the hash does not bind the SHAs")
	}

	// Re-planned with the pins, the rolling branch's head no longer matters.
	c := res.Command
	c.Pins = pins
	g.asked = nil
	if _, err := BuildPlan(context.Background(), d, alice, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(g.asked, ";"), "compare ogr "+sha("2")) {
		t.Errorf("re-plan asked %q, want ogr compared to its pin", g.asked)
	}
}

// streamsOf names the image streams access is asked for, in the env.
func streamsOf(t *testing.T, as []plan.Access) string {
	t.Helper()
	var streams []string
	for _, a := range as {
		if a.Resource == "imagestreams" {
			streams = append(streams, a.Name)
		}
		if a.Namespace != "packit--prod" {
			t.Errorf("access outside prod: %+v", a)
		}
	}
	return strings.Join(streams, ",")
}

func containsAccess(as []plan.Access, verb, resource string) bool {
	for _, a := range as {
		if a.Verb == verb && a.Resource == resource {
			return true
		}
	}
	return false
}

// TestReleaseRefusals: bad input and moves that cannot be made get a
// reply that says why; a broken repository among several is left out.
func TestReleaseRefusals(t *testing.T) {
	g := &gitLog{compare: map[string]compareAnswer{
		"ogr":            {err: refusal("1234567 is not on main, so stable cannot move to it")},
		"packit-service": {stable: sha("3"), target: sha("4")},
		"sandcastle":     {err: errors.New("the git server could not be reached")},
	}}
	d := releaseDeps(g)
	for _, tc := range []struct{ text, want string }{
		{"release nosuch", `Unknown repository "nosuch".`},
		{"release ogr --to xyz", `Malformed commit "xyz"`},
		{"release --to 1234567", "--to names one commit, so it needs exactly one repository"},
		{"release stg ogr", "ogr builds for prod, not stg."},
		{"release dashboard", "No configured repository builds packit-dashboard."},
		{"release worker stg", "No configured repository builds packit-worker for stg."},
		{"release stg worker", "No configured repository builds packit-worker for stg."},
	} {
		res := Parse(d.Config, Input{Text: tc.text, Now: t0})
		if res.Kind != ReplyKind || !strings.Contains(flatten(res.Reply), tc.want) {
			t.Errorf("%q: %v %q, want a reply with %q", tc.text, res.Kind, flatten(res.Reply), tc.want)
		}
	}
	// A service names the repository that builds it; upper case is fine.
	if res := Parse(d.Config, Input{Text: "RELEASE Worker --to ABCDEF1", Now: t0}); res.Kind != RunKind ||
		strings.Join(res.Command.Repositories, ",") != "packit-service" || res.Command.To != "abcdef1" {
		t.Errorf("release worker --to = %+v", res)
	}

	res := Parse(d.Config, Input{Text: "release ogr --to 1234567", Now: t0})
	_, err := BuildPlan(context.Background(), d, alice, res.Command)
	var ue *UserError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ogr: 1234567 is not on main") {
		t.Errorf("release ogr --to 1234567: %v, want the refusal as the reply", err)
	}

	res = Parse(d.Config, Input{Text: "release prod", Now: t0})
	p, err := BuildPlan(context.Background(), d, alice, res.Command)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(p.Notes, "\n")
	if !p.Changes() || !p.Targets[0].Unchanged || !p.Targets[2].Unchanged ||
		!strings.Contains(notes, "ogr is left out: 1234567 is not on main") || !strings.Contains(notes, "sandcastle is left out: the git server could not be reached") {
		t.Errorf("plan %+v, notes:\n%s", p.Targets, notes)
	}
	if text := strings.Join(RenderPlan(p).Sections[0].Lines, "\n"); !strings.Contains(text, "ogr: left out (see below)") {
		t.Errorf("rendered:\n%s", text)
	}
}

// TestParsePromote: promote takes one service and two environments, the
// one promoted from first; anything else is a reply that says what to give.
func TestParsePromote(t *testing.T) {
	cfg := testConfig()
	for _, tc := range []struct{ text, from, to, reply string }{
		{text: "promote worker stg prod", from: "stg", to: "prod"},
		{text: "PROMOTE Worker STG PROD --dry-run", from: "stg", to: "prod"},
		{text: "promote stg worker prod", from: "stg", to: "prod"},
		{text: "promote worker prod", reply: "Give the environment to promote from and the one to promote to, in that order: `promote packit-worker FROM TO`."},
		{text: "promote worker stg stg", reply: "stg is both FROM and TO"},
		{text: "promote stg prod", reply: "Which service?"},
		{text: "promote worker service stg prod", reply: "One service at a time: got packit-worker and packit-service."},
		{text: "promote wrker stg prod", reply: `Unknown service "wrker".`},
	} {
		res := Parse(cfg, Input{Text: tc.text, Now: t0})
		switch {
		case tc.reply != "":
			if res.Kind != ReplyKind || !strings.Contains(flatten(res.Reply), tc.reply) {
				t.Errorf("%q: %v %q, want a reply with %q", tc.text, res.Kind, flatten(res.Reply), tc.reply)
			}
		case res.Kind != RunKind || res.Command.From != tc.from || res.Command.Env != tc.to || strings.Join(res.Command.Services, ",") != "packit-worker":
			t.Errorf("%q: %+v", tc.text, res)
		}
	}
}
