package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The semantics of RecordImage and Images, shared by the backends: each
// keeps one env/service's records together and applies these to them.

// SortImages orders records newest (by Latest) first, ties by Digest, so
// that every backend lists the same records in the same order.
func SortImages(recs []ImageRecord) {
	slices.SortFunc(recs, func(a, b ImageRecord) int {
		if c := b.Latest().Compare(a.Latest()); c != 0 {
			return c
		}
		return strings.Compare(a.Digest, b.Digest)
	})
}

// MergeImage applies RecordImage(rec) to recs, the records of rec's Env and
// Service: a known digest keeps its first Seen and Ref and takes rec's
// import (Imported, By, Request) when it is newer; a new digest is added;
// then the oldest (by Latest) beyond MaxImageRecords are dropped. It
// returns the records to keep, newest first, and whether they differ from
// recs (false: nothing to write). recs is not changed. rec must have passed
// Check.
func MergeImage(recs []ImageRecord, rec ImageRecord) (out []ImageRecord, changed bool) {
	out = slices.Clone(recs)
	i := slices.IndexFunc(out, func(r ImageRecord) bool { return r.Digest == rec.Digest })
	switch {
	case i < 0:
		out = append(out, rec)
	case rec.Imported.After(out[i].Imported):
		out[i].Imported, out[i].By, out[i].Request = rec.Imported, rec.By, rec.Request
	}
	SortImages(out)
	if len(out) > MaxImageRecords {
		out = out[:MaxImageRecords:MaxImageRecords]
	}
	// out holds copies of recs' records but for the one changed or added.
	changed = !slices.Equal(out, recs)
	return out, changed
}

// CheckImageRecord says what makes a decoded image record implausible, or
// nil: it must pass Check and be stored under its own environment and
// service (env, service: what the record's place says; "" when there is
// nothing to compare).
func CheckImageRecord(r *ImageRecord, env, service string) error {
	if r == nil {
		return errors.New("the image record is null")
	}
	if err := r.Check(); err != nil {
		return err
	}
	if (env != "" && r.Env != env) || (service != "" && r.Service != service) {
		return fmt.Errorf("the image record of %s/%s is stored as one of %s/%s", r.Env, r.Service, env, service)
	}
	return nil
}

// CheckImageRecords checks the decoded records of one environment and
// service: each plausible and under its own env/service, no digest twice.
func CheckImageRecords(recs []ImageRecord, env, service string) error {
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		if err := CheckImageRecord(&recs[i], env, service); err != nil {
			return err
		}
		if seen[recs[i].Digest] {
			return fmt.Errorf("image record %s/%s %s appears twice", env, service, recs[i].Digest)
		}
		seen[recs[i].Digest] = true
	}
	return nil
}
