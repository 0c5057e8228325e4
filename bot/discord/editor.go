package discord

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// editor coalesces the edits of each message: the bot renders a request
// message on every rollout step, Discord allows a handful of edits per
// channel every few seconds. At most one edit of a message goes out per
// interval, always with the newest content, so the final state is always
// delivered and stale content never overwrites newer.
type editor struct {
	interval time.Duration
	send     func(ctx context.Context, ref store.MessageRef, r bot.Reply) error
	log      *slog.Logger
	// retryBase is the first wait before an edit that failed transiently
	// (5xx, timeout, broken connection) is tried again, doubling up to
	// bot.RetryCap; maxRetries in a row, then it is given up.
	retryBase time.Duration

	mu   sync.Mutex
	msgs map[store.MessageRef]*edits
	stop chan struct{} // closed by flush: skip the waits, deliver now
	work sync.WaitGroup
}

// edits is one message's pending content.
type edits struct {
	ref store.MessageRef
	// sending is held while an edit of this message is on its way, so edits
	// of one message reach Discord in order.
	sending sync.Mutex

	// Guarded by editor.mu.
	latest  bot.Reply
	version uint64 // bumped by every new content
	sent    uint64 // the version Discord has
	running bool   // a sender goroutine owns this message
	held    int    // holds not yet delivered or released
	// failures counts transient failures in a row (run's goroutine only).
	failures int
}

func newEditor(interval time.Duration, log *slog.Logger, send func(context.Context, store.MessageRef, bot.Reply) error) *editor {
	return &editor{interval: interval, send: send, log: log, retryBase: time.Second, msgs: map[store.MessageRef]*edits{}, stop: make(chan struct{})}
}

// entry returns ref's state; e.mu must be held.
func (e *editor) entry(ref store.MessageRef) *edits {
	m, ok := e.msgs[ref]
	if !ok {
		m = &edits{ref: ref}
		e.msgs[ref] = m
	}
	return m
}

// update makes r the content ref should show and sees that it gets there:
// at once when the message was not edited within the interval, else when the
// interval has passed, coalesced with whatever came meanwhile.
func (e *editor) update(ref store.MessageRef, r bot.Reply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.entry(ref)
	m.latest = r
	m.version++
	if m.running || m.held > 0 {
		return
	}
	m.running = true
	e.work.Add(1)
	go e.run(m)
}

// hold records r as ref's newest content and stops edits of ref until the
// caller delivers it itself (deliver) or hands it back (release): the
// message is an interaction's response that is not sent yet, and Discord
// takes no edit of it before.
func (e *editor) hold(ref store.MessageRef, r bot.Reply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.entry(ref)
	m.latest = r
	m.version++
	m.held++
}

// deliver sends ref's newest content through fn (an interaction response
// that replaces the clicked message) in order with the other edits. It ends a
// hold.
func (e *editor) deliver(ref store.MessageRef, fn func(bot.Reply) error) error {
	e.mu.Lock()
	m := e.entry(ref)
	e.mu.Unlock()
	m.sending.Lock()
	defer m.sending.Unlock()
	e.mu.Lock()
	r, v := m.latest, m.version
	e.mu.Unlock()
	err := fn(r)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		m.sent = max(m.sent, v)
	}
	e.unhold(m)
	return err
}

// release ends a hold without delivering: the held content goes out as an
// ordinary edit.
func (e *editor) release(ref store.MessageRef) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if m, ok := e.msgs[ref]; ok {
		e.unhold(m)
	}
}

// unhold ends one hold of m and sends what Discord does not have yet;
// e.mu must be held.
func (e *editor) unhold(m *edits) {
	m.held = max(m.held-1, 0)
	switch {
	case m.running || m.held > 0:
	case m.sent < m.version:
		m.running = true
		e.work.Add(1)
		go e.run(m)
	default:
		delete(e.msgs, m.ref)
	}
}

// run sends m's newest content until nothing newer is left, waiting the
// interval after each edit.
func (e *editor) run(m *edits) {
	defer e.work.Done()
	for {
		m.sending.Lock()
		e.mu.Lock()
		if m.sent == m.version || m.held > 0 {
			m.running = false
			if m.held == 0 {
				delete(e.msgs, m.ref)
			}
			e.mu.Unlock()
			m.sending.Unlock()
			return
		}
		r, v := m.latest, m.version
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := e.send(ctx, m.ref, r)
		cancel()
		wait := e.interval
		switch {
		case errors.Is(err, errNoREST), errors.Is(err, errTokenExpired):
			e.log.Debug("not updating a Discord message", "message", m.ref.ID, "request", r.RequestID, "reason", err)
		case err != nil && transient(err) && m.failures < e.retries():
			// Not marked sent: the newest content goes out at the next try.
			m.failures++
			wait = bot.Backoff(e.retryBase, m.failures)
			e.log.Warn("updating a Discord message failed, will retry", "message", m.ref.ID, "request", r.RequestID, "after", wait.Round(time.Millisecond), "err", err)
			m.sending.Unlock()
			if !e.sleep(wait) {
				time.Sleep(min(wait, e.retryBase)) // shutting down: a quick try or two, not the whole backoff
			}
			continue
		case err != nil:
			// A deleted message, no permission, or retries used up: give up
			// rather than loop forever.
			e.log.Error("giving up updating a Discord message", "channel", m.ref.Channel, "message", m.ref.ID, "request", r.RequestID, "final", r.Final, "err", err)
		}
		e.mu.Lock()
		m.sent = max(m.sent, v)
		m.failures = 0
		e.mu.Unlock()
		m.sending.Unlock()
		e.sleep(wait)
	}
}

// sleep waits d, or less if flush is called; false if flushing.
func (e *editor) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.stop:
		return false
	}
}

// maxRetries bounds the transient failures in a row an edit is retried
// through (about half an hour of capped backoff); flushRetries bounds them
// once flush began, so a Discord that is down does not hold up a shutdown.
const (
	maxRetries   = 20
	flushRetries = 2
)

func (e *editor) retries() int {
	select {
	case <-e.stop:
		return flushRetries
	default:
		return maxRetries
	}
}

// transient reports whether a failed Discord call may succeed if tried
// again: a 5xx answer, a timeout or a broken connection (discordgo itself
// waits out 429s). Unknown Message, Missing Access and the like are final.
func transient(err error) bool {
	var re *discordgo.RESTError
	if errors.As(err, &re) {
		return re.Response != nil && re.Response.StatusCode >= 500
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// flush delivers every pending edit now and waits for them, at most until
// ctx ends; the editor keeps working afterwards without waiting between edits.
func (e *editor) flush(ctx context.Context) {
	e.mu.Lock()
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.work.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
