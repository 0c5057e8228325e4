package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/store"
)

// ImageDigest is a sha256 digest made from name, for image records.
func ImageDigest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewImage is an image record of env's service with the digest made from
// name, seen at seen and never imported.
func NewImage(env, service, name string, seen time.Time) store.ImageRecord {
	d := ImageDigest(name)
	return store.ImageRecord{Env: env, Service: service, Digest: d, Seen: seen,
		Ref: "quay.io/packit/" + service + ":prod@" + d}
}

// imageBase is a time for image records: recent and not on a second.
var imageBase = time.Date(2026, 3, 3, 2, 0, 0, 123456789, time.UTC)

// SameImage reports whether two records are the same, times compared as
// instants.
func SameImage(a, b store.ImageRecord) bool {
	return a.Env == b.Env && a.Service == b.Service && a.Digest == b.Digest && a.Ref == b.Ref &&
		a.Seen.Equal(b.Seen) && a.Imported.Equal(b.Imported) && a.By == b.By && a.Request == b.Request
}

func mustRecordImage(t *testing.T, s store.Store, rec store.ImageRecord) {
	t.Helper()
	if err := s.RecordImage(ctx(t), rec); err != nil {
		t.Fatalf("RecordImage(%s/%s %s): %v", rec.Env, rec.Service, rec.Digest, err)
	}
}

func mustImages(t *testing.T, s store.Store, env, service string) []store.ImageRecord {
	t.Helper()
	recs, err := s.Images(ctx(t), env, service)
	if err != nil {
		t.Fatalf("Images(%s, %s): %v", env, service, err)
	}
	return recs
}

// imageDigests are the digests of recs, in their order, each shortened to
// the name it was made from when it is one of names.
func imageDigests(recs []store.ImageRecord, names ...string) []string {
	short := map[string]string{}
	for _, n := range names {
		short[ImageDigest(n)] = n
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Digest
		if n, ok := short[r.Digest]; ok {
			out[i] = n
		}
	}
	return out
}

// testImagesFirstRecord: no records is an empty list; a record comes back
// as it went in.
func testImagesFirstRecord(t *testing.T, s store.Store) {
	if recs := mustImages(t, s, "prod", "web"); len(recs) != 0 {
		t.Fatalf("Images of an empty store = %+v, want none", recs)
	}
	rec := NewImage("prod", "web", "v1", imageBase)
	rec.Imported, rec.By, rec.Request = imageBase.Add(time.Minute), "alice", "abc1234567"
	mustRecordImage(t, s, rec)
	got := mustImages(t, s, "prod", "web")
	if len(got) != 1 || !SameImage(got[0], rec) {
		t.Errorf("Images = %+v, want [%+v]", got, rec)
	}
	// What the caller holds is its own.
	got[0].By = "mallory"
	if again := mustImages(t, s, "prod", "web"); len(again) != 1 || again[0].By != "alice" {
		t.Errorf("changing a returned record changed the store: %+v", again)
	}
}

// testImagesReRecord: a known digest keeps its first Seen and Ref; it takes
// a newer import (Imported, By and Request together), never an older one or
// none.
func testImagesReRecord(t *testing.T, s store.Store) {
	first := NewImage("prod", "web", "v1", imageBase)
	mustRecordImage(t, s, first)

	again := first
	again.Seen, again.Ref = imageBase.Add(time.Hour), "quay.io/packit/web:other@"+first.Digest
	again.Imported, again.By, again.Request = imageBase.Add(2*time.Hour), "bob", "req0000001"
	mustRecordImage(t, s, again)
	want := first
	want.Imported, want.By, want.Request = again.Imported, "bob", "req0000001"
	if got := mustImages(t, s, "prod", "web"); len(got) != 1 || !SameImage(got[0], want) {
		t.Fatalf("after an import: %+v, want %+v (first Seen and Ref, the import's Imported, By, Request)", got, want)
	}

	older := first
	older.Imported, older.By, older.Request = imageBase.Add(90*time.Minute), "carol", "req0000002"
	mustRecordImage(t, s, older)
	seenOnly := first
	seenOnly.Seen = imageBase.Add(3 * time.Hour)
	mustRecordImage(t, s, seenOnly)
	same := again
	same.By, same.Request = "eve", "req0000003" // the same import time is not newer
	mustRecordImage(t, s, same)
	if got := mustImages(t, s, "prod", "web"); len(got) != 1 || !SameImage(got[0], want) {
		t.Fatalf("after an older import, a sighting and an import of the same time: %+v, want %+v unchanged", got, want)
	}

	newer := first
	newer.Imported, newer.By = imageBase.Add(4*time.Hour), "schedule" // no request
	mustRecordImage(t, s, newer)
	want.Imported, want.By, want.Request = newer.Imported, "schedule", ""
	if got := mustImages(t, s, "prod", "web"); len(got) != 1 || !SameImage(got[0], want) {
		t.Errorf("after a newer import: %+v, want %+v", got, want)
	}
}

// testImagesOrder: newest by Latest (the import, else the sighting) first,
// ties by digest.
func testImagesOrder(t *testing.T, s store.Store) {
	mk := func(name string, seen, imported time.Duration) store.ImageRecord {
		r := NewImage("prod", "web", name, imageBase.Add(seen))
		if imported != 0 {
			r.Imported, r.By = imageBase.Add(imported), "alice"
		}
		return r
	}
	recs := []store.ImageRecord{
		mk("old-seen-new-import", time.Minute, 10*time.Minute), // Latest +10m
		mk("newest-seen", 9*time.Minute, 0),                    // +9m
		mk("skewed", 8*time.Minute, 2*time.Minute),             // Imported before Seen: +8m
		mk("tie-b", 5*time.Minute, 0),                          // +5m
		mk("tie-a", 3*time.Minute, 5*time.Minute),              // +5m, imported
		mk("oldest", 0, 0),                                     // +0
	}
	// The tie is broken by digest, whichever name sorts first.
	tieFirst, tieSecond := "tie-a", "tie-b"
	if ImageDigest("tie-b") < ImageDigest("tie-a") {
		tieFirst, tieSecond = tieSecond, tieFirst
	}
	for _, i := range []int{3, 5, 1, 4, 0, 2} { // not in order
		mustRecordImage(t, s, recs[i])
	}
	names := []string{"old-seen-new-import", "newest-seen", "skewed", "tie-a", "tie-b", "oldest"}
	want := []string{"old-seen-new-import", "newest-seen", "skewed", tieFirst, tieSecond, "oldest"}
	if got := imageDigests(mustImages(t, s, "prod", "web"), names...); !slices.Equal(got, want) {
		t.Errorf("Images order = %v, want %v", got, want)
	}
	// An import moves a record to the front.
	up := recs[5]
	up.Imported, up.By = imageBase.Add(time.Hour), "bob"
	mustRecordImage(t, s, up)
	want = append([]string{"oldest"}, want[:5]...)
	if got := imageDigests(mustImages(t, s, "prod", "web"), names...); !slices.Equal(got, want) {
		t.Errorf("Images order after importing the oldest = %v, want %v", got, want)
	}
}

// testImagesTrim: at most MaxImageRecords per env and service, the oldest by
// Latest dropped; a record older than all that are kept is not kept.
func testImagesTrim(t *testing.T, s store.Store) {
	const extra = 5
	// Seen first but imported last: the newest by Latest, so it stays.
	kept := NewImage("prod", "web", "first-seen-last-imported", imageBase)
	kept.Imported, kept.By = imageBase.Add(24*time.Hour), "alice"
	mustRecordImage(t, s, kept)
	var names []string
	for i := range store.MaxImageRecords + extra {
		names = append(names, fmt.Sprintf("v%03d", i))
		mustRecordImage(t, s, NewImage("prod", "web", names[i], imageBase.Add(time.Duration(i+1)*time.Minute)))
	}
	mustRecordImage(t, s, NewImage("prod", "other", "v000", imageBase)) // another service is not counted
	want := []string{"first-seen-last-imported"}
	for i := len(names) - 1; len(want) < store.MaxImageRecords; i-- {
		want = append(want, names[i])
	}
	all := append([]string{"first-seen-last-imported"}, names...)
	got := imageDigests(mustImages(t, s, "prod", "web"), all...)
	if !slices.Equal(got, want) {
		t.Fatalf("after %d records: Images = %v\nwant the %d newest by Latest: %v", len(all), got, store.MaxImageRecords, want)
	}
	// Older than every record kept: dropped at once, nothing else changes.
	mustRecordImage(t, s, NewImage("prod", "web", "ancient", imageBase.Add(-time.Hour)))
	if got := imageDigests(mustImages(t, s, "prod", "web"), append(all, "ancient")...); !slices.Equal(got, want) {
		t.Errorf("after recording a record older than all: Images = %v, want %v", got, want)
	}
	// A new one drops the oldest kept.
	mustRecordImage(t, s, NewImage("prod", "web", "latest", imageBase.Add(48*time.Hour)))
	want = append([]string{"latest"}, want[:store.MaxImageRecords-1]...)
	if got := imageDigests(mustImages(t, s, "prod", "web"), append(all, "latest")...); !slices.Equal(got, want) {
		t.Errorf("after one more: Images = %v, want %v", got, want)
	}
	if got := mustImages(t, s, "prod", "other"); len(got) != 1 {
		t.Errorf("the other service's records = %+v, want its one", got)
	}
}

// testImagesSeparate: environments and services have their own records,
// names that share a prefix or hold a slash included.
func testImagesSeparate(t *testing.T, s store.Store) {
	places := [][2]string{
		{"prod", "web"}, {"prod", "web2"}, {"prod", "we"}, {"prodx", "web"}, {"stg", "web"},
		{"a/b", "c"}, {"a", "b/c"}, {"a-b", "c"}, {"a", "b-c"}, {"Prod", "Web"}, {"prod web", "x"},
	}
	for i, p := range places {
		// The same digest everywhere, with a different Ref and time each.
		r := NewImage(p[0], p[1], "shared", imageBase.Add(time.Duration(i)*time.Minute))
		r.Ref = fmt.Sprintf("ref-%d", i)
		mustRecordImage(t, s, r)
	}
	mustRecordImage(t, s, NewImage("prod", "web", "own", imageBase.Add(time.Hour)))
	for i, p := range places {
		got := mustImages(t, s, p[0], p[1])
		wantN := 1
		if i == 0 {
			wantN = 2
		}
		if len(got) != wantN || got[len(got)-1].Ref != fmt.Sprintf("ref-%d", i) || got[0].Env != p[0] || got[0].Service != p[1] {
			t.Errorf("Images(%q, %q) = %+v, want its own %d record(s), the shared one with ref-%d", p[0], p[1], got, wantN, i)
		}
	}
	for _, p := range [][2]string{{"prod", ""}, {"", "web"}, {"stg", "worker"}, {"pro", "dweb"}} {
		if got := mustImages(t, s, p[0], p[1]); len(got) != 0 {
			t.Errorf("Images(%q, %q) = %+v, want none", p[0], p[1], got)
		}
	}
}

// testImagesRefuseInvalid: a record Check refuses is refused and nothing is
// stored; so is any record with a cancelled context.
func testImagesRefuseInvalid(t *testing.T, s store.Store) {
	good := NewImage("prod", "web", "v1", imageBase)
	bad := func(f func(r *store.ImageRecord)) store.ImageRecord { r := good; f(&r); return r }
	tests := []struct {
		name string
		rec  store.ImageRecord
	}{
		{"no environment", bad(func(r *store.ImageRecord) { r.Env = "" })},
		{"no service", bad(func(r *store.ImageRecord) { r.Service = "" })},
		{"no digest", bad(func(r *store.ImageRecord) { r.Digest = "" })},
		{"short digest", bad(func(r *store.ImageRecord) { r.Digest = "sha256:aaaa" })},
		{"not sha256", bad(func(r *store.ImageRecord) { r.Digest = "sha512:" + strings.Repeat("a", 64) })},
		{"a tag for a digest", bad(func(r *store.ImageRecord) { r.Digest = "latest" })},
		{"never seen", bad(func(r *store.ImageRecord) { r.Seen = time.Time{} })},
		{"imported, never seen", bad(func(r *store.ImageRecord) { r.Seen, r.Imported = time.Time{}, imageBase })},
	}
	for _, tt := range tests {
		if err := s.RecordImage(ctx(t), tt.rec); err == nil {
			t.Errorf("%s: RecordImage(%+v) succeeded, want an error", tt.name, tt.rec)
		}
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.RecordImage(c, good); !errors.Is(err, context.Canceled) {
		t.Errorf("RecordImage(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := s.Images(c, "prod", "web"); !errors.Is(err, context.Canceled) {
		t.Errorf("Images(cancelled ctx) = %v, want context.Canceled", err)
	}
	for _, p := range [][2]string{{"prod", "web"}, {"", "web"}, {"prod", ""}} {
		if got := mustImages(t, s, p[0], p[1]); len(got) != 0 {
			t.Errorf("refused records stored: Images(%q, %q) = %+v", p[0], p[1], got)
		}
	}
	// A refused re-record of a known digest does not change it either.
	mustRecordImage(t, s, good)
	worse := good
	worse.Seen, worse.Imported, worse.By = time.Time{}, imageBase.Add(time.Hour), "mallory"
	if err := s.RecordImage(ctx(t), worse); err == nil {
		t.Errorf("RecordImage of a known digest without Seen succeeded")
	}
	c2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	newer := good
	newer.Imported, newer.By = imageBase.Add(time.Hour), "mallory"
	_ = s.RecordImage(c2, newer)
	if got := mustImages(t, s, "prod", "web"); len(got) != 1 || !SameImage(got[0], good) {
		t.Errorf("after refused re-records: %+v, want %+v unchanged", got, good)
	}
}

// testImagesConcurrent: racing records of one service lose none; racing
// imports of one digest end with the newest.
func testImagesConcurrent(t *testing.T, s store.Store) {
	n := min(Concurrency, store.MaxImageRecords)
	errs := race(func(i int) error {
		if i < n {
			if err := s.RecordImage(context.Background(), NewImage("prod", "web", fmt.Sprintf("r%02d", i), imageBase.Add(time.Duration(i)*time.Second))); err != nil {
				return err
			}
		}
		r := NewImage("prod", "worker", "shared", imageBase)
		r.Imported, r.By, r.Request = imageBase.Add(time.Duration(i+1)*time.Second), fmt.Sprintf("u%02d", i), fmt.Sprintf("req%07d", i)
		return s.RecordImage(context.Background(), r)
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("RecordImage: %v", err)
		}
	}
	if got := mustImages(t, s, "prod", "web"); len(got) != n {
		t.Errorf("after %d racing records of new digests: %d records, want %d", n, len(got), n)
	}
	last := Concurrency - 1
	got := mustImages(t, s, "prod", "worker")
	if len(got) != 1 || !got[0].Imported.Equal(imageBase.Add(time.Duration(last+1)*time.Second)) ||
		got[0].By != fmt.Sprintf("u%02d", last) || got[0].Request != fmt.Sprintf("req%07d", last) {
		t.Errorf("after racing imports of one digest: %+v, want the newest, by u%02d", got, last)
	}
}
