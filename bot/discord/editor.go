package discord

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

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
}

func newEditor(interval time.Duration, log *slog.Logger, send func(context.Context, store.MessageRef, bot.Reply) error) *editor {
	return &editor{interval: interval, send: send, log: log, msgs: map[store.MessageRef]*edits{}, stop: make(chan struct{})}
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
		switch {
		case errors.Is(err, errNoREST), errors.Is(err, errTokenExpired):
			e.log.Debug("not updating a Discord message", "message", m.ref.ID, "request", r.RequestID, "reason", err)
		case err != nil:
			// The next content retries; an edit of a deleted message must not
			// loop forever.
			e.log.Error("updating a Discord message", "channel", m.ref.Channel, "message", m.ref.ID, "request", r.RequestID, "err", err)
		}
		e.mu.Lock()
		m.sent = max(m.sent, v)
		e.mu.Unlock()
		m.sending.Unlock()
		select {
		case <-time.After(e.interval):
		case <-e.stop:
		}
	}
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
