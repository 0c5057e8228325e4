// Package clocktest is a clock.Clock whose time only the test moves: moving
// it fires the timers that are due, so scheduled runs, heartbeats and
// expiries happen without sleeping.
package clocktest

import (
	"slices"
	"sync"
	"time"
)

// Clock is a fake clock.Clock; the zero value reads the zero time.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// New returns a fake clock reading start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After fires when the clock has been moved d past now.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wait(c.now.Add(d))
}

// Until fires when the clock has been moved to t or later.
func (c *Clock) Until(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wait(t)
}

func (c *Clock) wait(at time.Time) <-chan time.Time {
	ch := make(chan time.Time, 1)
	if !at.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: at, ch: ch})
	return ch
}

// Set moves the clock to t and fires every timer due by then.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.waiters = slices.DeleteFunc(c.waiters, func(w waiter) bool {
		if w.at.After(t) {
			return false
		}
		w.ch <- t
		return true
	})
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// Sleepers is how many timers are pending: the loops waiting on the clock
// have done what was due and sleep.
func (c *Clock) Sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
