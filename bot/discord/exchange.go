package discord

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// exchange is one interaction being answered. Discord wants the initial
// response within 3 seconds and takes exactly one; what the bot says before
// that goes into it, what it says after goes out as follow-ups and edits.
// It is the bot.Responder of the request, and travels in the context of
// Handle so that Post and Update made while handling know about it.
type exchange struct {
	a       *Adapter
	i       *discordgo.Interaction
	in      inbound
	respond func(*discordgo.InteractionResponse) error
	// received is when the interaction came; inboxKey is set once it is in
	// the inbox (it was acknowledged before the bot was done with it).
	received time.Time
	inboxKey string

	mu sync.Mutex
	// acked: the initial response went out. deferred: the rest follows over
	// REST. lost: nothing can follow (no REST), later replies are dropped.
	acked, deferred, lost bool
	replies               []bot.Reply       // said before the initial response
	posted                *store.MessageRef // the request message is this interaction's response
	postedID              string            // a request opened by this command, posted in the channel
	original              bool              // @original shows a reply or the request message
	captured              *store.MessageRef // the clicked request message changed: the response shows it
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// exchange hands the interaction's request to the bot and answers it in
// time: with what the bot said if it was quick, else with what it said so
// far or a deferred response, and the rest later.
func (a *Adapter) exchange(i *discordgo.Interaction, in inbound, respond func(*discordgo.InteractionResponse) error) {
	a.run(&exchange{a: a, i: i, in: in, respond: respond, received: a.now()})
}

// run hands the exchange's request to the bot and completes the interaction
// once the bot is done.
func (a *Adapter) run(ex *exchange) {
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), exchangeKey{}, ex), a.handleTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.h.Handle(ctx, ex.in.req, ex) }()
	timer := time.NewTimer(a.ackWithin)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		ex.answerInTime(ctx)
		err = <-done
	}
	if err != nil {
		a.log.Error("handling a Discord interaction", "interaction", ex.i.ID, "err", err)
	}
	ex.finish(ctx)
	if ex.inboxKey != "" {
		outcome := "answered"
		if err != nil {
			outcome = "failed: " + err.Error()
		}
		a.done(ex.inboxKey, outcome)
	}
}

// Respond implements bot.Responder.
func (ex *exchange) Respond(ctx context.Context, r bot.Reply) error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if !ex.acked {
		ex.replies = append(ex.replies, r)
		return nil
	}
	return ex.followUp(ctx, r)
}

// followUp delivers a reply after the initial response; ex.mu is held.
func (ex *exchange) followUp(ctx context.Context, r bot.Reply) error {
	if ex.lost {
		ex.a.log.Warn("a Discord reply came too late to be delivered", "interaction", ex.i.ID, "title", r.Title)
		return nil
	}
	err := ex.sendFollowUp(ctx, r)
	if err != nil {
		ex.a.countError(Name, "followup")
	}
	return err
}

// sendFollowUp is followUp's REST calls; ex.mu is held.
func (ex *exchange) sendFollowUp(ctx context.Context, r bot.Reply) error {
	s := ex.a.session
	msgs := renderReply(r)
	if ex.in.kind == inCommand && !ex.original {
		// The first reply takes the place of "deploybot is thinking…". That
		// message is public; a private reply replaces it with an ephemeral one.
		ex.original = true
		if !r.Private {
			if _, err := s.InteractionResponseEdit(ex.i, msgs[0].webhookEdit(), discordgo.WithContext(ctx)); err != nil {
				return fmt.Errorf("answering the interaction: %w", err)
			}
			msgs = msgs[1:]
		} else if err := s.InteractionResponseDelete(ex.i, discordgo.WithContext(ctx)); err != nil {
			return fmt.Errorf("removing the public placeholder of a private answer: %w", err)
		}
	}
	for _, m := range msgs {
		if _, err := s.FollowupMessageCreate(ex.i, true, m.followup(r.Private), discordgo.WithContext(ctx)); err != nil {
			return fmt.Errorf("following up the interaction: %w", err)
		}
	}
	return nil
}

// answerInTime is called when the bot is still busy as Discord's deadline
// nears: what it said so far is the response, else a deferred one
// ("thinking…" for a command, a silent acknowledgement for a click). Without
// REST nothing could follow a deferred response, so it says that instead.
func (ex *exchange) answerInTime(ctx context.Context) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.acked {
		return
	}
	// The bot is not done: this response acknowledges an interaction still
	// being handled, so it goes into the inbox first.
	ex.persist(ctx)
	if ex.posted != nil || len(ex.replies) > 0 || ex.captured != nil {
		ex.respondNow(ctx)
		return
	}
	ex.acked = true
	var resp *discordgo.InteractionResponse
	switch {
	case !ex.a.rest():
		ex.lost = true
		resp = text("Still working on it, but Discord waits only 3 seconds for an answer and this deploybot has no DISCORD_APP_ID or DISCORD_BOT_TOKEN to send it later.").
			response(discordgo.InteractionResponseChannelMessageWithSource, true)
	case ex.in.kind == inCommand:
		ex.deferred = true
		resp = &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}
	default:
		ex.deferred = true
		resp = &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}
	}
	if err := ex.respond(resp); err != nil {
		ex.a.log.Error("deferring a Discord interaction", "interaction", ex.i.ID, "err", err)
		return
	}
	if resp.Type == discordgo.InteractionResponseDeferredMessageUpdate {
		ex.a.rememberClick(ex.i)
	}
}

// finish completes the interaction once the bot is done.
func (ex *exchange) finish(ctx context.Context) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if !ex.acked {
		ex.respondNow(ctx)
		return
	}
	if ex.deferred && ex.in.kind == inCommand && !ex.original {
		ex.original = true
		if _, err := ex.a.session.InteractionResponseEdit(ex.i, ex.nothingToSay().webhookEdit(), discordgo.WithContext(ctx)); err != nil {
			ex.a.log.Error("completing a deferred Discord interaction", "interaction", ex.i.ID, "err", err)
		}
	}
}

// respondNow sends the initial response from what was collected; ex.mu is
// held.
func (ex *exchange) respondNow(ctx context.Context) {
	ex.acked = true
	var err error
	switch ex.in.kind {
	case inCommand:
		err = ex.respondCommand(ctx)
	case inButton:
		err = ex.respondClick()
	}
	if err != nil {
		ex.a.log.Error("answering a Discord interaction", "interaction", ex.i.ID, "err", err)
	}
}

// post makes the request message this interaction's response, for an
// adapter without a bot token to post with.
func (ex *exchange) post(ctx context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ref := store.MessageRef{Platform: Name, Channel: channel, ID: interactionRef + ex.i.ID}
	h := hook{appID: ex.i.AppID, token: ex.i.Token, message: "@original", expires: ex.a.now().Add(interactionTokenTTL)}
	switch {
	case !ex.acked:
		// Sent with the initial response; no edit may reach Discord first.
		ex.posted = &ref
		ex.a.edits.hold(ref, r)
		return ref, nil
	case ex.lost:
		return store.MessageRef{}, fmt.Errorf("posting #%s: the interaction was answered already and this deploybot cannot follow up (no DISCORD_APP_ID)", r.RequestID)
	case !ex.original:
		ex.original = true
		if _, err := ex.a.session.InteractionResponseEdit(ex.i, renderRequest(r).webhookEdit(), discordgo.WithContext(ctx)); err != nil {
			return store.MessageRef{}, fmt.Errorf("posting #%s as the interaction's answer: %w", r.RequestID, err)
		}
	default:
		m, err := ex.a.session.FollowupMessageCreate(ex.i, true, renderRequest(r).followup(false), discordgo.WithContext(ctx))
		if err != nil {
			return store.MessageRef{}, fmt.Errorf("posting #%s as a follow-up: %w", r.RequestID, err)
		}
		h.message = m.ID
	}
	ex.a.setHook(ref.ID, h)
	return ref, nil
}

// notePosted records that the command opened a request whose message went
// to the channel, so the interaction's own answer can point at it.
func (ex *exchange) notePosted(id string) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.postedID = id
}

// capture takes an update of the message whose button is being answered,
// to send it as the click's response (which replaces the message) instead
// of as a separate edit.
func (ex *exchange) capture(ref store.MessageRef, r bot.Reply) bool {
	if ex.in.kind != inButton || ex.i.Message == nil || r.RequestID != ex.in.req.Action.RequestID {
		return false
	}
	origin := originInteraction(ex.i.Message)
	if ref.ID != ex.i.Message.ID && (origin == "" || ref.ID != interactionRef+origin) {
		return false
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.acked {
		return false
	}
	if ex.captured == nil {
		ex.captured = &ref
		ex.a.edits.hold(ref, r)
	} else {
		ex.a.edits.hold(ref, r)
		ex.a.edits.release(ref) // one hold per exchange
	}
	return true
}

// pastTense names a button's effect for the answer to a second-step click.
var pastTense = map[bot.ActionKind]string{
	bot.ActionConfirm: "Confirmed",
	bot.ActionCancel:  "Cancelled",
	bot.ActionApprove: "Approved",
	bot.ActionDeny:    "Denied",
	bot.ActionSkip:    "Skipped",
}

// respondCommand answers /deploy with the request message it opened or what
// the bot replied; ex.mu is held.
func (ex *exchange) respondCommand(ctx context.Context) error {
	const channelMessage = discordgo.InteractionResponseChannelMessageWithSource
	replies := ex.replies
	ex.replies = nil
	if ex.posted == nil && len(replies) > 0 && !ex.a.rest() {
		// Nothing can follow the one response: everything goes into it.
		ex.lost = true
		var msgs []message
		for _, r := range replies {
			msgs = append(msgs, renderReply(r)...)
		}
		return ex.respond(merge(msgs).response(channelMessage, replies[0].Private))
	}
	var first *discordgo.InteractionResponse
	var more []message // the first reply's further messages
	private := false
	switch {
	case ex.posted != nil:
		ref := *ex.posted
		err := ex.a.edits.deliver(ref, func(r bot.Reply) error {
			if err := ex.respond(renderRequest(r).response(channelMessage, false)); err != nil {
				return err
			}
			ex.a.setHook(ref.ID, hook{appID: ex.i.AppID, token: ex.i.Token, message: "@original", expires: ex.a.now().Add(interactionTokenTTL)})
			return nil
		})
		if err != nil {
			return err
		}
	case len(replies) > 0:
		msgs := renderReply(replies[0])
		private = replies[0].Private
		first, more, replies = msgs[0].response(channelMessage, private), msgs[1:], replies[1:]
	default:
		first = ex.nothingToSay().response(channelMessage, true)
	}
	if first != nil {
		if err := ex.respond(first); err != nil {
			return err
		}
	}
	// Whatever else was said follows the response.
	ex.deferred, ex.original, ex.lost = true, true, !ex.a.rest()
	for _, m := range more {
		if ex.lost {
			break
		}
		if _, err := ex.a.session.FollowupMessageCreate(ex.i, true, m.followup(private), discordgo.WithContext(ctx)); err != nil {
			return fmt.Errorf("following up the interaction: %w", err)
		}
	}
	for _, r := range replies {
		if err := ex.followUp(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// nothingToSay is the answer to a command that replied nothing itself.
func (ex *exchange) nothingToSay() message {
	if ex.postedID != "" {
		return text(fmt.Sprintf("Opened request #%s; its message is in this channel.", ex.postedID))
	}
	return text("Nothing to do. `/deploy help` lists the commands.")
}

// respondClick answers a button: refusals privately, the clicked request
// message replaced by its new content, or the "Really …?" question replaced
// by what happened; ex.mu is held.
func (ex *exchange) respondClick() error {
	const (
		channelMessage = discordgo.InteractionResponseChannelMessageWithSource
		update         = discordgo.InteractionResponseUpdateMessage
	)
	ex.deferred, ex.lost = true, !ex.a.rest()
	secondStep := ex.i.Message != nil && ex.i.Message.Flags&discordgo.MessageFlagsEphemeral != 0
	replies := ex.replies
	ex.replies = nil
	if len(replies) > 0 {
		if ex.captured != nil {
			ex.a.edits.release(*ex.captured)
			ex.captured = nil
		}
		var msgs []message
		for _, r := range replies {
			msgs = append(msgs, renderReply(r)...)
		}
		if secondStep {
			return ex.respond(merge(msgs).response(update, true))
		}
		return ex.respond(merge(msgs).response(channelMessage, true))
	}
	if ex.captured != nil {
		ref := *ex.captured
		ex.captured = nil
		return ex.a.edits.deliver(ref, func(r bot.Reply) error {
			if err := ex.respond(renderRequest(r).response(update, false)); err != nil {
				return err
			}
			ex.a.rememberClick(ex.i)
			return nil
		})
	}
	if secondStep {
		act := ex.in.req.Action
		return ex.respond(text(fmt.Sprintf("%s #%s.", pastTense[act.Kind], act.RequestID)).response(update, true))
	}
	if err := ex.respond(&discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}); err != nil {
		return err
	}
	ex.a.rememberClick(ex.i)
	return nil
}

// complete suggests whole command lines for what was typed so far: command
// names for the first word, environment and service names after it.
func complete(typed string, words []string) []*discordgo.ApplicationCommandOptionChoice {
	const maxChoices, maxChoice = 25, 100
	fields := strings.Fields(typed)
	partial := ""
	if len(fields) > 0 && !strings.HasSuffix(typed, " ") {
		partial, fields = fields[len(fields)-1], fields[:len(fields)-1]
	}
	var candidates []string
	if len(fields) == 0 {
		candidates = commandNames()
	} else {
		candidates = words
	}
	base := strings.Join(fields, " ")
	choices := []*discordgo.ApplicationCommandOptionChoice{}
	seen := map[string]bool{}
	for _, c := range candidates {
		if !strings.HasPrefix(strings.ToLower(c), strings.ToLower(partial)) || seen[c] {
			continue
		}
		seen[c] = true
		line := c
		if base != "" {
			line = base + " " + c
		}
		if textLen(line) > maxChoice {
			continue
		}
		choices = append(choices, &discordgo.ApplicationCommandOptionChoice{Name: line, Value: line})
		if len(choices) == maxChoices {
			break
		}
	}
	return choices
}
