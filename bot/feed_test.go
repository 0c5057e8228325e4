package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// waitUntil polls cond for up to 20s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// observed returns the deploy feed's records.
func (h *harness) observed() []*store.Request {
	var out []*store.Request
	for _, r := range h.requests() {
		if r.Plan.Action == plan.ActionObserved {
			out = append(out, r)
		}
	}
	return out
}

// OpenShift's scheduled import moves stg's five services (seven workloads)
// while nobody asked the bot: the feed posts it once, updates it at most
// once per MinUpdate, flags packit-service's crash-looping rollout, and its
// Undo button opens the undo for whoever clicks; the undo, the bot's own
// change, is not posted again.
func TestFeedScheduledImport(t *testing.T) {
	h := newHarness(t, withFeed(demo.WithBrokenNext("stg", "packit-service")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.bot.RunFeed(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond) // the informers sync and the first read finds nothing
	if n := h.platform.count(); n != 0 {
		t.Fatalf("the feed posted %d messages before anything changed", n)
	}

	start := time.Now()
	if err := h.demo.ImageServer("stg").ImportScheduled(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the feed's post", func() bool { return h.platform.count() > 0 })
	posted := time.Since(start)
	waitUntil(t, "the rollout's end", func() bool { rs := h.observed(); return len(rs) == 1 && rs[0].State.Terminal() })
	ended := time.Since(start)
	time.Sleep(2 * feedMinUpdate) // the final update is out

	rec := h.observed()[0]
	if rec.State != store.Failed || !strings.Contains(rec.Reason, "deployment/packit-service failed") || !strings.Contains(rec.Reason, "CrashLoopBackOff") {
		t.Fatalf("record %s: %s, %q; want Failed with packit-service's crash loop", rec.ID, rec.State, rec.Reason)
	}
	if len(rec.Plan.Targets) != 5 {
		t.Errorf("the record has %d services, want the 5 of the import", len(rec.Plan.Targets))
	}
	workloads := 0
	for _, tg := range rec.Plan.Targets {
		workloads += len(tg.Workloads)
		if tg.ChangedBy != "scheduled import" {
			t.Errorf("%s changed by %q, want scheduled import", tg.Service, tg.ChangedBy)
		}
	}
	if h.platform.count() != 1 {
		t.Fatalf("%d posts for one import, want 1", h.platform.count())
	}
	h.platform.mu.Lock()
	updates := len(h.platform.updates[rec.ID])
	h.platform.mu.Unlock()
	last := h.platform.last(rec.ID)
	text := strings.Join(terminal.Render(last.Output), "\n")
	for _, want := range []string{"stg: changed without deploybot, FAILED", "packit-service: ", "(by scheduled import)", "`undo packit-service stg`"} {
		if !strings.Contains(text, want) {
			t.Errorf("the final message lacks %q:\n%s", want, text)
		}
	}
	var undo string
	for _, b := range last.Buttons {
		if b.Action == bot.ActionUndoChange && b.Label == "Undo packit-service" {
			undo = b.RequestID
		}
	}
	if undo == "" || len(last.Buttons) != 2 {
		t.Fatalf("buttons %+v, want Undo and Pin previous of packit-service", last.Buttons)
	}
	// At most one update per MinUpdate (what the feed holds to; the
	// adapters coalesce further per platform limits).
	if limit := int(ended/feedMinUpdate) + 2; updates > limit {
		t.Errorf("%d updates in %v, more than one per %v", updates, ended, feedMinUpdate)
	}
	t.Logf("5 services, %d workloads changed out of band: 1 post after %v, %d updates until the end after %v (MinUpdate %v)",
		workloads, posted.Round(time.Millisecond), updates, ended.Round(time.Millisecond), feedMinUpdate)

	// Undo, as alice clicks it: the request the typed command opens.
	before := h.platform.count()
	if reply := h.click("alice", bot.ActionUndoChange, undo); reply != "" {
		t.Fatalf("Undo: %q", reply)
	}
	req, ok := h.platform.post(before)
	if !ok || !strings.Contains(strings.Join(terminal.Render(req.Output), "\n"), "undo packit-service stg: waiting for the requester to confirm") {
		t.Fatalf("Undo opened %+v", req)
	}
	h.say("alice", "confirm #"+req.RequestID)
	waitUntil(t, "the undo", func() bool { return h.request(req.RequestID).State.Terminal() })
	if r := h.request(req.RequestID); r.State != store.Succeeded {
		t.Fatalf("undo: %s %q", r.State, r.Reason)
	}
	if ts := h.tag("stg", "packit-service"); !ts.Pinned() || ts.Current.Digest != rec.Plan.Targets[1].From.Digest {
		t.Errorf("after undo stg's packit-service is at %s (pinned %v), want %s", ts.Current.Digest, ts.Pinned(), rec.Plan.Targets[1].From.Digest)
	}
	// The same button again: the tag has moved on, so it would undo
	// something else (back to the crash-looping image); it is refused.
	if reply := h.click("bob", bot.ActionUndoChange, undo); !strings.Contains(reply, "is no longer at "+rec.Plan.Targets[1].To.Digest[7:19]) {
		t.Errorf("a second Undo click: %q", reply)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(h.observed()); n != 1 {
		t.Errorf("the bot's own undo was posted as a change: %d records", n)
	}
	// A click on a button that is not the feed's is refused.
	if reply := h.click("alice", bot.ActionPinChange, "abcdefghij-0"); !strings.Contains(reply, "does not know") {
		t.Errorf("a made-up change: %q", reply)
	}
}
