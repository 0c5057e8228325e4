package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// An interaction is acknowledged by its initial response, so it needs the
// inbox only when that response goes out before the bot is done: a deferred
// "thinking…", or what was said so far. Then the interaction is persisted
// first; a crash after the response leaves it in the inbox, and the next
// start handles it through the interaction token (valid 15 minutes, and the
// response was sent, so its follow-ups and edits work). An interaction
// answered in full by its response needs nothing more, and one that crashed
// before any response was shown to its user as "The application did not
// respond" (Discord sends it once), so it is not run behind their back.

// WithInbox persists every interaction acknowledged before it was handled
// (see bot.Inbox).
func WithInbox(ib bot.Inbox) Option { return func(a *Adapter) { a.inbox = ib } }

const (
	// inboxTTL is how long a handled interaction's key stays in the inbox.
	inboxTTL = 24 * time.Hour
	// replayWindow is how old an interaction left in the inbox may be and
	// still be handled at start-up: its token lasts 15 minutes, and handling
	// takes a little of that.
	replayWindow = 13 * time.Minute
)

// inboxRecord is the stored form of an interaction: the interaction itself,
// decoded again (and checked again) by interpret when it is replayed.
type inboxRecord struct {
	Interaction *discordgo.Interaction `json:"interaction"`
}

// persist puts the exchange's interaction in the inbox before its initial
// response goes out; ex.mu is held. If the store fails the interaction is
// still answered and handled, only not durably, and the log says so.
func (ex *exchange) persist(ctx context.Context) {
	a := ex.a
	if a.inbox == nil || ex.inboxKey != "" {
		return
	}
	payload, err := json.Marshal(inboxRecord{Interaction: ex.i})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_, err = a.inbox.Enqueue(ctx, []store.InboxEvent{{
			Key: ex.in.req.DedupeKey, Platform: Name, Received: ex.received, TTL: inboxTTL, Payload: payload,
		}})
	}
	if err != nil {
		a.countError(Name, "inbox")
		a.log.Error("discord: persisting an interaction in the inbox; a crash before it is handled would lose it", "interaction", ex.i.ID, "err", err)
		return
	}
	ex.inboxKey = ex.in.req.DedupeKey
}

// done marks an interaction handled in the inbox.
func (a *Adapter) done(key, outcome string) {
	if a.inbox == nil || key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.inbox.InboxDone(ctx, key, outcome); err != nil && !errors.Is(err, store.ErrNoEvent) {
		a.log.Error("discord: marking an interaction done in the inbox", "key", key, "err", err)
	}
}

// Replay handles the interactions an earlier run acknowledged but did not
// finish, one after the other in the order they came: those whose token
// still works are handled as if they had just been deferred (the bot's own
// dedupe keys keep one that was in fact handled from running twice); older
// ones are marked done, and their sender is told in the channel when there
// is a bot token to say it with. It returns how many were handled.
func (a *Adapter) Replay(ctx context.Context) (int, error) {
	if a.inbox == nil {
		return 0, nil
	}
	events, err := a.inbox.Inbox(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the inbox: %w", err)
	}
	handled := 0
	for _, ev := range events {
		if ev.Platform != Name {
			continue
		}
		if ctx.Err() != nil {
			break // the rest stays for the next start
		}
		i, in, err := a.replayed(ev)
		if err != nil {
			a.log.Error("discord: an inbox event cannot be handled", "key", ev.Key, "err", err)
			a.done(ev.Key, "dropped: "+err.Error())
			continue
		}
		if age := a.now().Sub(ev.Received); age > replayWindow {
			a.log.Warn("discord: an interaction was acknowledged but not handled before a restart, and its token is too old to answer now",
				"key", ev.Key, "user", in.req.User.ID, "text", in.req.Text, "received", ev.Received, "age", age.Round(time.Second))
			a.tellNotHandled(ctx, in, ev.Received)
			a.done(ev.Key, "expired: acknowledged but not handled before a restart")
			continue
		}
		ex := &exchange{a: a, i: i, in: in, received: ev.Received, inboxKey: ev.Key,
			acked: true, deferred: true, lost: !a.rest(),
			respond: func(*discordgo.InteractionResponse) error {
				return errors.New("the interaction was answered before the restart")
			}}
		if in.kind == inButton {
			a.rememberClick(i) // the token edits the clicked message again
		}
		a.run(ex)
		handled++
	}
	if handled > 0 {
		a.log.Info("discord: handled interactions acknowledged before a restart", "interactions", handled)
	}
	return handled, nil
}

// replayed decodes a stored interaction; what interpret would not hand to
// the bot is refused.
func (a *Adapter) replayed(ev store.InboxEvent) (*discordgo.Interaction, inbound, error) {
	var r inboxRecord
	if err := json.Unmarshal(ev.Payload, &r); err != nil {
		return nil, inbound{}, fmt.Errorf("decoding inbox event %q: %w", ev.Key, err)
	}
	if r.Interaction == nil || r.Interaction.Token == "" {
		return nil, inbound{}, fmt.Errorf("inbox event %q: no interaction, or one without a token", ev.Key)
	}
	in := a.interpret(r.Interaction)
	if in.kind != inCommand && in.kind != inButton || in.ask {
		return nil, inbound{}, fmt.Errorf("inbox event %q: not a command or a button click", ev.Key)
	}
	if in.req.DedupeKey != ev.Key {
		return nil, inbound{}, fmt.Errorf("inbox event %q holds interaction %s", ev.Key, r.Interaction.ID)
	}
	in.req.Replayed = true
	return r.Interaction, in, nil
}

// tellNotHandled tells the sender of an interaction too old to handle that
// it was received and not acted on, in its channel (its token has expired,
// so only a bot token can still reach them).
func (a *Adapter) tellNotHandled(ctx context.Context, in inbound, received time.Time) {
	if a.token == "" || in.req.Channel == "" {
		return
	}
	what := "your button click"
	if in.kind == inCommand {
		what = fmt.Sprintf("`/deploy %s`", in.req.Text)
	}
	user := in.req.User.ID // GUILD/USER in a guild
	if _, id, ok := strings.Cut(user, "/"); ok {
		user = id
	}
	content := fmt.Sprintf("<@%s> deploybot received %s at %s but restarted before it handled it, and it is too old to act on now. Nothing was done; send it again if you still need it.",
		user, what, received.UTC().Format("15:04 MST"))
	_, err := a.session.ChannelMessageSendComplex(in.req.Channel, &discordgo.MessageSend{
		Content:         content,
		AllowedMentions: &discordgo.MessageAllowedMentions{Users: []string{user}},
	}, discordgo.WithContext(ctx))
	if err != nil {
		a.log.Warn("discord: telling a user their interaction was not handled", "user", in.req.User.ID, "err", err)
	}
}
