package store

import "time"

// DefaultRetention is how long finished requests stay in the store; the
// audit trail keeps them for good.
const DefaultRetention = 30 * 24 * time.Hour

// Option configures a store backend.
type Option func(*options)

type options struct {
	now       func() time.Time
	retention time.Duration
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now, retention: DefaultRetention}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithClock sets the clock used for timestamps, Once expiry and retention.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRetention sets how long terminal requests are kept (DefaultRetention).
// Zero or negative keeps them forever.
func WithRetention(d time.Duration) Option { return func(o *options) { o.retention = d } }
