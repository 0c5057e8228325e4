package storetest

import (
	"context"
	"sync"
	"time"

	"github.com/deploybot/deploybot/store"
)

// Alternate returns a Store that sends each call to the next of stores in
// turn. Several handles on one backend (two FileStores on one file, two
// Kubernetes stores in one namespace) must behave like one store, as two
// processes or replicas would; the contract suite run on Alternate shows it.
func Alternate(stores ...store.Store) store.Store { return &alternating{stores: stores} }

type alternating struct {
	mu     sync.Mutex
	n      int
	stores []store.Store
}

func (a *alternating) next() store.Store {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return a.stores[a.n%len(a.stores)]
}

func (a *alternating) Create(ctx context.Context, r *store.Request) error {
	return a.next().Create(ctx, r)
}
func (a *alternating) Get(ctx context.Context, id string) (*store.Request, error) {
	return a.next().Get(ctx, id)
}
func (a *alternating) Update(ctx context.Context, id string, fn func(*store.Request) error) (*store.Request, error) {
	return a.next().Update(ctx, id, fn)
}
func (a *alternating) List(ctx context.Context, o store.ListOptions) ([]*store.Request, error) {
	return a.next().List(ctx, o)
}
func (a *alternating) Record(ctx context.Context, e store.AuditEvent) error {
	return a.next().Record(ctx, e)
}
func (a *alternating) Audit(ctx context.Context, n int) ([]store.AuditEvent, error) {
	return a.next().Audit(ctx, n)
}
func (a *alternating) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return a.next().Once(ctx, key, ttl)
}
func (a *alternating) Pauses(ctx context.Context) (map[string]store.Pause, error) {
	return a.next().Pauses(ctx)
}
func (a *alternating) SetPause(ctx context.Context, env string, p *store.Pause) error {
	return a.next().SetPause(ctx, env, p)
}
func (a *alternating) Enqueue(ctx context.Context, events []store.InboxEvent) ([]bool, error) {
	return a.next().Enqueue(ctx, events)
}
func (a *alternating) Inbox(ctx context.Context) ([]store.InboxEvent, error) {
	return a.next().Inbox(ctx)
}
func (a *alternating) InboxDone(ctx context.Context, key, outcome string) error {
	return a.next().InboxDone(ctx, key, outcome)
}
func (a *alternating) RecordImage(ctx context.Context, rec store.ImageRecord) error {
	return a.next().RecordImage(ctx, rec)
}
func (a *alternating) Images(ctx context.Context, env, service string) ([]store.ImageRecord, error) {
	return a.next().Images(ctx, env, service)
}
