package bot_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

const (
	hookToken  = "3c9f0e7a52d14b6c"
	stgChannel = "stg-deploys"
	demoWorker = "sha256:06b144c64cbae5d63bfd86d1e8521b683fab13509daccc847c0a0db1fcdddf8b" // prod runs it
	demoStg    = "sha256:6a66b33dc62910e264ed908c159c8e478e0aa5d976d90af5b82d96647dfd60e3" // the registry's stg
)

// TestRegistryWebhook drives a registry webhook end to end on the demo
// cluster: the notification CNCF Distribution sends for
// `docker push quay.io/packit/packit-worker:TAG` (its own encoding, with a
// digest of its own that the registry does not have) goes through the
// webhook endpoint to the bot, which looks the tag up in the registry: a
// forged one is refused 401 and changes nothing, prod (not scheduled) gets
// a heads-up naming the command, once however often it is redelivered, and
// stg (scheduled: true) gets its import at once, as the schedule.
func TestRegistryWebhook(t *testing.T) {
	h := newSchedHarness(t, nil)
	stg, _ := h.cfg.Env("stg")
	stg.Channel = &config.ChannelRef{Platform: terminal.Name, ID: stgChannel}
	h.letScheduleDeploy("stg")
	b := h.replica("a", nil)
	hooks, err := webhook.New(map[webhook.Source]string{webhook.Distribution: hookToken}, h.store, b.Pushed,
		webhook.WithHosts(webhook.Hosts{Distribution: "quay.io"}), webhook.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+webhook.Path+"{source}", hooks)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); hooks.Shutdown(context.Background()) })

	prodPush, err := os.ReadFile("../webhook/testdata/distribution-tagged-push.json")
	if err != nil {
		t.Fatal(err)
	}
	stgPush := bytes.ReplaceAll(bytes.ReplaceAll(prodPush, []byte(`"tag": "prod"`), []byte(`"tag": "stg"`)),
		[]byte("01a23d45-8f7f-79ec-bdef-e7db1a7f74e7"), []byte("6c1f7e0b-2d4a-4f8e-9a3b-5e7d1c2b9f40"))
	send := func(body []byte, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+webhook.Path+"distribution", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		hooks.Wait()
		return resp.StatusCode, strings.TrimSpace(string(answer))
	}

	// Forged: refused before anything is read, nothing changes.
	if code, answer := send(prodPush, "not-the-token"); code != 401 || answer != "wrong token" {
		t.Fatalf("forged: %d %q, want 401 \"wrong token\"", code, answer)
	}
	if a := h.announcements(); len(a) != 0 {
		t.Fatalf("a forged webhook announced %q", a)
	}
	if rs, _ := h.store.List(context.Background(), store.ListOptions{}); len(rs) != 0 {
		t.Fatalf("a forged webhook left %d requests", len(rs))
	}

	// prod: a heads-up with the command, the registry's digest, not the body's.
	if code, answer := send(prodPush, hookToken); code != 202 || answer != "accepted: quay.io/packit/packit-worker:prod; deploybot looks each tag up in the registry" {
		t.Fatalf("prod push: %d %q", code, answer)
	}
	want := "packit-worker 06b144c64cba → 4b63ce22b768; `import prod packit-worker` imports it."
	poll.Until(t, 20*time.Second, "the heads-up in "+prodChannel, func() (bool, string) {
		return h.announced(want) == 1, strings.Join(h.announcements(), "\n---\n")
	})
	if strings.Contains(strings.Join(h.announcements(), "\n"), "5d27eb677252") {
		t.Error("the heads-up names the digest of the webhook's body")
	}
	if got := h.tagCurrent("prod", "packit-worker"); got != demoWorker {
		t.Errorf("prod's packit-worker is %s after a heads-up, want it unchanged (%s)", got, demoWorker)
	}
	// The heads-up's Import button opens the same request as the command,
	// for whoever clicks it, under prod's policy; a made-up one changes nothing.
	var headsUp bot.Reply
	for i := 0; ; i++ {
		p, ok := h.platform.post(i)
		if !ok {
			t.Fatal("no heads-up among the posts")
		}
		if p.RequestID == "" && p.Title == "New image for prod" {
			headsUp = p
			break
		}
	}
	if len(headsUp.Buttons) != 1 || headsUp.Buttons[0].Action != bot.ActionImport || headsUp.Buttons[0].RequestID != "prod+packit-worker" || headsUp.Buttons[0].Label != "Import" {
		t.Fatalf("heads-up buttons = %+v, want one Import of prod+packit-worker", headsUp.Buttons)
	}
	for _, tc := range []struct{ user, offer, want string }{
		{"dave", "prod+packit-worker", "You are not mapped to a Kubernetes identity"},
		{"alice", "prod+packit-nothing", "The Import button asks for `import prod packit-nothing`, which this deploybot does not know now"},
		{"alice", "prod import+x", "That Import button is not one deploybot makes"},
	} {
		if got := h.click(b, tc.user, bot.ActionImport, tc.offer); !strings.Contains(got, tc.want) {
			t.Errorf("%s clicking Import %q: %q, want %q", tc.user, tc.offer, got, tc.want)
		}
	}
	if rs, _ := h.store.List(context.Background(), store.ListOptions{}); len(rs) != 0 {
		t.Fatalf("refused Import clicks left %d requests", len(rs))
	}
	h.click(b, "alice", bot.ActionImport, headsUp.Buttons[0].RequestID)
	rs, _ := h.store.List(context.Background(), store.ListOptions{})
	if len(rs) != 1 || rs[0].Command != "import prod packit-worker" || rs[0].State != store.AwaitingConfirm || rs[0].Requester.Name != "alice" {
		t.Fatalf("after alice's Import click: %+v, want one import prod packit-worker by alice awaiting confirmation", rs)
	}
	if tg := rs[0].Plan.Targets; len(tg) != 1 || !strings.HasPrefix(tg[0].To.Digest, "sha256:4b63ce22b768") {
		t.Errorf("the Import click's Plan = %+v, want packit-worker to the registry's 4b63ce22b768", tg)
	}
	h.click(b, "alice", bot.ActionCancel, rs[0].ID)

	// Redelivered: answered, not acted on again.
	if code, answer := send(prodPush, hookToken); code != 200 || answer != "already seen" {
		t.Fatalf("redelivery: %d %q", code, answer)
	}
	if n := h.announced("New image for prod"); n != 1 {
		t.Fatalf("%d heads-ups after a redelivery, want 1", n)
	}

	// stg: imported at once, as the schedule, under stg's policy (no approvals).
	at := h.clock.Now().Truncate(time.Minute)
	if code, answer := send(stgPush, hookToken); code != 202 {
		t.Fatalf("stg push: %d %q", code, answer)
	}
	id := schedule.RunID("stg", at)
	r := h.waitState(id, store.Succeeded, store.Failed)
	b.Wait()
	if r.State != store.Succeeded || r.Command != "import stg" {
		t.Fatalf("#%s %q: %s (%s)", id, r.Command, r.State, r.Reason)
	}
	if got := h.tagCurrent("stg", "packit-worker"); got != demoStg {
		t.Errorf("stg's packit-worker is %s, want the registry's %s", got, demoStg)
	}
	if n := h.announced("Pushed to the registry at 12:00 UTC: packit-worker 6a66b33dc629."); n != 1 {
		t.Errorf("%d notes of the push in %s, want 1:\n%s", n, stgChannel, strings.Join(h.announcements(), "\n---\n"))
	}
	if n := h.exec.total(); n != 1 {
		t.Errorf("executed %d Plans, want 1 (stg's import)", n)
	}
}

// tagCurrent is the digest env's tag of service has now.
func (h *schedHarness) tagCurrent(env, service string) string {
	h.t.Helper()
	e, _ := h.cfg.Env(env)
	s, _ := h.cfg.Service(service)
	ts, err := h.set.Tag(context.Background(), env, s.ImageStream, e.Tag)
	if err != nil {
		h.t.Fatal(err)
	}
	return ts.Current.Digest
}
