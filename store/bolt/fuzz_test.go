package bolt

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/deploybot/deploybot/store"
)

// FuzzDecodeRecords: the record decoders never panic, and a record they
// accept is one the store could have written: it passes the same checks
// after its own encoding round trip.
func FuzzDecodeRecords(f *testing.F) {
	req, _ := json.Marshal(store.Request{ID: "abc", Version: 1, State: store.Planned, CreatedAt: time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)})
	at := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	ev, _ := json.Marshal(store.InboxEvent{Key: "k", Received: at, TTL: time.Hour, Payload: []byte{0, 1}})
	pos := append(timeKey(at), seqKey(1)...)
	key, _ := json.Marshal(inboxKey{Pos: pos, Expires: at.Add(time.Hour)})
	f.Add([]byte("abc"), req)
	f.Add(pos, ev)
	f.Add([]byte("k"), key)
	f.Add(seqKey(1), []byte(`{"time":"2026-03-03T02:00:00Z","action":"a"}`))
	f.Add([]byte("abc"), []byte("null"))
	f.Add([]byte{}, []byte("{}"))
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if r, err := decodeRequest(k, v); err == nil {
			b, _ := json.Marshal(r)
			if _, err := decodeRequest(k, b); err != nil {
				t.Fatalf("accepted request fails after a round trip: %v", err)
			}
		}
		if e, err := decodeAudit(k, v); err == nil && e.Time.IsZero() {
			t.Fatalf("accepted an audit event without a time")
		}
		if e, err := decodeInboxEvent(k, v); err == nil {
			if e.Key == "" || e.Received.IsZero() || string(timeKey(e.Received)) != string(k[:8]) {
				t.Fatalf("accepted an inbox event that is not at its place: %+v", e)
			}
		}
		if rec, err := decodeInboxKey(v); err == nil && !rec.Done && len(rec.Pos) != 16 {
			t.Fatalf("accepted a pending key without a position: %+v", rec)
		}
		_, _ = decodeExpiry(v)
		_, _ = decodePause(v)
	})
}
