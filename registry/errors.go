package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kinds of failure a caller may need to tell apart; match them with errors.Is.
var (
	// ErrNotFound: the registry has no such tag, digest or repository.
	ErrNotFound = errors.New("not found in the registry")
	// ErrDenied: the registry refused the credentials (or wants some and
	// deploybot has none for it).
	ErrDenied = errors.New("registry refused the credentials")
	// ErrUnreachable: the registry could not be reached or did not answer
	// in time.
	ErrUnreachable = errors.New("registry unreachable")
)

// RateLimitedError says a registry answered HTTP 429. Until RetryAfter has
// passed the Client sends that registry nothing and returns this error again,
// with RetryAfter counting down.
type RateLimitedError struct {
	Registry   string        // as people write it: docker.io, quay.io, 127.0.0.1:5000
	RetryAfter time.Duration // how long until the registry may be asked again
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("%s is rate-limiting deploybot; try again in %s", e.Registry, roundUp(e.RetryAfter))
}

// roundUp shows a wait in whole seconds, never "0s" for a wait that remains.
func roundUp(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return ((d + time.Second - 1) / time.Second) * time.Second
}

// kindError is an error of one of the kinds above (or of none, when kind is
// nil), with a message for people and the underlying error kept for
// errors.As.
type kindError struct {
	kind error
	msg  string
	err  error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return e.kind != nil && target == e.kind }
func (e *kindError) Unwrap() error        { return e.err }

// what a failed call was looking for, to name it in the error.
type target struct {
	registry  string // display name
	repo      string // display name: docker.io/library/nginx
	ident     string // tag or digest
	isDigest  bool
	anonymous bool // no credentials for this registry
}

func (t target) String() string {
	if t.isDigest {
		return t.repo + "@" + t.ident
	}
	return t.repo + ":" + t.ident
}

// classify turns what go-containerregistry and net/http return into one of
// the errors above. timeout is the per-call limit, to say how long was waited.
func classify(err error, t target, timeout time.Duration) error {
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return rl
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
			hasCode(te, transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
			if t.anonymous {
				return &kindError{ErrDenied, fmt.Sprintf(
					"%s wants credentials for %s (HTTP %d) and deploybot has none for %s; add them to its registry pull secret (or the repository does not exist)",
					t.registry, t.repo, te.StatusCode, t.registry), err}
			}
			return &kindError{ErrDenied, fmt.Sprintf(
				"%s refused deploybot's credentials for %s (HTTP %d); check the %s entry of its registry pull secret and that this account may pull %s",
				t.registry, t.repo, te.StatusCode, t.registry, t.repo), err}
		case hasCode(te, transport.NameUnknownErrorCode):
			return &kindError{ErrNotFound, fmt.Sprintf("%s has no repository %s", t.registry, t.repo), err}
		case te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode):
			if t.isDigest {
				return &kindError{ErrNotFound, fmt.Sprintf("%s has no image %s in %s (deleted?)", t.registry, t.ident, t.repo), err}
			}
			return &kindError{ErrNotFound, fmt.Sprintf("%s has no tag %q in %s", t.registry, t.ident, t.repo), err}
		case te.StatusCode >= 500:
			return &kindError{nil, fmt.Sprintf("%s is failing (HTTP %d %s%s); try again later",
				t.registry, te.StatusCode, http.StatusText(te.StatusCode), diagnostic(te)), err}
		}
		return &kindError{nil, fmt.Sprintf("%s answered HTTP %d %s%s",
			t.registry, te.StatusCode, http.StatusText(te.StatusCode), diagnostic(te)), err}
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &kindError{ErrUnreachable, fmt.Sprintf("%s did not answer within %s", t.registry, timeout), err}
	}
	if reason, ok := unreachable(err); ok {
		return &kindError{ErrUnreachable, fmt.Sprintf("cannot reach %s: %s", t.registry, reason), err}
	}
	return err
}

// diagnostic is the registry's own explanation, if it gave one: ": MESSAGE".
func diagnostic(te *transport.Error) string {
	for _, d := range te.Errors {
		if d.Message != "" {
			return ": " + d.Message
		}
	}
	return ""
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unreachable reports whether err is a failure to connect, with a short
// reason for people ("connection refused", "no such host").
func unreachable(err error) (string, bool) {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return "no such host " + dns.Name, true
		}
		return "looking up " + dns.Name + ": " + dns.Err, true
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host", true
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset", true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return strings.TrimSpace(op.Err.Error()), true
	}
	return "", false
}
