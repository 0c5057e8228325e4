package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/deploybot/deploybot/store"
)

// Format is the database format this deploybot writes and reads.
const Format = 1

// Bucket names.
var (
	bMeta        = []byte("meta")
	bRequests    = []byte("requests")
	bLocks       = []byte("locks")
	bFinished    = []byte("finished")
	bAudit       = []byte("audit")
	bOnce        = []byte("once")
	bOnceExpiry  = []byte("once-expiry")
	bInbox       = []byte("inbox")
	bInboxKeys   = []byte("inbox-keys")
	bInboxExpiry = []byte("inbox-expiry")
	bPauses      = []byte("pauses")
	bImages      = []byte("images")

	allBuckets = [][]byte{bMeta, bRequests, bLocks, bFinished, bAudit, bOnce, bOnceExpiry, bInbox, bInboxKeys, bInboxExpiry, bPauses, bImages}
	// addedBuckets came after format 1 databases were first written: one
	// an older deploybot created lacks them, and Open adds them. An older
	// deploybot opening the database leaves them alone.
	addedBuckets = [][]byte{bImages}

	keyFormat   = []byte("format")
	keyMigrated = []byte("migrated")
)

const (
	// DefaultOpenTimeout is how long Open waits for another process to
	// release the database.
	DefaultOpenTimeout = 2 * time.Second
	// pruneBatch bounds what one write transaction prunes of each kind.
	pruneBatch = 64
)

// Store is a store.Store on one bbolt database. It is safe for concurrent
// use by the goroutines of one process; bbolt's file lock keeps other
// processes out.
type Store struct {
	db        *bbolt.DB
	path      string
	now       func() time.Time
	retention time.Duration
	timeout   time.Duration
}

var _ store.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock for timestamps, dedupe-key expiry and retention.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithRetention sets how long finished requests are kept
// (store.DefaultRetention); zero or negative keeps them forever. The audit
// trail is kept for good.
func WithRetention(d time.Duration) Option { return func(s *Store) { s.retention = d } }

// WithOpenTimeout sets how long Open waits for another process holding the
// database (DefaultOpenTimeout).
func WithOpenTimeout(d time.Duration) Option { return func(s *Store) { s.timeout = d } }

// CorruptError is a database that does not hold what deploybot writes.
type CorruptError struct {
	Path string
	// Where names the bucket and key, or the check, that found it.
	Where string
	Err   error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state database %s is damaged: %s: %v (deploybot will not run on it: restore it from a backup, or move it away to start empty)", e.Path, e.Where, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

func (s *Store) corrupt(where string, err error) error {
	return &CorruptError{Path: s.path, Where: where, Err: err}
}

// Open opens the database at path, creating it (and its directory) if
// needed, and refuses it if it is damaged or another program's.
func Open(path string, opts ...Option) (*Store, error) {
	s := &Store{path: path, now: time.Now, retention: store.DefaultRetention, timeout: DefaultOpenTimeout}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("opening state database %s: %w", path, err)
	}
	if err := s.checkSize(); err != nil {
		return nil, err
	}
	db, err := s.openDB()
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("opening state database %s: another process holds it (a second deploybot on the same state?); the single-replica store serves one process", path)
	case errors.As(err, new(*fs.PathError)):
		return nil, fmt.Errorf("opening state database %s: %w", path, err)
	case err != nil:
		// bbolt's checks of the meta pages and the file's size.
		return nil, &CorruptError{Path: path, Where: "opening it", Err: err}
	}
	s.db = db
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.Verify(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openDB opens the bbolt database; bbolt's panics on a damaged freelist
// page are reported as damage.
func (s *Store) openDB() (db *bbolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt: %v", r)
		}
	}()
	return bbolt.Open(s.path, 0o600, &bbolt.Options{
		Timeout: s.timeout,
		// The freelist is written with every commit (one page more) rather
		// than rebuilt at open by walking every page: that walk runs in a
		// goroutine of bbolt's where a damaged page is a panic nobody can
		// recover, so the process would die instead of refusing the file.
		NoFreelistSync: false,
		FreelistType:   bbolt.FreelistMapType,
	})
}

// checkSize refuses a file shorter than its meta page says: bbolt maps
// the file and would read the missing pages past its end, a SIGBUS that
// kills the process instead of refusing the file. The meta page is the one
// bbolt would use: valid (magic, version, checksum), highest transaction.
func (s *Store) checkSize() error {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening state database %s: %w", s.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err // a new file: bbolt initialises it
	}
	m0, ok0 := readMeta(f, 0)
	ps := int64(os.Getpagesize())
	if ok0 {
		ps = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(f, ps)
	m := m0
	switch {
	case ok1 && (!ok0 || m1.txid > m0.txid):
		m = m1
	case !ok0:
		return nil // bbolt reports the invalid meta pages
	}
	if need := int64(m.pgid) * int64(m.pageSize); st.Size() < need {
		return s.corrupt("its size", fmt.Errorf("the file is %d bytes, but its meta page says it holds %d pages of %d bytes (%d bytes): it was cut short", st.Size(), m.pgid, m.pageSize, need))
	}
	return nil
}

// boltMeta is the part of bbolt's meta page checkSize needs.
type boltMeta struct {
	pageSize   uint32
	pgid, txid uint64
}

// readMeta reads and validates the meta page at off, as bbolt lays it out:
// a 16-byte page header, then magic, version, page size, flags (4 bytes
// each), the root bucket (16), the freelist, pgid and txid pages (8 each)
// and an FNV-64a checksum of all that, in the machine's byte order.
func readMeta(f *os.File, off int64) (boltMeta, bool) {
	const header, size = 16, 64
	b := make([]byte, size)
	if _, err := f.ReadAt(b, off+header); err != nil {
		return boltMeta{}, false
	}
	le := binary.NativeEndian
	h := fnv.New64a()
	h.Write(b[:56])
	if le.Uint32(b[0:]) != 0xED0CDAED || le.Uint32(b[4:]) != 2 || le.Uint64(b[56:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(b[8:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, true
}

// init creates the buckets of a new database, and checks that an existing
// one is deploybot's, of a format this deploybot reads, with every bucket.
func (s *Store) init() error {
	return s.update(context.Background(), func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if meta == nil {
			var names []string
			_ = tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
				names = append(names, string(name))
				return nil
			})
			if len(names) > 0 {
				return s.corrupt("its buckets", fmt.Errorf("it has the buckets %q but no meta bucket: it is not a deploybot database", names))
			}
			for _, name := range allBuckets {
				if _, err := tx.CreateBucket(name); err != nil {
					return fmt.Errorf("creating state database %s: %w", s.path, err)
				}
			}
			return tx.Bucket(bMeta).Put(keyFormat, []byte(fmt.Sprint(Format)))
		}
		var f int
		if _, err := fmt.Sscan(string(meta.Get(keyFormat)), &f); err != nil || f < 1 {
			return s.corrupt("meta/format", fmt.Errorf("format %q is not a version number", meta.Get(keyFormat)))
		}
		if f > Format {
			return fmt.Errorf("opening state database %s: format %d is newer than this deploybot understands (%d)", s.path, f, Format)
		}
		added := false
		for _, name := range allBuckets {
			if tx.Bucket(name) != nil {
				continue
			}
			if !slices.ContainsFunc(addedBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
				return s.corrupt("its buckets", fmt.Errorf("the bucket %s is missing", name))
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("opening state database %s: adding the bucket %s: %w", s.path, name, err)
			}
			added = true
		}
		if !added {
			return errNothingToWrite
		}
		return nil
	})
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. The store must not be used afterwards.
func (s *Store) Close() error { return s.db.Close() }

// Ping reads the format marker, for readiness.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bMeta).Get(keyFormat) == nil {
			return s.corrupt("meta/format", errors.New("the format marker is gone"))
		}
		return nil
	})
}

// errNothingToWrite ends a write transaction that found nothing to change:
// it rolls back, so the answer costs no commit and no fsync.
var errNothingToWrite = errors.New("nothing to write")

// view runs fn in a read transaction. bbolt panics on some damaged pages;
// that is reported as damage, not a crash.
func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.recoverDamage(&err)
	return s.db.View(fn)
}

// update runs fn in a write transaction and, if fn changed something, prunes
// a little and commits.
func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.recoverDamage(&err)
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if tx.Bucket(bMeta) == nil { // during init
			return nil
		}
		return s.prune(tx)
	})
	if errors.Is(err, errNothingToWrite) {
		return nil
	}
	return err
}

func (s *Store) recoverDamage(err *error) {
	if r := recover(); r != nil {
		*err = s.corrupt("reading its pages", fmt.Errorf("bbolt: %v", r))
	}
}

// timeKey is t as 8 bytes whose order is time order.
func timeKey(t time.Time) []byte {
	b := make([]byte, 8, 8+64)
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano())^(1<<63))
	return b
}

func keyTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// prune deletes, a bounded number of each, expired dedupe keys of Once and
// of done inbox events, and finished requests past the retention age.
func (s *Store) prune(tx *bbolt.Tx) error {
	now := s.now()
	if err := s.pruneIndex(tx, bOnceExpiry, now, func(k, exp []byte) error {
		once := tx.Bucket(bOnce)
		if v := once.Get(k); bytes.Equal(v, exp) {
			return once.Delete(k)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := s.pruneIndex(tx, bInboxExpiry, now, func(k, exp []byte) error {
		keys := tx.Bucket(bInboxKeys)
		rec, err := s.inboxKey(keys, k)
		if err != nil || rec == nil || !rec.Done || !bytes.Equal(timeKey(rec.Expires), exp) {
			return err
		}
		return keys.Delete(k)
	}); err != nil {
		return err
	}
	if s.retention <= 0 {
		return nil
	}
	return s.pruneIndex(tx, bFinished, now.Add(-s.retention), func(id, at []byte) error {
		reqs := tx.Bucket(bRequests)
		r, err := s.request(reqs, id)
		if err != nil || r == nil || !r.State.Terminal() || !bytes.Equal(timeKey(r.UpdatedAt), at) {
			return err
		}
		return reqs.Delete(id)
	})
}

// pruneIndex deletes the entries of a time ‖ key index up to until (at most
// pruneBatch), calling drop for each entry's key and time first.
func (s *Store) pruneIndex(tx *bbolt.Tx, index []byte, until time.Time, drop func(key, at []byte) error) error {
	b := tx.Bucket(index)
	limit := timeKey(until)
	var done [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(done) < pruneBatch; k, _ = c.Next() {
		if len(k) < 8 {
			return s.corrupt(string(index), fmt.Errorf("index key %x is shorter than a time", k))
		}
		if string(k[:8]) > string(limit) {
			break
		}
		done = append(done, bytes.Clone(k))
	}
	for _, k := range done {
		if err := drop(k[8:], k[:8]); err != nil {
			return err
		}
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
