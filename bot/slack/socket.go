package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// runSocket holds the Socket Mode connection until ctx ends. Slash commands
// and clicks arrive as envelopes; each is acknowledged at once (Slack
// redelivers unacknowledged envelopes) and then handled like its HTTP
// twin, answering through its response_url or the Web API.
func (a *Adapter) runSocket(ctx context.Context) error {
	opts := append([]socketmode.Option{socketmode.OptionLog(socketLog{a.log})}, a.socketOpts...)
	client := socketmode.New(a.api, opts...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- client.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("socket mode connection: %w", err)
		case evt := <-client.Events:
			if err := a.socketEvent(ctx, client, evt); err != nil {
				return err
			}
		}
	}
}

// socketEvent handles one Socket Mode event; it returns an error only when
// the connection cannot work (invalid app token).
func (a *Adapter) socketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) error {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		a.log.Info("slack: connecting to Socket Mode")
	case socketmode.EventTypeConnected:
		a.log.Info("slack: connected to Socket Mode")
	case socketmode.EventTypeConnectionError:
		a.log.Warn("slack: Socket Mode connection failed, retrying", "event", fmt.Sprint(evt.Data))
	case socketmode.EventTypeInvalidAuth:
		return errors.New("socket mode: Slack refused the app-level token (SLACK_APP_TOKEN)")
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive:
		if evt.Request == nil {
			return nil
		}
		in, err := socketInbound(evt)
		var payload any
		switch {
		case errors.Is(err, errNotAButton):
			a.log.Info("slack: ignoring an interaction that is not a deploybot button", "reason", err)
		case err != nil:
			a.stats.malformed.Add(1)
			a.log.Warn("slack: malformed Socket Mode event", "type", evt.Type, "err", err)
		default:
			a.stats.parsed.Add(1)
			in.received = a.now()
			if evt.Request.RetryAttempt > 0 {
				a.log.Info("slack: Socket Mode redelivery", "attempt", evt.Request.RetryAttempt, "reason", evt.Request.RetryReason, "key", in.dedupeKey)
			}
			if a.accept(in) == overloaded && in.kind == kindCommand {
				payload = map[string]string{"response_type": "ephemeral", "text": busyText}
			}
		}
		ackCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := client.AckCtx(ackCtx, evt.Request.EnvelopeID, payload); err != nil {
			a.log.Warn("slack: acknowledging a Socket Mode envelope", "envelope", evt.Request.EnvelopeID, "err", err)
		}
	}
	return nil
}

// socketInbound normalises a Socket Mode envelope; the payload is the same
// JSON the HTTP mode decodes.
func socketInbound(evt socketmode.Event) (inbound, error) {
	switch data := evt.Data.(type) {
	case slackgo.SlashCommand:
		return fromCommand(data, evt.Request.Payload)
	case slackgo.InteractionCallback:
		return fromInteraction(data, evt.Request.Payload)
	}
	return inbound{}, fmt.Errorf("unexpected %s payload %T", evt.Type, evt.Data)
}

// socketLog sends socketmode's own log lines to slog at debug level.
type socketLog struct{ l *slog.Logger }

func (s socketLog) Output(_ int, msg string) error {
	s.l.Debug("slack socketmode: " + msg)
	return nil
}
