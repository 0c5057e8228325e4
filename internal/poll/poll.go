// Package poll waits in tests for a condition that another goroutine or
// process makes true, with a deadline instead of a sleep of a guessed length.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every few milliseconds until it reports true, and fails
// the test with what and cond's last detail when within passes first.
func Until(t testing.TB, within time.Duration, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: last seen %s", within, what, detail)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
