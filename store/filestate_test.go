package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validState is a state document as a file store writes it, indented so
// that errors can name lines.
const validState = `{
  "format": 1,
  "requests": {
    "abc1234567": {"id": "abc1234567", "version": 2, "state": "AwaitingApproval", "createdAt": "2026-03-03T02:00:00Z", "locks": ["prod/worker"]}
  },
  "once": {"event/slack/1": "2026-03-04T02:00:00Z"},
  "pauses": {"prod": {"by": "alice", "at": "2026-03-03T01:00:00Z"}}
}
`

// TestDecodeSnapshotRefusesImplausible: what a file store never writes is
// an error naming the line, never an empty store.
func TestDecodeSnapshotRefusesImplausible(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantLine int
		wantText string
	}{
		{"null", `null`, 1, "the state is null"},
		{"empty object", `{}`, 1, "no format"},
		{"no requests", `{"format": 1}`, 1, "no requests object"},
		{"requests null", `{"format": 1, "requests": null}`, 1, "requests is null"},
		{"array", `[]`, 1, "an array"},
		{"empty file", ``, 1, "the file is empty"},
		{"truncated", "{\n  \"format\": 1,\n  \"requests\": {", 3, "truncated"},
		{"syntax error on line 3", "{\n  \"format\": 1,\n  \"requests\": {,}\n}", 3, "invalid character"},
		{"request without ID", "{\"format\": 1,\n\"requests\": {\n\"abc\": {\"version\": 1}}}", 3, "no ID"},
		{"request under another ID", "{\"format\": 1, \"requests\": {\n\n\"abc\": {\"id\": \"xyz\", \"version\": 1, \"state\": \"Planned\", \"createdAt\": \"2026-03-03T02:00:00Z\"}}}", 3, "says it is #xyz"},
		{"request version 0", `{"format": 1, "requests": {"abc": {"id": "abc", "state": "Planned", "createdAt": "2026-03-03T02:00:00Z"}}}`, 1, "version 0"},
		{"request null", `{"format": 1, "requests": {"abc": null}}`, 1, "null"},
		{"request twice", `{"format": 1, "requests": {"abc": {"id": "abc", "version": 1, "state": "Planned", "createdAt": "2026-03-03T02:00:00Z"}, "abc": {"id": "abc", "version": 1, "state": "Planned", "createdAt": "2026-03-03T02:00:00Z"}}}`, 1, "twice"},
		{"wrong type", "{\"format\": 1,\n \"requests\": {},\n \"once\": {\"k\": 5}}", 3, "once"},
		{"unknown field", "{\"format\": 1, \"requests\": {},\n \"requestz\": {}}", 2, `unknown field "requestz"`},
		{"field twice", `{"format": 1, "requests": {}, "requests": {}}`, 1, "twice"},
		{"trailing data", "{\"format\": 1, \"requests\": {}}\n{}", 1, "after the end"},
		{"newer format", `{"format": 2, "requests": {}}`, 1, "newer than this deploybot"},
		{"dedupe key without expiry", `{"format": 1, "requests": {}, "once": {"k": "0001-01-01T00:00:00Z"}}`, 1, "expiry"},
		{"image record of another env", "{\"format\": 1, \"requests\": {},\n\"images\": {\"prod\": {\"web\": [" + imageJSON("stg", "web", digestA, `"2026-03-03T02:00:00Z"`) + "]}}}", 2, "stored as one of prod/web"},
		{"image record of another service", "{\"format\": 1, \"requests\": {},\n\n\"images\": {\"prod\": {\"web\": [" + imageJSON("prod", "worker", digestA, `"2026-03-03T02:00:00Z"`) + "]}}}", 3, "stored as one of prod/web"},
		{"image record with a tag for a digest", `{"format": 1, "requests": {}, "images": {"prod": {"web": [` + imageJSON("prod", "web", "latest", `"2026-03-03T02:00:00Z"`) + `]}}}`, 1, "not a sha256 digest"},
		{"image record never seen", `{"format": 1, "requests": {}, "images": {"prod": {"web": [` + imageJSON("prod", "web", digestA, `"0001-01-01T00:00:00Z"`) + `]}}}`, 1, "no time seen"},
		{"image record twice", `{"format": 1, "requests": {}, "images": {"prod": {"web": [` + imageJSON("prod", "web", digestA, `"2026-03-03T02:00:00Z"`) + `, ` + imageJSON("prod", "web", digestA, `"2026-03-03T03:00:00Z"`) + `]}}}`, 1, "appears twice"},
		{"image record null", `{"format": 1, "requests": {}, "images": {"prod": {"web": [null]}}}`, 1, "an image record needs"},
		{"image records without a service", `{"format": 1, "requests": {}, "images": {"prod": {"": []}}}`, 1, "without a service"},
		{"image records not a list", "{\"format\": 1, \"requests\": {},\n\"images\": {\"prod\": {\"web\": {}}}}", 2, "images"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeSnapshot("state.json", []byte(tt.doc))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("decodeSnapshot = %v, want a *FileError", err)
			}
			if fe.Path != "state.json" || fe.Line != tt.wantLine || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error = %q (line %d), want it naming state.json line %d and saying %q", err, fe.Line, tt.wantLine, tt.wantText)
			}
		})
	}
}

var digestA = "sha256:" + strings.Repeat("a", 64)

func imageJSON(env, service, digest, seen string) string {
	return `{"env": "` + env + `", "service": "` + service + `", "digest": "` + digest + `", "ref": "quay.io/x/web:prod@` + digest + `", "seen": ` + seen + `}`
}

func TestDecodeSnapshotAcceptsWhatFileStoreWrites(t *testing.T) {
	snap, notes, err := decodeSnapshot("state.json", []byte(validState))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Requests) != 1 || snap.Requests["abc1234567"].Locks[0] != "prod/worker" || len(snap.Once) != 1 || snap.Pauses["prod"].By != "alice" || len(notes) != 0 {
		t.Errorf("decoded %+v, notes %v", snap, notes)
	}
	// What the store itself writes decodes to the same.
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := decodeSnapshot("state.json", b)
	if err != nil {
		t.Fatalf("decoding the store's own encoding: %v", err)
	}
	if a, b := mustJSON(t, snap), mustJSON(t, again); a != b {
		t.Errorf("round trip changed the state:\n%s\n%s", a, b)
	}
	// A fresh store's document.
	if _, _, err := decodeSnapshot("state.json", []byte(mustJSON(t, newSnapshot()))); err != nil {
		t.Errorf("a new store's document: %v", err)
	}
}

func TestDecodeSnapshotNotesUnknownState(t *testing.T) {
	doc := `{"format": 1, "requests": {"abc": {"id": "abc", "version": 1, "state": "Paused", "createdAt": "2026-03-03T02:00:00Z"}}}`
	snap, notes, err := decodeSnapshot("state.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Requests) != 1 || len(notes) != 1 || !strings.Contains(notes[0], `unknown state "Paused"`) {
		t.Errorf("requests %v, notes %v; want the request kept and a note", snap.Requests, notes)
	}
}

// TestAuditLines: a record cut short is skipped (a crash mid-append); any
// other bad line, in the middle or at the end, is an error naming it.
func TestAuditLines(t *testing.T) {
	good := `{"time":"2026-03-03T02:00:00Z","actor":"alice","action":"request"}`
	tests := []struct {
		name      string
		text      string
		want      int // events
		wantTorn  int
		wantError string // "" for none
	}{
		{"fine", good + "\n" + good + "\n", 2, 0, ""},
		{"torn tail", good + "\n" + `{"time":"2026-03-03T02:00:00Z","act`, 1, 1, ""},
		{"torn line Record ended", good + "\n" + `{"time":"2026-03-03T02:0` + "\n" + good + "\n", 2, 1, ""},
		{"blank line", good + "\n\n" + good + "\n", 2, 0, ""},
		{"garbage in the middle", good + "\n" + "\x00\x01garbage\n" + good + "\n", 0, 0, "audit.jsonl: line 2"},
		{"garbage at the end", good + "\n" + "xyz\n", 0, 0, "line 2"},
		{"wrong type", good + "\n" + `{"time": 5}` + "\n", 0, 0, "line 2"},
		{"null", `null` + "\n", 0, 0, "no time"},
		{"empty object", `{}` + "\n", 0, 0, "no time"},
		{"two records on a line", good + good + "\n", 0, 0, "after the record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, torn, err := auditLines("audit.jsonl", []byte(tt.text), 0, 1)
			switch {
			case tt.wantError != "" && (err == nil || !strings.Contains(err.Error(), tt.wantError)):
				t.Errorf("auditLines = %v, want an error containing %q", err, tt.wantError)
			case tt.wantError == "" && err != nil:
				t.Errorf("auditLines: %v", err)
			case tt.wantError == "" && (len(events) != tt.want || len(torn) != tt.wantTorn):
				t.Errorf("auditLines = %d events, %d torn; want %d, %d", len(events), len(torn), tt.want, tt.wantTorn)
			}
		})
	}
}

func TestReadFileState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if fst, err := ReadFileState(path); err != nil || fst.Exists || len(fst.Requests) != 0 {
		t.Fatalf("ReadFileState(missing) = %+v, %v; want an empty state", fst, err)
	}
	if err := os.WriteFile(path, []byte(validState), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := `{"time":"2026-03-03T02:00:00Z","action":"a0"}` + "\n" + `{"time":"2026-03-03T02:00:01Z","action":"a1"}` + "\n" + `{"time":"2026-03-03T02:0`
	if err := os.WriteFile(filepath.Join(dir, "state.audit.jsonl"), []byte(audit), 0o600); err != nil {
		t.Fatal(err)
	}
	fst, err := ReadFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fst.Exists || len(fst.Requests) != 1 || len(fst.Audit) != 2 || fst.Audit[0].Action != "a0" || len(fst.Notes) != 1 || !strings.Contains(fst.Notes[0], "line 3") || fst.Digest == "" {
		t.Errorf("ReadFileState = %+v", fst)
	}
	// A bad line in the middle of the trail names the file and line.
	bad := `{"time":"2026-03-03T02:00:00Z","action":"a0"}` + "\n" + "not json\n" + `{"time":"2026-03-03T02:00:01Z","action":"a1"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "state.audit.jsonl"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFileState(path); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "state.audit.jsonl")+": line 2") {
		t.Errorf("ReadFileState with a bad audit line = %v, want an error naming the file and line 2", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzDecodeSnapshot: the state decoder never panics, and what it accepts
// is a state the store can write and read back the same.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add([]byte(validState))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":1,"requests":{}}`))
	f.Add([]byte(`{"format":1,"requests":{"a":{"id":"a","version":1,"state":"X","createdAt":"2026-03-03T02:00:00Z"}},"inbox":[{"event":{"key":"k","received":"2026-03-03T02:00:00Z","ttl":5}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, _, err := decodeSnapshot("state.json", b)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Line < 1 {
				t.Fatalf("error %v is not a *FileError with a line", err)
			}
			return
		}
		enc, err := json.Marshal(snap)
		if err != nil {
			t.Fatalf("encoding an accepted state: %v", err)
		}
		if _, _, err := decodeSnapshot("state.json", enc); err != nil {
			t.Fatalf("the store's encoding of an accepted state is refused: %v\n%s", err, enc)
		}
	})
}

// FuzzAuditLines: the audit-trail decoder never panics and never accepts
// an event without a time.
func FuzzAuditLines(f *testing.F) {
	f.Add([]byte(`{"time":"2026-03-03T02:00:00Z","action":"a"}` + "\n"))
	f.Add([]byte(`{"time":"2026-03-03T02:00:00Z","act`))
	f.Add([]byte("null\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		events, _, err := auditLines("audit.jsonl", b, 0, 1)
		if err != nil {
			return
		}
		for _, e := range events {
			if e.Time.IsZero() || e.Time.Equal(time.Time{}) {
				t.Fatalf("accepted an event without a time: %+v", e)
			}
		}
	})
}
