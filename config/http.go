package config

import "time"

// HTTP bounds the HTTP server of `deploybot serve` (the Slack and Discord
// endpoints, /healthz, /readyz, /metrics), so that slow or idle clients are
// cut within seconds instead of holding a connection, a goroutine and a file
// descriptor each for as long as they like. Zero fields take the defaults.
type HTTP struct {
	// ReadHeaderTimeout bounds receiving a request's headers, from its
	// first byte (or the connection's opening); default 5s.
	ReadHeaderTimeout Duration `json:"readHeaderTimeout,omitempty"`
	// BodyTimeout bounds receiving a request's body once its headers are
	// in; default 5s. Slack and Discord bodies are a few kilobytes.
	BodyTimeout Duration `json:"bodyTimeout,omitempty"`
	// ReadTimeout bounds receiving the whole request, headers and body;
	// default 10s. It must leave room for readHeaderTimeout plus bodyTimeout.
	ReadTimeout Duration `json:"readTimeout,omitempty"`
	// WriteTimeout bounds the rest of an exchange once the headers are in:
	// receiving the body, handling the request and writing the answer;
	// default 15s. Slack gives up on an ack after 3s, so a handler that
	// needs this long has failed anyway; the request's context ends then.
	WriteTimeout Duration `json:"writeTimeout,omitempty"`
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request; default 15s: enough for a client sending requests back
	// to back, short enough that idle connections do not pile up.
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
	// MaxConnections is how many connections are served at once; default
	// 512. Further clients wait in the kernel's listen backlog until one
	// closes, which the timeouts above ensure happens within seconds.
	MaxConnections int `json:"maxConnections,omitempty"`
	// MaxHeaderBytes bounds a request's line and headers; default 65536.
	// Slack's and Discord's take about 2 KiB; net/http's own default of
	// 1 MiB would let maxConnections clients hold 512 MiB between them.
	MaxHeaderBytes int `json:"maxHeaderBytes,omitempty"`
}

// Defaults of the http section, and the bounds Validate enforces.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultBodyTimeout       = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = 15 * time.Second
	DefaultMaxConnections    = 512
	DefaultMaxHeaderBytes    = 64 << 10
	// MaxHTTPTimeout bounds every http timeout: longer ones hand the
	// server back to slow clients.
	MaxHTTPTimeout = 10 * time.Minute
	// MaxHTTPConnections bounds http.maxConnections, far above what one
	// replica should hold and below typical file-descriptor limits.
	MaxHTTPConnections = 65536
	// MinHeaderBytes and MaxHeaderBytes bound http.maxHeaderBytes: below
	// 1 KiB real requests fail, above net/http's default is no bound.
	MinHeaderBytes = 1 << 10
	MaxHeaderBytes = 1 << 20
)

// WithDefaults returns h with every zero field set to its default.
func (h HTTP) WithDefaults() HTTP {
	set := func(d *Duration, def time.Duration) {
		if d.Duration == 0 {
			d.Duration = def
		}
	}
	set(&h.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	set(&h.BodyTimeout, DefaultBodyTimeout)
	set(&h.ReadTimeout, DefaultReadTimeout)
	set(&h.WriteTimeout, DefaultWriteTimeout)
	set(&h.IdleTimeout, DefaultIdleTimeout)
	if h.MaxConnections == 0 {
		h.MaxConnections = DefaultMaxConnections
	}
	if h.MaxHeaderBytes == 0 {
		h.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return h
}

// validateHTTP checks the http section: every bound positive and not
// absurdly long, and the timeouts consistent with each other, judged with
// the defaults filled in.
func validateHTTP(ps *problems, raw HTTP) {
	h := raw.WithDefaults()
	valid := true
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"readHeaderTimeout", h.ReadHeaderTimeout.Duration},
		{"bodyTimeout", h.BodyTimeout.Duration},
		{"readTimeout", h.ReadTimeout.Duration},
		{"writeTimeout", h.WriteTimeout.Duration},
		{"idleTimeout", h.IdleTimeout.Duration},
	} {
		switch {
		case f.d < 0:
			ps.add("http."+f.name, "must not be negative, got %s (leave it out for the default)", f.d)
			valid = false
		case f.d > MaxHTTPTimeout:
			ps.add("http."+f.name, "%s is longer than %s; slow clients could hold connections that long (Slack gives up after 3s)", f.d, MaxHTTPTimeout)
			valid = false
		}
	}
	switch n := h.MaxConnections; {
	case n < 0:
		ps.add("http.maxConnections", "must not be negative, got %d (leave it out for the default, %d)", n, DefaultMaxConnections)
	case n > MaxHTTPConnections:
		ps.add("http.maxConnections", "%d is more than %d", n, MaxHTTPConnections)
	}
	if n := h.MaxHeaderBytes; n < MinHeaderBytes || n > MaxHeaderBytes {
		ps.add("http.maxHeaderBytes", "%d is not between %d and %d (leave it out for the default, %d)", n, MinHeaderBytes, MaxHeaderBytes, DefaultMaxHeaderBytes)
	}
	if !valid {
		return // the relations below would only repeat the problem
	}
	if sum := h.ReadHeaderTimeout.Duration + h.BodyTimeout.Duration; sum > h.ReadTimeout.Duration {
		ps.add("http.readTimeout", "%s is shorter than readHeaderTimeout + bodyTimeout (%s + %s = %s); it bounds the whole request, headers and body",
			h.ReadTimeout.Duration, h.ReadHeaderTimeout.Duration, h.BodyTimeout.Duration, sum)
	}
	if h.WriteTimeout.Duration <= h.BodyTimeout.Duration {
		ps.add("http.writeTimeout", "%s must be longer than bodyTimeout (%s): it starts when the headers are in, so it covers receiving the body, handling the request and answering",
			h.WriteTimeout.Duration, h.BodyTimeout.Duration)
	}
}
