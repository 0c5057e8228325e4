package schedule

import "time"

// SetPushRechecks replaces the waits of lookAgain for a test and returns
// a func restoring them.
func SetPushRechecks(waits ...time.Duration) (restore func()) {
	old := pushRechecks
	pushRechecks = waits
	return func() { pushRechecks = old }
}
