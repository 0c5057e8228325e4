package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/store"
)

// The Discord IDs of the test guild, its channel, the app and the people.
const (
	guildID   = "100"
	channelID = "500"
	appID     = "900"
	botUser   = "999"
	aliceID   = "201"
	bobID     = "202"
	carolID   = "203"
	// adminRole is a guild role mapped to the packit-admins group.
	adminRole = "301"
)

var (
	alice = &discordgo.Member{User: &discordgo.User{ID: aliceID, Username: "alice"}}
	bob   = &discordgo.Member{User: &discordgo.User{ID: bobID, Username: "bob"}, Roles: []string{adminRole}}
	carol = &discordgo.Member{User: &discordgo.User{ID: carolID, Username: "carol"}}
)

// testConfig is examples/packit.yaml with the people mapped from Discord:
// alice by GUILD/USER, bob by his bare user ID plus a role, carol by
// GUILD/USER.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatalf("parsing examples/packit.yaml: %v", err)
	}
	cfg.Identities.Users = append(cfg.Identities.Users,
		config.UserMapping{Platform: Name, ID: guildID + "/" + aliceID, User: "alice", Groups: []string{"packit-devs"}},
		config.UserMapping{Platform: Name, ID: bobID, User: "bob"},
		config.UserMapping{Platform: Name, ID: guildID + "/" + carolID, User: "carol", Groups: []string{"packit-viewers"}},
	)
	cfg.Identities.Groups = append(cfg.Identities.Groups, config.GroupMapping{Platform: Name, ID: adminRole, Groups: []string{"packit-admins"}})
	cfg.Discord = &config.Discord{Guilds: []string{guildID}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

// world is the whole bot on the demo cluster with the Discord adapter, its
// REST calls going to a fake Discord.
type world struct {
	t       testing.TB
	cfg     *config.Config
	set     *cluster.Set
	store   store.Store
	bot     *bot.Bot
	adapter *Adapter
	discord *fakeDiscord
	signer  signer
	http    *httptest.Server
}

func newWorld(t testing.TB, opts ...Option) *world {
	t.Helper()
	w := &world{t: t, cfg: testConfig(t), discord: newFakeDiscord(t), signer: newSigner(t)}
	d, err := demo.New(w.cfg, demo.WithTick(5*time.Millisecond))
	if err != nil {
		t.Fatalf("building the demo cluster: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatalf("starting the demo cluster: %v", err)
	}
	t.Cleanup(func() { cancel(); d.Stop() })
	envs := d.EnvClients()
	kube := map[string]kubeclient.Interface{}
	for name, ec := range envs {
		kube[name] = ec.Kube
	}
	w.set = cluster.NewSet(envs)
	w.store = store.NewMemory()
	quiet := slog.New(slog.DiscardHandler)
	w.bot = bot.New(w.cfg, w.set, access.NewChecker(kube), w.store, w.set, bot.WithLogger(quiet), bot.WithRolloutDeadline(20*time.Second))
	t.Cleanup(w.bot.Close)
	base := []Option{
		WithGuilds(guildID), WithAPIURL(w.discord.apiURL()), WithEditInterval(10 * time.Millisecond),
		WithLogger(quiet), WithPublicKey(w.signer.pub), WithCompletions(append(w.cfg.EnvNames(), w.cfg.ServiceWords()...)...),
	}
	w.adapter, err = New(w.bot, append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.bot.AddPlatform(w.adapter)
	mux := http.NewServeMux()
	w.adapter.Routes(mux)
	w.http = httptest.NewServer(mux)
	t.Cleanup(w.http.Close)
	return w
}

// viaGateway delivers an interaction as the gateway does and returns the
// initial response the adapter sent over REST.
func (w *world) viaGateway(i *discordgo.Interaction) response {
	w.t.Helper()
	w.adapter.onInteraction(nil, &discordgo.InteractionCreate{Interaction: i})
	return w.discord.callback(i.ID)
}

// viaHTTP POSTs an interaction, signed, to /discord/interactions and returns
// the response.
func (w *world) viaHTTP(i *discordgo.Interaction) response {
	w.t.Helper()
	body, err := json.Marshal(i)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(w.signer.request(w.t, w.http.URL+"/discord/interactions", body, time.Now()))
	if err != nil {
		w.t.Fatalf("POST /discord/interactions: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		w.t.Fatalf("POST /discord/interactions: %s %s", res.Status, b)
	}
	return decodeResponse(w.t, b)
}

func (w *world) request(id string) *store.Request {
	w.t.Helper()
	r, err := w.store.Get(context.Background(), id)
	if err != nil {
		w.t.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

// interactionSeq numbers interactions; Discord's IDs are unique, and the bot
// drops a repeated one as a redelivery.
var interactionSeq atomic.Int64

// slash is /deploy command:TEXT by m.
func slash(m *discordgo.Member, text string) *discordgo.Interaction {
	id := fmt.Sprintf("slash-%d", interactionSeq.Add(1))
	return &discordgo.Interaction{
		ID: id, AppID: appID, Token: "tok-" + id, Type: discordgo.InteractionApplicationCommand,
		GuildID: guildID, ChannelID: channelID, Member: m,
		Data: discordgo.ApplicationCommandInteractionData{Name: CommandName, Options: []*discordgo.ApplicationCommandInteractionDataOption{
			{Name: commandOption, Type: discordgo.ApplicationCommandOptionString, Value: text},
		}},
	}
}

// click is m pressing the button customID on msg.
func click(m *discordgo.Member, msg *discordgo.Message, customID string) *discordgo.Interaction {
	id := fmt.Sprintf("click-%d", interactionSeq.Add(1))
	return &discordgo.Interaction{
		ID: id, AppID: appID, Token: "tok-" + id, Type: discordgo.InteractionMessageComponent,
		GuildID: guildID, ChannelID: channelID, Member: m, Message: msg,
		Data: discordgo.MessageComponentInteractionData{CustomID: customID, ComponentType: discordgo.ButtonComponent},
	}
}

// messageFrom is m writing content in the channel.
func messageFrom(m *discordgo.Member, id, content string) *discordgo.MessageCreate {
	return &discordgo.MessageCreate{Message: &discordgo.Message{
		ID: id, ChannelID: channelID, GuildID: guildID, Content: content, Author: m.User,
		Member: &discordgo.Member{Roles: m.Roles},
	}}
}

func requestIDOf(t testing.TB, ids []string) string {
	t.Helper()
	for _, id := range ids {
		if _, rid, _, ok := parseCustomID(id); ok {
			return rid
		}
	}
	t.Fatalf("no deploybot button among %q", ids)
	return ""
}

// TestImportProdFlow drives the main job through Discord three ways: a
// message and a slash command over the gateway with a bot token, and HTTP
// interactions without one. alice requests `import prod`, confirms through
// the second step, may not approve herself, carol may not approve, bob
// approves; the request message Discord shows ends "succeeded" without
// buttons and the prod tags are on the new digests.
func TestImportProdFlow(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		// open requests `import prod` as alice and returns the request ID and
		// the request message as Discord has it (for clicks on it).
		open func(w *world) (string, *discordgo.Message)
		// interact delivers an interaction and returns its initial response.
		interact func(w *world, i *discordgo.Interaction) response
		// edits are the calls that edit the request message, oldest first.
		edits func(w *world, msg *discordgo.Message) []apiCall
	}{
		{
			name: "message over the gateway",
			opts: []Option{WithBotToken("test-token"), WithAppID(appID)},
			open: func(w *world) (string, *discordgo.Message) {
				w.adapter.onMessage(nil, messageFrom(alice, "m1", "!deploy import prod"))
				post := w.discord.waitFor("POST", "/api/v9/channels/"+channelID+"/messages", func(apiCall) bool { return true })
				m := decodeMessage(w.t, post.Body)
				id := requestIDOf(w.t, m.customIDs())
				return id, &discordgo.Message{ID: w.request(id).Messages[0].ID, ChannelID: channelID, Embeds: m.Embeds}
			},
			interact: (*world).viaGateway,
			edits: func(w *world, msg *discordgo.Message) []apiCall {
				return w.discord.matching("PATCH", "/api/v9/channels/"+channelID+"/messages/"+msg.ID)
			},
		},
		{
			name: "slash command over the gateway",
			opts: []Option{WithBotToken("test-token"), WithAppID(appID)},
			open: func(w *world) (string, *discordgo.Message) {
				resp := w.viaGateway(slash(alice, "import prod"))
				got := responseMessage(w.t, resp)
				if resp.Type != discordgo.InteractionResponseChannelMessageWithSource || got.Flags != int(discordgo.MessageFlagsEphemeral) || !strings.Contains(got.Content, "Opened request #") {
					w.t.Fatalf("slash command answer = type %d %+v, want an ephemeral pointer to the request", resp.Type, got)
				}
				post := w.discord.waitFor("POST", "/api/v9/channels/"+channelID+"/messages", func(apiCall) bool { return true })
				m := decodeMessage(w.t, post.Body)
				id := requestIDOf(w.t, m.customIDs())
				return id, &discordgo.Message{ID: w.request(id).Messages[0].ID, ChannelID: channelID, Embeds: m.Embeds}
			},
			interact: (*world).viaGateway,
			edits: func(w *world, msg *discordgo.Message) []apiCall {
				return w.discord.matching("PATCH", "/api/v9/channels/"+channelID+"/messages/"+msg.ID)
			},
		},
		{
			name: "HTTP interactions without a bot token",
			opts: []Option{WithAppID(appID)},
			open: func(w *world) (string, *discordgo.Message) {
				i := slash(alice, "import prod")
				resp := w.viaHTTP(i)
				got := responseMessage(w.t, resp)
				if resp.Type != discordgo.InteractionResponseChannelMessageWithSource || got.Flags != 0 {
					w.t.Fatalf("slash command answer = type %d flags %d, want the public request message", resp.Type, got.Flags)
				}
				id := requestIDOf(w.t, got.customIDs())
				// Discord gives the response message an ID and remembers which
				// interaction it answered.
				return id, &discordgo.Message{ID: "7001", ChannelID: channelID, Embeds: got.Embeds,
					InteractionMetadata: &discordgo.MessageInteractionMetadata{ID: i.ID}}
			},
			interact: (*world).viaHTTP,
			edits: func(w *world, _ *discordgo.Message) []apiCall {
				var out []apiCall
				for _, c := range w.discord.matching("PATCH", "/api/v9/webhooks/"+appID+"/") {
					if strings.HasSuffix(c.Path, "/messages/@original") {
						out = append(out, c)
					}
				}
				return out
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.opts...)
			id, msg := tt.open(w)
			r := w.request(id)
			if r.State != store.AwaitingConfirm || r.Requester.User != "alice" || r.Requester.ChatID != guildID+"/"+aliceID {
				t.Fatalf("request = %s by %+v, want AwaitingConfirm by alice (%s/%s)", r.State, r.Requester, guildID, aliceID)
			}
			want := map[string]string{}
			for _, tg := range r.Plan.Targets {
				want[tg.Service] = tg.To.Digest
			}
			if len(want) != 5 {
				t.Fatalf("plan has %d targets, want the 5 prod services", len(want))
			}

			// Confirm asks first: an ephemeral question with the real button.
			ask := tt.interact(w, click(alice, msg, customID(bot.ActionConfirm, id, true)))
			q := responseMessage(t, ask)
			if ask.Type != discordgo.InteractionResponseChannelMessageWithSource || q.Flags != int(discordgo.MessageFlagsEphemeral) ||
				!strings.HasPrefix(q.Content, "Really confirm #"+id+"?") || len(q.customIDs()) != 1 || q.customIDs()[0] != customID(bot.ActionConfirm, id, false) {
				t.Fatalf("Confirm answered type %d %+v, want an ephemeral \"Really confirm #%s?\" with the confirming button", ask.Type, q, id)
			}
			if got := w.request(id).State; got != store.AwaitingConfirm {
				t.Fatalf("the first Confirm click changed the request to %s", got)
			}
			prompt := &discordgo.Message{ID: "eph-1", ChannelID: channelID, Flags: discordgo.MessageFlagsEphemeral,
				InteractionMetadata: &discordgo.MessageInteractionMetadata{ID: "first-click"}}
			done := tt.interact(w, click(alice, prompt, q.customIDs()[0]))
			if got := responseMessage(t, done); done.Type != discordgo.InteractionResponseUpdateMessage || got.Content != "Confirmed #"+id+"." {
				t.Fatalf("second step answered type %d %q, want the question replaced by \"Confirmed #%s.\"", done.Type, got.Content, id)
			}
			if got := w.request(id).State; got != store.AwaitingApproval {
				t.Fatalf("state after confirming = %s, want AwaitingApproval", got)
			}
			// The request message now waits for approval, with Approve and Deny.
			waitEdit(t, w, tt.edits, msg, func(m sentMessage) bool {
				ids := m.customIDs()
				return strings.Contains(m.text(), "waiting for approval") && len(ids) == 2 &&
					ids[0] == customID(bot.ActionApprove, id, false) && ids[1] == customID(bot.ActionDeny, id, true)
			})

			// Refusals are ephemeral and change nothing.
			for _, who := range []*discordgo.Member{alice, carol} {
				no := tt.interact(w, click(who, msg, customID(bot.ActionApprove, id, false)))
				got := responseMessage(t, no)
				if no.Type != discordgo.InteractionResponseChannelMessageWithSource || got.Flags != int(discordgo.MessageFlagsEphemeral) || got.text() == "" {
					t.Errorf("%s's Approve answered type %d %+v, want an ephemeral refusal", who.User.Username, no.Type, got)
				}
			}
			if r := w.request(id); r.State != store.AwaitingApproval || len(r.Approvals) != 0 {
				t.Fatalf("after refused approvals: %s with %d approvals", r.State, len(r.Approvals))
			}

			// bob approves: the click's answer is the updated request message.
			yes := tt.interact(w, click(bob, msg, customID(bot.ActionApprove, id, false)))
			if got := responseMessage(t, yes); yes.Type != discordgo.InteractionResponseUpdateMessage || !strings.Contains(got.text(), "#"+id) || len(got.customIDs()) != 0 {
				t.Fatalf("bob's Approve answered type %d %q, want the request message updated in place without buttons", yes.Type, got.text())
			}
			w.bot.Wait()
			flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w.adapter.Flush(flushCtx)

			r = w.request(id)
			if r.State != store.Succeeded {
				t.Fatalf("state = %s (%s), want Succeeded", r.State, r.Reason)
			}
			if len(r.Approvals) != 1 || r.Approvals[0].By.User != "bob" || r.Approvals[0].By.ChatID != guildID+"/"+bobID {
				t.Errorf("approvals = %+v, want bob's", r.Approvals)
			}
			for svc, digest := range want {
				e, _ := w.cfg.Env("prod")
				s, _ := w.cfg.Service(svc)
				ts, err := w.set.Tag(context.Background(), "prod", s.ImageStream, e.Tag)
				if err != nil {
					t.Fatal(err)
				}
				if ts.Current.Digest != digest {
					t.Errorf("%s:prod current = %s, want %s", svc, ts.Current.Digest, digest)
				}
			}
			edits := tt.edits(w, msg)
			if len(edits) == 0 {
				t.Fatal("the request message was never edited")
			}
			final := decodeMessage(t, edits[len(edits)-1].Body)
			for _, s := range []string{"#" + id + " import prod: succeeded", "7/7 workloads settled", "approved by bob"} {
				if !strings.Contains(final.text(), s) {
					t.Errorf("the last edit lacks %q:\n%s", s, final.text())
				}
			}
			if len(final.customIDs()) != 0 || final.Components == nil {
				t.Errorf("the last edit has components %+v, want an explicit empty list (buttons removed)", final.Components)
			}
			if len(edits) > 1 && strings.Contains(decodeMessage(t, edits[len(edits)-2].Body).text(), "succeeded") {
				// Not wrong, but every edit should carry news.
				t.Logf("the final state was sent twice")
			}
		})
	}
}

// waitEdit waits until an edit of the request message matches ok.
func waitEdit(t *testing.T, w *world, edits func(*world, *discordgo.Message) []apiCall, msg *discordgo.Message, ok func(sentMessage) bool) {
	t.Helper()
	poll.Until(t, 20*time.Second, "an edit of the request message to match", func() (bool, string) {
		for _, c := range edits(w, msg) {
			if ok(decodeMessage(t, c.Body)) {
				return true, ""
			}
		}
		return false, "calls:\n" + w.discord.dump()
	})
}

// TestUnmappedClicks: a guild member with no Kubernetes identity who
// presses Confirm, Cancel, Approve or Deny gets the same "not mapped" reply
// as their typed command, and the request does not move.
func TestUnmappedClicks(t *testing.T) {
	dave := &discordgo.Member{User: &discordgo.User{ID: "204", Username: "dave"}}
	w := newWorld(t, WithAppID(appID))
	want := config.NotMapped(Name, guildID+"/204")

	typed := responseMessage(t, w.viaHTTP(slash(dave, "import prod")))
	if !strings.Contains(typed.text(), want) || typed.Flags != int(discordgo.MessageFlagsEphemeral) {
		t.Fatalf("dave's typed command got %+v, want the ephemeral %q", typed, want)
	}
	i := slash(alice, "import prod")
	got := responseMessage(t, w.viaHTTP(i))
	id := requestIDOf(t, got.customIDs())
	msg := &discordgo.Message{ID: "7001", ChannelID: channelID, Embeds: got.Embeds,
		InteractionMetadata: &discordgo.MessageInteractionMetadata{ID: i.ID}}

	press := func(kind bot.ActionKind, state store.State) {
		t.Helper()
		resp := w.viaHTTP(click(dave, msg, customID(kind, id, false)))
		m := responseMessage(t, resp)
		if m.text() != typed.text() || m.Flags != int(discordgo.MessageFlagsEphemeral) {
			t.Errorf("dave's %s answered %q (flags %d), want the typed command's ephemeral %q", kind, m.text(), m.Flags, typed.text())
		}
		if r := w.request(id); r.State != state || len(r.Approvals) != 0 {
			t.Fatalf("after dave's %s the request is %s with %d approvals, want %s with none", kind, r.State, len(r.Approvals), state)
		}
	}
	press(bot.ActionConfirm, store.AwaitingConfirm)
	press(bot.ActionCancel, store.AwaitingConfirm)
	w.viaHTTP(click(alice, msg, customID(bot.ActionConfirm, id, false)))
	poll.Until(t, 10*time.Second, "alice's confirm", func() (bool, string) {
		st := w.request(id).State
		return st == store.AwaitingApproval, string(st)
	})
	press(bot.ActionApprove, store.AwaitingApproval)
	press(bot.ActionDeny, store.AwaitingApproval)
}

// TestImportButton: the Import button of a registry push's heads-up opens
// the import it names for whoever clicks, as a new request message in the
// channel (heads-ups are posted with the bot token, so there is one); a
// button naming a service the config no longer has changes nothing and
// says why.
func TestImportButton(t *testing.T) {
	w := newWorld(t, WithBotToken("test-token"), WithAppID(appID))
	headsUp := &discordgo.Message{ID: "8001", ChannelID: channelID}

	gone := responseMessage(t, w.viaHTTP(click(alice, headsUp, customID(bot.ActionImport, "prod+packit-gone", false))))
	if !strings.Contains(gone.text(), "`import prod packit-gone`, which this deploybot does not know now") || gone.Flags != int(discordgo.MessageFlagsEphemeral) {
		t.Fatalf("Import of a gone service answered %q (flags %d)", gone.text(), gone.Flags)
	}
	if rs, _ := w.store.List(context.Background(), store.ListOptions{}); len(rs) != 0 {
		t.Fatalf("a refused Import click left %d requests", len(rs))
	}

	w.viaHTTP(click(alice, headsUp, customID(bot.ActionImport, "prod+packit-worker", false)))
	post := w.discord.waitFor("POST", "/api/v9/channels/"+channelID+"/messages", func(apiCall) bool { return true })
	m := decodeMessage(t, post.Body)
	id := requestIDOf(t, m.customIDs())
	if r := w.request(id); r.Command != "import prod packit-worker" || r.State != store.AwaitingConfirm || r.Requester.Name != "alice" {
		t.Fatalf("the Import click opened %q (%s) for %s, want alice's import prod packit-worker awaiting confirmation", r.Command, r.State, r.Requester.Name)
	}
	if ids := m.customIDs(); len(ids) != 2 || ids[0] != customID(bot.ActionConfirm, id, true) {
		t.Errorf("the request message's buttons = %q, want Confirm (asking first, prod is protected) and Cancel", ids)
	}
	if edits := w.discord.matching("PATCH", "/api/v9/channels/"+channelID+"/messages/8001"); len(edits) != 0 {
		t.Errorf("the heads-up was edited: %d PATCHes", len(edits))
	}
}
