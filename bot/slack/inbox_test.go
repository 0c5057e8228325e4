package slack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// stuckHandler never finishes an event, as a process that is killed while
// its workers are busy: the events stay acknowledged but unanswered.
type stuckHandler struct{ release chan struct{} }

func (h stuckHandler) Handle(ctx context.Context, _ bot.Request, _ bot.Responder) error {
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil
}

func serveAdapter(t *testing.T, a *Adapter) *slackSender {
	t.Helper()
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &slackSender{t: t, base: srv.URL, secret: testSecret, client: srv.Client()}
}

// TestInboxSurvivesACrash: every event Slack got a 200 for is in the inbox
// before the 200; a process that dies with them unanswered leaves them
// there, and the next one handles each exactly once, redeliveries included.
func TestInboxSurvivesACrash(t *testing.T) {
	const n = 300
	st := store.NewMemory()
	stuck := stuckHandler{release: make(chan struct{})}
	defer close(stuck.release)
	first, err := New(stuck, WithSigningSecret(testSecret), WithLogger(slog.New(slog.DiscardHandler)), WithInbox(st), WithWorkers(2), WithQueue(2*n))
	if err != nil {
		t.Fatal(err)
	}
	s := serveAdapter(t, first)
	var wg sync.WaitGroup
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i] = commandBody(testTeam, "U0ALICE", "alice", testChannel, "status prod", "https://hooks.slack.test/commands/1", fmt.Sprintf("crash.%d", i))
	}
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() { codes[i], _ = s.send("/slack/commands", bodies[i]) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("command %d: status %d", i, c)
		}
	}
	// The process dies here: nothing of first is closed or drained.
	left, err := st.Inbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) < n-2 { // the two stuck workers hold one event each
		t.Fatalf("%d events in the inbox after acking %d, want at least %d", len(left), n, n-2)
	}

	h := newCountingHandler()
	second, err := New(h, WithSigningSecret(testSecret), WithLogger(slog.New(slog.DiscardHandler)), WithInbox(st), WithQueue(2*n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Close)
	queued, err := second.Replay(context.Background())
	if err != nil || queued != len(left) {
		t.Fatalf("Replay = %d, %v; want %d", queued, err, len(left))
	}
	h.waitCount(t, len(left))
	// Slack's redelivery of one of them (same trigger) is not taken again.
	s2 := serveAdapter(t, second)
	if code, _ := s2.send("/slack/commands", bodies[0]); code != http.StatusOK {
		t.Fatalf("redelivery: status %d", code)
	}
	second.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, c := range h.byKey {
		if c != 1 {
			t.Errorf("event %s handled %d times", key, c)
		}
	}
	if rest, _ := st.Inbox(context.Background()); len(rest) != 0 {
		t.Errorf("%d events still in the inbox after handling, want none", len(rest))
	}
}

// TestInboxTooOldToAnswer: an event left in the inbox longer than its
// response_url lives is marked done, logged and, where the Web API can
// reach the sender, reported to them; it is not handled.
func TestInboxTooOldToAnswer(t *testing.T) {
	st := store.NewMemory()
	in := inbound{kind: kindCommand, team: testTeam, user: "U0ALICE", channel: testChannel, text: "status prod",
		responseURL: "https://hooks.slack.test/commands/1", dedupeKey: "command:old", received: time.Now().Add(-time.Hour)}
	payload, err := recordOf(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Enqueue(context.Background(), []store.InboxEvent{{Key: in.dedupeKey, Platform: Name, Received: in.received, TTL: inboxTTL, Payload: payload}}); err != nil {
		t.Fatal(err)
	}
	h := newCountingHandler()
	f := newFakeSlack(t)
	a, err := New(h, WithSigningSecret(testSecret), WithLogger(slog.New(slog.DiscardHandler)), WithInbox(st),
		WithBotToken("xoxb-test"), WithAPIURL(f.url()))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if queued, err := a.Replay(context.Background()); err != nil || queued != 0 {
		t.Fatalf("Replay = %d, %v; want 0", queued, err)
	}
	// The sender is told, privately, that it was received and not acted on.
	calls := f.all()
	if len(calls) != 1 || calls[0].Method != "chat.postEphemeral" || calls[0].User != "U0ALICE" ||
		!strings.Contains(calls[0].Text, "`/deploy status prod`") || !strings.Contains(calls[0].Text, "Nothing was done") {
		t.Errorf("Web API calls %+v, want one chat.postEphemeral to U0ALICE saying `/deploy status prod` was not acted on", calls)
	}
	if rest, _ := st.Inbox(context.Background()); len(rest) != 0 {
		t.Errorf("the old event is still in the inbox")
	}
	if h.count() != 0 {
		t.Errorf("an event older than its response_url was handled")
	}
}

// FuzzInboxRecord: a stored event that did not come from recordOf (damage,
// another version) is refused with an error, never half-decoded.
func FuzzInboxRecord(f *testing.F) {
	good, _ := recordOf(inbound{kind: kindAction, team: "T1", user: "U1", channel: "C1", action: &bot.Action{Kind: bot.ActionApprove, RequestID: "abc"}})
	f.Add(good)
	f.Add([]byte(`{"kind":0,"team":"T1","user":"U1","channel":"C1","text":"help"}`))
	f.Add([]byte(`{"kind":7}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"kind":1,"team":"T1","user":"U1"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		in, err := inboundOf(store.InboxEvent{Key: "k", Payload: payload})
		if err != nil {
			return
		}
		if in.team == "" || in.user == "" || (in.kind == kindAction && (in.action == nil || in.action.RequestID == "")) {
			t.Fatalf("accepted an incomplete event: %+v", in)
		}
		again, err := recordOf(in)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := inboundOf(store.InboxEvent{Key: "k", Payload: again}); err != nil || back.text != in.text {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	})
}
