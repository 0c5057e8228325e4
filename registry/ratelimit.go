package registry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// defaultRetryAfter is the pause after a 429 that names no Retry-After.
	defaultRetryAfter = time.Minute
	// maxRetryAfter caps a registry's Retry-After, so a bogus value cannot
	// silence a registry for days.
	maxRetryAfter = time.Hour
)

// ParseRetryAfter reads an HTTP Retry-After header value, either a number of
// seconds or an HTTP date (RFC 9110 §10.2.3), relative to now. It reports
// false for an empty or malformed value; a date in the past is a wait of 0.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		s, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			// All digits but too large: wait as long as we ever do.
			if strings.Trim(v, "0123456789") == "" {
				return maxRetryAfter, true
			}
			return 0, false
		}
		if s > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return min(d, maxRetryAfter), true
}

// throttle is one registry's request budget: a token-bucket limiter, and the
// time before which the registry asked (with a 429) to be left alone.
type throttle struct {
	registry string // display name, for RateLimitedError
	limiter  *rate.Limiter
	now      func() time.Time

	mu    sync.Mutex
	until time.Time
}

// blocked returns the RateLimitedError to give instead of a request, or nil.
func (t *throttle) blocked() *RateLimitedError {
	t.mu.Lock()
	defer t.mu.Unlock()
	if wait := t.until.Sub(t.now()); wait > 0 {
		return &RateLimitedError{Registry: t.registry, RetryAfter: wait}
	}
	return nil
}

// backOff records a 429 with its Retry-After header value.
func (t *throttle) backOff(retryAfter string) *RateLimitedError {
	now := t.now()
	wait, ok := ParseRetryAfter(retryAfter, now)
	if !ok {
		wait = defaultRetryAfter
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := now.Add(wait); u.After(t.until) {
		t.until = u
	}
	return &RateLimitedError{Registry: t.registry, RetryAfter: t.until.Sub(now)}
}

// throttledTransport sends a request only when the registry's throttle allows
// it. A 429 answer becomes a *RateLimitedError returned by RoundTrip, so
// go-containerregistry's retries never repeat it and callers see it as is.
type throttledTransport struct {
	base     http.RoundTripper
	throttle *throttle
}

func (tt *throttledTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := tt.throttle.blocked(); err != nil {
		return nil, err
	}
	if err := tt.throttle.limiter.Wait(req.Context()); err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		// Wait refuses up front when the budget would outlast the deadline.
		return nil, fmt.Errorf("deploybot's own request limit for %s (%g/s) would delay this past the timeout; try again shortly",
			tt.throttle.registry, float64(tt.throttle.limiter.Limit()))
	}
	resp, err := tt.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		return resp, err
	}
	_ = resp.Body.Close()
	return nil, tt.throttle.backOff(resp.Header.Get("Retry-After"))
}
