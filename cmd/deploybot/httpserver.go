package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deploybot/deploybot/config"
)

// newHTTPServer is the server `serve` runs, with the config's http limits:
// net/http's header, read, write and idle timeouts, a header size bound,
// and a deadline for each request's body of its own (bodyDeadline).
func newHTTPServer(limits config.HTTP, h http.Handler) *http.Server {
	limits = limits.WithDefaults()
	return &http.Server{
		Handler:           bodyDeadline(h, limits.BodyTimeout.Duration, limits.WriteTimeout.Duration),
		ReadHeaderTimeout: limits.ReadHeaderTimeout.Duration,
		ReadTimeout:       limits.ReadTimeout.Duration,
		WriteTimeout:      limits.WriteTimeout.Duration,
		IdleTimeout:       limits.IdleTimeout.Duration,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
	}
}

// bodyDeadline gives each request's body bodyTimeout to arrive, counted
// from the end of its headers; readTimeout alone would give a slow body
// whatever the headers left of it. Once the body is in (or for a request
// without one at once), the read deadline moves to the end of the write
// timeout: the request's context then ends when its answer could no longer
// be written anyway, not when a read deadline meant for the client passes.
func bodyDeadline(next http.Handler, bodyTimeout, writeTimeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rc := http.NewResponseController(w)
		answered := start.Add(writeTimeout)
		switch {
		case r.Body == nil || r.Body == http.NoBody:
			_ = rc.SetReadDeadline(answered)
		case rc.SetReadDeadline(start.Add(bodyTimeout)) == nil:
			r.Body = &deadlineBody{ReadCloser: r.Body, done: func() { _ = rc.SetReadDeadline(answered) }}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody calls done once, when the body has been read to its end.
type deadlineBody struct {
	io.ReadCloser
	done func()
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.done)
	}
	return n, err
}

// limitConnections lets ln hand out at most limit connections at once. At the
// limit Accept waits until one closes, so further clients queue in the
// kernel's listen backlog, costing the process no descriptor or goroutine,
// and are served as the server's timeouts cut the slow ones. Reaching the
// limit is logged at most once a minute.
func limitConnections(ln net.Listener, limit int, log *slog.Logger) net.Listener {
	return &limitedListener{Listener: ln, slots: make(chan struct{}, limit), closed: make(chan struct{}), log: log}
}

type limitedListener struct {
	net.Listener
	slots     chan struct{} // one element per open connection
	closed    chan struct{}
	closeOnce sync.Once
	log       *slog.Logger
	lastFull  atomic.Int64 // Unix nanoseconds of the last "limit reached" log line
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.logFull()
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitedListener) logFull() {
	now := time.Now().UnixNano()
	last := l.lastFull.Load()
	if now-last < int64(time.Minute) || !l.lastFull.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("HTTP connection limit reached; new connections wait until one closes", "maxConnections", cap(l.slots))
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn gives its slot back when closed, however often that is.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
