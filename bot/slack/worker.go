package slack

import (
	"context"

	"github.com/deploybot/deploybot/bot"
)

// work hands queued events to the bot until the queue is closed.
func (a *Adapter) work() {
	defer a.workersWG.Done()
	for in := range a.queue {
		a.handle(in)
		a.done(in.dedupeKey, "handled")
	}
}

// handle turns one event into a bot.Request and lets the bot answer it.
func (a *Adapter) handle(in inbound) {
	ctx, cancel := context.WithTimeout(a.ctx, jobTimeout)
	defer cancel()
	if in.action != nil && in.responseURL != "" && !in.ephemeral {
		// A click's response_url addresses the message holding the button:
		// fresh uses for updating it, and its timestamp for chat.update.
		m := a.messages.get(in.action.RequestID)
		m.locate(in.channel, in.messageTS)
		m.addHook(a.hooks.get(in.responseURL, in.received))
	}
	req := bot.Request{
		Platform: Name,
		User: bot.ChatUser{
			// Slack user IDs are unique per workspace only.
			ID:     in.team + "/" + in.user,
			Name:   in.userName,
			Groups: a.groups.of(ctx, in.team, in.user),
		},
		Channel:   in.channel,
		Text:      in.text,
		Action:    in.action,
		DedupeKey: in.dedupeKey,
		Replayed:  in.replayed,
	}
	a.stats.handled.Add(1)
	if err := a.handler.Handle(withInbound(ctx, &in), req, &responder{a: a, in: &in}); err != nil {
		a.log.Error("slack: handling event", "key", in.dedupeKey, "user", req.User.ID, "err", err)
	}
}
