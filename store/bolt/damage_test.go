package bolt

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
)

// TestReadsRefuseDamage: a record damaged while the store is open (a disk
// error, a bug) is an error naming it on the read that meets it: the audit
// trail is not "empty", a request is not missing, a pause is not gone.
func TestReadsRefuseDamage(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name   string
		damage func(tx *bbolt.Tx) error
		read   func(s *Store) error
		want   string
	}{
		{"audit record garbage", func(tx *bbolt.Tx) error { return tx.Bucket(bAudit).Put(seqKey(1), []byte("\x00garbage")) },
			func(s *Store) error { _, err := s.Audit(ctx, 20); return err }, "audit/0000000000000001"},
		{"audit record null", func(tx *bbolt.Tx) error { return tx.Bucket(bAudit).Put(seqKey(1), []byte("null")) },
			func(s *Store) error { _, err := s.Audit(ctx, 0); return err }, "null"},
		{"audit record without time", func(tx *bbolt.Tx) error { return tx.Bucket(bAudit).Put(seqKey(1), []byte(`{"action":"x"}`)) },
			func(s *Store) error { _, err := s.Audit(ctx, 1); return err }, "no time"},
		{"request garbage, Get", func(tx *bbolt.Tx) error { return tx.Bucket(bRequests).Put([]byte("abc"), []byte("{")) },
			func(s *Store) error { _, err := s.Get(ctx, "abc"); return err }, `requests/"abc"`},
		{"request garbage, List", func(tx *bbolt.Tx) error { return tx.Bucket(bRequests).Put([]byte("abc"), []byte("{}")) },
			func(s *Store) error { _, err := s.List(ctx, store.ListOptions{}); return err }, "no ID"},
		{"request garbage, Update", func(tx *bbolt.Tx) error { return tx.Bucket(bRequests).Put([]byte("abc"), []byte("[]")) },
			func(s *Store) error {
				_, err := s.Update(ctx, "abc", func(*store.Request) error { return nil })
				return err
			}, `requests/"abc"`},
		{"dedupe key garbage", func(tx *bbolt.Tx) error { return tx.Bucket(bOnce).Put([]byte("k"), []byte("x")) },
			func(s *Store) error { _, err := s.Once(ctx, "k", time.Hour); return err }, `once/"k"`},
		{"pause garbage", func(tx *bbolt.Tx) error { return tx.Bucket(bPauses).Put([]byte("prod"), []byte("null")) },
			func(s *Store) error { _, err := s.Pauses(ctx); return err }, `pauses/"prod"`},
		{"inbox event garbage", func(tx *bbolt.Tx) error {
			return tx.Bucket(bInbox).Put(append(timeKey(time.Now()), seqKey(1)...), []byte(`{"key":""}`))
		}, func(s *Store) error { _, err := s.Inbox(ctx); return err }, "without a dedupe key"},
		{"inbox key garbage, Enqueue", func(tx *bbolt.Tx) error { return tx.Bucket(bInboxKeys).Put([]byte("k"), []byte(`{}`)) },
			func(s *Store) error {
				_, err := s.Enqueue(ctx, []store.InboxEvent{{Key: "k", TTL: time.Hour}})
				return err
			}, `inbox-keys/"k"`},
		{"inbox key garbage, InboxDone", func(tx *bbolt.Tx) error { return tx.Bucket(bInboxKeys).Put([]byte("k"), []byte(`null`)) },
			func(s *Store) error { return s.InboxDone(ctx, "k", "replied") }, `inbox-keys/"k"`},
		{"image record garbage, Images", func(tx *bbolt.Tx) error {
			return tx.Bucket(bImages).Put(imageKey("prod", "web", "sha256:"+strings.Repeat("a", 64)), []byte("{}"))
		}, func(s *Store) error { _, err := s.Images(ctx, "prod", "web"); return err }, `images/"\x04prod\x03web`},
		{"image record garbage, RecordImage", func(tx *bbolt.Tx) error {
			return tx.Bucket(bImages).Put(imageKey("prod", "web", "sha256:"+strings.Repeat("a", 64)), []byte("null"))
		}, func(s *Store) error {
			return s.RecordImage(ctx, store.ImageRecord{Env: "prod", Service: "web", Digest: "sha256:" + strings.Repeat("b", 64), Seen: time.Now()})
		}, "the image record is null"},
		{"lock naming no request", func(tx *bbolt.Tx) error { return tx.Bucket(bLocks).Put([]byte("prod/x"), []byte("ghost")) },
			func(s *Store) error {
				return s.Create(ctx, &store.Request{State: store.Planned, Locks: []string{"prod/x"}})
			}, "which does not hold it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Record(ctx, store.AuditEvent{Action: "fine"}); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			err = tt.read(s)
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("read = %v\nwant a *CorruptError naming %s and saying %q", err, path, tt.want)
			}
			if err := s.Verify(ctx); err == nil {
				t.Errorf("Verify passed a damaged database")
			}
		})
	}
}
