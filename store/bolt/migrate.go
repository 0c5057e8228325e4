package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
)

// Paths maps a state path as the --state flag and the config's store.path
// give it to the database and the JSON file store it replaces: state.json
// → state.db beside it; a path ending in .db is the database itself, and
// the JSON file beside it has the same name ending in .json.
func Paths(statePath string) (dbPath, jsonPath string) {
	ext := filepath.Ext(statePath)
	base := strings.TrimSuffix(statePath, ext)
	if ext == ".db" {
		return statePath, base + ".json"
	}
	return base + ".db", statePath
}

// Migration says what OpenMigrating imported from a JSON file store.
type Migration struct {
	// From and AuditFrom are the JSON files; Backup and AuditBackup where
	// they were renamed to ("" for a file that was not there).
	From, AuditFrom     string
	Backup, AuditBackup string
	// Digest is the files' SHA-256 (store.FileState.Digest).
	Digest string
	At     time.Time
	// What was imported: requests (Open of them not finished), audit
	// events, live dedupe keys (expired ones are left out), pauses, inbox
	// events (pending and done), image records.
	Requests, Open, Audit, Once, Pauses, Inbox, Images int
	// Notes are what the reader let pass but a person should hear of.
	Notes []string `json:",omitempty"`
	// Resumed is a migration whose import a crash had already committed:
	// only the renaming of the files was left to do.
	Resumed bool `json:"-"`
}

func (m *Migration) String() string {
	s := fmt.Sprintf("%d requests (%d open), %d audit events, %d dedupe keys, %d schedule pauses, %d inbox events, %d image records from %s",
		m.Requests, m.Open, m.Audit, m.Once, m.Pauses, m.Inbox, m.Images, m.From)
	if m.Resumed {
		s += " (imported before a crash; finished now)"
	}
	return s
}

// OpenMigrating opens the database at dbPath (Open) and, if the JSON file
// store at jsonPath (or its audit trail) is there, imports it, once: the
// files are read strictly (store.ReadFileState: any damage is an error
// naming the file and line, and nothing is imported), written in one
// transaction with a marker holding their digest, then renamed to
// NAME.migrated-TIME as a backup. It returns what it imported, or nil when
// there was nothing to import.
//
// JSON files beside a database that already holds other state are refused,
// not merged: an older deploybot run on the JSON since, or a restored
// backup, needs a person to decide which state is right.
func OpenMigrating(dbPath, jsonPath string, opts ...Option) (*Store, *Migration, error) {
	s, err := Open(dbPath, opts...)
	if err != nil {
		return nil, nil, err
	}
	m, err := s.migrate(jsonPath)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, m, nil
}

func (s *Store) migrate(jsonPath string) (*Migration, error) {
	auditPath := strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath)) + ".audit.jsonl"
	if !exists(jsonPath) && !exists(auditPath) {
		return nil, nil
	}
	// An older deploybot writing the files holds this lock while it does;
	// holding it, the files are read whole.
	unlock, err := lockFileStore(jsonPath)
	if err != nil {
		return nil, err
	}
	defer unlock()
	fst, err := store.ReadFileState(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("migrating the JSON state into %s: %w; nothing was imported: repair or move the file away, then start again", s.path, err)
	}
	m := &Migration{From: fst.Path, AuditFrom: fst.AuditPath, Digest: fst.Digest, At: s.now().UTC(), Notes: fst.Notes}
	err = s.update(context.Background(), func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if v := meta.Get(keyMigrated); v != nil {
			var done Migration
			if err := json.Unmarshal(v, &done); err != nil {
				return s.corrupt("meta/migrated", err)
			}
			if done.Digest == fst.Digest {
				*m = done
				m.Resumed = true
				return errNothingToWrite
			}
			return fmt.Errorf("%s was migrated into %s at %s, and a different %s is there now (an older deploybot wrote it since?): move it away to keep the database, or move the database away to migrate the file again",
				done.From, s.path, done.At.Format(time.RFC3339), jsonPath)
		}
		if !empty(tx) {
			return fmt.Errorf("%s is there beside the state database %s, which already holds state: move the file away to keep the database, or move the database away to migrate the file", jsonPath, s.path)
		}
		if err := s.importState(tx, fst, m); err != nil {
			return err
		}
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return meta.Put(keyMigrated, v)
	})
	if err != nil {
		return nil, err
	}
	suffix := ".migrated-" + m.At.Format("20060102T150405Z")
	if m.Backup, err = moveAside(fst.Path, suffix); err != nil {
		return nil, err
	}
	if m.AuditBackup, err = moveAside(fst.AuditPath, suffix); err != nil {
		return nil, err
	}
	// The file store's lock and the temporary copies its crashed writers
	// left are of no use any more.
	temps, _ := filepath.Glob(jsonPath + ".tmp-*")
	for _, t := range append(temps, jsonPath+".lock") {
		_ = os.Remove(t)
	}
	return m, syncDir(filepath.Dir(jsonPath))
}

// importState writes a file store's state into the empty database.
func (s *Store) importState(tx *bbolt.Tx, fst *store.FileState, m *Migration) error {
	now := s.now()
	for _, r := range fst.Requests {
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding request #%s: %w", r.ID, err)
		}
		if err := s.take(tx, r.ID, nil, r); err != nil {
			var busy *store.BusyError
			if errors.As(err, &busy) {
				return fmt.Errorf("migrating %s: requests #%s and #%s are both open and hold the lock %s; a file store never lets that happen, so the file was edited or damaged: cancel one of them in the file, then start again", fst.Path, r.ID, busy.ID, busy.Lock)
			}
			return err
		}
		if err := s.putRequest(tx, nil, r, v); err != nil {
			return err
		}
		m.Requests++
		if !r.State.Terminal() {
			m.Open++
		}
	}
	audit := tx.Bucket(bAudit)
	for _, e := range fst.Audit {
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		n, err := audit.NextSequence()
		if err != nil {
			return err
		}
		if err := audit.Put(seqKey(n), v); err != nil {
			return err
		}
		m.Audit++
	}
	once, onceExp := tx.Bucket(bOnce), tx.Bucket(bOnceExpiry)
	for k, until := range fst.Once {
		if !now.Before(until) {
			continue
		}
		t := timeKey(until)
		if err := once.Put([]byte(k), t); err != nil {
			return err
		}
		if err := onceExp.Put(append(t, k...), nil); err != nil {
			return err
		}
		m.Once++
	}
	pauses := tx.Bucket(bPauses)
	for env, p := range fst.Pauses {
		v, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if err := pauses.Put([]byte(env), v); err != nil {
			return err
		}
		m.Pauses++
	}
	if err := s.importImages(tx, fst.Images, m); err != nil {
		return err
	}
	return s.importInbox(tx, fst.Inbox, now, m)
}

// importImages writes the image records, which store.ReadFileState
// checked, under their keys.
func (s *Store) importImages(tx *bbolt.Tx, records []store.ImageRecord, m *Migration) error {
	images := tx.Bucket(bImages)
	for _, r := range records {
		k := imageKey(r.Env, r.Service, r.Digest)
		if len(k) > bbolt.MaxKeySize {
			return fmt.Errorf("migrating the image record %s of %s/%s: the names are too long", r.Digest, r.Env, r.Service)
		}
		if images.Get(k) != nil {
			return fmt.Errorf("migrating the image record %s of %s/%s: it appears twice", r.Digest, r.Env, r.Service)
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := images.Put(k, v); err != nil {
			return err
		}
		m.Images++
	}
	return nil
}

func (s *Store) importInbox(tx *bbolt.Tx, records []store.InboxRecord, now time.Time, m *Migration) error {
	inbox, keys, exp := tx.Bucket(bInbox), tx.Bucket(bInboxKeys), tx.Bucket(bInboxExpiry)
	for _, rec := range records {
		e := rec.Event
		if rec.Done {
			if !now.Before(e.Expires()) {
				continue
			}
			kv, err := json.Marshal(inboxKey{Expires: e.Expires(), Done: true, DoneAt: rec.DoneAt, Outcome: rec.Outcome})
			if err != nil {
				return err
			}
			if err := keys.Put([]byte(e.Key), kv); err != nil {
				return err
			}
			if err := exp.Put(append(timeKey(e.Expires()), e.Key...), nil); err != nil {
				return err
			}
			m.Inbox++
			continue
		}
		n, err := inbox.NextSequence()
		if err != nil {
			return err
		}
		pos := append(timeKey(e.Received), seqKey(n)...)
		ev, err := json.Marshal(e)
		if err != nil {
			return err
		}
		kv, err := json.Marshal(inboxKey{Pos: pos, Expires: e.Expires()})
		if err != nil {
			return err
		}
		if err := inbox.Put(pos, ev); err != nil {
			return err
		}
		if err := keys.Put([]byte(e.Key), kv); err != nil {
			return err
		}
		m.Inbox++
	}
	return nil
}

// empty reports whether the database holds no state (a fresh one).
func empty(tx *bbolt.Tx) bool {
	for _, name := range allBuckets {
		if string(name) == string(bMeta) {
			continue
		}
		if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
			return false
		}
	}
	return true
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// moveAside renames path to path+suffix; a missing file is no error.
func moveAside(path, suffix string) (string, error) {
	err := os.Rename(path, path+suffix)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("keeping %s as a backup after migrating it: %w", path, err)
	}
	return path + suffix, nil
}

// lockFileStore takes the exclusive lock a JSON file store's writers take.
func lockFileStore(jsonPath string) (unlock func(), err error) {
	f, err := os.OpenFile(jsonPath+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking %s for its migration: %w", jsonPath, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s for its migration: %w", jsonPath, err)
	}
	return func() { f.Close() }, nil
}

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
