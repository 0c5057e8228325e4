package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/bolt"
	"github.com/deploybot/deploybot/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func() store.Store { return open(t, filepath.Join(t.TempDir(), "state.db")) })
}

func open(t testing.TB, path string, opts ...bolt.Option) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRestartKeepsState: everything a store holds is there again after a
// close and an open, as after a restart.
func TestRestartKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := t.Context()
	s1, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r := storetest.NewRequest(store.AwaitingApproval, "prod/packit-worker")
	if err := s1.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s1.Record(ctx, store.AuditEvent{RequestID: r.ID, Actor: "alice", Action: "request"}); err != nil {
		t.Fatal(err)
	}
	if first, err := s1.Once(ctx, "k", time.Hour); err != nil || !first {
		t.Fatalf("Once(k) = %v, %v", first, err)
	}
	if err := s1.SetPause(ctx, "prod", &store.Pause{By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Enqueue(ctx, []store.InboxEvent{{Key: "pending", Platform: "slack", TTL: time.Hour, Payload: []byte("p")}, {Key: "done", TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := s1.InboxDone(ctx, "done", "replied"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	img := storetest.NewImage("prod", "web", "v1", at)
	img.Imported, img.By, img.Request = at.Add(time.Minute), "alice", r.ID
	images := []store.ImageRecord{img, storetest.NewImage("prod", "web", "v2", at.Add(time.Hour)), storetest.NewImage("prod", "web2", "v1", at)}
	for _, rec := range images {
		if err := s1.RecordImage(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, path)
	got, err := s2.Get(ctx, r.ID)
	if err != nil || got.State != store.AwaitingApproval || got.PlanHash != r.PlanHash || got.Version != 1 {
		t.Errorf("after restart: %+v, %v", got, err)
	}
	var be *store.BusyError
	if err := s2.Create(ctx, storetest.NewRequest(store.Planned, "prod/packit-worker")); !errors.As(err, &be) || be.ID != r.ID {
		t.Errorf("after restart the lock is not held: Create = %v", err)
	}
	if evs, _ := s2.Audit(ctx, 10); len(evs) != 1 || evs[0].RequestID != r.ID {
		t.Errorf("after restart audit = %+v", evs)
	}
	if first, _ := s2.Once(ctx, "k", time.Hour); first {
		t.Errorf("after restart Once(k) = true; the dedupe key was lost")
	}
	if p, _ := s2.Pauses(ctx); p["prod"].By != "alice" {
		t.Errorf("after restart pauses = %+v", p)
	}
	if evs, _ := s2.Inbox(ctx); len(evs) != 1 || evs[0].Key != "pending" || string(evs[0].Payload) != "p" {
		t.Errorf("after restart inbox = %+v, want the pending event", evs)
	}
	if fresh, _ := s2.Enqueue(ctx, []store.InboxEvent{{Key: "pending", TTL: time.Hour}, {Key: "done", TTL: time.Hour}}); fresh[0] || fresh[1] {
		t.Errorf("after restart Enqueue of kept keys = %v, want duplicates", fresh)
	}
	if got, err := s2.Images(ctx, "prod", "web"); err != nil || len(got) != 2 || !storetest.SameImage(got[0], images[1]) || !storetest.SameImage(got[1], images[0]) {
		t.Errorf("after restart Images(prod, web) = %+v, %v; want v2 then v1 as recorded", got, err)
	}
	if got, err := s2.Images(ctx, "prod", "web2"); err != nil || len(got) != 1 || !storetest.SameImage(got[0], images[2]) {
		t.Errorf("after restart Images(prod, web2) = %+v, %v", got, err)
	}
}

// TestOpenAddsImagesBucket: a database an older deploybot wrote, without
// the images bucket, opens, gains the bucket and keeps its state.
func TestOpenAddsImagesBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	r := storetest.NewRequest(store.AwaitingApproval, "prod/web")
	if err := s.Create(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("images")) })
	if _, ok := bucketSizes(t, path)["images"]; ok {
		t.Fatal("the images bucket is still there")
	}
	s = open(t, path)
	if _, err := s.Get(t.Context(), r.ID); err != nil {
		t.Errorf("the request is gone: %v", err)
	}
	rec := storetest.NewImage("prod", "web", "v1", time.Now())
	if err := s.RecordImage(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Images(t.Context(), "prod", "web"); err != nil || len(got) != 1 {
		t.Errorf("Images = %+v, %v", got, err)
	}
	s.Close()
	if n, ok := bucketSizes(t, path)["images"]; !ok || n != 1 {
		t.Errorf("the images bucket holds %d records (there: %v), want 1", n, ok)
	}
}

// TestSecondOpenRefused: bbolt's file lock keeps a second process (here a
// second handle) out, with a message that says why.
func TestSecondOpenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open(t, path)
	_, err := bolt.Open(path, bolt.WithOpenTimeout(50*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "another process holds it") {
		t.Errorf("second Open = %v, want it refused as held by another process", err)
	}
}

// TestRetentionPrunes: finished requests past the retention age and expired
// dedupe keys leave the database as later writes happen; open requests and
// live keys stay.
func TestRetentionPrunes(t *testing.T) {
	now := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := bolt.Open(path, bolt.WithClock(clock), bolt.WithRetention(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	old, open := storetest.NewRequest(store.Succeeded), storetest.NewRequest(store.AwaitingApproval, "prod/tokman")
	for _, r := range []*store.Request{old, open} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if _, err := s.Once(ctx, "webhook-"+string(rune('a'+i%26))+time.Duration(i).String(), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Enqueue(ctx, []store.InboxEvent{{Key: "done", Received: now, TTL: time.Minute}, {Key: "live", Received: now, TTL: 72 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"done", "live"} {
		if err := s.InboxDone(ctx, k, "replied"); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(48 * time.Hour)
	// A few writes: each prunes a bounded batch.
	for range 3 {
		if _, err := s.Once(ctx, "later", time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, store.AuditEvent{Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finished request older than the retention still stored (Get error %v)", err)
	}
	if _, err := s.Get(ctx, open.ID); err != nil {
		t.Errorf("open request pruned: %v", err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Errorf("Verify after pruning: %v", err)
	}
	s.Close()
	counts := bucketSizes(t, path)
	if counts["once"] != 1 || counts["once-expiry"] != 1 || counts["inbox-keys"] != 1 || counts["finished"] != 0 || counts["requests"] != 1 || counts["locks"] != 1 {
		t.Errorf("bucket sizes after pruning = %v; want only the live key, the live inbox key and the open request with its lock", counts)
	}
}

// bucketSizes opens a closed database with bbolt itself and counts keys.
func bucketSizes(t *testing.T, path string) map[string]int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	_ = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			out[string(name)] = b.Stats().KeyN
			return nil
		})
	})
	return out
}

// rawUpdate changes a closed database with bbolt itself, as damage would.
func rawUpdate(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func put(bucket, key, value string) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error { return tx.Bucket([]byte(bucket)).Put([]byte(key), []byte(value)) }
}

// TestDamageRefusedAtOpen: a database deploybot did not write, or damaged,
// is refused at Open with an error naming the file and what is wrong;
// never opened as an empty store.
func TestDamageRefusedAtOpen(t *testing.T) {
	const validReq = `{"id":"abc","version":1,"state":"AwaitingApproval","createdAt":"2026-03-03T02:00:00Z","locks":["prod/x"]}`
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, r *store.Request)
		want   string
	}{
		{"garbage file", func(t *testing.T, path string, _ *store.Request) {
			writeFile(t, path, []byte(strings.Repeat("not a database ", 4096)))
		}, "invalid database"},
		{"truncated to its first page", func(t *testing.T, path string, _ *store.Request) {
			truncate(t, path, 4096)
		}, "damaged"},
		{"cut short in the middle", func(t *testing.T, path string, _ *store.Request) {
			fill(t, path)
			truncate(t, path, 8*int64(os.Getpagesize())) // its data needs far more pages
		}, "it was cut short"},
		{"pages zeroed", func(t *testing.T, path string, _ *store.Request) {
			fill(t, path)
			b := readFile(t, path)
			clear(b[2*os.Getpagesize():])
			writeFile(t, path, b)
		}, "damaged"},
		{"both meta pages overwritten", func(t *testing.T, path string, _ *store.Request) {
			b := readFile(t, path)
			ps := os.Getpagesize()
			for i := 16; i < 64; i++ {
				b[i], b[ps+i] = ^b[i], ^b[ps+i]
			}
			writeFile(t, path, b)
		}, "damaged"},
		{"another program's database", func(t *testing.T, path string, _ *store.Request) {
			os.Remove(path)
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
			db.Close()
		}, "not a deploybot database"},
		{"newer format", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("meta", "format", "2"))
		}, "newer than this deploybot"},
		{"a bucket missing", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("locks")) })
		}, "the bucket locks is missing"},
		{"request null", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("requests", "abc", "null"))
		}, `requests/"abc": the request is null`},
		{"request empty object", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("requests", "abc", "{}"))
		}, "no ID"},
		{"request half written", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("requests", "abc", validReq[:40]))
		}, `requests/"abc"`},
		{"request under another ID", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("requests", "xyz", validReq))
		}, "says it is #abc"},
		{"open request without its lock", func(t *testing.T, path string, r *store.Request) {
			rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.Bucket([]byte("locks")).Delete([]byte("prod/packit-worker")) })
		}, "holds the lock"},
		{"lock naming no request", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("locks", "prod/other", "ghost"))
		}, "which does not hold it"},
		{"audit record garbage", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("audit", "\x00\x00\x00\x00\x00\x00\x00\x09", "\x01\x02"))
		}, "audit/0000000000000009"},
		{"dedupe key without expiry entry", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("once", "k", "\x80\x00\x00\x00\x00\x00\x00\x01"))
		}, "no expiry entry"},
		{"inbox key pointing nowhere", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("inbox-keys", "k", `{"pos":"AAAAAAAAAAAAAAAAAAAAAA==","expires":"2026-03-03T02:00:00Z"}`))
		}, "not there"},
		{"image record garbage", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("images", "\x04prod\x03web"+digestA, "{"))
		}, `images/"\x04prod\x03web`},
		{"image record null", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("images", "\x04prod\x03web"+digestA, "null"))
		}, "the image record is null"},
		{"image record under another digest", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("images", "\x04prod\x03web"+digestA, imageJSON("prod", "web", digestB)))
		}, "stored under the digest"},
		{"image record under another service", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("images", "\x04prod\x03web"+digestA, imageJSON("prod", "worker", digestA)))
		}, "stored as one of prod/web"},
		{"image record with a bad digest", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("images", "\x04prod\x03webv1", imageJSON("prod", "web", "v1")))
		}, "not a sha256 digest"},
		{"image key without a service", func(t *testing.T, path string, _ *store.Request) {
			rawUpdate(t, path, put("images", "\x04prod\x7fweb"+digestA, imageJSON("prod", "web", digestA)))
		}, "the key is not an environment, a service and a digest"},
		{"a byte of a request's page flipped", func(t *testing.T, path string, r *store.Request) {
			b := readFile(t, path)
			i := strings.Index(string(b), `"command":"import prod worker"`)
			if i < 0 {
				t.Fatal("request not found in the file")
			}
			b[i] = '!'
			writeFile(t, path, b)
		}, "requests/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := bolt.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			r := storetest.NewRequest(store.AwaitingApproval, "prod/packit-worker")
			if err := s.Create(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			s.Close()
			tt.damage(t, path, r)
			s, err = bolt.Open(path)
			if err == nil {
				s.Close()
				t.Fatalf("Open of a damaged database succeeded")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open = %v\nwant an error naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}

var (
	digestA = "sha256:" + strings.Repeat("a", 64)
	digestB = "sha256:" + strings.Repeat("b", 64)
)

func imageJSON(env, service, digest string) string {
	return `{"env":"` + env + `","service":"` + service + `","digest":"` + digest + `","ref":"r","seen":"2026-03-03T02:00:00Z"}`
}

func TestPaths(t *testing.T) {
	tests := []struct{ state, db, json string }{
		{"/s/state.json", "/s/state.db", "/s/state.json"},
		{"/s/state.db", "/s/state.db", "/s/state.json"},
		{"/s/deploybot", "/s/deploybot.db", "/s/deploybot"},
		{"rel/my.state.json", "rel/my.state.db", "rel/my.state.json"},
	}
	for _, tt := range tests {
		if db, js := bolt.Paths(tt.state); db != tt.db || js != tt.json {
			t.Errorf("Paths(%s) = %s, %s; want %s, %s", tt.state, db, js, tt.db, tt.json)
		}
	}
}

// fill gives the closed database at path a few hundred pages.
func fill(t *testing.T, path string) {
	t.Helper()
	s := open(t, path)
	for i := range 300 {
		if err := s.Create(t.Context(), storetest.NewRequest(store.Succeeded)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Once(t.Context(), fmt.Sprint("k", i), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

// TestInboxDoneAll: many events marked done in one write; unknown and
// already done keys are skipped, and every marked key stays a dedupe key.
func TestInboxDoneAll(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	ctx := context.Background()
	now := time.Now()
	var evs []store.InboxEvent
	for _, k := range []string{"a", "b", "c"} {
		evs = append(evs, store.InboxEvent{Key: k, Platform: "slack", Received: now, TTL: time.Hour, Payload: []byte(`{}`)})
	}
	if _, err := s.Enqueue(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.InboxDone(ctx, "c", "replied"); err != nil {
		t.Fatal(err)
	}
	if err := s.InboxDoneAll(ctx, []store.InboxOutcome{{Key: "a", Outcome: "handled"}, {Key: "nosuchkey", Outcome: "handled"}, {Key: "c", Outcome: "again"}}); err != nil {
		t.Fatalf("InboxDoneAll: %v", err)
	}
	left, err := s.Inbox(ctx)
	if err != nil || len(left) != 1 || left[0].Key != "b" {
		t.Fatalf("inbox = %+v, %v; want only b", left, err)
	}
	fresh, err := s.Enqueue(ctx, evs)
	if err != nil || fresh[0] || fresh[1] || fresh[2] {
		t.Errorf("enqueueing the three again = %v, %v; want all duplicates", fresh, err)
	}
	if err := s.InboxDoneAll(ctx, []store.InboxOutcome{{Key: "a", Outcome: "x"}}); err != nil {
		t.Errorf("InboxDoneAll of done keys only = %v, want nil", err)
	}
}
