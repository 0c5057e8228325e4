package slack

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// hookRefPrefix marks a MessageRef whose message was posted through
// response_url, so its timestamp is unknown: the ID is then the request ID.
const hookRefPrefix = "response_url:"

// message is one request message and its pending update. Updates are
// coalesced: while one is being sent or spaced out, a newer one replaces
// the waiting one, so the last state always arrives and intermediate ones
// may be skipped.
type message struct {
	requestID string

	mu      sync.Mutex
	channel string
	// ts is the message's timestamp, known when the bot posted it or once a
	// click on it arrived; chat.update needs it.
	ts string
	// hooks are response_urls that address this message: the one of the
	// command that posted it and those of clicks on it.
	hooks   []*hook
	pending *bot.Reply
	sending bool
	// last is when the message was last written; notBefore delays the next
	// write after a rate limit.
	last      time.Time
	notBefore time.Time
	sent      [sha256.Size]byte // hash of what was last written
	// failures counts the writes in a row that failed and will be retried,
	// for the backoff.
	failures int
}

// messageBook holds the request messages that may still change.
type messageBook struct {
	mu       sync.Mutex
	messages map[string]*message
	// deliveries tracks the goroutines writing updates; flushNow ends their
	// waiting at shutdown.
	deliveries sync.WaitGroup
	flushNow   chan struct{}
	flushOnce  sync.Once
}

func newMessageBook() *messageBook {
	return &messageBook{messages: map[string]*message{}, flushNow: make(chan struct{})}
}

// get returns the message of a request, creating it.
func (b *messageBook) get(requestID string) *message {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.messages[requestID]
	if !ok {
		m = &message{requestID: requestID}
		b.messages[requestID] = m
	}
	return m
}

// forget drops a message that will not change again.
func (b *messageBook) forget(m *message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.messages[m.requestID] == m {
		delete(b.messages, m.requestID)
	}
}

// flush makes every waiting update go out now and waits for them.
func (b *messageBook) flush() {
	b.flushOnce.Do(func() { close(b.flushNow) })
	b.deliveries.Wait()
}

func (b *messageBook) flushing() bool {
	select {
	case <-b.flushNow:
		return true
	default:
		return false
	}
}

// addHook lets a response_url address m.
func (m *message) addHook(h *hook) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.hooks {
		if x == h {
			return
		}
	}
	m.hooks = append(m.hooks, h)
}

// locate records where m is, without overwriting what is known.
func (m *message) locate(channel, ts string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.channel == "" {
		m.channel = channel
	}
	if m.ts == "" {
		m.ts = ts
	}
}

// inboundKey carries the event being handled in the context the bot passes
// back to Post, so a request message can be posted through its response_url.
type inboundKey struct{}

func withInbound(ctx context.Context, in *inbound) context.Context {
	return context.WithValue(ctx, inboundKey{}, in)
}

func inboundFrom(ctx context.Context) *inbound {
	in, _ := ctx.Value(inboundKey{}).(*inbound)
	return in
}

// Post implements bot.Platform: with a bot token, chat.postMessage;
// otherwise, or when the bot may not post in the channel, the command's
// response_url, visible to the channel.
func (a *Adapter) Post(ctx context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	blocks, text := Render(r)
	in := inboundFrom(ctx)
	m := a.messages.get(r.RequestID)
	if a.botToken != "" {
		ch, ts, err := a.postMessage(ctx, channel, blocks, text)
		if err == nil {
			m.locate(ch, ts)
			m.wrote(blocks, time.Now())
			return store.MessageRef{Platform: Name, Channel: ch, ID: ts}, nil
		}
		if in == nil || in.responseURL == "" {
			return store.MessageRef{}, fmt.Errorf("posting the message of #%s to %s: %w", r.RequestID, channel, err)
		}
		// Typically not_in_channel: the app was not invited. The command's
		// response_url can still answer there.
		a.log.Warn("slack: chat.postMessage failed, answering through response_url", "channel", channel, "request", r.RequestID, "err", err)
	}
	if in == nil || in.responseURL == "" {
		return store.MessageRef{}, fmt.Errorf("posting the message of #%s to %s: without a bot token (SLACK_BOT_TOKEN) deploybot can only answer a command or click through its response_url", r.RequestID, channel)
	}
	h := a.hooks.get(in.responseURL, in.received)
	if !a.hooks.take(h) {
		return store.MessageRef{}, fmt.Errorf("posting the message of #%s: %w", r.RequestID, errNoHook)
	}
	if err := a.postHook(ctx, h, webhookMessage(blocks, text, slackgo.ResponseTypeInChannel, false)); err != nil {
		return store.MessageRef{}, fmt.Errorf("posting the message of #%s: %w", r.RequestID, err)
	}
	m.locate(channel, "")
	m.addHook(h)
	m.wrote(blocks, time.Now())
	// The response_url goes into the stored ref, so that another replica
	// (which never saw this command) can update the message through it.
	return store.MessageRef{Platform: Name, Channel: channel, ID: hookRefPrefix + r.RequestID, Hook: in.responseURL, HookAt: in.received}, nil
}

// Bounds of retrying chat.postMessage while a request waits to be shown.
const (
	postAttempts = 4
	postMaxWait  = 20 * time.Second
)

// postMessage is chat.postMessage, tried again after a rate limit (as long
// as Slack's Retry-After says) or a transient failure (backing off), within
// postAttempts and postMaxWait in all.
func (a *Adapter) postMessage(ctx context.Context, channel string, blocks []slackgo.Block, text string) (string, string, error) {
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		ch, ts, err := a.api.PostMessageContext(ctx, channel, slackgo.MsgOptionBlocks(blocks...), slackgo.MsgOptionText(text, false))
		if err == nil {
			return ch, ts, nil
		}
		a.countError(Name, "post")
		var wait time.Duration
		var rl *slackgo.RateLimitedError
		switch {
		case errors.As(err, &rl):
			wait = rl.RetryAfter
		case transient(err):
			wait = bot.Backoff(a.retryBase, attempt)
		default:
			return "", "", err
		}
		if attempt == postAttempts || waited+wait > postMaxWait {
			return "", "", fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		a.log.Warn("slack: chat.postMessage failed, retrying", "channel", channel, "after", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", "", fmt.Errorf("%w (then: %w)", err, ctx.Err())
		case <-t.C:
		}
		waited += wait
	}
}

// Update implements bot.Platform. It queues the new content and returns:
// the message's delivery writes it as soon as Slack's limits allow,
// replacing content that was still waiting.
func (a *Adapter) Update(_ context.Context, ref store.MessageRef, r bot.Reply) error {
	id := r.RequestID
	if id == "" {
		id = strings.TrimPrefix(ref.ID, hookRefPrefix)
	}
	m := a.messages.get(id)
	ts := ref.ID
	if strings.HasPrefix(ts, hookRefPrefix) {
		ts = ""
	}
	m.locate(ref.Channel, ts)
	if ref.Hook != "" {
		// Posted through a response_url, perhaps by another replica: this
		// one can update it too. The uses another replica made are not
		// known here; a spent URL answers 404/410 and the next is tried.
		m.addHook(a.hooks.get(ref.Hook, ref.HookAt))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = &r
	if !m.sending {
		m.sending = true
		a.messages.deliveries.Add(1)
		go a.deliver(m)
	}
	return nil
}

// deliver writes m's pending content until none is left, spacing the
// writes: chat.update at most every updateInterval, response_url updates
// every hookInterval except the final one.
func (a *Adapter) deliver(m *message) {
	defer a.messages.deliveries.Done()
	for {
		m.mu.Lock()
		r := m.pending
		if r == nil {
			m.sending = false
			m.mu.Unlock()
			return
		}
		interval := a.updateInterval
		if (a.botToken == "" || m.ts == "") && !r.Final && a.hooks.left(m.hooks) < 3 {
			// Few response_url uses left: space intermediate updates out
			// so that some progress still shows before the final state.
			interval = a.hookInterval
		}
		// At shutdown the spacing is dropped, but never Slack's Retry-After.
		wait := time.Until(m.last.Add(interval))
		flushing := a.messages.flushing()
		if flushing {
			wait = 0
		}
		if nb := time.Until(m.notBefore); nb > wait {
			wait = nb
		}
		if wait > 0 {
			m.mu.Unlock()
			t := time.NewTimer(wait)
			if flushing {
				<-t.C
			} else {
				select {
				case <-t.C:
				case <-a.messages.flushNow:
					t.Stop()
				}
			}
			continue
		}
		m.pending = nil
		m.mu.Unlock()

		retry, err := a.write(m, *r)
		switch {
		case retry > 0:
			a.requeue(m, r, retry)
			a.log.Info("slack: rate limited, retrying the update", "request", m.requestID, "after", retry)
		case errors.Is(err, errHeld):
			a.log.Debug("slack: held an intermediate update for the final one", "request", m.requestID)
		case err != nil && transient(err) && a.ctx.Err() == nil:
			// 5xx, timeouts, a connection that broke: the last state must
			// still arrive, so try again, backing off.
			m.mu.Lock()
			m.failures++
			wait := bot.Backoff(a.retryBase, m.failures)
			m.mu.Unlock()
			a.requeue(m, r, wait)
			a.log.Warn("slack: updating the request message failed, will retry", "request", m.requestID, "final", r.Final, "after", wait.Round(time.Millisecond), "err", err)
		case err != nil:
			// Not delivered for good (the message is gone, or no way to
			// reach it is left): counted apart from the failed calls.
			a.countError(Name, "undelivered")
			a.log.Error("slack: giving up updating the request message", "request", m.requestID, "final", r.Final, "err", err)
			if r.Final {
				a.messages.forget(m)
			}
		default:
			m.mu.Lock()
			m.failures = 0
			m.mu.Unlock()
			if r.Final {
				a.messages.forget(m)
			}
		}
	}
}

// requeue puts r back as m's pending content, unless a newer one came
// meanwhile, to be written no sooner than after wait.
func (a *Adapter) requeue(m *message, r *bot.Reply, wait time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil {
		m.pending = r
	}
	m.notBefore = time.Now().Add(wait)
}

// DefaultRetryBase is the first wait before a failed write is tried again
// (bot.Backoff doubles it up to bot.RetryCap).
const DefaultRetryBase = time.Second

// transient reports whether a failed Slack call may succeed if tried again:
// a 5xx answer, Slack's own "try again" errors, a timeout or a broken
// connection. Errors that name a missing message, channel or token are not.
func transient(err error) bool {
	var sc slackgo.StatusCodeError
	if errors.As(err, &sc) {
		return sc.Code >= 500 || sc.Code == http.StatusRequestTimeout
	}
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		return slackRetryable[se.Err]
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// slack-go returns a bare errors.New for some API errors ("message_not_found").
	return slackRetryable[err.Error()]
}

// slackRetryable are the Web API errors Slack documents as temporary.
var slackRetryable = map[string]bool{
	"internal_error": true, "fatal_error": true, "service_unavailable": true,
	"request_timeout": true, "ratelimited": true,
}

// write puts r into the message: chat.update when the bot token and the
// timestamp are known, else one of the message's response_urls. It returns
// how long to wait when rate limited.
func (a *Adapter) write(m *message, r bot.Reply) (time.Duration, error) {
	blocks, text := Render(r)
	m.mu.Lock()
	channel, ts, hooks, same := m.channel, m.ts, append([]*hook(nil), m.hooks...), m.sent == digest(blocks)
	m.mu.Unlock()
	if same {
		return 0, nil // nothing changed on screen; keep the budget
	}
	// Every attempt counts for the spacing, failed ones too, so a failing
	// API is not called faster than a working one.
	m.mu.Lock()
	m.last = time.Now()
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
	defer cancel()
	if a.botToken != "" && ts != "" {
		_, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, slackgo.MsgOptionBlocks(blocks...), slackgo.MsgOptionText(text, false))
		if err == nil {
			m.wrote(blocks, time.Now())
			return 0, nil
		}
		a.countError(Name, "update") // every failed call counts, a 429 too
		var rl *slackgo.RateLimitedError
		if errors.As(err, &rl) {
			return rl.RetryAfter, err
		}
		if len(hooks) == 0 {
			return 0, fmt.Errorf("chat.update of %s/%s: %w", channel, ts, err)
		}
		a.log.Warn("slack: chat.update failed, trying response_url", "request", m.requestID, "err", err)
	}
	for {
		h, err := a.hooks.takeFor(hooks, r.Final)
		if err != nil {
			if errors.Is(err, errNoHook) && a.botToken == "" {
				return 0, fmt.Errorf("%w; set SLACK_BOT_TOKEN so deploybot can update its messages with chat.update", err)
			}
			return 0, err
		}
		err = a.postHook(ctx, h, webhookMessage(blocks, text, slackgo.ResponseTypeInChannel, true))
		if err == nil {
			m.wrote(blocks, time.Now())
			return 0, nil
		}
		a.countError(Name, "response_url")
		var rl *slackgo.RateLimitedError
		if errors.As(err, &rl) {
			return rl.RetryAfter, err
		}
		var sc slackgo.StatusCodeError
		if !errors.As(err, &sc) || (sc.Code != 404 && sc.Code != 410) {
			return 0, err
		}
		// That URL is gone; try the next one.
	}
}

// wrote records what the message now shows.
func (m *message) wrote(blocks []slackgo.Block, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = digest(blocks)
	m.last = at
}

func digest(blocks []slackgo.Block) [sha256.Size]byte {
	b, _ := json.Marshal(blocks)
	return sha256.Sum256(b)
}

// responder answers the sender of one event.
type responder struct {
	a  *Adapter
	in *inbound
}

// Respond implements bot.Responder. Private replies are chat.postEphemeral
// with a bot token, else ephemeral through response_url; public ones go
// through response_url (shown with the command that asked) and, failing
// that, chat.postMessage.
func (r *responder) Respond(ctx context.Context, reply bot.Reply) error {
	a, in := r.a, r.in
	blocks, text := Render(reply)
	if reply.Private {
		if a.botToken != "" {
			_, err := a.api.PostEphemeralContext(ctx, in.channel, in.user, slackgo.MsgOptionBlocks(blocks...), slackgo.MsgOptionText(text, false))
			if err == nil || in.responseURL == "" {
				if err != nil {
					return fmt.Errorf("answering %s privately: %w", in.user, err)
				}
				return nil
			}
			a.log.Warn("slack: chat.postEphemeral failed, answering through response_url", "channel", in.channel, "err", err)
		}
		return r.viaHook(ctx, webhookMessage(blocks, text, slackgo.ResponseTypeEphemeral, false))
	}
	err := r.viaHook(ctx, webhookMessage(blocks, text, slackgo.ResponseTypeInChannel, false))
	if err == nil || a.botToken == "" {
		return err
	}
	if _, _, perr := a.api.PostMessageContext(ctx, in.channel, slackgo.MsgOptionBlocks(blocks...), slackgo.MsgOptionText(text, false)); perr != nil {
		return fmt.Errorf("answering in %s: %w (response_url: %v)", in.channel, perr, err)
	}
	return nil
}

func (r *responder) viaHook(ctx context.Context, msg *slackgo.WebhookMessage) error {
	if r.in.responseURL == "" {
		return errors.New("answering: the event has no response_url and there is no bot token")
	}
	h := r.a.hooks.get(r.in.responseURL, r.in.received)
	if !r.a.hooks.take(h) {
		return fmt.Errorf("answering %s: %w", r.in.user, errNoHook)
	}
	return r.a.postHook(ctx, h, msg)
}
