package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// snapshot is the whole mutable state of a store except the audit trail; the
// file backend stores it as one JSON document.
type snapshot struct {
	// Format is the file format version, for migrations.
	Format   int                  `json:"format"`
	Requests map[string]*Request  `json:"requests"`
	Once     map[string]time.Time `json:"once,omitempty"`
	// Pauses are the paused schedules by environment.
	Pauses map[string]Pause `json:"pauses,omitempty"`
	// Inbox holds the inbound events in enqueueing order: those not done,
	// and done ones until their dedupe key expires.
	Inbox []InboxRecord `json:"inbox,omitempty"`
	// Images are the image records by environment and service, each
	// service's newest first (at most MaxImageRecords).
	Images map[string]map[string][]ImageRecord `json:"images,omitempty"`
}

// InboxRecord is one event of the inbox and whether it was handled: the
// form the JSON file store keeps it in, and ReadFileState returns.
type InboxRecord struct {
	Event   InboxEvent `json:"event"`
	Done    bool       `json:"done,omitempty"`
	DoneAt  time.Time  `json:"doneAt,omitzero"`
	Outcome string     `json:"outcome,omitempty"`
}

const snapshotFormat = 1

func newSnapshot() *snapshot {
	return &snapshot{Format: snapshotFormat, Requests: map[string]*Request{}, Once: map[string]time.Time{}}
}

// create adds r after checking its ID and locks; it sets the ID and
// timestamps (when empty) and the Version on r.
func (s *snapshot) create(r *Request, now time.Time) error {
	if r.ID == "" {
		r.ID = NewID()
	}
	if _, taken := s.Requests[r.ID]; taken {
		return fmt.Errorf("creating request #%s: %w", r.ID, ErrExists)
	}
	if err := s.busy(r.Locks); err != nil {
		return err
	}
	r.Version = 1
	// Timestamps the caller set (from its own clock) are kept.
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	s.Requests[r.ID] = clone(r)
	return nil
}

// busy returns a *BusyError naming the oldest non-terminal request that holds
// one of locks, or nil.
func (s *snapshot) busy(locks []string) error {
	var holder *Request
	var lock string
	for _, other := range s.Requests {
		if other.State.Terminal() {
			continue
		}
		for _, l := range locks {
			if !slices.Contains(other.Locks, l) {
				continue
			}
			if holder == nil || other.CreatedAt.Before(holder.CreatedAt) ||
				(other.CreatedAt.Equal(holder.CreatedAt) && other.ID < holder.ID) {
				holder, lock = other, l
			}
			break
		}
	}
	if holder != nil {
		return &BusyError{Lock: lock, ID: holder.ID}
	}
	return nil
}

// list returns copies of the requests in the given states, newest first.
func (s *snapshot) list(opts ListOptions) []*Request {
	var out []*Request
	for _, r := range s.Requests {
		if opts.Includes(r.State) {
			out = append(out, clone(r))
		}
	}
	sortNewestFirst(out)
	return out
}

func sortNewestFirst(rs []*Request) {
	slices.SortFunc(rs, func(a, b *Request) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// once records key until now+ttl and reports whether it was new. Expired
// keys are pruned first so the map stays as small as the live keys.
func (s *snapshot) once(key string, ttl time.Duration, now time.Time) bool {
	s.pruneOnce(now)
	if _, seen := s.Once[key]; seen {
		return false
	}
	if s.Once == nil {
		s.Once = map[string]time.Time{}
	}
	s.Once[key] = now.Add(ttl)
	return true
}

// pruneOnce drops expired dedupe keys: Once's, and those of done inbox events.
func (s *snapshot) pruneOnce(now time.Time) {
	for k, until := range s.Once {
		if !now.Before(until) {
			delete(s.Once, k)
		}
	}
	s.Inbox = slices.DeleteFunc(s.Inbox, func(e InboxRecord) bool {
		return e.Done && !now.Before(e.Event.Expires())
	})
}

// enqueue adds the events whose keys are not kept yet and reports which.
func (s *snapshot) enqueue(events []InboxEvent, now time.Time) ([]bool, error) {
	for _, e := range events {
		if err := e.Check(); err != nil {
			return nil, err
		}
	}
	s.pruneOnce(now)
	kept := make(map[string]bool, len(s.Inbox))
	for _, e := range s.Inbox {
		kept[e.Event.Key] = true
	}
	fresh := make([]bool, len(events))
	for i, e := range events {
		if kept[e.Key] {
			continue
		}
		kept[e.Key] = true
		fresh[i] = true
		if e.Received.IsZero() {
			e.Received = now
		}
		e.Payload = slices.Clone(e.Payload)
		s.Inbox = append(s.Inbox, InboxRecord{Event: e})
	}
	return fresh, nil
}

// inbox returns copies of the events not done, oldest first.
func (s *snapshot) inbox() []InboxEvent {
	var out []InboxEvent
	for _, e := range s.Inbox {
		if !e.Done {
			ev := e.Event
			ev.Payload = slices.Clone(ev.Payload)
			out = append(out, ev)
		}
	}
	slices.SortStableFunc(out, func(a, b InboxEvent) int { return a.Received.Compare(b.Received) })
	return out
}

// inboxDone marks the event with key done; changed is false when it was already.
func (s *snapshot) inboxDone(key, outcome string, now time.Time) (changed bool, err error) {
	for i := range s.Inbox {
		e := &s.Inbox[i]
		if e.Event.Key != key {
			continue
		}
		if e.Done {
			return false, nil
		}
		e.Done, e.DoneAt, e.Outcome = true, now, outcome
		return true, nil
	}
	return false, fmt.Errorf("marking inbox event %q done: %w", key, ErrNoEvent)
}

// pruneRequests drops terminal requests last changed before cutoff; the audit
// trail keeps their history.
func (s *snapshot) pruneRequests(cutoff time.Time) {
	for id, r := range s.Requests {
		if r.State.Terminal() && r.UpdatedAt.Before(cutoff) {
			delete(s.Requests, id)
		}
	}
}

// clone deep-copies a request through its JSON form, the same form the
// backends store, so a caller never shares memory with the store.
func clone(r *Request) *Request {
	b, err := json.Marshal(r)
	if err != nil {
		// A Request is plain data; Marshal cannot fail on it.
		panic("store: encoding request: " + err.Error())
	}
	var c Request
	if err := json.Unmarshal(b, &c); err != nil {
		panic("store: decoding request: " + err.Error())
	}
	return &c
}

// lastN returns the last n events newest first; n <= 0 means all.
func lastN(events []AuditEvent, n int) []AuditEvent {
	if n <= 0 || n > len(events) {
		n = len(events)
	}
	out := make([]AuditEvent, 0, n)
	for i := len(events) - 1; i >= len(events)-n; i-- {
		out = append(out, events[i])
	}
	return out
}

// setPause records or (p == nil) removes env's schedule pause.
func (s *snapshot) setPause(env string, p *Pause) {
	if p == nil {
		delete(s.Pauses, env)
		return
	}
	if s.Pauses == nil {
		s.Pauses = map[string]Pause{}
	}
	s.Pauses[env] = *p
}

func (s *snapshot) pauses() map[string]Pause {
	out := make(map[string]Pause, len(s.Pauses))
	for k, v := range s.Pauses {
		out[k] = v
	}
	return out
}

// recordImage applies RecordImage(rec) and reports whether anything
// changed; rec must have passed Check.
func (s *snapshot) recordImage(rec ImageRecord) bool {
	recs, changed := MergeImage(s.Images[rec.Env][rec.Service], rec)
	if !changed {
		return false
	}
	if s.Images == nil {
		s.Images = map[string]map[string][]ImageRecord{}
	}
	if s.Images[rec.Env] == nil {
		s.Images[rec.Env] = map[string][]ImageRecord{}
	}
	s.Images[rec.Env][rec.Service] = recs
	return true
}

// images returns a copy of the records of env and service, newest first.
func (s *snapshot) images(env, service string) []ImageRecord {
	out := slices.Clone(s.Images[env][service])
	if out == nil {
		out = []ImageRecord{}
	}
	SortImages(out)
	return out
}

// allImages returns every image record, by environment, service and then
// newest first.
func (s *snapshot) allImages() []ImageRecord {
	var out []ImageRecord
	for _, env := range slices.Sorted(maps.Keys(s.Images)) {
		for _, svc := range slices.Sorted(maps.Keys(s.Images[env])) {
			out = append(out, s.images(env, svc)...)
		}
	}
	return out
}
