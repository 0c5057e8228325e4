package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
)

// maxCheckErrors is how many of bbolt's page errors a CorruptError lists.
const maxCheckErrors = 5

// Verify checks the whole database, as Open does: bbolt's page checks, then
// every record decodes and every index agrees with what it indexes:
//
//   - each lock names a non-terminal request that holds it, and each lock
//     a non-terminal request holds names it;
//   - each terminal request has its finished entry, and each entry its request;
//   - each Once key has its expiry entry, and each entry its key;
//   - each event in the inbox has its key pointing at it, not done; each
//     key not done points at its event; each done key has its expiry entry;
//   - the audit records decode, under sequence numbers;
//   - the image records decode, plausible, each under its own environment,
//     service and digest.
//
// The first violation is a *CorruptError naming the record.
func (s *Store) Verify(ctx context.Context) error {
	return s.view(ctx, func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return s.corrupt("bbolt's page check", errors.Join(errs...))
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return s.corrupt("its buckets", fmt.Errorf("the bucket %s is missing", name))
			}
		}
		for _, check := range []func(*bbolt.Tx) error{s.verifyRequests, s.verifyOnce, s.verifyInbox, s.verifyAudit, s.verifyPauses, s.verifyImages} {
			if err := check(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) verifyRequests(tx *bbolt.Tx) error {
	reqs, locks, fin := tx.Bucket(bRequests), tx.Bucket(bLocks), tx.Bucket(bFinished)
	byID := map[string]*store.Request{}
	err := reqs.ForEach(func(k, v []byte) error {
		r, err := decodeRequest(k, v)
		if err != nil {
			return s.corrupt(fmt.Sprintf("requests/%q", k), err)
		}
		byID[r.ID] = r
		for _, l := range held(r) {
			if h := locks.Get([]byte(l)); string(h) != r.ID {
				return s.corrupt(fmt.Sprintf("locks/%q", l), fmt.Errorf("request #%s holds the lock, but the lock names %q", r.ID, h))
			}
		}
		if r.State.Terminal() && fin.Get(finishedKey(r)) == nil {
			return s.corrupt(fmt.Sprintf("finished/%x", finishedKey(r)), fmt.Errorf("the finished request #%s has no retention entry", r.ID))
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = locks.ForEach(func(k, v []byte) error {
		r := byID[string(v)]
		if r == nil || !slices.Contains(held(r), string(k)) {
			return s.corrupt(fmt.Sprintf("locks/%q", k), fmt.Errorf("the lock names #%s, which does not hold it", v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fin.ForEach(func(k, _ []byte) error {
		if len(k) <= 8 {
			return s.corrupt(fmt.Sprintf("finished/%x", k), errors.New("not a time and an ID"))
		}
		r := byID[string(k[8:])]
		if r == nil || !r.State.Terminal() || !bytes.Equal(finishedKey(r), k) {
			return s.corrupt(fmt.Sprintf("finished/%x", k), fmt.Errorf("the entry names #%s, which is not a request finished at that time", k[8:]))
		}
		return nil
	})
}

func (s *Store) verifyOnce(tx *bbolt.Tx) error {
	once, exp := tx.Bucket(bOnce), tx.Bucket(bOnceExpiry)
	err := once.ForEach(func(k, v []byte) error {
		if _, err := decodeExpiry(v); err != nil {
			return s.corrupt(fmt.Sprintf("once/%q", k), err)
		}
		if exp.Get(append(bytes.Clone(v), k...)) == nil {
			return s.corrupt(fmt.Sprintf("once/%q", k), errors.New("the key has no expiry entry"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return exp.ForEach(func(k, _ []byte) error {
		if len(k) < 8 || !bytes.Equal(once.Get(k[8:]), k[:8]) {
			return s.corrupt(fmt.Sprintf("once-expiry/%x", k), errors.New("the entry has no key of that expiry"))
		}
		return nil
	})
}

func (s *Store) verifyInbox(tx *bbolt.Tx) error {
	inbox, keys, exp := tx.Bucket(bInbox), tx.Bucket(bInboxKeys), tx.Bucket(bInboxExpiry)
	err := inbox.ForEach(func(k, v []byte) error {
		e, err := decodeInboxEvent(k, v)
		if err != nil {
			return s.corrupt(fmt.Sprintf("inbox/%x", k), err)
		}
		rec, err := s.inboxKey(keys, []byte(e.Key))
		if err != nil {
			return err
		}
		if rec == nil || rec.Done || !bytes.Equal(rec.Pos, k) {
			return s.corrupt(fmt.Sprintf("inbox/%x", k), fmt.Errorf("the key %q of the event does not point at it", e.Key))
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = keys.ForEach(func(k, v []byte) error {
		rec, err := decodeInboxKey(v)
		if err != nil {
			return s.corrupt(fmt.Sprintf("inbox-keys/%q", k), err)
		}
		switch {
		case rec.Done && exp.Get(append(timeKey(rec.Expires), k...)) == nil:
			return s.corrupt(fmt.Sprintf("inbox-keys/%q", k), errors.New("a done key without its expiry entry"))
		case !rec.Done && inbox.Get(rec.Pos) == nil:
			return s.corrupt(fmt.Sprintf("inbox-keys/%q", k), fmt.Errorf("the key points at inbox/%x, which is not there", rec.Pos))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return exp.ForEach(func(k, _ []byte) error {
		if len(k) < 8 {
			return s.corrupt(fmt.Sprintf("inbox-expiry/%x", k), errors.New("not a time and a key"))
		}
		rec, err := s.inboxKey(keys, k[8:])
		if err != nil {
			return err
		}
		if rec == nil || !rec.Done || !bytes.Equal(timeKey(rec.Expires), k[:8]) {
			return s.corrupt(fmt.Sprintf("inbox-expiry/%x", k), errors.New("the entry has no done key of that expiry"))
		}
		return nil
	})
}

func (s *Store) verifyAudit(tx *bbolt.Tx) error {
	return tx.Bucket(bAudit).ForEach(func(k, v []byte) error {
		if _, err := decodeAudit(k, v); err != nil {
			return s.corrupt(fmt.Sprintf("audit/%x", k), err)
		}
		return nil
	})
}

func (s *Store) verifyPauses(tx *bbolt.Tx) error {
	return tx.Bucket(bPauses).ForEach(func(k, v []byte) error {
		if _, err := decodePause(v); err != nil {
			return s.corrupt(fmt.Sprintf("pauses/%q", k), err)
		}
		return nil
	})
}
