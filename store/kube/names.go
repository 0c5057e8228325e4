package kube

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

var (
	labelRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	unsafeRun = regexp.MustCompile(`[^a-z0-9]+`)
)

func dnsLabel(s string) bool { return len(s) <= 63 && labelRE.MatchString(s) }

func hashHex(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// requestName is the ConfigMap of request id: the ID itself when it is a
// valid name part (store.NewID's are), else a hash of it.
func (s *Store) requestName(id string) string {
	if dnsLabel(id) && !strings.HasPrefix(id, "x-") {
		return s.instance + "-req-" + id
	}
	return s.instance + "-req-x-" + hashHex(id, 40)
}

// lockName is the ConfigMap of a lock key: a readable part for kubectl
// users ("prod-packit-worker") and a hash that makes it unique.
func (s *Store) lockName(key string) string {
	readable := strings.Trim(unsafeRun.ReplaceAllString(strings.ToLower(key), "-"), "-")
	if len(readable) > 60 {
		readable = strings.TrimRight(readable[:60], "-")
	}
	if readable == "" {
		return s.instance + "-lock-" + hashHex(key, 16)
	}
	return s.instance + "-lock-" + readable + "-" + hashHex(key, 16)
}

func (s *Store) onceName(key string) string { return s.instance + "-once-" + hashHex(key, 40) }

func (s *Store) pausesName() string { return s.instance + "-pauses" }

// auditName names an audit event's ConfigMap so that names sort in recording
// order: nanoseconds since the epoch (never less than the previous one this
// Store handed out, so a clock step back does not reorder), a counter, and
// random bits that keep replicas' names apart.
func (s *Store) auditName(now time.Time) string {
	s.mu.Lock()
	n := max(now.UnixNano(), s.lastSeq)
	s.lastSeq = n
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%s-audit-%019d-%09d-%s", s.instance, n, seq%1_000_000_000, hex.EncodeToString(b[:]))
}

// auditTime is the recording time encoded in an audit ConfigMap's name.
func (s *Store) auditTime(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, s.instance+"-audit-")
	if !ok || len(rest) < 19 {
		return time.Time{}, false
	}
	var n int64
	if _, err := fmt.Sscanf(rest[:19], "%d", &n); err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// RequestName is the name of request id's ConfigMap.
func (s *Store) RequestName(id string) string { return s.requestName(id) }

// LockName is the name of the ConfigMap that is lock key while it is held.
func (s *Store) LockName(key string) string { return s.lockName(key) }
