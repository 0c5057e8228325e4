package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/bolt"
	"github.com/deploybot/deploybot/store/storetest"
)

// fileState writes a JSON file store in dir the way an older deploybot
// left it, and returns its path and requests (open, finished).
func fileState(t *testing.T, dir string) (string, *store.Request, *store.Request) {
	t.Helper()
	path := filepath.Join(dir, "state.json")
	fs, err := store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ctx := t.Context()
	open := storetest.NewRequest(store.AwaitingApproval, "prod/packit-worker")
	done := storetest.NewRequest(store.Succeeded, "prod/tokman")
	for _, r := range []*store.Request{open, done} {
		if err := fs.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"a0", "a1", "a2"} {
		if err := fs.Record(ctx, store.AuditEvent{RequestID: open.ID, Actor: "alice", Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fs.Once(ctx, "event/slack/live", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Once(ctx, "event/slack/gone", time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if err := fs.SetPause(ctx, "prod", &store.Pause{By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Enqueue(ctx, []store.InboxEvent{{Key: "in/pending", Platform: "slack", TTL: time.Hour, Payload: []byte("body")}, {Key: "in/done", TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := fs.InboxDone(ctx, "in/done", "replied"); err != nil {
		t.Fatal(err)
	}
	for _, r := range migratedImages(open.ID) {
		if err := fs.RecordImage(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// A writer killed mid-write left a temporary copy.
	if err := os.WriteFile(path+".tmp-999", []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, open, done
}

// migratedImages are the image records fileState writes.
func migratedImages(requestID string) []store.ImageRecord {
	at := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	v1 := storetest.NewImage("prod", "packit-worker", "v1", at)
	v1.Imported, v1.By, v1.Request = at.Add(time.Minute), "alice", requestID
	return []store.ImageRecord{v1,
		storetest.NewImage("prod", "packit-worker", "v2", at.Add(time.Hour)),
		storetest.NewImage("stg", "packit-worker", "v1", at),
	}
}

// TestMigrateJSONState: the first open imports everything the JSON file
// store held, keeps its files as a backup and cleans up after it; the next
// open imports nothing.
func TestMigrateJSONState(t *testing.T) {
	dir := t.TempDir()
	jsonPath, open, done := fileState(t, dir)
	dbPath, jp := bolt.Paths(jsonPath)
	if jp != jsonPath {
		t.Fatalf("Paths(%s) gives the JSON file %s", jsonPath, jp)
	}
	s, m, err := bolt.OpenMigrating(dbPath, jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m == nil {
		t.Fatal("no migration reported")
	}
	got := [...]int{m.Requests, m.Open, m.Audit, m.Once, m.Pauses, m.Inbox, m.Images}
	if want := [...]int{2, 1, 3, 1, 1, 2, 3}; got != want {
		t.Errorf("migrated requests, open, audit, once, pauses, inbox, images = %v, want %v (%s)", got, want, m)
	}
	if !strings.HasPrefix(m.Backup, jsonPath+".migrated-") || !strings.HasPrefix(m.AuditBackup, filepath.Join(dir, "state.audit.jsonl.migrated-")) {
		t.Errorf("backups %q, %q", m.Backup, m.AuditBackup)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, strings.SplitN(e.Name(), ".migrated-", 2)[0])
	}
	if want := []string{"state.audit.jsonl", "state.db", "state.json"}; !slices.Equal(names, want) {
		t.Errorf("files after migrating = %v, want the database and the two backups (no lock, no temporary copy)", names)
	}

	ctx := t.Context()
	for _, r := range []*store.Request{open, done} {
		if g, err := s.Get(ctx, r.ID); err != nil || g.State != r.State || g.PlanHash != r.PlanHash || g.Version != 1 {
			t.Errorf("request #%s after migrating: %+v, %v", r.ID, g, err)
		}
	}
	var busy *store.BusyError
	if err := s.Create(ctx, storetest.NewRequest(store.Planned, "prod/packit-worker")); !errors.As(err, &busy) || busy.ID != open.ID {
		t.Errorf("the open request's lock did not come along: Create = %v", err)
	}
	if err := s.Create(ctx, storetest.NewRequest(store.Planned, "prod/tokman")); err != nil {
		t.Errorf("the finished request's lock came along: %v", err)
	}
	evs, err := s.Audit(ctx, 0)
	if err != nil || len(evs) != 3 || evs[0].Action != "a2" || evs[2].Action != "a0" {
		t.Errorf("audit after migrating = %+v, %v; want a2 a1 a0", evs, err)
	}
	if first, _ := s.Once(ctx, "event/slack/live", time.Hour); first {
		t.Errorf("a live dedupe key was lost")
	}
	if first, _ := s.Once(ctx, "event/slack/gone", time.Hour); !first {
		t.Errorf("an expired dedupe key came along")
	}
	if p, _ := s.Pauses(ctx); p["prod"].By != "alice" {
		t.Errorf("pauses after migrating = %v", p)
	}
	if in, _ := s.Inbox(ctx); len(in) != 1 || in[0].Key != "in/pending" || string(in[0].Payload) != "body" {
		t.Errorf("inbox after migrating = %+v", in)
	}
	if fresh, _ := s.Enqueue(ctx, []store.InboxEvent{{Key: "in/done", TTL: time.Hour}}); fresh[0] {
		t.Errorf("the done inbox event's key did not come along")
	}
	imgs := migratedImages(open.ID)
	for _, tt := range []struct {
		env  string
		want []store.ImageRecord
	}{
		{"prod", []store.ImageRecord{imgs[1], imgs[0]}},
		{"stg", []store.ImageRecord{imgs[2]}},
	} {
		got, err := s.Images(ctx, tt.env, "packit-worker")
		if err != nil || len(got) != len(tt.want) {
			t.Fatalf("images of %s after migrating = %+v, %v; want %+v", tt.env, got, err, tt.want)
		}
		for i := range got {
			if !storetest.SameImage(got[i], tt.want[i]) {
				t.Errorf("images of %s after migrating [%d] = %+v, want %+v", tt.env, i, got[i], tt.want[i])
			}
		}
	}
	// The migrated records go on as the store's own: a newer import is taken.
	newer := imgs[1]
	newer.Imported, newer.By = newer.Seen.Add(time.Hour), "bob"
	if err := s.RecordImage(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Images(ctx, "prod", "packit-worker"); len(got) != 2 || got[0].By != "bob" {
		t.Errorf("after an import of a migrated record: %+v", got)
	}
	if err := s.Verify(ctx); err != nil {
		t.Errorf("Verify after migrating: %v", err)
	}
	s.Close()

	s2, m2, err := bolt.OpenMigrating(dbPath, jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if m2 != nil {
		t.Errorf("second open migrated again: %s", m2)
	}
}

// TestMigrateRefusesImplausibleState: a JSON state that is damaged or holds
// nothing a file store writes is refused with the file and line, nothing is
// imported and the file stays where it is.
func TestMigrateRefusesImplausibleState(t *testing.T) {
	good := `{"time":"2026-03-03T02:00:00Z","actor":"alice","action":"request"}` + "\n"
	req := func(id, state string) string {
		return `"` + id + `": {"id": "` + id + `", "version": 1, "state": "` + state + `", "createdAt": "2026-03-03T02:00:00Z", "locks": ["prod/x"]}`
	}
	tests := []struct {
		name, state, audit string
		want               string // in the error, after the file's path
	}{
		{"null", `null`, "", "state.json: line 1, column 1: the state is null"},
		{"empty object", `{}`, "", "state.json: line 1, column 1: the state has no format"},
		{"no requests", "{\"format\": 1}\n", "", "no requests object"},
		{"bad line", "{\n\"format\": 1,\n\"requests\": {\n\"abc\": {\"id\": 5}}}", "", "state.json: line 4"},
		{"bad audit line in the middle", `{"format": 1, "requests": {}}`, good + "{broken\n" + good, "state.audit.jsonl: line 2"},
		{"audit of garbage", `{"format": 1, "requests": {}}`, "\x00\x01\x02\x03", "state.audit.jsonl: line 1"},
		{"audit only, null record", "", "null\n", "state.audit.jsonl: line 1"},
		{"implausible image record", "{\"format\": 1, \"requests\": {},\n\"images\": {\"prod\": {\"web\": [{\"env\": \"prod\", \"service\": \"web\", \"digest\": \"sha256:abc\", \"seen\": \"2026-03-03T02:00:00Z\"}]}}}", "", "state.json: line 2, column 9: image record prod/web: \"sha256:abc\" is not a sha256 digest"},
		{"two open requests with one lock", `{"format": 1, "requests": {` + req("aaa", "AwaitingApproval") + `, ` + req("bbb", "Approved") + `}}`, "", "both open and hold the lock prod/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			jsonPath := filepath.Join(dir, "state.json")
			if tt.state != "" {
				writeFile(t, jsonPath, []byte(tt.state))
			}
			if tt.audit != "" {
				writeFile(t, filepath.Join(dir, "state.audit.jsonl"), []byte(tt.audit))
			}
			dbPath, _ := bolt.Paths(jsonPath)
			s, _, err := bolt.OpenMigrating(dbPath, jsonPath)
			if err == nil {
				s.Close()
				t.Fatal("OpenMigrating succeeded")
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, "")) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenMigrating = %v\nwant it saying %q", err, tt.want)
			}
			if tt.state != "" {
				if _, err := os.Stat(jsonPath); err != nil {
					t.Errorf("the refused file was moved: %v", err)
				}
			}
			// Nothing was imported: with the file moved away, the database is empty.
			os.Remove(jsonPath)
			os.Remove(filepath.Join(dir, "state.audit.jsonl"))
			s, m, err := bolt.OpenMigrating(dbPath, jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if rs, _ := s.List(t.Context(), store.ListOptions{}); len(rs) != 0 || m != nil {
				t.Errorf("after a refused migration the database holds %d requests (migration %v)", len(rs), m)
			}
		})
	}
}

// TestMigrateKeepsUnknownStateListed: a request in a state this deploybot
// does not know comes along, is said in the notes, and `pending` lists it.
func TestMigrateKeepsUnknownStateListed(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "state.json")
	writeFile(t, jsonPath, []byte(`{"format": 1, "requests": {"odd": {"id": "odd", "version": 3, "state": "Paused", "createdAt": "2026-03-03T02:00:00Z"}}}`))
	writeFile(t, filepath.Join(dir, "state.audit.jsonl"), []byte(`{"time":"2026-03-03T02:00:00Z","action":"a0"}`+"\n"+`{"time":"2026-03-03T02:0`))
	dbPath, _ := bolt.Paths(jsonPath)
	s, m, err := bolt.OpenMigrating(dbPath, jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	notes := strings.Join(m.Notes, "\n")
	if !strings.Contains(notes, `unknown state "Paused"`) || !strings.Contains(notes, "line 2: an audit record cut short") {
		t.Errorf("notes = %q, want the unknown state and the torn audit record", notes)
	}
	rs, err := s.List(t.Context(), store.ListOptions{States: []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved, store.Executing}})
	if err != nil || len(rs) != 1 || rs[0].ID != "odd" {
		t.Errorf("pending lists %v, %v; want the request in the unknown state", rs, err)
	}
}

// TestMigrateResumesAfterCrash: a crash after the import committed but
// before the files were renamed is finished on the next start, not imported
// twice; a different JSON file beside a migrated database is refused.
func TestMigrateResumesAfterCrash(t *testing.T) {
	dir := t.TempDir()
	jsonPath, _, _ := fileState(t, dir)
	content := readFile(t, jsonPath)
	dbPath, _ := bolt.Paths(jsonPath)
	s, m, err := bolt.OpenMigrating(dbPath, jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// As if the process died before renaming: the same files are back.
	if err := os.Rename(m.Backup, jsonPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.AuditBackup, filepath.Join(dir, "state.audit.jsonl")); err != nil {
		t.Fatal(err)
	}
	s, m2, err := bolt.OpenMigrating(dbPath, jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if m2 == nil || !m2.Resumed || m2.Requests != 2 {
		t.Errorf("second open = %+v, want the migration resumed", m2)
	}
	if rs, _ := s.List(t.Context(), store.ListOptions{}); len(rs) != 2 {
		t.Errorf("after resuming %d requests, want 2 (imported once)", len(rs))
	}
	if _, err := os.Stat(jsonPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the JSON file is still there after resuming: %v", err)
	}
	s.Close()

	// A different JSON file (an older deploybot ran since) is refused.
	writeFile(t, jsonPath, append(content[:len(content)-1:len(content)-1], ' ', '}'))
	if _, _, err := bolt.OpenMigrating(dbPath, jsonPath); err == nil || !strings.Contains(err.Error(), "a different") {
		t.Errorf("OpenMigrating with a different JSON file = %v, want it refused", err)
	}
}

// TestMigrateRefusedBesideStatefulDatabase: a JSON file store appearing
// beside a database that holds state of its own is not merged into it.
func TestMigrateRefusedBesideStatefulDatabase(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "state.db")
	s := open(t, dbPath)
	if err := s.Record(t.Context(), store.AuditEvent{Action: "x"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	jsonPath, _, _ := fileState(t, dir)
	if _, _, err := bolt.OpenMigrating(dbPath, jsonPath); err == nil || !strings.Contains(err.Error(), "already holds state") {
		t.Errorf("OpenMigrating = %v, want it refused", err)
	}
}
