package discord

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
)

func TestCustomID(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		action bot.ActionKind
		req    string
		ask    bool
		ok     bool
	}{
		{"approve", "deploybot/approve/abc123", bot.ActionApprove, "abc123", false, true},
		{"deny asks first", "deploybot/deny?/abc123", bot.ActionDeny, "abc123", true, true},
		{"confirm", "deploybot/confirm/x1", bot.ActionConfirm, "x1", false, true},
		{"cancel", "deploybot/cancel/x1", bot.ActionCancel, "x1", false, true},
		{"import", "deploybot/import/prod+packit-service", bot.ActionImport, "prod+packit-service", false, true},
		{"import of an env", "deploybot/import/stg", bot.ActionImport, "stg", false, true},
		{"import of text", "deploybot/import/prod now", "", "", false, false},
		{"import of nothing", "deploybot/import/prod++web", "", "", false, false},
		{"unknown action", "deploybot/execute/abc123", "", "", false, false},
		{"another app's button", "other/approve/abc123", "", "", false, false},
		{"no request", "deploybot/approve/", "", "", false, false},
		{"text in the request ID", "deploybot/approve/abc def", "", "", false, false},
		{"markdown in the request ID", "deploybot/approve/**x**", "", "", false, false},
		{"too many parts", "deploybot/approve/a/b", "", "", false, false},
		{"empty", "", "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			action, req, ask, ok := parseCustomID(tt.id)
			if action != tt.action || req != tt.req || ask != tt.ask || ok != tt.ok {
				t.Errorf("parseCustomID(%q) = %q %q %v %v, want %q %q %v %v", tt.id, action, req, ask, ok, tt.action, tt.req, tt.ask, tt.ok)
			}
			if ok {
				if back := customID(action, req, ask); back != tt.id {
					t.Errorf("customID round trip = %q, want %q", back, tt.id)
				}
			}
		})
	}
}

func TestInterpret(t *testing.T) {
	withMember := func(i *discordgo.Interaction) *discordgo.Interaction {
		i.ID, i.GuildID, i.ChannelID = "i1", guildID, channelID
		i.Member = &discordgo.Member{User: &discordgo.User{ID: aliceID, Username: "alice"}, Roles: []string{adminRole}}
		return i
	}
	command := func(name string, opts ...*discordgo.ApplicationCommandInteractionDataOption) discordgo.InteractionData {
		return discordgo.ApplicationCommandInteractionData{Name: name, Options: opts}
	}
	opt := func(v any) *discordgo.ApplicationCommandInteractionDataOption {
		return &discordgo.ApplicationCommandInteractionDataOption{Name: commandOption, Type: discordgo.ApplicationCommandOptionString, Value: v}
	}
	button := func(id string) discordgo.InteractionData {
		return discordgo.MessageComponentInteractionData{CustomID: id, ComponentType: discordgo.ButtonComponent}
	}
	tests := []struct {
		name   string
		i      *discordgo.Interaction
		kind   inboundKind
		text   string
		action *bot.Action
		ask    bool
	}{
		{"ping", &discordgo.Interaction{Type: discordgo.InteractionPing}, inPing, "", nil, false},
		{"slash command", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName, opt(" status prod "))}), inCommand, "status prod", nil, false},
		{"a user mention is plain text", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName, opt("deny <@201> wrong person"))}), inCommand, "deny @201 wrong person", nil, false},
		{"a nickname mention", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName, opt("deny #abc ask <@!201>"))}), inCommand, "deny #abc ask @201", nil, false},
		{"a mention resolved by Discord", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: discordgo.ApplicationCommandInteractionData{
			Name: CommandName, Options: []*discordgo.ApplicationCommandInteractionDataOption{opt("deny <@201> <@&301> <#500>")},
			Resolved: &discordgo.ApplicationCommandInteractionDataResolved{
				Users:    map[string]*discordgo.User{"201": {ID: "201", Username: "carol"}},
				Roles:    map[string]*discordgo.Role{"301": {ID: "301", Name: "ops"}},
				Channels: map[string]*discordgo.Channel{"500": {ID: "500", Name: "deploy"}},
			}}}), inCommand, "deny @carol @ops #deploy", nil, false},
		{"role, channel and emoji", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName, opt("deny #abc <@&301> in <#500> <:party:77> <a:wave:78>"))}), inCommand, "deny #abc @&301 in #500 :party: :wave:", nil, false},
		{"a < before a mention", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName, opt("deny #abc a <b <@201> <t:1:R>"))}), inCommand, "deny #abc a <b @201 <t:1:R>", nil, false},
		{"slash command without text asks for help", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName)}), inCommand, "help", nil, false},
		{"an option that is not a string", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName, opt(42.0))}), inCommand, "help", nil, false},
		{"another command", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command("rollout", opt("x"))}), inRefused, "", nil, false},
		{"autocomplete", withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommandAutocomplete, Data: command(CommandName, opt("imp"))}), inAutocomplete, "", nil, false},
		{"button", withMember(&discordgo.Interaction{Type: discordgo.InteractionMessageComponent, Data: button("deploybot/approve/abc")}), inButton, "", &bot.Action{Kind: bot.ActionApprove, RequestID: "abc"}, false},
		{"button that asks first", withMember(&discordgo.Interaction{Type: discordgo.InteractionMessageComponent, Data: button("deploybot/deny?/abc")}), inButton, "", &bot.Action{Kind: bot.ActionDeny, RequestID: "abc"}, true},
		{"foreign button", withMember(&discordgo.Interaction{Type: discordgo.InteractionMessageComponent, Data: button("poll/yes")}), inRefused, "", nil, false},
		{"component without data", withMember(&discordgo.Interaction{Type: discordgo.InteractionMessageComponent}), inRefused, "", nil, false},
		{"modal", withMember(&discordgo.Interaction{Type: discordgo.InteractionModalSubmit, Data: discordgo.ModalSubmitInteractionData{CustomID: "x"}}), inRefused, "", nil, false},
		{"direct message", &discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, User: &discordgo.User{ID: aliceID}, Data: command(CommandName, opt("status"))}, inRefused, "", nil, false},
		{"another guild", func() *discordgo.Interaction {
			i := withMember(&discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, Data: command(CommandName, opt("status"))})
			i.GuildID = "101"
			return i
		}(), inRefused, "", nil, false},
		{"nobody", &discordgo.Interaction{Type: discordgo.InteractionApplicationCommand, GuildID: guildID, Data: command(CommandName, opt("status"))}, inRefused, "", nil, false},
	}
	a := newTestAdapter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := a.interpret(tt.i)
			if in.kind != tt.kind {
				t.Fatalf("kind = %d (%s), want %d", in.kind, in.reason, tt.kind)
			}
			if in.kind == inRefused && in.reason == "" {
				t.Error("refused without a reason")
			}
			if in.kind != inCommand && in.kind != inButton {
				return
			}
			if in.req.Text != tt.text || in.ask != tt.ask || (tt.action == nil) != (in.req.Action == nil) || (tt.action != nil && *in.req.Action != *tt.action) {
				t.Errorf("request = %+v ask %v, want text %q action %+v ask %v", in.req, in.ask, tt.text, tt.action, tt.ask)
			}
			if in.req.User.ID != guildID+"/"+aliceID || !slices.Equal(in.req.User.Groups, []string{adminRole}) || in.req.DedupeKey != "interaction/i1" || in.req.Channel != channelID {
				t.Errorf("request identity = %+v channel %q dedupe %q", in.req.User, in.req.Channel, in.req.DedupeKey)
			}
		})
	}
}

// TestInteractionsEndpointVerifies sends the endpoint a valid interaction
// and every kind of bad one: only the valid one reaches the bot.
func TestInteractionsEndpointVerifies(t *testing.T) {
	good, other := newSigner(t), newSigner(t)
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	h := &recordingHandler{}
	a, err := New(h, WithPublicKey(good.pub), WithGuilds(guildID), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := srv.URL + "/discord/interactions"

	body, err := json.Marshal(slash(alice, "status prod"))
	if err != nil {
		t.Fatal(err)
	}
	huge := append(bytes.Clone(body[:len(body)-1]), []byte(`,"padding":"`+strings.Repeat("x", MaxBodyBytes)+`"}`)...)
	tests := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"valid", func() *http.Request { return good.request(t, url, body, now) }, http.StatusOK},
		{"wrong key", func() *http.Request { return other.request(t, url, body, now) }, http.StatusUnauthorized},
		{"tampered body", func() *http.Request {
			r := good.request(t, url, body, now)
			tampered := bytes.Replace(body, []byte("status prod"), []byte("import prod"), 1)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(tampered)), int64(len(tampered))
			return r
		}, http.StatusUnauthorized},
		{"stale timestamp", func() *http.Request { return good.request(t, url, body, now.Add(-TimestampWindow-time.Second)) }, http.StatusUnauthorized},
		{"timestamp from the future", func() *http.Request { return good.request(t, url, body, now.Add(TimestampWindow+time.Second)) }, http.StatusUnauthorized},
		{"timestamp swapped after signing", func() *http.Request {
			r := good.request(t, url, body, now.Add(-time.Hour))
			r.Header.Set("X-Signature-Timestamp", strconv.FormatInt(now.Unix(), 10))
			return r
		}, http.StatusUnauthorized},
		{"no signature", func() *http.Request {
			r := good.request(t, url, body, now)
			r.Header.Del("X-Signature-Ed25519")
			return r
		}, http.StatusUnauthorized},
		{"no timestamp", func() *http.Request {
			r := good.request(t, url, body, now)
			r.Header.Del("X-Signature-Timestamp")
			return r
		}, http.StatusUnauthorized},
		{"timestamp not a number", func() *http.Request {
			r := good.request(t, url, body, now)
			r.Header.Set("X-Signature-Timestamp", "yesterday")
			return r
		}, http.StatusUnauthorized},
		{"signature not hex", func() *http.Request {
			r := good.request(t, url, body, now)
			r.Header.Set("X-Signature-Ed25519", "zz")
			return r
		}, http.StatusUnauthorized},
		{"oversized body, validly signed", func() *http.Request { return good.request(t, url, huge, now) }, http.StatusRequestEntityTooLarge},
		{"GET", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, url, nil)
			return r
		}, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := http.DefaultClient.Do(tt.req())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Fatalf("status = %s (%s), want %d", res.Status, b, tt.want)
			}
			if tt.want == http.StatusOK {
				r := decodeResponse(t, b)
				if m := responseMessage(t, r); r.Type != discordgo.InteractionResponseChannelMessageWithSource || !strings.Contains(m.text(), "handled status prod") {
					t.Errorf("response = %s, want the bot's reply inline", b)
				}
			}
		})
	}
	if got := h.requests(); len(got) != 1 || got[0].Text != "status prod" || got[0].User.ID != guildID+"/"+aliceID {
		t.Errorf("the bot got %+v, want exactly the valid request", got)
	}
}

func TestPingIsAnsweredWithPong(t *testing.T) {
	s := newSigner(t)
	h := &recordingHandler{}
	a, err := New(h, WithPublicKey(s.pub))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, s.request(t, "/discord/interactions", []byte(`{"id":"1","application_id":"900","type":1,"token":"t","version":1}`), time.Now()))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"type":1}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("PING answered %d %q (%s), want 200 {\"type\":1} as JSON", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"))
	}
	if len(h.requests()) != 0 {
		t.Errorf("a PING reached the bot: %+v", h.requests())
	}
}

func TestNoEndpointWithoutPublicKey(t *testing.T) {
	a := newTestAdapter(t)
	mux := http.NewServeMux()
	a.Routes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/discord/interactions", strings.NewReader("{}")))
	if rec.Code != http.StatusNotFound {
		t.Errorf("without a public key POST /discord/interactions = %d, want 404", rec.Code)
	}
}

func TestAutocomplete(t *testing.T) {
	words := []string{"stg", "prod", "packit-service", "service", "packit-worker", "worker"}
	tests := []struct {
		name, typed string
		want        []string
	}{
		{"first word completes commands", "imp", []string{"import"}},
		{"h is help, history, hold and holds", "h", []string{"help", "history", "hold", "holds"}},
		{"after the command, envs and services", "import p", []string{"import prod", "import packit-service", "import packit-worker"}},
		{"after a space, every word", "status ", []string{"status stg", "status prod", "status packit-service", "status service", "status packit-worker", "status worker"}},
		{"case-insensitive", "import PR", []string{"import prod"}},
		{"nothing matches", "import zzz", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range complete(tt.typed, words) {
				if c.Name != c.Value {
					t.Errorf("choice name %q differs from value %v", c.Name, c.Value)
				}
				got = append(got, c.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("complete(%q) = %q, want %q", tt.typed, got, tt.want)
			}
		})
	}
	if n := len(complete("", words)); n == 0 || n > 25 {
		t.Errorf("complete(\"\") offers %d choices, want the commands, at most 25", n)
	}
}

func TestAutocompleteInteraction(t *testing.T) {
	w := newWorld(t, WithBotToken("t"), WithAppID(appID))
	i := slash(alice, "import pro")
	i.Type = discordgo.InteractionApplicationCommandAutocomplete
	resp := w.viaHTTP(i)
	var data struct {
		Choices []discordgo.ApplicationCommandOptionChoice `json:"choices"`
	}
	if err := json.Unmarshal(resp.Data, &data); err != nil {
		t.Fatal(err)
	}
	if resp.Type != discordgo.InteractionApplicationCommandAutocompleteResult || len(data.Choices) != 1 || data.Choices[0].Value != "import prod" {
		t.Errorf("autocomplete answered %d %+v, want the one choice \"import prod\"", resp.Type, data.Choices)
	}
}

// FuzzInteraction: decoding any body the endpoint could be sent (after a
// valid signature) and interpreting it never panics, and a request it
// produces has a user and either a command or a valid button.
func FuzzInteraction(f *testing.F) {
	seeds := []string{
		`{"id":"1","type":1}`,
		`{"id":"2","type":2,"guild_id":"100","channel_id":"500","member":{"user":{"id":"201"},"roles":["301"]},"data":{"name":"deploy","options":[{"name":"command","type":3,"value":"status prod"}]}}`,
		`{"id":"3","type":3,"guild_id":"100","member":{"user":{"id":"201"}},"data":{"custom_id":"deploybot/deny?/abc","component_type":2},"message":{"id":"9","flags":64,"interaction_metadata":{"id":"8"}}}`,
		`{"id":"4","type":4,"guild_id":"100","member":{"user":{"id":"201"}},"data":{"name":"deploy","options":[{"name":"command","type":3,"value":"imp","focused":true}]}}`,
		`{"id":"5","type":5,"guild_id":"100","member":{"user":{"id":"201"}},"data":{"custom_id":"x","components":[{"type":1,"components":[{"type":4,"custom_id":"a","value":"b"}]}]}}`,
		`{"type":2,"data":null}`,
		`{"type":3,"data":{"custom_id":7}}`,
		`{"type":2,"guild_id":"100","user":{"id":"1"},"data":{"name":"deploy","options":[null,{"name":"command","value":{"a":1}}]}}`,
		`{"type":3,"member":{},"data":{"component_type":99}}`,
		`[]`, `null`, ``,
		`{"id":"6","type":2,"guild_id":"100","member":{"user":{"id":"201"}},"data":{"name":"deploy","options":[{"name":"command","type":3,"value":"deny <@201> <@!7> <@&8> <#9> <:e:1> <a:f:2> </deploy:3> <t:1:R> <@> <"}]}}`,
		`{"id":"7","type":2,"guild_id":"100","member":{"user":{"id":"201"}},"data":{"name":"deploy","options":[{"name":"command","type":3,"value":"<@201>"}],"resolved":{"users":{"201":{"id":"201","username":""}},"roles":{"8":null}}}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	a := &Adapter{guilds: []string{guildID}, words: []string{"prod", "stg", "worker"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		var i discordgo.Interaction
		if err := json.Unmarshal(body, &i); err != nil {
			return
		}
		in := a.interpret(&i)
		switch in.kind {
		case inCommand:
			if in.req.User.ID == "" || strings.TrimSpace(in.req.Text) == "" {
				t.Fatalf("command request without user or text: %+v", in.req)
			}
		case inButton:
			if in.req.User.ID == "" || in.req.Action == nil {
				t.Fatalf("button request without user or action: %+v", in.req)
			}
			if _, _, offer := bot.ParseImportOffer(in.req.Action.RequestID); !validRequestID(in.req.Action.RequestID) && !(in.req.Action.Kind == bot.ActionImport && offer) {
				t.Fatalf("button request without user or valid action: %+v", in.req)
			}
		case inAutocomplete:
			for _, c := range complete(in.typed, a.words) {
				if textLen(c.Name) > 100 {
					t.Fatalf("choice %q is longer than Discord allows", c.Name)
				}
			}
		case inRefused:
			if in.reason == "" {
				t.Fatal("refused without a reason")
			}
		}
		if i.Type == discordgo.InteractionMessageComponent {
			askFirst(&i, &bot.Action{Kind: bot.ActionDeny, RequestID: "abc"})
			originInteraction(i.Message)
		}
	})
}
