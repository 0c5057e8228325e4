package bot_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

// TestHold: a held stg service stays on its image while OpenShift's
// scheduled import (the tag's importPolicy.scheduled) and the bot's imports
// both try to move it — the hold turned the one off and paused the image
// triggers, and the bot's imports leave it; only unhold changes it, and
// unhold restores scheduled and the triggers exactly as they were.
func TestHold(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	before := h.tag("stg", "packit-worker")
	if !before.Scheduled || before.Hold != nil {
		t.Fatalf("set-up: stg's worker tag %+v", before)
	}
	triggers := func() map[string]bool { // workload → paused
		t.Helper()
		ws, err := h.set.TriggeredWorkloads(ctx, "stg", "packit-worker", "stg")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, w := range ws {
			for _, tr := range w.Triggers {
				if tr.Follows("packit--stg", "packit-worker", "stg") {
					out[strings.ToLower(w.Kind)+"/"+w.Name] = tr.Paused
				}
			}
		}
		return out
	}
	if got := triggers(); len(got) != 3 || slices.Contains(mapValues(got), true) {
		t.Fatalf("set-up: triggers %v", got)
	}

	if got := h.say("alice", "hold stg worker"); !strings.Contains(got, `Say why: --reason "TEXT"`) {
		t.Errorf("hold without a reason: %q", got)
	}
	if got := h.say("carol", `hold stg worker --reason "x"`); !strings.Contains(got, "carol may not do this in stg") {
		t.Errorf("carol's hold: %q", got)
	}
	id := h.open("alice", `hold stg worker --reason "crash-loops since 06b144c; fix in review"`)
	msg := h.platform.all(id)
	if !strings.Contains(msg, "packit-worker: held at "+before.Current.Digest[7:19]+"  (scheduled import on → off, image triggers paused: deployment/packit-service-beat, statefulset/packit-worker-long-running, statefulset/packit-worker-short-running)") {
		t.Errorf("the hold's Plan:\n%s", msg)
	}
	h.say("alice", "confirm #"+id)
	poll.Until(t, 20*time.Second, "the hold's final message", func() (bool, string) {
		return h.platform.last(id).Final, string(h.request(id).State)
	})
	if r := h.request(id); r.State != store.Succeeded {
		t.Fatalf("hold #%s is %s: %s", id, r.State, r.Reason)
	}
	held := h.tag("stg", "packit-worker")
	if held.Scheduled || held.Hold == nil || held.Hold.By != "alice" || !held.Hold.Scheduled || len(held.Hold.Paused) != 3 {
		t.Fatalf("after hold: %+v (hold %+v)", held, held.Hold)
	}
	if got := triggers(); slices.Contains(mapValues(got), false) {
		t.Errorf("after hold the triggers are %v, want all paused", got)
	}

	// A new stg image in the registry: OpenShift's scheduled import and the
	// bot's import both leave the held worker alone.
	h.demo.Registry().Push("quay.io/packit/packit-worker", "stg", fakeopenshift.Digest("quay.io/packit/packit-worker", "stg", 9))
	if err := h.demo.ImageServer("stg").ImportScheduled(); err != nil {
		t.Fatal(err)
	}
	if text := h.say("alice", "import stg worker"); !strings.Contains(text, "packit-worker: "+before.Current.Digest[7:19]+" (unchanged)") ||
		!strings.Contains(text, "packit-worker is held by alice since") || !strings.Contains(text, "left as it is until `unhold stg packit-worker`") {
		t.Errorf("import stg worker with worker held:\n%s", text)
	}
	if got := h.tag("stg", "packit-worker").Current.Digest; got != before.Current.Digest {
		t.Errorf("the held worker moved to %s", plan.ShortDigest(got))
	}
	if got := h.say("alice", "track worker stg"); !strings.Contains(got, "A held service changes only through `unhold stg packit-worker`.") {
		t.Errorf("track of a held service: %q", got)
	}
	if got := h.say("alice", "holds"); !strings.Contains(got, "stg packit-worker: held by alice since") || !strings.Contains(got, "crash-loops since 06b144c; fix in review") {
		t.Errorf("holds: %q", got)
	}
	if got := h.say("alice", "status stg worker"); !strings.Contains(got, "hold     held by alice since") {
		t.Errorf("status of the held worker: %q", got)
	}

	un := h.open("alice", "unhold stg worker")
	h.say("alice", "confirm #"+un)
	poll.Until(t, 20*time.Second, "the unhold's final message", func() (bool, string) {
		return h.platform.last(un).Final, string(h.request(un).State)
	})
	after := h.tag("stg", "packit-worker")
	if !after.Scheduled || after.Hold != nil {
		t.Errorf("after unhold: scheduled %v, hold %+v; want scheduled back on and no hold", after.Scheduled, after.Hold)
	}
	if got := triggers(); slices.Contains(mapValues(got), true) {
		t.Errorf("after unhold the triggers are %v, want none paused", got)
	}
}

func mapValues(m map[string]bool) []bool {
	var out []bool
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestHoldAgainstAPush: a registry push to stg (scheduled: true), which
// imports at once, leaves the held worker on its image and imports the
// others.
func TestHoldAgainstAPush(t *testing.T) {
	h := newSchedHarness(t, nil)
	h.letScheduleDeploy("stg")
	b := h.replica("a", nil)
	tag := func(svc string) plan.TagState {
		ts, err := h.set.Tag(context.Background(), "stg", svc, "stg")
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	worker := tag("packit-worker").Current.Digest
	before := h.platform.count()
	h.say(b, "alice", `hold stg worker --reason "crash-loops"`)
	post, ok := h.platform.post(before)
	if !ok {
		t.Fatal("the hold opened no request")
	}
	id := post.RequestID
	h.say(b, "alice", "confirm #"+id)
	h.waitState(id, store.Succeeded)

	reg := h.demo.Registry()
	newWorker := fakeopenshift.Digest("quay.io/packit/packit-worker", "stg", 9)
	newTokman := fakeopenshift.Digest("quay.io/packit/tokman", "stg", 9)
	reg.Push("quay.io/packit/packit-worker", "stg", newWorker)
	reg.Push("quay.io/packit/tokman", "stg", newTokman)
	b.Pushed(context.Background(), webhook.Delivery{Source: webhook.Distribution, ID: "t1", Pushes: []webhook.Push{
		{Repository: "quay.io/packit/packit-worker", Tag: "stg"}, {Repository: "quay.io/packit/tokman", Tag: "stg"},
	}})
	imp := h.waitState(schedule.RunID("stg", h.clock.Now().Truncate(time.Minute)), store.Succeeded, store.Failed)
	if tag("tokman").Current.Digest != newTokman || imp.State != store.Succeeded {
		t.Fatalf("the push's import #%s is %s (%s); tokman at %s", imp.ID, imp.State, imp.Reason, plan.ShortDigest(tag("tokman").Current.Digest))
	}
	if !slices.ContainsFunc(imp.Plan.Targets, func(t plan.Target) bool { return t.Service == "packit-worker" && t.Unchanged }) ||
		!slices.ContainsFunc(imp.Plan.Notes, func(n string) bool { return strings.Contains(n, "packit-worker is held by alice") }) {
		t.Errorf("the push's import Plan: %+v", imp.Plan)
	}
	if got := tag("packit-worker").Current.Digest; got != worker {
		t.Errorf("the held worker moved to %s with the push", plan.ShortDigest(got))
	}
}

// TestHoldUntil: a hold placed with --until shows its end, and at that
// time the leader's sweep unholds it as the bot, without asking again
// (the hold's approval covered its end), once: scheduled import and the
// triggers are back as they were.
func TestHoldUntil(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	before := h.tag("stg", "packit-worker")
	id := h.open("alice", `hold stg worker --reason "bad migration" --until 2h`)
	until := h.clock.Now().Add(2 * time.Hour).UTC().Format("2006-01-02 15:04 MST")
	if msg := h.platform.all(id); !strings.Contains(msg, "held at "+before.Current.Digest[7:19]+" until "+until+", then unheld by itself") {
		t.Errorf("the hold's Plan does not show its end:\n%s", msg)
	}
	h.say("alice", "confirm #"+id)
	h.bot.Wait()
	if r := h.request(id); r.State != store.Succeeded {
		t.Fatalf("hold: %s %q", r.State, r.Reason)
	}
	if got := h.say("alice", "holds stg"); !strings.Contains(got, "until "+until+": bad migration") {
		t.Errorf("holds: %q", got)
	}
	if err := h.bot.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if ts := h.tag("stg", "packit-worker"); ts.Hold == nil {
		t.Fatal("the hold ended before its time")
	}
	h.advance(2*time.Hour + time.Minute)
	for range 2 { // a second sweep (or leader) opens nothing more
		if err := h.bot.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h.bot.Wait()
	var end *store.Request
	for _, r := range h.requests() {
		if r.Plan.Action == plan.ActionUnhold {
			end = r
		}
	}
	if end == nil {
		t.Fatal("no unhold was opened at the hold's --until time")
	}
	if end.State != store.Succeeded || end.Command != "unhold stg packit-worker" || end.Requester.User != "deploybot" {
		t.Fatalf("the hold's end: #%s %q by %s: %s %q", end.ID, end.Command, end.Requester.User, end.State, end.Reason)
	}
	after := h.tag("stg", "packit-worker")
	if after.Hold != nil || after.Scheduled != before.Scheduled || after.Current.Digest != before.Current.Digest {
		t.Errorf("after the hold's end: held %v, scheduled %v (was %v), at %s (was %s)", after.Hold, after.Scheduled, before.Scheduled, after.Current.Digest, before.Current.Digest)
	}
	n := 0
	for _, r := range h.requests() {
		if r.Plan.Action == plan.ActionUnhold {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d unhold requests, want 1", n)
	}
}

// TestHoldAfterUndo: with holdAfterUndo a succeeded revert holds the
// service where it went back to, confirmed and approved by the revert's
// own confirmation and approvals, so the scheduled import cannot bring
// the bad image back.
func TestHoldAfterUndo(t *testing.T) {
	h := newHarness(t)
	for i := range h.cfg.Environments {
		h.cfg.Environments[i].HoldAfterUndo = true
	}
	before := h.tag("prod", "packit-worker")
	older := before.History[1].Digest
	if older == h.demo.BrokenDigest("packit-worker", "prod") {
		t.Fatalf("set-up: prod's previous worker image is the demo's broken one")
	}
	id := h.open("alice", "revert worker prod "+older)
	h.say("alice", "confirm #"+id)
	h.say("bob", "approve #"+id)
	h.bot.Wait()
	if r := h.request(id); r.State != store.Succeeded {
		t.Fatalf("revert: %s %q", r.State, r.Reason)
	}
	h.bot.Wait()
	hold := h.request(id + "-hold")
	if hold.State != store.Succeeded || hold.Requester.User != "alice" || !strings.Contains(hold.Command, `--reason "went back with #`+id) {
		t.Fatalf("the hold after the revert: %q by %s: %s %q", hold.Command, hold.Requester.User, hold.State, hold.Reason)
	}
	if len(hold.Approvals) != 1 || hold.Approvals[0].By.User != "alice" {
		t.Errorf("the hold's approvals %+v, want the revert's requester's own (the revert's covered it)", hold.Approvals)
	}
	ts := h.tag("prod", "packit-worker")
	if ts.Hold == nil || ts.Current.Digest != older || !strings.HasPrefix(ts.Hold.Reason, "went back with #"+id) {
		t.Errorf("after the revert prod's worker is at %s, held %+v", ts.Current.Digest, ts.Hold)
	}
	if msg := h.platform.all(id); !strings.Contains(msg, "holdAfterUndo: #"+id+"-hold holds packit-worker there next") || !strings.Contains(msg, "`unhold prod packit-worker` ends it") {
		t.Errorf("the revert's message does not say it is held:\n%s", msg)
	}
}
