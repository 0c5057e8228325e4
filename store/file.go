package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FileStore keeps requests and dedupe keys in one JSON file and the audit
// trail in a JSON-lines file beside it (state.json → state.audit.jsonl).
//
// It rewrites and fsyncs the whole document on every change, so its cost
// grows with the state (every inbound event's dedupe key is a change): the
// single-replica default is the bbolt database of store/bolt, which migrates
// a FileStore's files on first start. FileStore stays for reading old state
// and for tests that want a state a person can read.
//
// Every read-modify-write holds an exclusive flock on a third file
// (state.json.lock), so several processes sharing the file compare-and-swap
// correctly; the lock lives on its own file because the state file is
// replaced by rename on every write. Writes go to a temporary file that is
// fsynced and renamed over the state file, so a reader or a crash sees either
// the old or the new state, never half of one. Reads take no lock.
type FileStore struct {
	path      string
	auditPath string
	opts      options

	// mu serialises this process's goroutines: flock is held per open file
	// description, which they all share through lockFile.
	mu       sync.Mutex
	lockFile *os.File
}

var _ Store = (*FileStore)(nil)

// OpenFile opens (creating if needed) the file store at path. Pending
// requests written by an earlier process are there again.
func OpenFile(path string, opts ...Option) (*FileStore, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening state file %s: %w", path, err)
	}
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening state file %s: %w", path, err)
	}
	s := &FileStore{path: path, auditPath: auditPathFor(path), opts: buildOptions(opts), lockFile: lf}
	// Fail now, not at the first chat command, if the file is unreadable;
	// and remove the temporary copies writers that crashed left behind.
	err = s.withLock(context.Background(), func() error {
		if _, err := s.read(); err != nil {
			return err
		}
		return s.removeTemps()
	})
	if err != nil {
		lf.Close()
		return nil, err
	}
	return s, nil
}

// removeTemps deletes state.json.tmp-* files: a writer that died between
// creating its temporary copy and renaming it leaves one, as big as the
// state. Writers create them only under the lock, which the caller holds,
// so none of them is in use.
func (s *FileStore) removeTemps() error {
	temps, err := filepath.Glob(filepath.Join(filepath.Dir(s.path), globEscape(filepath.Base(s.path))+".tmp-*"))
	if err != nil {
		return fmt.Errorf("looking for temporary state files: %w", err)
	}
	for _, t := range temps {
		if err := os.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the temporary state file a crash left: %w", err)
		}
	}
	return nil
}

// globEscape quotes the glob metacharacters of a file name.
func globEscape(name string) string {
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// auditPathFor puts the audit trail beside the state file.
func auditPathFor(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".audit.jsonl"
}

// Path returns the state file's path.
func (s *FileStore) Path() string { return s.path }

// AuditPath returns the audit trail's path.
func (s *FileStore) AuditPath() string { return s.auditPath }

// Close releases the lock file. The store must not be used afterwards.
func (s *FileStore) Close() error { return s.lockFile.Close() }

// read decodes the state file; a missing file is an empty store, but a
// file that does not hold what a file store writes (`null`, `{}`, damage)
// is an error naming the file and line, never an empty store.
func (s *FileStore) read() (*snapshot, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return newSnapshot(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file: %w", err)
	}
	snap, _, err := decodeSnapshot(s.path, b)
	if err != nil {
		return nil, fmt.Errorf("reading state file: %w", err)
	}
	return snap, nil
}

// withLock runs fn holding this process's mutex and the exclusive flock.
func (s *FileStore) withLock(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := flock(s.lockFile, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking state file %s: %w", s.path, err)
	}
	defer flock(s.lockFile, syscall.LOCK_UN)
	return fn()
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// mutate reads the state under the lock, lets fn change it and, if fn says
// so, writes it back atomically.
func (s *FileStore) mutate(ctx context.Context, fn func(snap *snapshot) (write bool, err error)) error {
	return s.withLock(ctx, func() error {
		snap, err := s.read()
		if err != nil {
			return err
		}
		write, err := fn(snap)
		if err != nil || !write {
			return err
		}
		now := s.opts.now()
		snap.pruneOnce(now)
		if s.opts.retention > 0 {
			snap.pruneRequests(now.Add(-s.opts.retention))
		}
		return s.write(snap)
	})
}

// write replaces the state file: temp file, fsync, rename, fsync the directory.
func (s *FileStore) write(snap *snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Create implements Store. It sets r's Version, and its ID and timestamps if empty.
func (s *FileStore) Create(ctx context.Context, r *Request) error {
	return s.mutate(ctx, func(snap *snapshot) (bool, error) {
		c := clone(r)
		if err := snap.create(c, s.opts.now()); err != nil {
			return false, err
		}
		*r = *clone(c)
		return true, nil
	})
}

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, id string) (*Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, err := s.read()
	if err != nil {
		return nil, err
	}
	r, ok := snap.Requests[id]
	if !ok {
		return nil, fmt.Errorf("getting request #%s: %w", id, ErrNotFound)
	}
	return r, nil
}

// Update implements Store. fn runs without the lock on a private copy of the
// latest version; the result is written only if the request's Version is
// still the same under the lock, otherwise fn runs again on the newer one.
// So fn may be called more than once and may itself use the store.
func (s *FileStore) Update(ctx context.Context, id string, fn func(r *Request) error) (*Request, error) {
	for {
		cur, err := s.Get(ctx, id)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, fmt.Errorf("updating request #%s: %w", id, ErrNotFound)
			}
			return nil, err
		}
		next := clone(cur)
		if err := fn(next); err != nil {
			return nil, err
		}
		next.ID = id
		next.Version = cur.Version + 1
		if next.UpdatedAt.Equal(cur.UpdatedAt) {
			next.UpdatedAt = s.opts.now() // fn did not stamp it with its own clock
		}
		conflict := false
		err = s.mutate(ctx, func(snap *snapshot) (bool, error) {
			latest, ok := snap.Requests[id]
			if !ok {
				return false, fmt.Errorf("updating request #%s: %w", id, ErrNotFound)
			}
			if latest.Version != cur.Version {
				conflict = true
				return false, nil
			}
			snap.Requests[id] = next
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		if !conflict {
			return clone(next), nil
		}
	}
}

// List implements Store.
func (s *FileStore) List(ctx context.Context, opts ListOptions) ([]*Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, err := s.read()
	if err != nil {
		return nil, err
	}
	return snap.list(opts), nil
}

// Once implements Store.
func (s *FileStore) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	var first bool
	err := s.mutate(ctx, func(snap *snapshot) (bool, error) {
		first = snap.once(key, ttl, s.opts.now())
		return first, nil
	})
	if err != nil {
		return false, fmt.Errorf("recording dedupe key: %w", err)
	}
	return first, nil
}

// Pauses implements Store.
func (s *FileStore) Pauses(ctx context.Context) (map[string]Pause, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, err := s.read()
	if err != nil {
		return nil, err
	}
	return snap.pauses(), nil
}

// SetPause implements Store.
func (s *FileStore) SetPause(ctx context.Context, env string, p *Pause) error {
	err := s.mutate(ctx, func(snap *snapshot) (bool, error) {
		snap.setPause(env, p)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("recording the schedule pause of %s: %w", env, err)
	}
	return nil
}

// Record implements Store: one JSON line appended and fsynced. A zero Time is
// set to now.
func (s *FileStore) Record(ctx context.Context, e AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = s.opts.now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit event: %w", err)
	}
	line = append(line, '\n')
	return s.withLock(ctx, func() error {
		f, err := os.OpenFile(s.auditPath, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("recording audit event: %w", err)
		}
		// After a crash mid-append the file ends in a torn line; start on a
		// fresh line so only that one event is lost, not this one too.
		if torn, err := endsTorn(f); err != nil {
			f.Close()
			return fmt.Errorf("recording audit event: %w", err)
		} else if torn {
			line = append([]byte{'\n'}, line...)
		}
		if _, err := f.Write(line); err != nil {
			f.Close()
			return fmt.Errorf("recording audit event: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("recording audit event: %w", err)
		}
		return f.Close()
	})
}

// endsTorn reports whether f is non-empty and does not end in a newline.
func endsTorn(f *os.File) (bool, error) {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return false, err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil {
		return false, err
	}
	return last[0] != '\n', nil
}

// auditChunk is how much of the audit file Audit reads at a time, from the end.
const auditChunk = 64 << 10

// Audit implements Store; n <= 0 returns every event. It reads the file
// backwards only as far as needed, so asking for the last few events stays
// cheap as the trail grows. A record cut short (the torn tail of a crash
// mid-append, which Record then ends with a newline) is skipped; any other
// line that is not an audit event is an error naming where it is, so a
// damaged trail never reads as a short or empty one.
func (s *FileStore) Audit(ctx context.Context, n int) ([]AuditEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.auditPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading audit trail: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading audit trail: %w", err)
	}
	tail, err := readTail(f, st.Size(), n)
	if err != nil {
		return nil, fmt.Errorf("reading audit trail: %w", err)
	}
	base, firstLine := st.Size()-int64(len(tail)), 0
	if base == 0 {
		firstLine = 1
	}
	events, _, err := auditLines(s.auditPath, tail, base, firstLine)
	if err != nil {
		return nil, fmt.Errorf("reading audit trail: %w", err)
	}
	return lastN(events, n), nil
}

// readTail returns the end of r (of the given size) holding at least n+1
// newlines, or all of it; n <= 0 reads all. The extra line covers a torn or
// partial first line of the chunk.
func readTail(r io.ReaderAt, size int64, n int) ([]byte, error) {
	if n <= 0 {
		buf := make([]byte, size)
		_, err := r.ReadAt(buf, 0)
		if err == io.EOF {
			err = nil
		}
		return buf, err
	}
	var buf []byte
	off := size
	for off > 0 && bytes.Count(buf, []byte{'\n'}) <= n+1 {
		step := min(int64(auditChunk), off)
		off -= step
		chunk := make([]byte, step)
		if _, err := r.ReadAt(chunk, off); err != nil && err != io.EOF {
			return nil, err
		}
		buf = append(chunk, buf...)
	}
	if off > 0 {
		// Drop the partial first line of the chunk.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return buf, nil
}

// Enqueue implements Store: the whole batch in one write of the state file.
func (s *FileStore) Enqueue(ctx context.Context, events []InboxEvent) ([]bool, error) {
	var fresh []bool
	err := s.mutate(ctx, func(snap *snapshot) (bool, error) {
		var err error
		fresh, err = snap.enqueue(events, s.opts.now())
		return err == nil && slices.Contains(fresh, true), err
	})
	if err != nil {
		return nil, fmt.Errorf("enqueueing inbound events: %w", err)
	}
	return fresh, nil
}

// Inbox implements Store.
func (s *FileStore) Inbox(ctx context.Context) ([]InboxEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, err := s.read()
	if err != nil {
		return nil, err
	}
	return snap.inbox(), nil
}

// InboxDone implements Store.
func (s *FileStore) InboxDone(ctx context.Context, key, outcome string) error {
	return s.mutate(ctx, func(snap *snapshot) (bool, error) {
		return snap.inboxDone(key, outcome, s.opts.now())
	})
}

// RecordImage implements Store: a write of the state file when the record
// changes what is kept.
func (s *FileStore) RecordImage(ctx context.Context, rec ImageRecord) error {
	if err := rec.Check(); err != nil {
		return fmt.Errorf("recording an image: %w", err)
	}
	err := s.mutate(ctx, func(snap *snapshot) (bool, error) {
		return snap.recordImage(rec), nil
	})
	if err != nil {
		return fmt.Errorf("recording image %s of %s/%s: %w", rec.Digest, rec.Env, rec.Service, err)
	}
	return nil
}

// Images implements Store.
func (s *FileStore) Images(ctx context.Context, env, service string) ([]ImageRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, err := s.read()
	if err != nil {
		return nil, err
	}
	return snap.images(env, service), nil
}
