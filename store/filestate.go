package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// FileError is a JSON state or audit file that does not hold what a file
// store writes. It names the file and where in it: a person must be able to
// find the damage, and deploybot must not start on an empty store instead.
type FileError struct {
	Path string
	// Line and Column are 1-based; Line 0 means only Offset is known (a
	// line read from the end of the audit trail).
	Line, Column int
	// Offset is the byte offset in the file.
	Offset int64
	Err    error
}

func (e *FileError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: the line at byte %d: %v", e.Path, e.Offset, e.Err)
	}
	return fmt.Sprintf("%s: line %d, column %d: %v", e.Path, e.Line, e.Column, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// fileErrorAt places err at byte off of b, the whole content of path.
func fileErrorAt(path string, b []byte, off int64, err error) *FileError {
	off = max(0, min(off, int64(len(b))))
	head := b[:off]
	line := 1 + bytes.Count(head, []byte{'\n'})
	col := int(off) - bytes.LastIndexByte(head, '\n')
	return &FileError{Path: path, Line: line, Column: col, Offset: off, Err: err}
}

// decodeError places an encoding/json error at the byte it names, counted
// from base (0 for the decoder's own errors, the value's start for those of
// json.Unmarshal on it); off is the place for errors that name none.
func decodeError(path string, b []byte, base, off int64, err error) *FileError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = base + syn.Offset
	case errors.As(err, &typ):
		off = base + typ.Offset
	case errors.Is(err, io.EOF) && onlySpace(b):
		return fileErrorAt(path, b, 0, errors.New("the file is empty; a file store always writes at least its format and requests"))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fileErrorAt(path, b, int64(len(b)), errors.New("the file ends in the middle of the state (truncated?)"))
	}
	return fileErrorAt(path, b, off, err)
}

// decodeValue decodes the next value of d into v. It goes through the raw
// bytes so that an error inside the value is placed where it is in the file.
func decodeValue(path string, b []byte, d *json.Decoder, what string, v any) error {
	at := d.InputOffset()
	var raw json.RawMessage
	if err := d.Decode(&raw); err != nil {
		return decodeError(path, b, 0, at, err)
	}
	start := d.InputOffset() - int64(len(raw))
	if err := json.Unmarshal(raw, v); err != nil {
		return decodeError(path, b, start, start, fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// decodeSnapshot decodes the state document of a JSON file store, refusing
// whatever a file store never writes: not an object (`null`, `[]`), an
// object without format and requests (`{}`), unknown or repeated fields,
// implausible requests, trailing data. It returns notes on what it let pass
// but a person should hear of (requests in states it does not know).
func decodeSnapshot(path string, b []byte) (*snapshot, []string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	if err != nil {
		return nil, nil, decodeError(path, b, 0, 0, err)
	}
	if tok != json.Delim('{') {
		return nil, nil, fileErrorAt(path, b, 0, fmt.Errorf("the state is %s, not an object with the fields format and requests", describeToken(tok)))
	}
	snap := &snapshot{}
	var notes []string
	seen := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		off := d.InputOffset() // just after the field's name: its line
		if err != nil {
			return nil, nil, decodeError(path, b, 0, off, err)
		}
		key, _ := t.(string)
		if seen[key] {
			return nil, nil, fileErrorAt(path, b, off, fmt.Errorf("the field %q appears twice", key))
		}
		seen[key] = true
		var derr error
		field := fmt.Sprintf("field %q", key)
		switch key {
		case "format":
			derr = decodeValue(path, b, d, field, &snap.Format)
			if derr == nil && snap.Format > snapshotFormat {
				return nil, nil, fileErrorAt(path, b, off, fmt.Errorf("format %d is newer than this deploybot understands (%d)", snap.Format, snapshotFormat))
			}
		case "requests":
			var n []string
			snap.Requests, n, derr = decodeRequests(path, b, d, off)
			notes = append(notes, n...)
		case "once":
			derr = decodeValue(path, b, d, field, &snap.Once)
		case "pauses":
			derr = decodeValue(path, b, d, field, &snap.Pauses)
		case "inbox":
			derr = decodeValue(path, b, d, field, &snap.Inbox)
		case "images":
			derr = decodeValue(path, b, d, field, &snap.Images)
			if derr == nil {
				if err := checkImages(snap.Images); err != nil {
					return nil, nil, fileErrorAt(path, b, off, err)
				}
			}
		default:
			return nil, nil, fileErrorAt(path, b, off, fmt.Errorf("unknown field %q", key))
		}
		if derr != nil {
			return nil, nil, derr
		}
	}
	end := d.InputOffset()
	if _, err := d.Token(); err != nil { // the closing brace
		return nil, nil, decodeError(path, b, 0, end, err)
	}
	if off := d.InputOffset(); d.More() || !onlySpace(b[off:]) {
		return nil, nil, fileErrorAt(path, b, off, errors.New("data after the end of the state"))
	}
	switch {
	case !seen["format"] || snap.Format < 1:
		return nil, nil, fileErrorAt(path, b, 0, errors.New("the state has no format (a file store always writes format 1 or later)"))
	case snap.Requests == nil:
		return nil, nil, fileErrorAt(path, b, 0, errors.New("the state has no requests object (a file store always writes one, empty or not)"))
	}
	if err := checkRest(snap); err != nil {
		return nil, nil, fileErrorAt(path, b, 0, err)
	}
	if snap.Once == nil {
		snap.Once = map[string]time.Time{}
	}
	return snap, notes, nil
}

// decodeRequests decodes the requests object, checking each request and
// that it is stored under its own ID.
func decodeRequests(path string, b []byte, d *json.Decoder, fieldOff int64) (map[string]*Request, []string, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, nil, decodeError(path, b, 0, fieldOff, err)
	}
	if tok != json.Delim('{') {
		return nil, nil, fileErrorAt(path, b, fieldOff, fmt.Errorf("requests is %s, not an object of requests by ID", describeToken(tok)))
	}
	out := map[string]*Request{}
	var notes []string
	for d.More() {
		t, err := d.Token()
		off := d.InputOffset() // just after the request's ID: its line
		if err != nil {
			return nil, nil, decodeError(path, b, 0, off, err)
		}
		id, _ := t.(string)
		if _, dup := out[id]; dup {
			return nil, nil, fileErrorAt(path, b, off, fmt.Errorf("request #%s appears twice", id))
		}
		var r *Request
		if err := decodeValue(path, b, d, "request #"+id, &r); err != nil {
			return nil, nil, err
		}
		if err := CheckRequest(r, id); err != nil {
			return nil, nil, fileErrorAt(path, b, off, err)
		}
		if !r.State.Known() {
			notes = append(notes, fmt.Sprintf("request #%s is in the unknown state %q; it is kept and listed under every filter", id, r.State))
		}
		out[id] = r
	}
	if _, err := d.Token(); err != nil {
		return nil, nil, decodeError(path, b, 0, d.InputOffset(), err)
	}
	return out, notes, nil
}

// checkRest checks the dedupe keys, pauses and inbox of a decoded state.
func checkRest(snap *snapshot) error {
	for k, until := range snap.Once {
		if k == "" || until.IsZero() {
			return fmt.Errorf("dedupe key %q without a name or an expiry", k)
		}
	}
	for env := range snap.Pauses {
		if env == "" {
			return errors.New("a schedule pause without an environment")
		}
	}
	keys := map[string]bool{}
	for _, e := range snap.Inbox {
		if err := e.Event.Check(); err != nil {
			return err
		}
		if e.Event.Received.IsZero() {
			return fmt.Errorf("inbox event %q has no receive time", e.Event.Key)
		}
		if keys[e.Event.Key] {
			return fmt.Errorf("inbox event %q appears twice", e.Event.Key)
		}
		keys[e.Event.Key] = true
	}
	return nil
}

// checkImages checks the image records of a decoded state: each plausible,
// under its own environment and service, no digest twice. (More than
// MaxImageRecords of a service are not damage: the next record trims them.)
func checkImages(images map[string]map[string][]ImageRecord) error {
	for env, services := range images {
		if env == "" {
			return errors.New("image records without an environment")
		}
		for svc, recs := range services {
			if svc == "" {
				return fmt.Errorf("image records of %s without a service", env)
			}
			if err := CheckImageRecords(recs, env, svc); err != nil {
				return err
			}
		}
	}
	return nil
}

func describeToken(t json.Token) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

func onlySpace(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// auditLines decodes JSON-lines audit events, oldest first. base is the byte
// offset of b in the file and firstLine the number of its first line (0 if
// unknown: then errors give byte offsets). A record cut short (a crash in
// the middle of an append) is skipped and its offset returned in torn;
// anything else that is not an audit event, in the middle or at the end, is
// an error naming the line: a damaged trail must not read as a short one.
func auditLines(path string, b []byte, base int64, firstLine int) (events []AuditEvent, torn []int64, err error) {
	line := firstLine
	for off := 0; off < len(b); line++ {
		end := bytes.IndexByte(b[off:], '\n')
		if end < 0 {
			end = len(b) - off
		}
		text := b[off : off+end]
		at := base + int64(off)
		off += end + 1
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		e, err := auditLine(text)
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			torn = append(torn, at)
			continue
		case err != nil:
			fe := &FileError{Path: path, Offset: at, Err: err}
			if firstLine > 0 {
				fe.Line, fe.Column = line, 1
			}
			return nil, nil, fe
		}
		events = append(events, e)
	}
	return events, torn, nil
}

// auditLine decodes one audit record; io.ErrUnexpectedEOF means it was cut
// short, the only damage a crash mid-append can do.
func auditLine(text []byte) (AuditEvent, error) {
	var e AuditEvent
	d := json.NewDecoder(bytes.NewReader(text))
	if err := d.Decode(&e); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return e, err
		}
		return e, fmt.Errorf("not an audit event: %w", err)
	}
	if !onlySpace(text[d.InputOffset():]) {
		return e, errors.New("not an audit event: data after the record")
	}
	if err := CheckAuditEvent(&e); err != nil {
		return e, err
	}
	return e, nil
}

// FileState is everything a JSON file store holds, read and checked, for
// moving it to another backend.
type FileState struct {
	// Path and AuditPath are the state file and its audit trail.
	Path, AuditPath string
	// Exists says whether either file was there; if not, the rest is empty.
	Exists bool
	// Digest is a SHA-256 over both files' bytes, so that a migration can
	// tell whether it has seen exactly these files before.
	Digest   string
	Format   int
	Requests []*Request // newest first
	// Once are the dedupe keys by when they expire, expired ones included.
	Once   map[string]time.Time
	Pauses map[string]Pause
	Inbox  []InboxRecord // in enqueueing order
	Audit  []AuditEvent  // oldest first
	// Images are the image records by environment, service, then newest
	// first.
	Images []ImageRecord
	// Notes are what the reader let pass but a person should hear of:
	// records torn by a crash mid-append, requests in unknown states.
	Notes []string
}

// ReadFileState reads the JSON file store at path (state.json and its
// state.audit.jsonl) strictly: any damage is a *FileError naming the file
// and line, never an empty or shortened state. Missing files are an empty
// state with Exists false.
func ReadFileState(path string) (*FileState, error) {
	fst := &FileState{Path: path, AuditPath: auditPathFor(path), Once: map[string]time.Time{}, Pauses: map[string]Pause{}}
	sum := sha256.New()
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading state file %s: %w", path, err)
	default:
		fst.Exists = true
		snap, notes, err := decodeSnapshot(path, b)
		if err != nil {
			return nil, fmt.Errorf("reading state file: %w", err)
		}
		fst.Format = snap.Format
		fst.Requests = snap.list(ListOptions{})
		fst.Once, fst.Inbox, fst.Notes = snap.Once, snap.Inbox, notes
		fst.Images = snap.allImages()
		if snap.Pauses != nil {
			fst.Pauses = snap.Pauses
		}
	}
	fmt.Fprintf(sum, "%d\n", len(b))
	sum.Write(b)
	a, err := os.ReadFile(fst.AuditPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading audit trail %s: %w", fst.AuditPath, err)
	default:
		fst.Exists = true
		events, torn, err := auditLines(fst.AuditPath, a, 0, 1)
		if err != nil {
			return nil, fmt.Errorf("reading audit trail: %w", err)
		}
		fst.Audit = events
		for _, off := range torn {
			line := 1 + bytes.Count(a[:off], []byte{'\n'})
			fst.Notes = append(fst.Notes, fmt.Sprintf("%s line %d: an audit record cut short by a crash mid-append; it is left out", fst.AuditPath, line))
		}
	}
	sum.Write(a)
	fst.Digest = hex.EncodeToString(sum.Sum(nil))
	return fst, nil
}
