package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
)

// Create implements store.Store: the ID check, the busy check against the
// locks index and the writes of the request, its locks (or its finished
// entry) are one transaction.
func (s *Store) Create(ctx context.Context, r *store.Request) error {
	c, err := cloneRequest(r)
	if err != nil {
		return err
	}
	if c.ID == "" {
		c.ID = store.NewID()
	}
	now := s.now()
	c.Version = 1
	// Timestamps the caller set (from its own clock) are kept.
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding request #%s: %w", c.ID, err)
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bRequests).Get([]byte(c.ID)) != nil {
			return fmt.Errorf("creating request #%s: %w", c.ID, store.ErrExists)
		}
		if err := s.take(tx, c.ID, nil, c); err != nil {
			return err
		}
		return s.putRequest(tx, nil, c, v)
	})
	if err != nil {
		return err
	}
	*r = *c // c is the caller's own: the store keeps only v
	return nil
}

// held is the set of locks r holds: its Locks while it is not terminal.
func held(r *store.Request) []string {
	if r == nil || r.State.Terminal() {
		return nil
	}
	out := slices.Clone(r.Locks)
	slices.Sort(out)
	return slices.Compact(out)
}

// take checks that the locks next holds and cur did not are free, and takes
// them; it releases those cur held and next does not. A lock held by
// another request is a *store.BusyError naming the oldest such holder.
func (s *Store) take(tx *bbolt.Tx, id string, cur, next *store.Request) error {
	locks := tx.Bucket(bLocks)
	before, after := held(cur), held(next)
	var holder *store.Request
	var busy string
	for _, l := range after {
		if slices.Contains(before, l) {
			continue
		}
		h := locks.Get([]byte(l))
		if h == nil || string(h) == id {
			continue
		}
		other, err := s.request(tx.Bucket(bRequests), h)
		if err != nil {
			return err
		}
		if other == nil || !slices.Contains(held(other), l) {
			return s.corrupt(fmt.Sprintf("locks/%q", l), fmt.Errorf("the lock names #%s, which does not hold it", h))
		}
		if holder == nil || other.CreatedAt.Before(holder.CreatedAt) ||
			(other.CreatedAt.Equal(holder.CreatedAt) && other.ID < holder.ID) {
			holder, busy = other, l
		}
	}
	if holder != nil {
		return &store.BusyError{Lock: busy, ID: holder.ID}
	}
	for _, l := range before {
		if slices.Contains(after, l) {
			continue
		}
		if h := locks.Get([]byte(l)); h != nil && string(h) == id {
			if err := locks.Delete([]byte(l)); err != nil {
				return err
			}
		}
	}
	for _, l := range after {
		if slices.Contains(before, l) {
			continue
		}
		if err := locks.Put([]byte(l), []byte(id)); err != nil {
			return fmt.Errorf("taking lock %s for #%s: %w", l, id, err)
		}
	}
	return nil
}

// finishedKey is r's entry in the finished index.
func finishedKey(r *store.Request) []byte { return append(timeKey(r.UpdatedAt), r.ID...) }

// putRequest writes next (encoded as v) over cur and moves its entry in the
// finished index.
func (s *Store) putRequest(tx *bbolt.Tx, cur, next *store.Request, v []byte) error {
	fin := tx.Bucket(bFinished)
	if cur != nil && cur.State.Terminal() {
		if err := fin.Delete(finishedKey(cur)); err != nil {
			return err
		}
	}
	if next.State.Terminal() {
		if err := fin.Put(finishedKey(next), nil); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bRequests).Put([]byte(next.ID), v); err != nil {
		return fmt.Errorf("writing request #%s: %w", next.ID, err)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*store.Request, error) {
	r, _, err := s.get(ctx, id)
	return r, err
}

// get returns the request and its stored bytes.
func (s *Store) get(ctx context.Context, id string) (*store.Request, []byte, error) {
	var r *store.Request
	var raw []byte
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		reqs := tx.Bucket(bRequests)
		var err error
		if r, err = s.request(reqs, []byte(id)); err != nil || r == nil {
			return err
		}
		raw = bytes.Clone(reqs.Get([]byte(id)))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if r == nil {
		return nil, nil, fmt.Errorf("getting request #%s: %w", id, store.ErrNotFound)
	}
	return r, raw, nil
}

// errConflict is a compare-and-swap that lost: fn runs again.
var errConflict = errors.New("the request changed meanwhile")

// Update implements store.Store. fn runs outside any transaction on a
// private copy of the latest version; the result is written only if the
// stored request is still byte for byte the one fn started from.
func (s *Store) Update(ctx context.Context, id string, fn func(r *store.Request) error) (*store.Request, error) {
	for {
		cur, raw, err := s.get(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("updating request #%s: %w", id, store.ErrNotFound)
			}
			return nil, err
		}
		next, err := cloneRequest(cur)
		if err != nil {
			return nil, err
		}
		if err := fn(next); err != nil {
			return nil, err
		}
		next.ID = id
		next.Version = cur.Version + 1
		if next.UpdatedAt.Equal(cur.UpdatedAt) {
			next.UpdatedAt = s.now() // fn did not stamp it with its own clock
		}
		v, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encoding request #%s: %w", id, err)
		}
		err = s.update(ctx, func(tx *bbolt.Tx) error {
			latest := tx.Bucket(bRequests).Get([]byte(id))
			switch {
			case latest == nil:
				return fmt.Errorf("updating request #%s: %w", id, store.ErrNotFound)
			case !bytes.Equal(latest, raw):
				return errConflict
			}
			if err := s.take(tx, id, cur, next); err != nil {
				return err
			}
			return s.putRequest(tx, cur, next, v)
		})
		switch {
		case errors.Is(err, errConflict):
			continue
		case err != nil:
			return nil, err
		}
		return decodeRequest([]byte(id), v)
	}
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, opts store.ListOptions) ([]*store.Request, error) {
	var out []*store.Request
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bRequests).ForEach(func(k, v []byte) error {
			r, err := decodeRequest(k, v)
			if err != nil {
				return s.corrupt(fmt.Sprintf("requests/%q", k), err)
			}
			if opts.Includes(r.State) {
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", err)
	}
	slices.SortFunc(out, func(a, b *store.Request) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// cloneRequest deep-copies r through its JSON form, the form it is stored in.
func cloneRequest(r *store.Request) (*store.Request, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding request #%s: %w", r.ID, err)
	}
	var c store.Request
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decoding request #%s: %w", r.ID, err)
	}
	return &c, nil
}
