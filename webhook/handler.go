package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Limits of the webhook endpoint.
const (
	// DefaultMaxBytes bounds a body; GitHub's package events, the largest
	// here, are about 20 KiB.
	DefaultMaxBytes = 1 << 20
	// ReplayWindow is how long a delivery is remembered; a redelivery within
	// it answers "already seen" and does nothing.
	ReplayWindow = 24 * time.Hour
	// quayReplayWindow is shorter: a Quay body carries no ID or time, so the
	// next push of the same tag sends the same bytes, and must not be taken
	// for a replay. Quay retries a failed notification within minutes.
	quayReplayWindow = 10 * time.Minute
	// DefaultConcurrency is how many accepted deliveries are handled at once;
	// beyond it a delivery is refused with 503 and the registry retries.
	DefaultConcurrency = 4
	// DefaultTimeout bounds the handling of one delivery (re-resolving its
	// tags, opening an import or posting a heads-up).
	DefaultTimeout = 2 * time.Minute
)

// Seen is the replay guard; store.Store's Once implements it: first is true
// the first time key is seen within ttl, false after.
type Seen interface {
	Once(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

// Receiver acts on the pushes of an accepted delivery. It runs in the
// background, after the registry has its answer: registries wait only
// briefly (Distribution's example endpoint timeout is 500ms), and looking
// tags up in the registry takes longer.
type Receiver func(ctx context.Context, d Delivery)

// Server serves POST /registry/webhooks/{source} for the sources it has
// secrets for.
type Server struct {
	secrets  map[Source]string
	hosts    Hosts
	seen     Seen
	receive  Receiver
	log      *slog.Logger
	maxBytes int64
	timeout  time.Duration
	slots    chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Option configures a Server.
type Option func(*Server)

// WithHosts sets the registry hosts of Distribution and Harbor.
func WithHosts(h Hosts) Option { return func(s *Server) { s.hosts = h } }

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithMaxBytes bounds a request body (DefaultMaxBytes).
func WithMaxBytes(n int64) Option { return func(s *Server) { s.maxBytes = n } }

// WithConcurrency sets how many deliveries are handled at once (DefaultConcurrency).
func WithConcurrency(n int) Option {
	return func(s *Server) { s.slots = make(chan struct{}, max(n, 1)) }
}

// WithTimeout bounds the handling of one delivery (DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(s *Server) { s.timeout = d } }

// New returns the server of the sources secrets names (source → its token,
// or GitHub's signing secret). seen remembers deliveries; receive acts on
// them.
func New(secrets map[Source]string, seen Seen, receive Receiver, opts ...Option) (*Server, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no webhook source has a secret")
	}
	for src, secret := range secrets {
		if !slices.Contains(Sources, src) {
			return nil, fmt.Errorf("unknown webhook source %q (known: %s)", src, joinSources(Sources))
		}
		if secret == "" {
			return nil, fmt.Errorf("webhook source %s has an empty secret", src)
		}
	}
	if seen == nil || receive == nil {
		return nil, errors.New("a webhook server needs a replay guard and a receiver")
	}
	s := &Server{secrets: secrets, seen: seen, receive: receive, log: slog.Default(), maxBytes: DefaultMaxBytes,
		timeout: DefaultTimeout, slots: make(chan struct{}, DefaultConcurrency)}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Sources lists the configured sources.
func (s *Server) Sources() []Source {
	var out []Source
	for _, src := range Sources {
		if _, ok := s.secrets[src]; ok {
			out = append(out, src)
		}
	}
	return out
}

func joinSources(ss []Source) string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s))
	}
	return strings.Join(out, ", ")
}

// ServeHTTP checks one delivery in this order, so that nothing unauthenticated
// is parsed and nothing is remembered before it is known to be genuine:
// source, method, token (before the body is read), size, GitHub's signature
// (of the body), shape, replay guard; then it hands the pushes off and
// answers 202.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src := Source(r.PathValue("source"))
	if src == "" {
		src = Source(strings.TrimPrefix(r.URL.Path, Path))
	}
	secret, ok := s.secrets[src]
	if !ok {
		answer(w, http.StatusNotFound, "no webhook source %q is configured here; the sources are %s, each enabled by its DEPLOYBOT_WEBHOOK_SECRET_<SOURCE>", string(src), joinSources(Sources))
		return
	}
	log := s.log.With("source", string(src))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(w, http.StatusMethodNotAllowed, "registry webhooks are POST requests")
		return
	}
	if src != GitHub {
		if err := VerifyToken(secret, r); err != nil {
			log.Warn("registry webhook refused", "status", http.StatusUnauthorized, "reason", err.Error(), "remote", r.RemoteAddr)
			answer(w, http.StatusUnauthorized, "%v", err)
			return
		}
	}
	if r.ContentLength > s.maxBytes {
		answer(w, http.StatusRequestEntityTooLarge, "the body is %d bytes; at most %d are read", r.ContentLength, s.maxBytes)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			answer(w, http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", s.maxBytes)
			return
		}
		answer(w, http.StatusBadRequest, "reading the body: %v", err)
		return
	}
	if src == GitHub {
		if err := VerifySignature(secret, body, r.Header.Get(SignatureHeader)); err != nil {
			log.Warn("registry webhook refused", "status", http.StatusUnauthorized, "reason", err.Error(), "remote", r.RemoteAddr)
			answer(w, http.StatusUnauthorized, "%v", err)
			return
		}
	}
	d, err := Decode(src, r.Header, body, s.hosts)
	if err != nil {
		log.Warn("registry webhook refused", "status", http.StatusBadRequest, "reason", err.Error())
		answer(w, http.StatusBadRequest, "%v", err)
		return
	}
	log = log.With("delivery", d.ID)
	if len(d.Pushes) == 0 {
		log.Info("registry webhook announces nothing to import", "note", d.Note)
		answer(w, http.StatusOK, "nothing to do: %s", d.Note)
		return
	}
	// A slot first, so that a delivery is only remembered when it will be
	// handled: a refused one is retried by the registry and not taken for
	// a replay then.
	select {
	case s.slots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "30")
		answer(w, http.StatusServiceUnavailable, "busy with other deliveries; try again")
		return
	}
	release := func() { <-s.slots }
	first, err := s.first(r.Context(), d)
	switch {
	case err != nil:
		release()
		log.Error("checking a registry webhook for a redelivery", "err", err)
		answer(w, http.StatusServiceUnavailable, "checking for a redelivery failed; try again")
		return
	case !first:
		release()
		log.Info("registry webhook already seen; nothing done")
		answer(w, http.StatusOK, "already seen")
		return
	}
	if !s.start(func() {
		defer release()
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		defer cancel()
		s.receive(ctx, d)
	}) {
		release()
		answer(w, http.StatusServiceUnavailable, "deploybot is shutting down; try again")
		return
	}
	pushes := make([]string, len(d.Pushes))
	for i, p := range d.Pushes {
		pushes[i] = p.String()
	}
	log.Info("registry webhook accepted", "pushes", pushes)
	answer(w, http.StatusAccepted, "accepted: %s; deploybot looks each tag up in the registry", strings.Join(pushes, ", "))
}

// first claims every key of d; a delivery any key of which was seen is a
// replay. Every key is claimed, so that a replay under one of them is caught
// by the others later too.
func (s *Server) first(ctx context.Context, d Delivery) (bool, error) {
	ttl := ReplayWindow
	if d.Source == Quay {
		ttl = quayReplayWindow
	}
	all := true
	for _, k := range d.keys {
		first, err := s.seen.Once(ctx, "webhook/"+string(d.Source)+"/"+k, ttl)
		if err != nil {
			return false, err
		}
		all = all && first
	}
	return all, nil
}

func (s *Server) start(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Go(f)
	return true
}

// Wait blocks until the deliveries being handled are done.
func (s *Server) Wait() { s.wg.Wait() }

// Shutdown accepts no more deliveries and waits for those being handled
// until ctx ends, then cancels them and waits for them to return.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
}

func answer(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, format+"\n", args...)
}
