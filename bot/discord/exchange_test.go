package discord

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/store"
)

// slowHandler answers only when released, after Discord's deadline.
type slowHandler struct {
	release chan struct{}
	replies []bot.Reply
}

func (h *slowHandler) Handle(ctx context.Context, _ bot.Request, resp bot.Responder) error {
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, r := range h.replies {
		if err := resp.Respond(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

func publicReply(title string) bot.Reply { return bot.Reply{Output: commands.Output{Title: title}} }

func privateReply(line string) bot.Reply {
	return bot.Reply{Output: commands.Output{Private: true, Sections: []commands.Section{{Lines: []string{line}}}}}
}

// TestSlowAnswersAreDeferred pins what Discord sees when the bot needs
// longer than the ack deadline: a deferred response at once, then the
// answer as an edit of it or as follow-ups.
func TestSlowAnswersAreDeferred(t *testing.T) {
	type call struct{ method, pathSuffix, contains string }
	tests := []struct {
		name     string
		i        func() *discordgo.Interaction
		replies  []bot.Reply
		deferred discordgo.InteractionResponseType
		then     []call
	}{
		{
			name: "a public answer fills the thinking message", i: func() *discordgo.Interaction { return slash(alice, "status prod") },
			replies: []bot.Reply{publicReply("status prod (namespace packit--prod)")}, deferred: discordgo.InteractionResponseDeferredChannelMessageWithSource,
			then: []call{{"PATCH", "/messages/@original", "status prod (namespace packit--prod)"}},
		},
		{
			name: "a private answer replaces it with an ephemeral follow-up", i: func() *discordgo.Interaction { return slash(alice, "import prd") },
			replies: []bot.Reply{privateReply("Unknown environment")}, deferred: discordgo.InteractionResponseDeferredChannelMessageWithSource,
			then: []call{{"DELETE", "/messages/@original", ""}, {"POST", "", `"flags":64`}},
		},
		{
			name: "no answer says so", i: func() *discordgo.Interaction { return slash(alice, "status prod") },
			deferred: discordgo.InteractionResponseDeferredChannelMessageWithSource,
			then:     []call{{"PATCH", "/messages/@original", "Nothing to do"}},
		},
		{
			name: "a slow click is acknowledged, its refusal follows privately",
			i: func() *discordgo.Interaction {
				return click(bob, &discordgo.Message{ID: "1001", ChannelID: channelID}, customID(bot.ActionApprove, "abc", false))
			},
			replies: []bot.Reply{privateReply("You cannot approve #abc")}, deferred: discordgo.InteractionResponseDeferredMessageUpdate,
			then: []call{{"POST", "", "You cannot approve #abc"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDiscord(t)
			h := &slowHandler{release: make(chan struct{}), replies: tt.replies}
			a, err := New(h, WithBotToken("t"), WithAppID(appID), WithGuilds(guildID), WithAPIURL(f.apiURL()), WithAckWithin(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			i := tt.i()
			done := make(chan struct{})
			go func() { a.onInteraction(nil, &discordgo.InteractionCreate{Interaction: i}); close(done) }()
			if got := f.callback(i.ID); got.Type != tt.deferred {
				t.Fatalf("initial response type %d, want %d", got.Type, tt.deferred)
			}
			close(h.release)
			<-done
			hook := "/api/v9/webhooks/" + appID + "/" + i.Token
			var got []string
			for _, c := range f.matching("", "") {
				if strings.HasPrefix(c.Path, hook) {
					got = append(got, c.Method+" "+strings.TrimPrefix(c.Path, hook)+" "+string(c.Body))
				}
			}
			if len(got) != len(tt.then) {
				t.Fatalf("follow-up calls:\n%s\nwant %d", strings.Join(got, "\n"), len(tt.then))
			}
			for k, want := range tt.then {
				if !strings.HasPrefix(got[k], want.method+" "+want.pathSuffix+" ") || !strings.Contains(got[k], want.contains) {
					t.Errorf("call %d = %s, want %s %s containing %q", k, got[k], want.method, want.pathSuffix, want.contains)
				}
			}
		})
	}
}

// TestSlowAnswerWithoutREST: with only a public key nothing can follow a
// deferred response, so the interaction is told so instead of left hanging.
func TestSlowAnswerWithoutREST(t *testing.T) {
	s := newSigner(t)
	h := &slowHandler{release: make(chan struct{}), replies: []bot.Reply{publicReply("late")}}
	defer close(h.release)
	a, err := New(h, WithPublicKey(s.pub), WithAckWithin(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body, _ := json.Marshal(slash(alice, "status prod"))
	res, err := http.DefaultClient.Do(s.request(t, srv.URL+"/discord/interactions", body, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r := decodeResponse(t, b)
	if m := responseMessage(t, r); r.Type != discordgo.InteractionResponseChannelMessageWithSource || m.Flags != int(discordgo.MessageFlagsEphemeral) || !strings.Contains(m.Content, "Still working") {
		t.Errorf("response = %s, want an ephemeral \"Still working\"", b)
	}
}

// TestCommandsAreRegisteredPerGuild: on READY the bot makes /deploy the
// application's command in each configured guild by bulk overwrite, once.
func TestCommandsAreRegisteredPerGuild(t *testing.T) {
	f := newFakeDiscord(t)
	a, err := New(&recordingHandler{}, WithBotToken("secret"), WithGuilds("100", "110"), WithAPIURL(f.apiURL()))
	if err != nil {
		t.Fatal(err)
	}
	ready := &discordgo.Ready{User: &discordgo.User{ID: botUser}, Application: &discordgo.Application{ID: appID}}
	a.onReady(nil, ready)
	a.onReady(nil, ready) // a reconnect
	var paths []string
	for _, c := range f.matching("PUT", "/api/v9/applications/") {
		paths = append(paths, c.Path)
		if c.Auth != "Bot secret" {
			t.Errorf("%s authorized with %q, want the bot token", c.Path, c.Auth)
		}
		var cmds []struct {
			Name    string `json:"name"`
			Options []struct {
				Type         int    `json:"type"`
				Name         string `json:"name"`
				Required     bool   `json:"required"`
				Autocomplete bool   `json:"autocomplete"`
			} `json:"options"`
		}
		if err := json.Unmarshal(c.Body, &cmds); err != nil {
			t.Fatal(err)
		}
		if len(cmds) != 1 || cmds[0].Name != "deploy" || len(cmds[0].Options) != 1 || cmds[0].Options[0].Name != "command" ||
			cmds[0].Options[0].Type != int(discordgo.ApplicationCommandOptionString) || !cmds[0].Options[0].Required || !cmds[0].Options[0].Autocomplete {
			t.Errorf("%s registered %s, want only /deploy with one required, autocompleted string option", c.Path, c.Body)
		}
	}
	want := []string{"/api/v9/applications/900/guilds/100/commands", "/api/v9/applications/900/guilds/110/commands"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("registered at %q, want %q once each", paths, want)
	}
	if a.selfID() != botUser {
		t.Errorf("bot user = %q, want %q from READY", a.selfID(), botUser)
	}
}

// TestAPITransport: REST calls for discord.com/api go to the override,
// path and query kept; anything else is left alone.
func TestAPITransport(t *testing.T) {
	var got []string
	next := roundTripper(func(r *http.Request) (*http.Response, error) {
		got = append(got, r.Method+" "+r.URL.String()+" host="+r.Host)
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
	})
	tests := []struct{ base, in, want string }{
		{"http://127.0.0.1:9999/api", "https://discord.com/api/v9/channels/5/messages?wait=true", "GET http://127.0.0.1:9999/api/v9/channels/5/messages?wait=true host=127.0.0.1:9999"},
		{"http://fake.local/discord/api/", "https://discord.com/api/v9/webhooks/1/tok/messages/@original", "GET http://fake.local/discord/api/v9/webhooks/1/tok/messages/@original host=fake.local"},
		{"http://127.0.0.1:9999/api", "https://cdn.discordapp.com/avatars/1.png", "GET https://cdn.discordapp.com/avatars/1.png host=cdn.discordapp.com"},
		{"http://127.0.0.1:9999/api", "https://discord.com/oauth2/authorize", "GET https://discord.com/oauth2/authorize host=discord.com"},
	}
	for _, tt := range tests {
		got = nil
		a, err := New(&recordingHandler{}, WithBotToken("t"), WithAPIURL(tt.base))
		if err != nil {
			t.Fatal(err)
		}
		a.session.Client.Transport.(*apiTransport).next = next
		req, _ := http.NewRequest(http.MethodGet, tt.in, nil)
		if _, err := a.session.Client.Do(req); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s via %s went to %q, want %q", tt.in, tt.base, got, tt.want)
		}
	}
	if _, err := New(&recordingHandler{}, WithBotToken("t"), WithAPIURL("127.0.0.1:9999")); err == nil {
		t.Error("an API URL without scheme was accepted")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// metricsHandler is a Handler that records metrics, as *bot.Bot does.
type metricsHandler struct {
	recordingHandler
	mu     sync.Mutex
	acks   []string
	errors []string
}

func (h *metricsHandler) ObserveAck(platform string, _ time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acks = append(h.acks, platform)
}

func (h *metricsHandler) PlatformError(platform, op string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errors = append(h.errors, platform+" "+op)
}

// TestMetrics: interactions report how long their answer took, and edits
// that fail (the bot cannot see them, they are coalesced) are counted, each
// try: Discord is unreachable, so the edit is tried once and, the adapter
// flushing, retried flushRetries times.
func TestMetrics(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	s := newSigner(t)
	h := &metricsHandler{}
	a, err := New(h, WithBotToken("t"), WithPublicKey(s.pub), WithAPIURL(down.URL+"/api"), WithEditInterval(time.Millisecond), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, s.request(t, "/discord/interactions", []byte(`{"id":"1","type":1}`), time.Now()))
	if err := a.Update(context.Background(), store.MessageRef{Platform: Name, Channel: channelID, ID: "1001"}, publicReply("#abc executing")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.Flush(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	want := slices.Repeat([]string{Name + " update"}, 1+flushRetries)
	if !slices.Equal(h.acks, []string{Name}) || !slices.Equal(h.errors, want) {
		t.Errorf("acks %q, errors %q; want one discord ack and %d failed updates", h.acks, h.errors, len(want))
	}
}

// TestRateLimitsAreCounted: discordgo waits out a 429 and retries by itself,
// so the adapter's transport counts it; the edit still arrives.
func TestRateLimitsAreCounted(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if first {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"message":"You are being rate limited.","retry_after":0.01,"global":false}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"1001","channel_id":"`+channelID+`"}`)
	}))
	defer srv.Close()
	h := &metricsHandler{}
	a, err := New(h, WithBotToken("t"), WithAPIURL(srv.URL+"/api"), WithEditInterval(time.Millisecond), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(context.Background(), store.MessageRef{Platform: Name, Channel: channelID, ID: "1001"}, publicReply("#abc executing")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.Flush(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 || !slices.Equal(h.errors, []string{Name + " rate_limited"}) {
		t.Errorf("%d calls, errors %q; want the 429 counted once and the edit delivered on the second call", calls, h.errors)
	}
}
