package bot_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/store"
)

// releaseOffer is the Import button's value for what the demo's release
// builds for prod.
const releaseOffer = "prod+packit-service+packit-worker+packit-service-fedmsg+packit-dashboard"

// release runs `release` through confirm and bob's approval on the demo and
// waits for its outcome.
func (h *harness) release(t *testing.T) (string, bot.Reply) {
	t.Helper()
	id := h.open("alice", "release")
	plan := h.platform.all(id)
	for _, want := range []string{
		"packit-service: stable 62391af → 61099d0",
		"6 commits in packit-service 62391af..61099d0:",
		"then waits for the prod images of packit-service, packit-worker",
		"sandcastle: stable at f44e79a, even with the rolling branch, skipped",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("the release Plan lacks %q:\n%s", want, plan)
		}
	}
	h.say("alice", "confirm #"+id)
	h.say("bob", "approve #"+id)
	poll.Until(t, 20*time.Second, "the release's final message", func() (bool, string) {
		return h.platform.last(id).Final, string(h.request(id).State)
	})
	return id, h.platform.last(id)
}

// TestReleaseOffersTheImport: on the demo, a release pushes each stable
// branch (the demo's git server now has it at main's head), waits for the
// demo CI's labelled images, and its final message offers exactly their
// import; the button opens that import for whoever clicks, checked for them,
// and its Plan lists the commits between what runs and what was built.
func TestReleaseOffersTheImport(t *testing.T) {
	h := newHarness(t, withRelease(""))
	id, final := h.release(t)
	if r := h.request(id); r.State != store.Succeeded {
		t.Fatalf("release #%s is %s: %s\n%s", id, r.State, r.Reason, h.platform.all(id))
	}
	text := strings.Join(terminal.Render(final.Output), "\n")
	for _, want := range []string{
		"4/4 images built; approved by bob.",
		"Built: `import prod packit-service packit-worker packit-service-fedmsg packit-dashboard` imports them.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the final message lacks %q:\n%s", want, text)
		}
	}
	if len(final.Buttons) != 1 || final.Buttons[0].Action != bot.ActionImport || final.Buttons[0].RequestID != releaseOffer {
		t.Fatalf("buttons = %+v, want one Import of %s", final.Buttons, releaseOffer)
	}
	for repo, want := range map[string]string{"packit-service": "61099d0", "sandcastle": "f44e79a", "ogr": "e43c7fe"} {
		if got, err := h.demo.GitHead(repo, "stable"); err != nil || !strings.HasPrefix(got, want) {
			t.Errorf("%s's stable on the demo's git server = %s, %v; want %s", repo, got, err, want)
		}
	}

	// carol may not import into prod, so the button opens nothing for her.
	if got := h.click("carol", bot.ActionImport, releaseOffer); !strings.Contains(got, "carol may not do this in prod") {
		t.Errorf("carol's click: %q", got)
	}
	before := h.platform.count()
	if got := h.click("alice", bot.ActionImport, releaseOffer); got != "" {
		t.Fatalf("alice's click: %q", got)
	}
	post, ok := h.platform.post(before)
	if !ok {
		t.Fatal("alice's click opened no request")
	}
	imp := strings.Join(terminal.Render(post.Output), "\n")
	for _, want := range []string{
		"import prod packit-service packit-worker packit-service-fedmsg packit-dashboard: waiting for the requester to confirm",
		"built from packit-service@61099d0",
		// prod runs the seed's image, two commits behind stable
		"8 commits in packit-service 7c565e1..61099d0:",
		"5a5f2f2 Fix Copr build status reporting (Dana Svoboda)",
	} {
		if !strings.Contains(imp, want) {
			t.Errorf("the import the button opened lacks %q:\n%s", want, imp)
		}
	}
	if strings.Contains(imp, "tokman") {
		t.Errorf("the import names tokman, which the release did not build:\n%s", imp)
	}
}

// TestReleaseAfterBuildImport: with release.afterBuild: import the bot
// opens the import itself, for the releaser, under prod's confirm and
// approval, and the release's message says so instead of offering it.
func TestReleaseAfterBuildImport(t *testing.T) {
	h := newHarness(t, withRelease("import"))
	id, final := h.release(t)
	text := strings.Join(terminal.Render(final.Output), "\n")
	if !strings.Contains(text, "Built: the import of packit-service, packit-worker, packit-service-fedmsg, packit-dashboard is opened as its own request.") || len(final.Buttons) != 0 {
		t.Errorf("the release's final message:\n%s\nbuttons %+v", text, final.Buttons)
	}
	var imports []*store.Request
	poll.Until(t, 10*time.Second, "the import opened after the release", func() (bool, string) {
		imports = imports[:0]
		for _, r := range h.requests() {
			if r.ID != id && strings.HasPrefix(r.Command, "import prod") {
				imports = append(imports, r)
			}
		}
		return len(imports) == 1 && imports[0].State != store.Planned && h.platform.last(imports[0].ID).RequestID != "", fmt.Sprint(len(imports))
	})
	r := imports[0]
	if r.Command != "import prod packit-service packit-worker packit-service-fedmsg packit-dashboard" || r.Requester.User != "alice" ||
		r.State != store.AwaitingConfirm || h.platform.last(r.ID).RequestID != r.ID {
		t.Errorf("opened %q by %s, %s, posted %v", r.Command, r.Requester.User, r.State, h.platform.last(r.ID).RequestID != "")
	}
}

// TestReleaseAfterBuildImportRefused: when the import cannot be opened (a
// request already holds one of the services), the release's message says
// why and offers the import instead.
func TestReleaseAfterBuildImportRefused(t *testing.T) {
	h := newHarness(t, withRelease("import"))
	holder := h.open("alice", "import prod worker")
	id, _ := h.release(t)
	poll.Until(t, 10*time.Second, "the release's message saying the import was not opened", func() (bool, string) {
		text := strings.Join(terminal.Render(h.platform.last(id).Output), "\n")
		return strings.Contains(text, "The import of the built images could not be opened:") && strings.Contains(text, "#"+holder), text
	})
	if b := h.platform.last(id).Buttons; len(b) != 1 || b[0].Action != bot.ActionImport || b[0].RequestID != releaseOffer {
		t.Errorf("buttons = %+v, want the Import offer instead", b)
	}
}
