package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
)

// Record implements store.Store: one record under the next sequence
// number, so the bucket's order is the recording order. A zero Time is set
// to now.
func (s *Store) Record(ctx context.Context, e store.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit event: %w", err)
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bAudit)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(seqKey(n), v)
	})
	if err != nil {
		return fmt.Errorf("recording audit event: %w", err)
	}
	return nil
}

// Audit implements store.Store; n <= 0 returns every event. It reads from
// the end, so the last few events cost the same however long the trail. A
// record that does not decode is an error naming it.
func (s *Store) Audit(ctx context.Context, n int) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bAudit).Cursor()
		for k, v := c.Last(); k != nil && (n <= 0 || len(out) < n); k, v = c.Prev() {
			e, err := decodeAudit(k, v)
			if err != nil {
				return s.corrupt(fmt.Sprintf("audit/%x", k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading audit trail: %w", err)
	}
	return out, nil
}

// Once implements store.Store. A key still live is answered from a read
// transaction; only a first sighting writes.
func (s *Store) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	seen := func(tx *bbolt.Tx, now time.Time) (bool, []byte, error) {
		v := tx.Bucket(bOnce).Get([]byte(key))
		if v == nil {
			return false, nil, nil
		}
		until, err := decodeExpiry(v)
		if err != nil {
			return false, nil, s.corrupt(fmt.Sprintf("once/%q", key), err)
		}
		return now.Before(until), bytes.Clone(v), nil
	}
	var live bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		live, _, err = seen(tx, s.now())
		return err
	})
	if err != nil || live {
		return false, wrapOnce(err)
	}
	first := false
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		now := s.now()
		live, old, err := seen(tx, now)
		if err != nil || live {
			first = false
			if err == nil {
				err = errNothingToWrite
			}
			return err
		}
		exp := tx.Bucket(bOnceExpiry)
		if old != nil {
			if err := exp.Delete(append(old, key...)); err != nil {
				return err
			}
		}
		until := timeKey(now.Add(ttl))
		if err := tx.Bucket(bOnce).Put([]byte(key), until); err != nil {
			return err
		}
		first = true
		return exp.Put(append(until, key...), nil)
	})
	return first, wrapOnce(err)
}

func wrapOnce(err error) error {
	if err != nil {
		return fmt.Errorf("recording dedupe key: %w", err)
	}
	return nil
}

// Pauses implements store.Store.
func (s *Store) Pauses(ctx context.Context) (map[string]store.Pause, error) {
	out := map[string]store.Pause{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bPauses).ForEach(func(k, v []byte) error {
			p, err := decodePause(v)
			if err != nil {
				return s.corrupt(fmt.Sprintf("pauses/%q", k), err)
			}
			out[string(k)] = p
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading schedule pauses: %w", err)
	}
	return out, nil
}

// SetPause implements store.Store.
func (s *Store) SetPause(ctx context.Context, env string, p *store.Pause) error {
	var v []byte
	if p != nil {
		var err error
		if v, err = json.Marshal(p); err != nil {
			return fmt.Errorf("encoding the schedule pause of %s: %w", env, err)
		}
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bPauses)
		if p == nil {
			if b.Get([]byte(env)) == nil {
				return errNothingToWrite
			}
			return b.Delete([]byte(env))
		}
		return b.Put([]byte(env), v)
	})
	if err != nil {
		return fmt.Errorf("recording the schedule pause of %s: %w", env, err)
	}
	return nil
}

// Enqueue implements store.Store: the whole batch is one transaction, one
// fsync. Each new event goes into the inbox at its receive time and
// sequence number, and its key into inbox-keys pointing at it.
func (s *Store) Enqueue(ctx context.Context, events []store.InboxEvent) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return []bool{}, nil
	}
	for _, e := range events {
		if err := e.Check(); err != nil {
			return nil, fmt.Errorf("enqueueing inbound events: %w", err)
		}
	}
	var fresh []bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		now := s.now()
		fresh = make([]bool, len(events))
		inbox, keys, exp := tx.Bucket(bInbox), tx.Bucket(bInboxKeys), tx.Bucket(bInboxExpiry)
		wrote := false
		for i, e := range events {
			rec, err := s.inboxKey(keys, []byte(e.Key))
			if err != nil {
				return err
			}
			if rec != nil {
				if !rec.Done || now.Before(rec.Expires) {
					continue // kept: a duplicate (also of an event earlier in this batch)
				}
				if err := exp.Delete(append(timeKey(rec.Expires), e.Key...)); err != nil {
					return err
				}
			}
			if e.Received.IsZero() {
				e.Received = now
			}
			n, err := inbox.NextSequence()
			if err != nil {
				return err
			}
			pos := append(timeKey(e.Received), seqKey(n)...)
			ev, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encoding inbox event %q: %w", e.Key, err)
			}
			kv, err := json.Marshal(inboxKey{Pos: pos, Expires: e.Expires()})
			if err != nil {
				return err
			}
			if err := inbox.Put(pos, ev); err != nil {
				return fmt.Errorf("storing inbox event %q: %w", e.Key, err)
			}
			if err := keys.Put([]byte(e.Key), kv); err != nil {
				return fmt.Errorf("storing inbox event %q: %w", e.Key, err)
			}
			fresh[i], wrote = true, true
		}
		if !wrote {
			return errNothingToWrite
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enqueueing inbound events: %w", err)
	}
	return fresh, nil
}

// Inbox implements store.Store: the inbox bucket in key order, which is
// receive time, then enqueueing order.
func (s *Store) Inbox(ctx context.Context) ([]store.InboxEvent, error) {
	var out []store.InboxEvent
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bInbox).ForEach(func(k, v []byte) error {
			e, err := decodeInboxEvent(k, v)
			if err != nil {
				return s.corrupt(fmt.Sprintf("inbox/%x", k), err)
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the inbox: %w", err)
	}
	return out, nil
}

// InboxDone implements store.Store: the event leaves the inbox and its key
// record says done, in one transaction; the key enters inbox-expiry.
func (s *Store) InboxDone(ctx context.Context, key, outcome string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error { return s.markDone(tx, key, outcome) })
	if err != nil {
		if errors.Is(err, store.ErrNoEvent) {
			return fmt.Errorf("marking inbox event %q done: %w", key, store.ErrNoEvent)
		}
		return fmt.Errorf("marking inbox event %q done: %w", key, err)
	}
	return nil
}

// InboxDoneAll implements store.InboxBatcher: every event in one
// transaction; unknown and done keys are skipped.
func (s *Store) InboxDoneAll(ctx context.Context, done []store.InboxOutcome) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		wrote := false
		for _, d := range done {
			switch err := s.markDone(tx, d.Key, d.Outcome); {
			case err == nil:
				wrote = true
			case errors.Is(err, store.ErrNoEvent), errors.Is(err, errNothingToWrite):
			default:
				return err
			}
		}
		if !wrote {
			return errNothingToWrite
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("marking %d inbox events done: %w", len(done), err)
	}
	return nil
}

// markDone takes the event with key out of the inbox, its key record saying
// done, in tx; the key enters inbox-expiry.
func (s *Store) markDone(tx *bbolt.Tx, key, outcome string) error {
	keys := tx.Bucket(bInboxKeys)
	rec, err := s.inboxKey(keys, []byte(key))
	switch {
	case err != nil:
		return err
	case rec == nil:
		return store.ErrNoEvent
	case rec.Done:
		return errNothingToWrite
	}
	inbox := tx.Bucket(bInbox)
	if inbox.Get(rec.Pos) == nil {
		return s.corrupt(fmt.Sprintf("inbox-keys/%q", key), fmt.Errorf("the event it points at (inbox/%x) is not there", rec.Pos))
	}
	if err := inbox.Delete(rec.Pos); err != nil {
		return err
	}
	kv, err := json.Marshal(inboxKey{Expires: rec.Expires, Done: true, DoneAt: s.now(), Outcome: outcome})
	if err != nil {
		return err
	}
	if err := keys.Put([]byte(key), kv); err != nil {
		return err
	}
	return tx.Bucket(bInboxExpiry).Put(append(timeKey(rec.Expires), key...), nil)
}
