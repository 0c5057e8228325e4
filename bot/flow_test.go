package bot_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// TestImportProdFlow pins the main job: alice requests, confirms, bob
// approves, the bot imports every prod tag once, follows the rollouts and the
// tags end on the registry's newest digests.
func TestImportProdFlow(t *testing.T) {
	h := newHarness(t)
	id := h.open("alice", "import prod")
	r := h.request(id)
	if r.State != store.AwaitingConfirm {
		t.Fatalf("state after import = %s, want AwaitingConfirm", r.State)
	}
	if len(r.Plan.Targets) != 5 || !r.Plan.Changes() {
		t.Fatalf("plan has %d targets (changes %v), want 5 services to import", len(r.Plan.Targets), r.Plan.Changes())
	}
	want := map[string]string{}
	for _, tg := range r.Plan.Targets {
		if tg.From.Digest == tg.To.Digest || tg.To.Digest == "" {
			t.Errorf("%s: plan %s → %s, want old → new digest", tg.Service, tg.From.Digest, tg.To.Digest)
		}
		want[tg.Service] = tg.To.Digest
	}
	msg := h.platform.last(id)
	if len(msg.Buttons) != 2 || msg.Buttons[0].Action != bot.ActionConfirm || msg.Buttons[0].Confirm == "" || msg.Buttons[1].Action != bot.ActionCancel {
		t.Errorf("buttons = %+v, want Confirm (with a dialog on prod) and Cancel", msg.Buttons)
	}

	if reply := h.click("alice", bot.ActionConfirm, id); reply != "" {
		t.Fatalf("confirm: %q", reply)
	}
	if r := h.request(id); r.State != store.AwaitingApproval {
		t.Fatalf("state after confirm = %s, want AwaitingApproval", r.State)
	}
	if b := h.platform.last(id).Buttons; len(b) != 2 || b[0].Action != bot.ActionApprove || b[1].Action != bot.ActionDeny {
		t.Errorf("buttons = %+v, want Approve and Deny", b)
	}
	if reply := h.say("bob", "approve #"+id); reply != "" {
		t.Fatalf("approve: %q", reply)
	}
	h.bot.Wait()

	r = h.request(id)
	if r.State != store.Succeeded {
		t.Fatalf("state = %s (%s), want Succeeded\n%s", r.State, r.Reason, h.platform.all(id))
	}
	if h.exec.total() != 1 {
		t.Errorf("executed %d times, want once", h.exec.total())
	}
	if len(r.Result.Rollouts) != 7 {
		t.Errorf("followed %d rollouts, want 7 workloads", len(r.Result.Rollouts))
	}
	for svc, digest := range want {
		if got := h.tag("prod", svc).Current.Digest; got != digest {
			t.Errorf("%s:prod current = %s, want %s", svc, got, digest)
		}
	}
	final := strings.Join(h.platformText(id), "\n")
	for _, w := range []string{"succeeded", "7/7 workloads settled", "approved by bob", "settled, 2/2 updated, 2/2 ready"} {
		if !strings.Contains(final, w) {
			t.Errorf("final message lacks %q:\n%s", w, final)
		}
	}
	events, err := h.store.Audit(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		if e.RequestID == id {
			actions = append(actions, e.Actor+":"+e.Action)
		}
	}
	wantAudit := "deploybot:finish deploybot:execute bob:approve alice:confirm alice:open alice:plan"
	if got := strings.Join(actions, " "); got != wantAudit {
		t.Errorf("audit (newest first) = %q, want %q", got, wantAudit)
	}
}

func (h *harness) platformText(id string) []string {
	var out []string
	for _, l := range strings.Split(h.platform.all(id), "\n") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// TestRefusalsChangeNothing: every refusal is a reply that says why, and
// neither the store's requests nor the cluster's tags move.
func TestRefusalsChangeNothing(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the request ID the step acts on (may be "").
		setup func(h *harness) string
		user  string
		text  func(id string) string
		want  string
	}{
		{name: "carol may only read", user: "carol", text: fixed("import prod"),
			want: "carol may not do this in prod"},
		{name: "unmapped user", user: "dave", text: fixed("import prod"),
			want: "not mapped to a Kubernetes identity"},
		{name: "unknown service suggests", user: "alice", text: fixed("import prod wrker"),
			want: "Did you mean worker (packit-worker)?"},
		{name: "unknown environment suggests", user: "alice", text: fixed("import prd"),
			want: "Did you mean prod?"},
		{name: "malformed digest", user: "alice", text: fixed("revert worker prod sha256:nothex"),
			want: "Malformed digest"},
		{name: "unknown digest prefix", user: "alice", text: fixed("revert worker prod 0000000"),
			want: "0000000"},
		{name: "unbalanced quotes", user: "alice", text: fixed(`import prod "worker`),
			want: "Unbalanced quotes"},
		{name: "unknown command suggests", user: "alice", text: fixed("imprt prod"),
			want: "import"},
		{name: "self approval", user: "alice", setup: confirmed, text: approve,
			want: "someone else must approve"},
		{name: "approving twice", user: "bob", setup: confirmedAndApprovedByBobOnTwoApprovals, text: approve,
			want: "already approved"},
		{name: "approval after expiry", user: "bob", setup: func(h *harness) string {
			id := confirmed(h)
			h.advance(61 * time.Minute)
			return id
		}, text: approve, want: "expired"},
		{name: "plan changed since it was confirmed", user: "bob", setup: func(h *harness) string {
			id := confirmed(h)
			// The registry moves on: what was approved is not what would happen.
			h.demo.Registry().Push("quay.io/packit/packit-worker", "prod", "sha256:"+strings.Repeat("ab", 32))
			return id
		}, text: approve, want: "changed"},
		{name: "carol cannot approve", user: "carol", setup: confirmed, text: approve,
			want: "You cannot approve"},
		{name: "carol cannot deny", user: "carol", setup: confirmed, text: func(id string) string { return "deny #" + id },
			want: "You cannot deny"},
		{name: "bob cannot cancel alice's request", user: "bob", setup: confirmed, text: func(id string) string { return "cancel #" + id },
			want: "Only alice"},
		{name: "bob cannot confirm alice's request", user: "bob", setup: opened, text: func(id string) string { return "confirm #" + id },
			want: "Only alice"},
		{name: "approve before confirm", user: "bob", setup: opened, text: approve,
			want: "waiting for its requester to confirm"},
		{name: "no such request", user: "bob", text: fixed("approve #aaaaaaaaaa"),
			want: "no such request"},
		{name: "busy", user: "alice", setup: opened, text: fixed("import prod worker"),
			want: "busy with #"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			id := ""
			if tt.setup != nil {
				id = tt.setup(h)
			}
			beforeReqs := snapshot(h)
			beforeTags := tags(h)
			execs := h.exec.total()
			reply := h.say(tt.user, tt.text(id))
			if !strings.Contains(strings.ToLower(reply), strings.ToLower(tt.want)) {
				t.Errorf("reply = %q, want it to contain %q", reply, tt.want)
			}
			h.bot.Wait()
			after := snapshot(h)
			if tt.name == "approval after expiry" {
				// The one change a refusal may make: recording that the request expired.
				if h.request(id).State != store.Expired {
					t.Errorf("state = %s, want Expired", h.request(id).State)
				}
				delete(after, id)
				delete(beforeReqs, id)
			}
			if !equalStates(beforeReqs, after) {
				t.Errorf("requests changed: before %v, after %v", beforeReqs, after)
			}
			if got := tags(h); !equalStates(beforeTags, got) {
				t.Errorf("tags changed: before %v, after %v", beforeTags, got)
			}
			if h.exec.total() != execs {
				t.Errorf("a refusal executed a plan")
			}
		})
	}
}

func fixed(s string) func(string) string { return func(string) string { return s } }
func approve(id string) string           { return "approve #" + id }

func opened(h *harness) string { return h.open("alice", "import prod worker") }

func confirmed(h *harness) string {
	id := opened(h)
	if reply := h.say("alice", "confirm #"+id); reply != "" {
		h.t.Fatalf("confirm: %q", reply)
	}
	return id
}

// confirmedAndApprovedByBobOnTwoApprovals needs two approvals, so bob's first
// approval leaves the request waiting for a second person.
func confirmedAndApprovedByBobOnTwoApprovals(h *harness) string {
	env, _ := h.cfg.Env("prod")
	env.Approvals.Count = 2
	id := confirmed(h)
	if reply := h.say("bob", "approve #"+id); reply != "" {
		h.t.Fatalf("first approval: %q", reply)
	}
	if r := h.request(id); r.State != store.AwaitingApproval || len(r.Approvals) != 1 {
		h.t.Fatalf("after one of two approvals: %s with %d approvals", r.State, len(r.Approvals))
	}
	return id
}

func snapshot(h *harness) map[string]string {
	out := map[string]string{}
	for _, r := range h.requests() {
		out[r.ID] = string(r.State) + "/" + string(rune('0'+len(r.Approvals)))
	}
	return out
}

func tags(h *harness) map[string]string {
	out := map[string]string{}
	for _, env := range []string{"stg", "prod"} {
		for _, s := range h.cfg.Services {
			ts := h.tag(env, s.Name)
			out[env+"/"+s.Name] = ts.SpecFrom + " " + ts.Current.Digest
		}
	}
	return out
}

func equalStates(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestApprovalRunsExactlyOnce: bob's Approve clicked many times at once, as
// buttons and as text, executes the Plan once.
func TestApprovalRunsExactlyOnce(t *testing.T) {
	h := newHarness(t)
	id := confirmed(h)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				h.click("bob", bot.ActionApprove, id)
			} else {
				h.say("bob", "approve #"+id)
			}
		}()
	}
	wg.Wait()
	h.bot.Wait()
	if got := h.exec.total(); got != 1 {
		t.Fatalf("executed %d times, want exactly once", got)
	}
	if r := h.request(id); r.State != store.Succeeded || len(r.Approvals) != 1 {
		t.Fatalf("state %s with %d approvals, want Succeeded with 1", r.State, len(r.Approvals))
	}
}

// TestRedeliveredEventRunsOnce: an event with a dedupe key seen before is dropped.
func TestRedeliveredEventRunsOnce(t *testing.T) {
	h := newHarness(t)
	req := bot.Request{Platform: "terminal", User: bot.ChatUser{ID: "alice", Name: "alice"}, Channel: "terminal", Text: "import prod worker", DedupeKey: "evt-1"}
	h.send(req)
	h.send(req)
	if n := len(h.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

// TestUndoTriggeredWorkloadPinsTag: undo on a triggered Deployment goes
// through the stream tag, says so, and the workload ends on the old image.
func TestUndoTriggeredWorkloadPinsTag(t *testing.T) {
	h := newHarness(t)
	id := h.open("alice", "undo service prod")
	r := h.request(id)
	if r.Plan.Action != plan.ActionPin {
		t.Fatalf("undo of a triggered workload planned %s, want a pin of the stream tag", r.Plan.Action)
	}
	if notes := strings.Join(r.Plan.Notes, " "); !strings.Contains(notes, "image-trigger controller") {
		t.Errorf("notes %q do not say why the undo pins the tag", notes)
	}
	want := r.Plan.Targets[0].To.Digest
	h.say("alice", "confirm #"+id)
	h.say("bob", "approve #"+id)
	h.bot.Wait()
	if r := h.request(id); r.State != store.Succeeded {
		t.Fatalf("state %s: %s\n%s", r.State, r.Reason, h.platform.all(id))
	}
	ts := h.tag("prod", "packit-service")
	if !ts.Pinned() || ts.Current.Digest != want {
		t.Errorf("tag spec %s current %s, want pinned to %s", ts.SpecFrom, ts.Current.Digest, want)
	}
	w, err := h.set.Workload(context.Background(), "prod", "Deployment", "packit-service")
	if err != nil {
		t.Fatal(err)
	}
	if img := w.Images["packit-service"]; !strings.HasSuffix(img, want) {
		t.Errorf("deployment image %s, want the old digest %s", img, want)
	}
}

// TestRevertToBrokenDigestFails: a rollout onto the never-Ready digest is
// reported as failed with the reason, and a stuck OrderedReady pod is named.
func TestRevertToBrokenDigestFails(t *testing.T) {
	h := newHarness(t)
	broken := h.demo.BrokenDigest("packit-worker", "stg")
	if broken == "" {
		t.Fatal("the demo has no broken packit-worker digest on stg")
	}
	prefix := strings.TrimPrefix(broken, "sha256:")[:7]
	id := h.open("alice", "revert worker stg "+prefix)
	h.say("alice", "confirm #"+id)
	h.bot.Wait()
	r := h.request(id)
	if r.State != store.Failed {
		t.Fatalf("state %s, want Failed\n%s", r.State, h.platform.all(id))
	}
	if !strings.Contains(r.Reason, "CrashLoopBackOff") {
		t.Errorf("reason %q does not name CrashLoopBackOff", r.Reason)
	}
	if ts := h.tag("stg", "packit-worker"); ts.Current.Digest != broken {
		t.Errorf("tag current %s, want the pinned broken %s", ts.Current.Digest, broken)
	}
}

// TestTrackRestoresScheduled: revert pins stg with scheduled off (oc tag
// semantics); track restores the env's scheduled: true and the registry tag.
func TestTrackRestoresScheduled(t *testing.T) {
	h := newHarness(t)
	ts := h.tag("stg", "packit-worker")
	old := ts.History[len(ts.History)-1].Digest
	if old == h.demo.BrokenDigest("packit-worker", "stg") {
		old = ts.History[len(ts.History)-2].Digest
	}
	id := h.open("alice", "revert worker stg "+old)
	h.say("alice", "confirm #"+id)
	h.bot.Wait()
	if ts := h.tag("stg", "packit-worker"); !ts.Pinned() || ts.Scheduled {
		t.Fatalf("after revert: spec %s scheduled %v, want pinned with scheduled off", ts.SpecFrom, ts.Scheduled)
	}
	id = h.open("alice", "track worker stg")
	h.say("alice", "confirm #"+id)
	h.bot.Wait()
	if r := h.request(id); r.State != store.Succeeded {
		t.Fatalf("track: %s %s", r.State, r.Reason)
	}
	ts = h.tag("stg", "packit-worker")
	if ts.Pinned() || !ts.Scheduled || ts.SpecFrom != "quay.io/packit/packit-worker:stg" {
		t.Errorf("after track: spec %s scheduled %v, want tracking quay.io/packit/packit-worker:stg with scheduled on", ts.SpecFrom, ts.Scheduled)
	}
}

// TestDryRunOpensNothing: --dry-run shows the Plan and opens no request.
func TestDryRunOpensNothing(t *testing.T) {
	h := newHarness(t)
	reply := h.say("alice", "import prod --dry-run")
	if !strings.Contains(reply, "Dry run") || !strings.Contains(reply, "→") {
		t.Errorf("reply %q, want the plan and a dry-run note", reply)
	}
	if n := len(h.requests()); n != 0 {
		t.Errorf("%d requests opened, want none", n)
	}
}

// TestDenyAndCancel end requests without changes.
func TestDenyAndCancel(t *testing.T) {
	h := newHarness(t)
	id := confirmed(h)
	if reply := h.say("bob", "deny #"+id+" not during the release freeze"); reply != "" {
		t.Fatalf("deny: %q", reply)
	}
	if r := h.request(id); r.State != store.Denied || r.Reason != "not during the release freeze" || r.ClosedBy.Name != "bob" {
		t.Errorf("after deny: %s %q by %v", r.State, r.Reason, r.ClosedBy)
	}
	id = opened(h)
	if reply := h.click("alice", bot.ActionCancel, id); reply != "" {
		t.Fatalf("cancel: %q", reply)
	}
	if r := h.request(id); r.State != store.Cancelled {
		t.Errorf("after cancel: %s", r.State)
	}
	if reply := h.say("alice", "confirm #"+id); !strings.Contains(reply, "cancelled") {
		t.Errorf("confirm after cancel: %q", reply)
	}
	if h.exec.total() != 0 {
		t.Errorf("executed %d plans, want none", h.exec.total())
	}
}

// TestRestartKeepsPendingRequests: a new bot on the same state file continues
// a request opened before the restart.
func TestRestartKeepsPendingRequests(t *testing.T) {
	path := t.TempDir() + "/state.json"
	st, err := store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withStore(st))
	id := confirmed(h)
	h.bot.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2, err := store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st2.Close() })
	h2 := newHarness(t, withStore(st2))
	if reply := h2.say("bob", "pending"); !strings.Contains(reply, "#"+id) {
		t.Fatalf("pending after restart: %q, want #%s", reply, id)
	}
	// h2's demo cluster is a fresh copy of the same seeded state, so the plan still holds.
	if reply := h2.say("bob", "approve #"+id); reply != "" {
		t.Fatalf("approve after restart: %q", reply)
	}
	h2.bot.Wait()
	if r := h2.request(id); r.State != store.Succeeded {
		t.Errorf("state %s: %s", r.State, r.Reason)
	}
}

// TestSchedulePauseResume: the pause is stored and shown; only people who may
// import into the env may pause it.
func TestSchedulePauseResume(t *testing.T) {
	h := newHarness(t)
	if reply := h.say("carol", "schedule pause prod"); !strings.Contains(reply, "cannot pause") {
		t.Errorf("carol pausing: %q", reply)
	}
	reply := h.say("alice", "schedule pause prod --until 48h")
	if !strings.Contains(reply, "PAUSED by alice until") || !strings.Contains(reply, `"0 2 * * 2"`) {
		t.Errorf("pause: %q", reply)
	}
	if reply := h.say("bob", "schedule prod"); !strings.Contains(reply, "PAUSED") {
		t.Errorf("show after pause: %q", reply)
	}
	if reply := h.say("alice", "schedule resume prod"); strings.Contains(reply, "PAUSED") || !strings.Contains(reply, "next run Tue") {
		t.Errorf("resume: %q", reply)
	}
}

// TestReadOnlyCommands answer without opening requests.
func TestReadOnlyCommands(t *testing.T) {
	tests := []struct{ user, text, want string }{
		{"carol", "status prod", "tracking quay.io/packit/packit-worker:prod"},
		{"carol", "images worker prod", "current"},
		{"carol", "history service prod", "REVISION"},
		{"carol", "whoami", "carol"},
		{"dave", "whoami", "not mapped"},
		{"dave", "help", "import ENV"},
		{"alice", "help revert", "revert SERVICE [ENV] DIGEST"},
		{"alice", "pending", "No open requests"},
		{"alice", "audit", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.text, func(t *testing.T) {
			h := newHarness(t)
			if reply := h.say(tt.user, tt.text); !strings.Contains(reply, tt.want) {
				t.Errorf("reply %q, want %q", reply, tt.want)
			}
			if n := len(h.requests()); n != 0 {
				t.Errorf("%d requests opened", n)
			}
		})
	}
}

// TestForceRecoversStuckStatefulSet: after a rollout onto the never-Ready
// image, the OrderedReady workers keep the broken pod even once the tag is
// reverted; the bot says so, offers --force, and --force deletes exactly
// the stuck pods so the workers recover.
func TestForceRecoversStuckStatefulSet(t *testing.T) {
	h := newHarness(t)
	broken := h.demo.BrokenDigest("packit-worker", "stg")
	id := h.open("alice", "revert worker stg "+strings.TrimPrefix(broken, "sha256:")[:7])
	h.say("alice", "confirm #"+id)
	h.bot.Wait()
	if r := h.request(id); r.State != store.Failed {
		t.Fatalf("rollout onto the broken image: %s, want Failed", r.State)
	}

	id = h.open("alice", "undo worker stg")
	h.say("alice", "confirm #"+id)
	h.bot.Wait()
	r := h.request(id)
	if r.State != store.Failed || !strings.Contains(r.Reason, "undo --force") {
		t.Fatalf("undo without --force: %s %q, want Failed naming the stuck pod and offering --force", r.State, r.Reason)
	}

	reply := h.say("alice", "undo worker stg --force")
	if reply != "" {
		t.Fatalf("undo --force: %q", reply)
	}
	var forced *store.Request
	for _, r := range h.requests() {
		if r.Command == "undo worker stg --force" {
			forced = r
		}
	}
	if forced == nil {
		t.Fatal("undo --force opened no request")
	}
	var pods []string
	for _, tg := range forced.Plan.Targets {
		pods = append(pods, tg.DeletePods...)
	}
	if len(pods) != 2 {
		t.Fatalf("--force plans to delete %v, want the two stuck worker pods", pods)
	}
	h.say("alice", "confirm #"+forced.ID)
	h.bot.Wait()
	if r := h.request(forced.ID); r.State != store.Succeeded {
		t.Fatalf("undo --force: %s %q\n%s", r.State, r.Reason, h.platform.all(forced.ID))
	}
	for _, name := range []string{"packit-worker-short-running", "packit-worker-long-running"} {
		w, err := h.set.Workload(context.Background(), "stg", "StatefulSet", name)
		if err != nil {
			t.Fatal(err)
		}
		if !w.Settled || w.Ready != w.Desired {
			t.Errorf("%s: %d/%d ready, settled %v; want recovered", name, w.Ready, w.Desired, w.Settled)
		}
	}
}

// TestConfirmRechecksThePlan: stg needs no approval, so Confirm is the last
// step before execution. If the registry moved between the request and the
// Confirm, the stale Plan must not run: Confirm re-plans and refuses.
func TestConfirmRechecksThePlan(t *testing.T) {
	h := newHarness(t)
	id := h.open("alice", "import stg worker")
	if r := h.request(id); r.State != store.AwaitingConfirm || r.Intent == nil || r.Intent.Name != "import" {
		t.Fatalf("request = %s with intent %+v, want AwaitingConfirm with the typed import", r.State, r.Intent)
	}
	before := tags(h)
	h.demo.Registry().Push("quay.io/packit/packit-worker", "stg", "sha256:"+strings.Repeat("cd", 32))
	reply := h.say("alice", "confirm #"+id)
	if !strings.Contains(reply, "the cluster changed since #"+id+" was planned") {
		t.Errorf("confirm after the registry moved: %q, want a refusal saying the cluster changed", reply)
	}
	h.bot.Wait()
	if r := h.request(id); r.State != store.AwaitingConfirm {
		t.Errorf("state = %s, want still AwaitingConfirm", r.State)
	}
	if h.exec.total() != 0 {
		t.Errorf("executed %d times, want never", h.exec.total())
	}
	if got := tags(h); !equalStates(before, got) {
		t.Errorf("tags changed: before %v, after %v", before, got)
	}
}

// TestUnmappedClicksChangeNothing: a chat user without a Kubernetes
// identity gets the typed command's "not mapped" reply for every button.
func TestUnmappedClicksChangeNothing(t *testing.T) {
	h := newHarness(t)
	typed := h.say("dave", "import prod")
	if !strings.Contains(typed, "You are not mapped to a Kubernetes identity") {
		t.Fatalf("typed: %q", typed)
	}
	id := h.open("alice", "import prod worker")
	for _, kind := range []bot.ActionKind{bot.ActionConfirm, bot.ActionCancel, bot.ActionApprove, bot.ActionDeny, bot.ActionSkip} {
		before := snapshot(h)
		if got := h.click("dave", kind, id); got != typed {
			t.Errorf("dave's %s = %q, want %q", kind, got, typed)
		}
		if after := snapshot(h); !equalStates(before, after) {
			t.Errorf("dave's %s changed requests: %v → %v", kind, before, after)
		}
	}
}

// TestUnpostedRequestIsCancelled: when the request message cannot be
// posted, nobody can confirm or approve the request, so it is cancelled with
// the reason at once (its lock released), and the person who asked is told.
func TestUnpostedRequestIsCancelled(t *testing.T) {
	h := newHarness(t)
	h.platform.mu.Lock()
	h.platform.failPosts = true
	h.platform.mu.Unlock()
	reply := h.say("alice", "import prod")
	if !strings.Contains(reply, "chat API unavailable") || !strings.Contains(reply, "the request was cancelled, run the command again") {
		t.Errorf("reply = %q, want it to say the request message could not be posted and the request was cancelled", reply)
	}
	rs := h.requests()
	if len(rs) != 1 || rs[0].State != store.Cancelled || !strings.Contains(rs[0].Reason, "could not be posted") {
		t.Fatalf("requests = %+v, want one Cancelled with the reason", rs)
	}
	h.platform.mu.Lock()
	h.platform.failPosts = false
	h.platform.mu.Unlock()
	id := h.open("alice", "import prod") // the lock is free again
	if r := h.request(id); r.State != store.AwaitingConfirm {
		t.Errorf("the next import is %s, want AwaitingConfirm", r.State)
	}
}
