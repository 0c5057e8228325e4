package discord

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/bolt"
)

func openBolt(t *testing.T, path string) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	return st
}

func left(t *testing.T, ib bot.Inbox) []store.InboxEvent {
	t.Helper()
	evs, err := ib.Inbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestInboxKeepsDeferredInteractions: an interaction acknowledged with a
// deferred response before the bot was done is in the inbox before the
// response goes out; a process that dies then leaves it there, and the next
// start handles it through the interaction's token (the "thinking…" message
// gets the answer), marked as replayed, exactly once.
func TestInboxKeepsDeferredInteractions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f := newFakeDiscord(t)
	quiet := WithLogger(slog.New(slog.DiscardHandler))

	// The first life: the handler never finishes, as in a process killed
	// while it works.
	first := openBolt(t, path)
	stuck := &slowHandler{release: make(chan struct{})}
	a, err := New(stuck, WithBotToken("t"), WithAppID(appID), WithGuilds(guildID), WithAPIURL(f.apiURL()), WithAckWithin(20*time.Millisecond), WithInbox(first), quiet)
	if err != nil {
		t.Fatal(err)
	}
	cmd, press := slash(alice, "status prod"), click(bob, &discordgo.Message{ID: "1001", ChannelID: channelID}, customID(bot.ActionApprove, "abc", false))
	for _, i := range []*discordgo.Interaction{cmd, press} {
		go a.onInteraction(nil, &discordgo.InteractionCreate{Interaction: i})
		f.callback(i.ID) // the deferred response went out …
	}
	// … and only after the interaction was stored.
	evs := left(t, first)
	if len(evs) != 2 || evs[0].Key != "interaction/"+cmd.ID || evs[1].Key != "interaction/"+press.ID {
		t.Fatalf("inbox after two deferred responses = %+v", evs)
	}
	if err := first.Close(); err != nil { // the crash: the handlers never return in this life
		t.Fatal(err)
	}

	// The second life handles both through the stored tokens.
	second := openBolt(t, path)
	defer second.Close()
	h := &recordingHandler{}
	b, err := New(h, WithBotToken("t"), WithAppID(appID), WithGuilds(guildID), WithAPIURL(f.apiURL()), WithInbox(second), quiet)
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.Replay(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2", n, err)
	}
	reqs := h.requests()
	if len(reqs) != 2 || !reqs[0].Replayed || !reqs[1].Replayed || reqs[0].Text != "status prod" || reqs[1].Action == nil || reqs[1].Action.RequestID != "abc" {
		t.Fatalf("replayed requests = %+v", reqs)
	}
	if edits := f.matching("PATCH", "/api/v9/webhooks/"+appID+"/"+cmd.Token+"/messages/@original"); len(edits) != 1 || !strings.Contains(string(edits[0].Body), "handled status prod") {
		t.Errorf("the command's thinking message got %d edits (%v), want the answer once", len(edits), edits)
	}
	if follow := f.matching("POST", "/api/v9/webhooks/"+appID+"/"+press.Token); len(follow) != 1 {
		t.Errorf("the click got %d follow-ups, want its answer once:\n%s", len(follow), f.dump())
	}
	if evs := left(t, second); len(evs) != 0 {
		t.Errorf("inbox after the replay = %+v, want it empty", evs)
	}
	if n, err := b.Replay(context.Background()); err != nil || n != 0 {
		t.Errorf("a second Replay = %d, %v; want nothing left", n, err)
	}
	close(stuck.release)
}

// TestInboxLeavesAnsweredInteractionsOut: an interaction the bot answered
// in full within Discord's deadline is done when its response is; nothing
// is stored for it.
func TestInboxLeavesAnsweredInteractionsOut(t *testing.T) {
	f := newFakeDiscord(t)
	st := store.NewMemory()
	h := &recordingHandler{}
	a, err := New(h, WithBotToken("t"), WithAppID(appID), WithGuilds(guildID), WithAPIURL(f.apiURL()), WithInbox(st), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	i := slash(alice, "status prod")
	a.onInteraction(nil, &discordgo.InteractionCreate{Interaction: i})
	if got := f.callback(i.ID); got.Type != discordgo.InteractionResponseChannelMessageWithSource {
		t.Fatalf("response type %d, want the answer itself", got.Type)
	}
	if evs := left(t, st); len(evs) != 0 {
		t.Errorf("inbox = %+v, want nothing for an interaction answered in full", evs)
	}
}

// TestInboxTooOld: an interaction left in the inbox for longer than its
// token can answer is not run; its sender is told in the channel that it
// was received and not acted on, and it leaves the inbox. A stored event
// that is not a deploybot interaction is dropped without running anything.
func TestInboxTooOld(t *testing.T) {
	f := newFakeDiscord(t)
	st := store.NewMemory()
	now := time.Now()
	old := slash(alice, "import prod")
	payload, err := json.Marshal(inboxRecord{Interaction: old})
	if err != nil {
		t.Fatal(err)
	}
	notOurs, _ := json.Marshal(inboxRecord{Interaction: &discordgo.Interaction{ID: "x", Token: "t", Type: discordgo.InteractionPing}})
	if _, err := st.Enqueue(context.Background(), []store.InboxEvent{
		{Key: "interaction/" + old.ID, Platform: Name, Received: now.Add(-20 * time.Minute), TTL: inboxTTL, Payload: payload},
		{Key: "interaction/x", Platform: Name, Received: now, TTL: inboxTTL, Payload: notOurs},
		{Key: "command/slack", Platform: "slack", Received: now, TTL: inboxTTL, Payload: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	h := &recordingHandler{}
	a, err := New(h, WithBotToken("t"), WithAppID(appID), WithGuilds(guildID), WithAPIURL(f.apiURL()), WithInbox(st), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := a.Replay(context.Background()); err != nil || n != 0 {
		t.Fatalf("Replay = %d, %v; want 0", n, err)
	}
	if reqs := h.requests(); len(reqs) != 0 {
		t.Fatalf("the bot was handed %+v, want nothing", reqs)
	}
	posts := f.matching("POST", "/api/v9/channels/"+channelID+"/messages")
	if len(posts) != 1 {
		t.Fatalf("channel messages:\n%s\nwant one telling alice", f.dump())
	}
	var sent discordgo.MessageSend
	if err := json.Unmarshal(posts[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sent.Content, "<@"+aliceID+"> deploybot received `/deploy import prod`") || !strings.Contains(sent.Content, "Nothing was done") ||
		sent.AllowedMentions == nil || len(sent.AllowedMentions.Users) != 1 || sent.AllowedMentions.Users[0] != aliceID {
		t.Errorf("channel message = %q (mentions %+v), want one telling alice, pinging only her", sent.Content, sent.AllowedMentions)
	}
	evs := left(t, st)
	if len(evs) != 1 || evs[0].Platform != "slack" {
		t.Errorf("inbox = %+v, want only the Slack event left", evs)
	}
}
