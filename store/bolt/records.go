package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
)

// The records' decoders. Each refuses what the store never writes, so that
// damage is an error naming the record, never a zero value taken for data.

func decodeRequest(key, v []byte) (*store.Request, error) {
	var r *store.Request
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, err
	}
	if err := store.CheckRequest(r, string(key)); err != nil {
		return nil, err
	}
	return r, nil
}

// request decodes the request id of reqs; nil if there is none.
func (s *Store) request(reqs *bbolt.Bucket, id []byte) (*store.Request, error) {
	v := reqs.Get(id)
	if v == nil {
		return nil, nil
	}
	r, err := decodeRequest(id, v)
	if err != nil {
		return nil, s.corrupt(fmt.Sprintf("requests/%q", id), err)
	}
	return r, nil
}

func decodeAudit(key, v []byte) (store.AuditEvent, error) {
	var e *store.AuditEvent
	if len(key) != 8 {
		return store.AuditEvent{}, fmt.Errorf("key %x is not a sequence number", key)
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return store.AuditEvent{}, err
	}
	if e == nil {
		return store.AuditEvent{}, errors.New("the audit event is null")
	}
	if err := store.CheckAuditEvent(e); err != nil {
		return store.AuditEvent{}, err
	}
	return *e, nil
}

func decodeExpiry(v []byte) (time.Time, error) {
	if len(v) != 8 {
		return time.Time{}, fmt.Errorf("expiry %x is not 8 bytes", v)
	}
	return keyTime(v), nil
}

func decodePause(v []byte) (store.Pause, error) {
	var p *store.Pause
	if err := json.Unmarshal(v, &p); err != nil {
		return store.Pause{}, err
	}
	if p == nil {
		return store.Pause{}, errors.New("the pause is null")
	}
	return *p, nil
}

// inboxKey is an inbox dedupe key: where its event is while not done, and
// until when the key is kept once it is.
type inboxKey struct {
	// Pos is the event's key in the inbox bucket while it is not done.
	Pos     []byte    `json:"pos,omitempty"`
	Expires time.Time `json:"expires"`
	Done    bool      `json:"done,omitempty"`
	DoneAt  time.Time `json:"doneAt,omitzero"`
	Outcome string    `json:"outcome,omitempty"`
}

func decodeInboxKey(v []byte) (*inboxKey, error) {
	var k *inboxKey
	if err := json.Unmarshal(v, &k); err != nil {
		return nil, err
	}
	switch {
	case k == nil:
		return nil, errors.New("the key record is null")
	case k.Expires.IsZero():
		return nil, errors.New("the key record has no expiry")
	case k.Done && len(k.Pos) != 0:
		return nil, errors.New("a done key still points into the inbox")
	case !k.Done && len(k.Pos) != 16:
		return nil, fmt.Errorf("the key of an event not done points at %x, not an inbox position", k.Pos)
	}
	return k, nil
}

// inboxKey decodes the record of key in keys; nil if there is none.
func (s *Store) inboxKey(keys *bbolt.Bucket, key []byte) (*inboxKey, error) {
	v := keys.Get(key)
	if v == nil {
		return nil, nil
	}
	k, err := decodeInboxKey(v)
	if err != nil {
		return nil, s.corrupt(fmt.Sprintf("inbox-keys/%q", key), err)
	}
	return k, nil
}

func decodeInboxEvent(pos, v []byte) (store.InboxEvent, error) {
	var e *store.InboxEvent
	if len(pos) != 16 {
		return store.InboxEvent{}, fmt.Errorf("position %x is not a time and a sequence number", pos)
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return store.InboxEvent{}, err
	}
	switch {
	case e == nil:
		return store.InboxEvent{}, errors.New("the event is null")
	case e.Check() != nil:
		return store.InboxEvent{}, e.Check()
	case e.Received.IsZero():
		return store.InboxEvent{}, errors.New("the event has no receive time")
	case !bytes.Equal(timeKey(e.Received), pos[:8]):
		return store.InboxEvent{}, fmt.Errorf("the event received at %s is stored at the time %s", e.Received.UTC().Format(time.RFC3339Nano), keyTime(pos[:8]).Format(time.RFC3339Nano))
	}
	return *e, nil
}
