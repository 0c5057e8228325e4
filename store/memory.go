package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Memory is an in-process Store for tests and the demo. It follows the same
// contract as the file backend: Update is optimistic compare-and-swap.
type Memory struct {
	opts  options
	mu    sync.Mutex
	snap  *snapshot
	audit []AuditEvent
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...Option) *Memory {
	return &Memory{opts: buildOptions(opts), snap: newSnapshot()}
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, r *Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.now()
	if m.opts.retention > 0 {
		m.snap.pruneRequests(now.Add(-m.opts.retention))
	}
	return m.snap.create(r, now)
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id string) (*Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.snap.Requests[id]
	if !ok {
		return nil, fmt.Errorf("getting request #%s: %w", id, ErrNotFound)
	}
	return clone(r), nil
}

// Update implements Store. fn runs without the lock held on a private copy;
// the result is stored only if the request's Version is unchanged, otherwise
// fn runs again on the newer version.
func (m *Memory) Update(ctx context.Context, id string, fn func(r *Request) error) (*Request, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cur, err := m.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("updating request #%s: %w", id, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		next := clone(cur)
		if err := fn(next); err != nil {
			return nil, err
		}
		m.mu.Lock()
		latest, ok := m.snap.Requests[id]
		switch {
		case !ok:
			m.mu.Unlock()
			return nil, fmt.Errorf("updating request #%s: %w", id, ErrNotFound)
		case latest.Version != cur.Version:
			m.mu.Unlock()
			continue
		}
		next.ID = id
		next.Version = cur.Version + 1
		if next.UpdatedAt.Equal(cur.UpdatedAt) {
			next.UpdatedAt = m.opts.now() // fn did not stamp it with its own clock
		}
		m.snap.Requests[id] = clone(next)
		m.mu.Unlock()
		return next, nil
	}
}

// List implements Store.
func (m *Memory) List(ctx context.Context, opts ListOptions) ([]*Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.list(opts), nil
}

// Record implements Store. A zero Time is set to now.
func (m *Memory) Record(ctx context.Context, e AuditEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = m.opts.now()
	}
	m.audit = append(m.audit, e)
	return nil
}

// Audit implements Store; n <= 0 returns every event.
func (m *Memory) Audit(ctx context.Context, n int) ([]AuditEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return lastN(m.audit, n), nil
}

// Once implements Store.
func (m *Memory) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.once(key, ttl, m.opts.now()), nil
}

// Pauses implements Store.
func (m *Memory) Pauses(ctx context.Context) (map[string]Pause, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.pauses(), nil
}

// SetPause implements Store.
func (m *Memory) SetPause(ctx context.Context, env string, p *Pause) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap.setPause(env, p)
	return nil
}

// Enqueue implements Store.
func (m *Memory) Enqueue(ctx context.Context, events []InboxEvent) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fresh, err := m.snap.enqueue(events, m.opts.now())
	if err != nil {
		return nil, fmt.Errorf("enqueueing inbound events: %w", err)
	}
	return fresh, nil
}

// Inbox implements Store.
func (m *Memory) Inbox(ctx context.Context) ([]InboxEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.inbox(), nil
}

// InboxDone implements Store.
func (m *Memory) InboxDone(ctx context.Context, key, outcome string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.snap.inboxDone(key, outcome, m.opts.now())
	return err
}

// RecordImage implements Store.
func (m *Memory) RecordImage(ctx context.Context, rec ImageRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := rec.Check(); err != nil {
		return fmt.Errorf("recording an image: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap.recordImage(rec)
	return nil
}

// Images implements Store.
func (m *Memory) Images(ctx context.Context, env, service string) ([]ImageRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.images(env, service), nil
}
