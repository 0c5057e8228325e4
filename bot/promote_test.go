package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/store"
)

// TestPromote: promote pins prod's tag to the digest stg runs — on every
// workload, settled, all pods Ready for longer than promote.healthyFor —
// through prod's confirm and approval; an image that has not run healthy
// long enough, or a stg still rolling, is refused with why.
func TestPromote(t *testing.T) {
	h := newHarness(t)
	// The demo's pods became Ready on its own clock (the wall clock), 26h
	// before it started; the bot reads the time from h.clock.
	h.clock.Set(time.Now())
	stg := h.tag("stg", "packit-worker").Current.Digest
	prodBefore := h.tag("prod", "packit-worker").Current.Digest
	if stg == prodBefore {
		t.Fatal("set-up: stg and prod run the same worker")
	}

	h.cfg.Promote.HealthyFor.Duration = 48 * time.Hour
	if got := h.say("alice", "promote worker stg prod"); !strings.Contains(got, "Not promoting packit-worker "+stg[7:19]+" from stg to prod:") ||
		!strings.Contains(got, "all its pods have been Ready for 26h") || !strings.Contains(got, "(promote.healthyFor), so in 22h") {
		t.Errorf("promote with healthyFor 48h: %q", got)
	}
	h.cfg.Promote.HealthyFor.Duration = 0 // the default, 10m

	id := h.open("alice", "promote worker stg prod")
	msg := h.platform.all(id)
	for _, want := range []string{
		"promote worker stg prod: waiting for the requester to confirm",
		"packit-worker: " + prodBefore[7:19] + " → " + stg[7:19] + "  (pinned, scheduled import off)",
		"Promotes what stg runs: " + stg[7:19] + " on 3 workloads, every pod Ready for 26h",
		"The tag stays pinned, also through imports, until `track packit-worker prod`.",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the promote request lacks %q:\n%s", want, msg)
		}
	}
	h.say("alice", "confirm #"+id)
	h.say("bob", "approve #"+id)
	poll.Until(t, 20*time.Second, "the promotion's final message", func() (bool, string) {
		return h.platform.last(id).Final, string(h.request(id).State)
	})
	if r := h.request(id); r.State != store.Succeeded {
		t.Fatalf("#%s is %s: %s\n%s", id, r.State, r.Reason, strings.Join(terminal.Render(h.platform.last(id).Output), "\n"))
	}
	ts := h.tag("prod", "packit-worker")
	if ts.Current.Digest != stg || ts.SpecFrom != "quay.io/packit/packit-worker@"+stg || ts.Scheduled {
		t.Errorf("prod's packit-worker tag: %+v, want pinned to stg's %s", ts, stg)
	}

	// Just imported, stg shows nothing healthy yet: first it rolls, then
	// its new pods have been Ready for seconds, not 10m.
	before := h.tag("stg", "packit-service").Current.Digest
	imp := h.open("alice", "import stg service")
	h.say("alice", "confirm #"+imp)
	poll.Until(t, 10*time.Second, "stg's packit-service tag moved", func() (bool, string) {
		return h.tag("stg", "packit-service").Current.Digest != before, ""
	})
	got := h.say("alice", "promote service stg prod")
	if !strings.Contains(got, "Not promoting packit-service") ||
		!(strings.Contains(got, "deployment/packit-service does not run") || strings.Contains(got, "deployment/packit-service is rolling") ||
			strings.Contains(got, "has run healthy for 10m")) {
		t.Errorf("promote right after an import into stg: %q", got)
	}
	poll.Until(t, 20*time.Second, "the import into stg settled", func() (bool, string) {
		return h.platform.last(imp).Final, string(h.request(imp).State)
	})
	if got := h.say("alice", "promote service stg prod"); !strings.Contains(got, "all its pods have been Ready for") || !strings.Contains(got, "has run healthy for 10m (promote.healthyFor)") {
		t.Errorf("promote of an image Ready for seconds: %q", got)
	}
}
