package registry

// WithClock lets tests move time past a Retry-After.
var WithClock = withClock
