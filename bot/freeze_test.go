package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

// TestFreezeWindow: inside prod's freeze window every change is refused
// with the window's reason and end, the scheduled run is deferred and
// announced, and runs (once) when the window ends, announced again, by
// the leader of then (which finds the deferred run in the store); a
// change that breaks the glass needs one approval more than prod's
// policy, and the audit keeps why.
func TestFreezeWindow(t *testing.T) {
	h := newSchedHarness(t, func(prod *config.Environment) {
		// prod's run is Tuesday 02:00 UTC; the window is that whole day.
		prod.Freeze = []config.FreezeWindow{{From: "2026-11-24", To: "2026-11-24", Reason: "release week"}}
	})
	b := h.replica("a", nil)
	stopA := h.lead(b)
	h.idle(2)
	if got := h.say(b, "alice", "schedule prod"); !strings.Contains(got, "next freeze Tue 2026-11-24 00:00 UTC to Wed 2026-11-25 00:00 UTC (release week)") {
		t.Errorf("schedule before the window: %q", got)
	}

	h.clock.Set(h.run)
	r := h.waitState(schedule.RunID("prod", h.run), store.Cancelled)
	const frozen = "prod is frozen until Wed 2026-11-25 00:00 UTC (release week)"
	if !strings.HasPrefix(r.Reason, "Deferred by a freeze: "+frozen+"; this run happens when the window ends.") {
		t.Errorf("the run inside the window: %q", r.Reason)
	}
	poll.Until(t, 20*time.Second, "the deferral's notice", func() (bool, string) {
		return h.announced("Deferred by a freeze") == 1, strings.Join(h.announcements(), "\n")
	})
	if n := h.announced("Heads-up"); n != 0 {
		t.Errorf("%d heads-ups for a run the freeze defers", n)
	}

	for _, cmd := range []string{"import prod", "revert worker prod a67e8e3", "track worker prod", "undo service prod", "promote worker stg prod"} {
		before := h.platform.count()
		got := h.say(b, "alice", cmd)
		if !strings.Contains(got, "prod is frozen until Wed 2026-11-25 00:00 UTC: release week.") || !strings.Contains(got, "--break-glass REASON") || h.platform.count() != before {
			t.Errorf("%s inside the window: %q (%d posts)", cmd, got, h.platform.count()-before)
		}
	}
	// A registry push is announced, not imported.
	h.demo.Registry().Push("quay.io/packit/packit-worker", "prod", fakeopenshift.Digest("quay.io/packit/packit-worker", "prod", 9))
	b.Pushed(context.Background(), webhook.Delivery{Source: webhook.Distribution, ID: "f1", Pushes: []webhook.Push{{Repository: "quay.io/packit/packit-worker", Tag: "prod"}}})
	poll.Until(t, 20*time.Second, "the push's heads-up", func() (bool, string) {
		return h.announced("prod is frozen until Wed 2026-11-25 00:00 UTC (release week), so this push was not imported.") == 1, strings.Join(h.announcements(), "\n")
	})
	if got := h.say(b, "alice", "schedule prod"); !strings.Contains(got, "FROZEN until Wed 2026-11-25 00:00 UTC (release week)") {
		t.Errorf("schedule inside the window: %q", got)
	}
	if got := h.say(b, "alice", `import prod --break-glass "  "`); !strings.Contains(got, "--break-glass needs the reason") {
		t.Errorf("break-glass without a reason: %q", got)
	}

	// Breaking the glass: prod's one approval, and one more.
	before := h.platform.count()
	if got := h.say(b, "alice", `import prod worker --break-glass "the worker leaks memory, the fix is in"`); got != "" {
		t.Fatalf("break-glass: %q", got)
	}
	post, ok := h.platform.post(before)
	if !ok {
		t.Fatal("break-glass opened no request")
	}
	text := strings.Join(terminal.Render(post.Output), "\n")
	if !strings.Contains(text, `Breaking the glass ("the worker leaks memory, the fix is in"): one approval more than prod's policy.`) ||
		!strings.Contains(text, "needs: confirm by requester, 2 approvals by others") || !strings.Contains(text, "Approvals: 0 of 2") {
		t.Errorf("the break-glass request:\n%s", text)
	}
	events, err := h.store.Audit(context.Background(), 50)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		found = found || e.RequestID == post.RequestID && e.Action == "plan" && strings.Contains(e.Outcome, "break-glass: the worker leaks memory, the fix is in")
	}
	if !found {
		t.Errorf("no audit event records the break-glass reason: %+v", events)
	}
	h.say(b, "alice", "cancel #"+post.RequestID)

	// Leadership moves to replica b, which finds the deferred run in the
	// store; the window ends: the run happens, once, announced.
	stopA()
	h.lead(h.replica("b", nil))
	h.idle(2)
	end := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	h.clock.Set(end)
	h.waitState(schedule.RunID("prod", end), store.AwaitingApproval)
	poll.Until(t, 20*time.Second, "the notice that the freeze is over", func() (bool, string) {
		return h.announced("The freeze of prod is over: this is the scheduled import it held back.") == 1, strings.Join(h.announcements(), "\n")
	})
	if got := h.say(b, "alice", "import prod --dry-run"); strings.Contains(got, "frozen") {
		t.Errorf("after the window: %q", got)
	}
}

// TestFreezeBeginsMeanwhile: a request opened before a window is not
// confirmed inside it (the reply says so, not that the cluster changed),
// and a run no replica was up for, inside the window, is deferred to its
// end like any other.
func TestFreezeBeginsMeanwhile(t *testing.T) {
	h := newSchedHarness(t, func(prod *config.Environment) {
		prod.Freeze = []config.FreezeWindow{{From: "2026-11-24", To: "2026-11-24", Reason: "release week"}}
	})
	b := h.replica("a", nil)
	h.clock.Set(time.Date(2026, 11, 23, 23, 50, 0, 0, time.UTC))
	before := h.platform.count()
	if got := h.say(b, "alice", "import prod worker"); got != "" {
		t.Fatalf("import before the window: %q", got)
	}
	post, ok := h.platform.post(before)
	if !ok {
		t.Fatal("no request opened before the window")
	}
	h.clock.Set(time.Date(2026, 11, 24, 0, 30, 0, 0, time.UTC))
	if got := h.say(b, "alice", "confirm #"+post.RequestID); !strings.Contains(got, "#"+post.RequestID+" cannot go ahead now: prod is frozen until Wed 2026-11-25 00:00 UTC: release week.") {
		t.Errorf("confirm inside the window: %q", got)
	}
	h.say(b, "alice", "cancel #"+post.RequestID)

	// Nobody leads at 02:00; at 03:00 a leader comes up and finds the run.
	h.clock.Set(h.run.Add(time.Hour))
	h.lead(b)
	r := h.waitState(schedule.RunID("prod", h.run), store.Cancelled)
	if !strings.HasPrefix(r.Reason, "Deferred by a freeze: prod is frozen until Wed 2026-11-25 00:00 UTC") {
		t.Errorf("the run no replica was up for: %q", r.Reason)
	}
	h.idle(2)
	end := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	h.clock.Set(end)
	h.waitState(schedule.RunID("prod", end), store.AwaitingApproval)
	if n := h.announced("Deferred by a freeze"); n != 1 {
		t.Errorf("%d deferral notices, want 1", n)
	}
}
