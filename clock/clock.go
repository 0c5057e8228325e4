// Package clock is deploybot's one time source. The request lifecycle, the
// scheduler, execution heartbeats and the sweeper read the time and wait on
// timers through a Clock, so tests pass a fake they move by hand
// (clock/clocktest) and nothing sleeps.
package clock

import "time"

// Clock is the time and its timers.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
	// Until fires once the clock reads t or later. Unlike After(t - Now())
	// it cannot miss t if the clock moves between the two calls.
	Until(t time.Time) <-chan time.Time
}

// Real is the wall clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (realClock) Until(t time.Time) <-chan time.Time     { return time.After(time.Until(t)) }
