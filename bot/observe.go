package bot

import (
	"context"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/lifecycle"
)

// Metrics receives the bot's operational measurements; metrics.Registry
// (Prometheus) implements it. Labels are plain strings with few values:
// platform names, command names, outcomes, environments.
type Metrics interface {
	// Request counts one inbound request by platform, command (or button)
	// and outcome (one of the Outcome* constants).
	Request(platform, command, outcome string)
	// Ack observes how long an adapter took to acknowledge a platform event.
	Ack(platform string, d time.Duration)
	// Rollout observes how long following one request's rollouts took;
	// outcome is the final request state (Succeeded or Failed).
	Rollout(env, action, outcome string, d time.Duration)
	// PlatformError counts one failed chat platform API call (op: post,
	// update, or an adapter's own, e.g. respond).
	PlatformError(platform, op string)
}

// Outcomes of an inbound request, the values of Metrics.Request's outcome.
const (
	OutcomeOK        = "ok"        // answered, or a request opened or moved on
	OutcomeRefused   = "refused"   // not allowed: RBAC, state, unmapped user, busy
	OutcomeInvalid   = "invalid"   // the text was not a valid command
	OutcomeError     = "error"     // something failed inside deploybot or the cluster
	OutcomeIgnored   = "ignored"   // not for the bot (an empty message)
	OutcomeDuplicate = "duplicate" // a redelivered event, handled before
)

// ObserveAck records how long an adapter took to acknowledge a platform
// event, from receiving it to writing the response the platform waits for.
// Adapters call it; Slack, for one, drops interactions not acked within 3s.
func (b *Bot) ObserveAck(platform string, d time.Duration) { b.metrics.Ack(platform, d) }

// PlatformError records a failed chat platform API call that an adapter made
// on its own (the bot records its Post and Update failures itself).
func (b *Bot) PlatformError(platform, op string) { b.metrics.PlatformError(platform, op) }

// noMetrics records nothing.
type noMetrics struct{}

func (noMetrics) Request(string, string, string)                {}
func (noMetrics) Ack(string, time.Duration)                     {}
func (noMetrics) Rollout(string, string, string, time.Duration) {}
func (noMetrics) PlatformError(string, string)                  {}

// outcomeResponder remembers how an inbound request ended, for
// Metrics.Request: refuse and fail mark it, the first mark wins.
type outcomeResponder struct {
	Responder
	outcome string
}

// markOutcome records outcome on resp if Handle wrapped it.
func markOutcome(resp Responder, outcome string) {
	if o, ok := resp.(*outcomeResponder); ok && o.outcome == "" {
		o.outcome = outcome
	}
}

// result is the outcome of the request: err is what Handle returned (a
// reply that could not be sent).
func (o *outcomeResponder) result(err error) string {
	switch {
	case err != nil:
		return OutcomeError
	case o.outcome != "":
		return o.outcome
	}
	return OutcomeOK
}

// replyCommand is the command label of a message the parser answered by
// itself: "help" for help (the parser's help has a title, its usage and error
// replies have none), else the command the first word names, or "none".
func replyCommand(text string, reply commands.Output) string {
	if reply.Title != "" {
		return "help"
	}
	words := strings.Fields(text)
	if len(words) > 1 && slices.Contains([]string{"/deploy", "!deploy", "deploy"}, strings.ToLower(words[0])) {
		words = words[1:]
	}
	if len(words) > 0 {
		if spec, ok := commands.Lookup(strings.ToLower(words[0])); ok {
			return spec.Name
		}
	}
	return "none"
}

// eventID names one inbound event in the logs: the platform's own ID where
// the adapter gave one (the dedupe key), else a fresh random one. Every line
// logged while handling it carries it as the "event" attribute, and lines
// about a deploybot request carry the request's ID as "request", so one
// click can be followed from the webhook to the audit trail.
func eventID(req Request) string {
	if req.DedupeKey != "" {
		return req.DedupeKey
	}
	return strings.ToLower(rand.Text()[:12])
}

// logFor returns the logger for work done on behalf of ctx's inbound event.
func (b *Bot) logFor(ctx context.Context) *slog.Logger {
	if id := lifecycle.EventOf(ctx); id != "" {
		return b.log.With("event", id)
	}
	return b.log
}
