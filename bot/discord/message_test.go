package discord

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
)

func TestCommandText(t *testing.T) {
	tests := []struct {
		name, content, prefix string
		want                  string
		ok                    bool
	}{
		{"prefix and command", "!deploy status prod", "!deploy", "status prod", true},
		{"prefix is case-insensitive", "!Deploy status", "!deploy", "status", true},
		{"prefix alone asks for help", "  !deploy  ", "!deploy", "help", true},
		{"a longer word is not the prefix", "!deployment status", "!deploy", "", false},
		{"prefix in the middle is not a command", "please !deploy status", "!deploy", "", false},
		{"mention", "<@999> import prod worker", "!deploy", "import prod worker", true},
		{"nickname mention", "<@!999>   whoami", "!deploy", "whoami", true},
		{"mention alone asks for help", "<@999>", "!deploy", "help", true},
		{"someone else's mention", "<@998> status", "!deploy", "", false},
		{"custom prefix", "!dep status prod", "!dep", "status prod", true},
		{"prefix followed by a newline", "!deploy\nstatus", "!deploy", "status", true},
		{"plain chat", "hello", "!deploy", "", false},
		{"multibyte text shorter than the prefix", "ü!", "!deploy", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := commandText(tt.content, tt.prefix, botUser)
			if got != tt.want || ok != tt.ok {
				t.Errorf("commandText(%q) = %q, %v; want %q, %v", tt.content, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestMessageRequest pins which gateway messages become requests, and the
// identity they carry.
func TestMessageRequest(t *testing.T) {
	human := &discordgo.User{ID: aliceID, Username: "alice", GlobalName: "Alice A."}
	msg := func(mut func(m *discordgo.Message)) *discordgo.Message {
		m := &discordgo.Message{ID: "m1", GuildID: guildID, ChannelID: channelID, Content: "!deploy status prod", Author: human,
			Member: &discordgo.Member{Nick: "ali", Roles: []string{adminRole, "302"}}}
		if mut != nil {
			mut(m)
		}
		return m
	}
	tests := []struct {
		name     string
		channels []string
		msg      *discordgo.Message
		want     *bot.Request
	}{
		{"a member's command", nil, msg(nil), &bot.Request{Platform: Name, Channel: channelID, Text: "status prod", DedupeKey: "message/m1",
			User: bot.ChatUser{ID: guildID + "/" + aliceID, Name: "ali", Groups: []string{adminRole, "302"}}}},
		{"without a nickname the global name", nil, msg(func(m *discordgo.Message) { m.Member.Nick = "" }), &bot.Request{Platform: Name, Channel: channelID, Text: "status prod", DedupeKey: "message/m1",
			User: bot.ChatUser{ID: guildID + "/" + aliceID, Name: "Alice A.", Groups: []string{adminRole, "302"}}}},
		{"another bot", nil, msg(func(m *discordgo.Message) { m.Author = &discordgo.User{ID: "7", Bot: true} }), nil},
		{"the bot itself", nil, msg(func(m *discordgo.Message) { m.Author = &discordgo.User{ID: botUser} }), nil},
		{"a webhook", nil, msg(func(m *discordgo.Message) { m.WebhookID = "55" }), nil},
		{"a direct message", nil, msg(func(m *discordgo.Message) { m.GuildID = "" }), nil},
		{"another guild", nil, msg(func(m *discordgo.Message) { m.GuildID = "101" }), nil},
		{"a channel not listed", []string{"501"}, msg(nil), nil},
		{"a listed channel", []string{channelID}, msg(func(m *discordgo.Message) { m.Member = nil }), &bot.Request{Platform: Name, Channel: channelID, Text: "status prod", DedupeKey: "message/m1",
			User: bot.ChatUser{ID: guildID + "/" + aliceID, Name: "Alice A."}}},
		{"no author", nil, msg(func(m *discordgo.Message) { m.Author = nil }), nil},
		{"not a command", nil, msg(func(m *discordgo.Message) { m.Content = "deploy went fine" }), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAdapter(t, WithChannels(tt.channels...))
			got, ok := a.messageRequest(tt.msg)
			if (tt.want != nil) != ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.want != nil, got)
			}
			if ok && !sameRequest(got, *tt.want) {
				t.Errorf("request = %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func sameRequest(a, b bot.Request) bool {
	return a.Platform == b.Platform && a.Channel == b.Channel && a.Text == b.Text && a.DedupeKey == b.DedupeKey &&
		a.User.ID == b.User.ID && a.User.Name == b.User.Name && slices.Equal(a.User.Groups, b.User.Groups) && a.Action == nil
}

// newTestAdapter is an adapter with a bot token whose REST calls go to a
// fake Discord, as the bot user botUser in guild guildID.
func newTestAdapter(t testing.TB, opts ...Option) *Adapter {
	t.Helper()
	f := newFakeDiscord(t)
	a, err := New(&recordingHandler{}, append([]Option{WithBotToken("t"), WithGuilds(guildID), WithAPIURL(f.apiURL())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	a.botUserID = botUser
	return a
}

// recordingHandler answers every request with one reply and remembers them.
type recordingHandler struct {
	mu    sync.Mutex
	reqs  []bot.Request
	reply bot.Reply
}

func (h *recordingHandler) Handle(ctx context.Context, req bot.Request, resp bot.Responder) error {
	h.mu.Lock()
	h.reqs = append(h.reqs, req)
	reply := h.reply
	h.mu.Unlock()
	if reply.Title == "" && len(reply.Sections) == 0 {
		reply = bot.Reply{Output: commands.Output{Title: "handled " + req.Text}}
	}
	return resp.Respond(ctx, reply)
}

func (h *recordingHandler) requests() []bot.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

// FuzzMessageCommand: the message decoder never panics, and what it passes
// on is a non-empty command that was written after the prefix or mention.
func FuzzMessageCommand(f *testing.F) {
	for _, s := range []string{"!deploy status prod", "<@999> import prod", "<@!999>", "!deploy", "!deployx", "", " ", "!DEPLOY\t\x00", "<@999", "\xff!deploy", "!deploy \"unbalanced"} {
		f.Add(s, "!deploy")
	}
	f.Add("!dép x", "!dép")
	f.Fuzz(func(t *testing.T, content, prefix string) {
		text, ok := commandText(content, prefix, botUser)
		if !ok {
			return
		}
		if strings.TrimSpace(text) == "" {
			t.Fatalf("commandText(%q, %q) accepted an empty command", content, prefix)
		}
		if text != "help" && utf8.ValidString(content) && !strings.Contains(content, text) {
			t.Fatalf("command %q is not part of the message %q", text, content)
		}
		// The whole gateway path must not panic either.
		a := &Adapter{prefix: prefix, guilds: []string{guildID}, botUserID: botUser}
		a.messageRequest(&discordgo.Message{ID: "1", GuildID: guildID, ChannelID: "2", Content: content, Author: &discordgo.User{ID: "3"}})
	})
}
