package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
)

// CommandName is the application command deploybot registers.
const CommandName = "deploy"

// commandOption is /deploy's one option: the command text, so the grammar is
// the same as in messages and on every other platform.
const commandOption = "command"

// customIDPrefix starts the custom_id of every deploybot button.
const customIDPrefix = "deploybot"

// interactionRef starts the ID of a request message that is an interaction's
// response rather than a channel message: "interaction/<interaction ID>".
const interactionRef = "interaction/"

// customID is a button's custom_id: "deploybot/ACTION/ID", or
// "deploybot/ACTION?/ID" for a button that asks "Really …?" first. ID is a
// request ID, or for Import the env and services it offers (bot/offer.go);
// nothing else: a Plan stays server-side.
func customID(action bot.ActionKind, requestID string, ask bool) string {
	a := string(action)
	if ask {
		a += "?"
	}
	return customIDPrefix + "/" + a + "/" + requestID
}

// parseCustomID reads a deploybot button's custom_id.
func parseCustomID(s string) (action bot.ActionKind, requestID string, ask, ok bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] != customIDPrefix {
		return "", "", false, false
	}
	name, ask := strings.CutSuffix(parts[1], "?")
	switch action = bot.ActionKind(name); action {
	case bot.ActionConfirm, bot.ActionCancel, bot.ActionApprove, bot.ActionDeny, bot.ActionSkip:
		if !validRequestID(parts[2]) {
			return "", "", false, false
		}
	case bot.ActionImport:
		if _, _, ok := bot.ParseImportOffer(parts[2]); !ok {
			return "", "", false, false
		}
	case bot.ActionUndoChange, bot.ActionPinChange:
		if _, _, ok := bot.ParseChangeButton(parts[2]); !ok {
			return "", "", false, false
		}
	default:
		return "", "", false, false
	}
	return action, parts[2], ask, true
}

// validRequestID accepts what store.NewID makes (and a little more), and
// nothing that could smuggle text into a reply.
func validRequestID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// inboundKind is what an interaction asks of deploybot.
type inboundKind int

const (
	inRefused inboundKind = iota // not for us, or not allowed here: answered with reason
	inPing
	inCommand
	inAutocomplete
	inButton
)

// inbound is a decoded interaction.
type inbound struct {
	kind   inboundKind
	req    bot.Request // inCommand, inButton
	ask    bool        // inButton: ask "Really …?" first
	typed  string      // inAutocomplete: the command text so far
	reason string      // inRefused
}

// interpret decodes an interaction into what deploybot does with it. It
// never panics on what a client sent.
func (a *Adapter) interpret(i *discordgo.Interaction) inbound {
	if i == nil {
		return inbound{reason: "Empty interaction."}
	}
	if i.Type == discordgo.InteractionPing {
		return inbound{kind: inPing}
	}
	switch {
	case i.GuildID == "" && len(a.guilds) > 0:
		return inbound{reason: "deploybot answers in its servers' channels, not in direct messages."}
	case i.GuildID != "" && !a.guildAllowed(i.GuildID):
		return inbound{reason: "deploybot is not configured for this server (discord.guilds)."}
	}
	user := chatUser(i.GuildID, i.User, i.Member)
	if user.ID == "" {
		return inbound{reason: "Discord did not say who you are."}
	}
	req := bot.Request{Platform: Name, User: user, Channel: i.ChannelID, DedupeKey: "interaction/" + i.ID}
	switch i.Type {
	case discordgo.InteractionApplicationCommand, discordgo.InteractionApplicationCommandAutocomplete:
		data, ok := i.Data.(discordgo.ApplicationCommandInteractionData)
		if !ok || data.Name != CommandName {
			return inbound{reason: "deploybot knows only /" + CommandName + "."}
		}
		typed := ""
		for _, o := range data.Options {
			if o != nil && o.Name == commandOption {
				typed, _ = o.Value.(string)
			}
		}
		if i.Type == discordgo.InteractionApplicationCommandAutocomplete {
			return inbound{kind: inAutocomplete, typed: typed}
		}
		req.Text = strings.TrimSpace(plainText(typed, data.Resolved))
		if req.Text == "" {
			req.Text = "help"
		}
		return inbound{kind: inCommand, req: req}
	case discordgo.InteractionMessageComponent:
		data, ok := i.Data.(discordgo.MessageComponentInteractionData)
		if !ok {
			return inbound{reason: "That is not a deploybot button."}
		}
		action, id, ask, ok := parseCustomID(data.CustomID)
		if !ok {
			return inbound{reason: "That is not a deploybot button, or it is from an older version; run the command again."}
		}
		req.Action = &bot.Action{Kind: action, RequestID: id}
		return inbound{kind: inButton, req: req, ask: ask}
	}
	return inbound{reason: fmt.Sprintf("deploybot does not handle %s interactions.", i.Type)}
}

// plainText turns Discord's markup in typed text into what the user saw, so
// the command parser reads plain words: a user mention <@ID> or <@!ID>
// becomes @name (@ID when Discord resolved no name), a role <@&ID> @name
// (@&ID), a channel <#ID> #name (#ID), a custom emoji <:name:ID> :name:, a
// command mention </name:ID> /name. Anything else in <...> stays as typed.
// https://discord.com/developers/docs/reference#message-formatting
func plainText(s string, resolved *discordgo.ApplicationCommandInteractionDataResolved) string {
	if !strings.Contains(s, "<") {
		return s
	}
	return bot.ReplaceMarkup(s, func(t string) string { return t }, func(inner string) (string, bool) {
		return markupText(inner, resolved)
	})
}

// markupText is what one <...> of Discord's markup reads as, if it is markup.
func markupText(inner string, r *discordgo.ApplicationCommandInteractionDataResolved) (string, bool) {
	if r == nil {
		r = &discordgo.ApplicationCommandInteractionDataResolved{}
	}
	switch {
	case strings.HasPrefix(inner, "@&") && isSnowflake(inner[2:]):
		if role := r.Roles[inner[2:]]; role != nil && role.Name != "" {
			return "@" + role.Name, true
		}
		return inner, true
	case strings.HasPrefix(inner, "@!") && isSnowflake(inner[2:]):
		return userMention(inner[2:], r), true
	case strings.HasPrefix(inner, "@") && isSnowflake(inner[1:]):
		return userMention(inner[1:], r), true
	case strings.HasPrefix(inner, "#") && isSnowflake(inner[1:]):
		if ch := r.Channels[inner[1:]]; ch != nil && ch.Name != "" {
			return "#" + ch.Name, true
		}
		return inner, true
	case strings.HasPrefix(inner, ":"), strings.HasPrefix(inner, "a:"): // <:name:ID>, animated <a:name:ID>
		rest := strings.TrimPrefix(strings.TrimPrefix(inner, "a"), ":")
		if name, id, ok := strings.Cut(rest, ":"); ok && name != "" && isSnowflake(id) {
			return ":" + name + ":", true
		}
	case strings.HasPrefix(inner, "/"):
		if name, id, ok := strings.Cut(inner[1:], ":"); ok && name != "" && isSnowflake(id) {
			return "/" + name, true
		}
	}
	return "", false
}

func userMention(id string, r *discordgo.ApplicationCommandInteractionDataResolved) string {
	if u := r.Users[id]; u != nil {
		if u.GlobalName != "" {
			return "@" + u.GlobalName
		}
		if u.Username != "" {
			return "@" + u.Username
		}
	}
	return "@" + id
}

// isSnowflake: Discord IDs are decimal.
func isSnowflake(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// answer handles one interaction, from the gateway or HTTP; respond sends its
// one initial response.
func (a *Adapter) answer(i *discordgo.Interaction, send func(*discordgo.InteractionResponse) error) {
	start := time.Now()
	respond := func(resp *discordgo.InteractionResponse) error {
		err := send(resp)
		a.observeAck(Name, time.Since(start))
		if err != nil {
			a.countError(Name, "respond")
		}
		return err
	}
	in := a.interpret(i)
	var err error
	switch in.kind {
	case inPing:
		err = respond(&discordgo.InteractionResponse{Type: discordgo.InteractionResponsePong})
	case inAutocomplete:
		err = respond(&discordgo.InteractionResponse{
			Type: discordgo.InteractionApplicationCommandAutocompleteResult,
			Data: &discordgo.InteractionResponseData{Choices: complete(in.typed, a.words)},
		})
	case inRefused:
		err = respond(text(in.reason).response(discordgo.InteractionResponseChannelMessageWithSource, true))
	case inButton:
		if in.ask {
			err = respond(askFirst(i, in.req.Action).response(discordgo.InteractionResponseChannelMessageWithSource, true))
			break
		}
		a.exchange(i, in, respond)
	case inCommand:
		a.exchange(i, in, respond)
	}
	if err != nil {
		a.log.Error("answering a Discord interaction", "interaction", i.ID, "err", err)
	}
}

// rememberClick keeps the click's token for editing the clicked message when
// that message is an interaction's response: a fresh token lasts another 15
// minutes, and without a bot token nothing else can edit it.
func (a *Adapter) rememberClick(i *discordgo.Interaction) {
	origin := originInteraction(i.Message)
	if origin == "" || i.Token == "" {
		return
	}
	a.setHook(interactionRef+origin, hook{appID: i.AppID, token: i.Token, message: "@original", expires: a.now().Add(interactionTokenTTL)})
}

// originInteraction is the ID of the interaction whose response m is, or "".
func originInteraction(m *discordgo.Message) string {
	switch {
	case m == nil:
		return ""
	case m.InteractionMetadata != nil:
		return m.InteractionMetadata.ID
	case m.Interaction != nil:
		return m.Interaction.ID
	}
	return ""
}

// askFirst is the second step of a button that asks before it counts:
// Discord has no confirmation dialog, so the clicker gets an ephemeral
// question with the real button.
func askFirst(i *discordgo.Interaction, act *bot.Action) message {
	q := fmt.Sprintf("Really %s #%s?", act.Kind, act.RequestID)
	if i.Message != nil && len(i.Message.Embeds) > 0 && i.Message.Embeds[0] != nil && i.Message.Embeds[0].Title != "" {
		q += "\n> " + clip(strings.ReplaceAll(i.Message.Embeds[0].Title, "\n", " "), 300)
	}
	label := fmt.Sprintf("Yes, %s #%s", act.Kind, act.RequestID)
	style := discordgo.PrimaryButton
	if act.Kind == bot.ActionDeny || act.Kind == bot.ActionCancel {
		style = discordgo.DangerButton
	}
	m := text(q)
	m.Components = []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: clip(label, maxButtonLabel), Style: style, CustomID: customID(act.Kind, act.RequestID, false)},
	}}}
	return m
}

// onInteraction handles an INTERACTION_CREATE from the gateway; the initial
// response goes back over REST.
func (a *Adapter) onInteraction(s *discordgo.Session, ic *discordgo.InteractionCreate) {
	if ic == nil || ic.Interaction == nil {
		return
	}
	i := ic.Interaction
	a.answer(i, func(resp *discordgo.InteractionResponse) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.session.InteractionRespond(i, resp, discordgo.WithContext(ctx))
	})
}

// serveInteractions is POST /discord/interactions: Discord's outgoing
// webhook for interactions. Only requests signed with the application's key
// within the timestamp window are handled; the initial response is the HTTP
// response.
func (a *Adapter) serveInteractions(w http.ResponseWriter, r *http.Request) {
	body, status, why := a.verify(w, r)
	if status != http.StatusOK {
		a.log.Info("refusing a Discord interaction request", "remote", r.RemoteAddr, "status", status, "reason", why)
		http.Error(w, why, status)
		return
	}
	var i discordgo.Interaction
	if err := json.Unmarshal(body, &i); err != nil {
		http.Error(w, "not an interaction", http.StatusBadRequest)
		return
	}
	type ack struct {
		resp *discordgo.InteractionResponse
		done chan error
	}
	acks := make(chan ack)
	gone := make(chan struct{})
	defer close(gone)
	go a.answer(&i, func(resp *discordgo.InteractionResponse) error {
		done := make(chan error, 1)
		select {
		case acks <- ack{resp, done}:
			return <-done
		case <-gone:
			return errors.New("the interaction request ended before deploybot answered it")
		}
	})
	select {
	case ak := <-acks:
		b, err := json.Marshal(ak.resp)
		if err == nil {
			w.Header().Set("Content-Type", "application/json")
			_, err = w.Write(b)
			if f, ok := w.(http.Flusher); ok {
				f.Flush() // follow-ups must not overtake the response
			}
		}
		ak.done <- err
	case <-r.Context().Done():
	}
}

// verify checks an interaction request: both signature headers, a signed
// timestamp within the window, a body within MaxBodyBytes, and the Ed25519
// signature over timestamp and body. It returns the body, or the status and
// reason to refuse it with.
func (a *Adapter) verify(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	sig, ts := r.Header.Get("X-Signature-Ed25519"), r.Header.Get("X-Signature-Timestamp")
	if sig == "" || ts == "" {
		return nil, http.StatusUnauthorized, "missing X-Signature-Ed25519 or X-Signature-Timestamp"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, http.StatusUnauthorized, "X-Signature-Timestamp is not a Unix time"
	}
	if d := a.now().Sub(time.Unix(sec, 0)); d > TimestampWindow || d < -TimestampWindow {
		return nil, http.StatusUnauthorized, "X-Signature-Timestamp is outside the 5-minute window"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, "body too large"
		}
		return nil, http.StatusBadRequest, "reading the body failed"
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !discordgo.VerifyInteraction(r, a.publicKey) {
		return nil, http.StatusUnauthorized, "invalid request signature"
	}
	return body, http.StatusOK, ""
}
