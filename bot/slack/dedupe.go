package slack

import (
	"sync"
	"time"
)

// expiringSet remembers keys until their expiry: signatures for the replay
// guard, event keys for dedupe. It prunes itself as it grows, so memory
// follows the traffic of the last window.
type expiringSet struct {
	now func() time.Time

	mu        sync.Mutex
	keys      map[string]time.Time
	nextPrune int
}

func newExpiringSet(now func() time.Time) *expiringSet {
	return &expiringSet{now: now, keys: map[string]time.Time{}, nextPrune: 1024}
}

// add records key until expiry and reports whether it was new (or its
// earlier record had expired).
func (s *expiringSet) add(key string, expiry time.Time) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if until, ok := s.keys[key]; ok && now.Before(until) {
		return false
	}
	s.keys[key] = expiry
	if len(s.keys) >= s.nextPrune {
		for k, until := range s.keys {
			if !now.Before(until) {
				delete(s.keys, k)
			}
		}
		// Prune again when the set has doubled since, so pruning stays
		// amortised O(1) per add.
		s.nextPrune = max(1024, 2*len(s.keys))
	}
	return true
}

// remove forgets key.
func (s *expiringSet) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}
