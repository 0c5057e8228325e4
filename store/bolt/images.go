package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/store"
)

// imagesPrefix is the key prefix of env's and service's image records:
// each name preceded by its length (uvarint), so that no env/service's
// prefix is a prefix of another's keys, whatever bytes the names hold.
func imagesPrefix(env, service string) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(env)+len(service)+len("sha256:")+64)
	b = binary.AppendUvarint(b, uint64(len(env)))
	b = append(b, env...)
	b = binary.AppendUvarint(b, uint64(len(service)))
	return append(b, service...)
}

// imageKey is a record's key: its env/service prefix, then its digest.
func imageKey(env, service, digest string) []byte {
	return append(imagesPrefix(env, service), digest...)
}

// parseImageKey splits an image record's key into env, service and digest.
func parseImageKey(k []byte) (env, service, digest string, err error) {
	name := func() (string, bool) {
		n, w := binary.Uvarint(k)
		if w <= 0 || n > uint64(len(k)-w) {
			return "", false
		}
		s := string(k[w : w+int(n)])
		k = k[w+int(n):]
		return s, true
	}
	var ok1, ok2 bool
	env, ok1 = name()
	service, ok2 = name()
	if !ok1 || !ok2 || env == "" || service == "" || len(k) == 0 {
		return "", "", "", errors.New("the key is not an environment, a service and a digest")
	}
	return env, service, string(k), nil
}

// decodeImage decodes the image record under key k and checks that it is
// plausible and stored under its own env, service and digest.
func decodeImage(k, v []byte) (store.ImageRecord, error) {
	env, service, digest, err := parseImageKey(k)
	if err != nil {
		return store.ImageRecord{}, err
	}
	var r *store.ImageRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return store.ImageRecord{}, err
	}
	if err := store.CheckImageRecord(r, env, service); err != nil {
		return store.ImageRecord{}, err
	}
	if r.Digest != digest {
		return store.ImageRecord{}, fmt.Errorf("the image record of %s is stored under the digest %q", r.Digest, digest)
	}
	return *r, nil
}

// images decodes the records of env and service, in key order.
func (s *Store) images(tx *bbolt.Tx, env, service string) ([]store.ImageRecord, error) {
	prefix := imagesPrefix(env, service)
	out := []store.ImageRecord{}
	c := tx.Bucket(bImages).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		r, err := decodeImage(k, v)
		if err != nil {
			return nil, s.corrupt(fmt.Sprintf("images/%q", k), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// RecordImage implements store.Store: one transaction reads the records of
// rec's env and service (a prefix scan of at most store.MaxImageRecords
// and one), writes the merged record and deletes those trimmed. A record
// that changes nothing commits nothing.
func (s *Store) RecordImage(ctx context.Context, rec store.ImageRecord) error {
	if err := rec.Check(); err != nil {
		return fmt.Errorf("recording an image: %w", err)
	}
	if len(imageKey(rec.Env, rec.Service, rec.Digest)) > bbolt.MaxKeySize {
		return fmt.Errorf("recording an image: the names %q and %q are too long", rec.Env, rec.Service)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		cur, err := s.images(tx, rec.Env, rec.Service)
		if err != nil {
			return err
		}
		store.SortImages(cur)
		next, changed := store.MergeImage(cur, rec)
		if !changed {
			return errNothingToWrite
		}
		b := tx.Bucket(bImages)
		kept := make(map[string]bool, len(next))
		for _, r := range next {
			kept[r.Digest] = true
		}
		for _, r := range cur {
			if !kept[r.Digest] {
				if err := b.Delete(imageKey(r.Env, r.Service, r.Digest)); err != nil {
					return err
				}
			}
		}
		for _, r := range next {
			if r.Digest != rec.Digest {
				continue // unchanged
			}
			v, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encoding image record: %w", err)
			}
			if err := b.Put(imageKey(r.Env, r.Service, r.Digest), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording image %s of %s/%s: %w", rec.Digest, rec.Env, rec.Service, err)
	}
	return nil
}

// Images implements store.Store.
func (s *Store) Images(ctx context.Context, env, service string) ([]store.ImageRecord, error) {
	var out []store.ImageRecord
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		out, err = s.images(tx, env, service)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the images of %s/%s: %w", env, service, err)
	}
	store.SortImages(out)
	return out, nil
}

func (s *Store) verifyImages(tx *bbolt.Tx) error {
	return tx.Bucket(bImages).ForEach(func(k, v []byte) error {
		if _, err := decodeImage(k, v); err != nil {
			return s.corrupt(fmt.Sprintf("images/%q", k), err)
		}
		return nil
	})
}
