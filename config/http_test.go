package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHTTPDefaults(t *testing.T) {
	tests := []struct {
		name    string
		section string // appended to the minimal config
		want    HTTP
	}{
		{name: "no http section", want: HTTP{
			ReadHeaderTimeout: Duration{5 * time.Second}, BodyTimeout: Duration{5 * time.Second}, ReadTimeout: Duration{10 * time.Second},
			WriteTimeout: Duration{15 * time.Second}, IdleTimeout: Duration{15 * time.Second}, MaxConnections: 512, MaxHeaderBytes: 65536,
		}},
		{name: "some fields set, the rest defaulted", section: "http: {bodyTimeout: 2s, idleTimeout: 90s, maxConnections: 64}\n", want: HTTP{
			ReadHeaderTimeout: Duration{5 * time.Second}, BodyTimeout: Duration{2 * time.Second}, ReadTimeout: Duration{10 * time.Second},
			WriteTimeout: Duration{15 * time.Second}, IdleTimeout: Duration{90 * time.Second}, MaxConnections: 64, MaxHeaderBytes: 65536,
		}},
		{name: "every field set", section: `http:
  readHeaderTimeout: 1s
  bodyTimeout: 1500ms
  readTimeout: 3s
  writeTimeout: 4s
  idleTimeout: 20s
  maxConnections: 2000
  maxHeaderBytes: 8192
`, want: HTTP{
			ReadHeaderTimeout: Duration{time.Second}, BodyTimeout: Duration{1500 * time.Millisecond}, ReadTimeout: Duration{3 * time.Second},
			WriteTimeout: Duration{4 * time.Second}, IdleTimeout: Duration{20 * time.Second}, MaxConnections: 2000, MaxHeaderBytes: 8192,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(minimal + tt.section))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HTTP != tt.want {
				t.Errorf("http = %+v, want %+v", cfg.HTTP, tt.want)
			}
		})
	}
}

// TestExampleDocumentsHTTPDefaults: the commented-out http section of
// examples/packit.yaml, uncommented, is exactly the defaults, so the
// reference cannot drift from the code.
func TestExampleDocumentsHTTPDefaults(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "examples", "packit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var section []string
	for _, line := range strings.Split(string(example), "\n") {
		if line == "# http:" {
			section = []string{"http:"}
			continue
		}
		if section == nil {
			continue
		}
		if !strings.HasPrefix(line, "#   ") {
			break
		}
		section = append(section, strings.TrimPrefix(line, "# "))
	}
	if len(section) < 2 {
		t.Fatal("examples/packit.yaml has no commented-out http section")
	}
	cfg, err := Parse([]byte(minimal + strings.Join(section, "\n") + "\n"))
	if err != nil {
		t.Fatalf("the example's http section: %v", err)
	}
	if want := (HTTP{}).WithDefaults(); cfg.HTTP != want {
		t.Errorf("the example's http section is %+v, the defaults are %+v", cfg.HTTP, want)
	}
}

func TestValidateHTTP(t *testing.T) {
	tests := []struct {
		name    string
		section string // appended to the minimal config
		want    []string
	}{
		{name: "defaults", section: ""},
		{name: "short timeouts, as the tests use", section: "http: {readHeaderTimeout: 500ms, bodyTimeout: 1s, readTimeout: 1500ms, writeTimeout: 2s, idleTimeout: 1s, maxConnections: 1}\n"},
		{name: "negative values", section: "http: {readHeaderTimeout: -1s, idleTimeout: -1m, maxConnections: -5}\n", want: []string{
			"http.readHeaderTimeout: must not be negative, got -1s (leave it out for the default)",
			"http.idleTimeout: must not be negative, got -1m0s (leave it out for the default)",
			"http.maxConnections: must not be negative, got -5 (leave it out for the default, 512)",
		}},
		{name: "a timeout that gives the server back to slow clients", section: "http: {writeTimeout: 1h}\n", want: []string{
			"http.writeTimeout: 1h0m0s is longer than 10m0s; slow clients could hold connections that long (Slack gives up after 3s)",
		}},
		{name: "too many connections", section: "http: {maxConnections: 1000000}\n", want: []string{
			"http.maxConnections: 1000000 is more than 65536",
		}},
		{name: "header limit too small", section: "http: {maxHeaderBytes: 100}\n", want: []string{
			"http.maxHeaderBytes: 100 is not between 1024 and 1048576 (leave it out for the default, 65536)",
		}},
		{name: "negative header limit", section: "http: {maxHeaderBytes: -1}\n", want: []string{
			"http.maxHeaderBytes: -1 is not between 1024 and 1048576 (leave it out for the default, 65536)",
		}},
		{name: "read timeout shorter than headers plus body", section: "http: {readHeaderTimeout: 5s, bodyTimeout: 8s}\n", want: []string{
			"http.readTimeout: 10s is shorter than readHeaderTimeout + bodyTimeout (5s + 8s = 13s); it bounds the whole request, headers and body",
		}},
		{name: "write timeout not longer than the body timeout", section: "http: {bodyTimeout: 4s, writeTimeout: 4s}\n", want: []string{
			"http.writeTimeout: 4s must be longer than bodyTimeout (4s): it starts when the headers are in, so it covers receiving the body, handling the request and answering",
		}},
		{name: "a number without a unit", section: "http: {readTimeout: 10}\n", want: []string{
			"parsing config: error unmarshaling JSON: while decoding JSON: a duration is a string such as \"30m\": json: cannot unmarshal number into Go value of type string",
		}},
		{name: "a misspelt field", section: "http: {idelTimeout: 30s}\n", want: []string{
			`parsing config: error unmarshaling JSON: while decoding JSON: json: unknown field "idelTimeout"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + tt.section))
			var got []string
			var ve *ValidationError
			switch {
			case errors.As(err, &ve):
				for _, p := range ve.Problems {
					got = append(got, p.String())
				}
			case err != nil:
				got = []string{err.Error()}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// FuzzHTTPConfig: an http section Parse accepts gives the server bounds it
// can use: every timeout positive and at most MaxHTTPTimeout, the whole
// request's read timeout room for headers and body, time to answer after
// the body, a connection limit of at least one and a header limit in bounds.
func FuzzHTTPConfig(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "http: {readHeaderTimeout: 500ms, bodyTimeout: 1s, readTimeout: 1500ms, writeTimeout: 2s, idleTimeout: 1s, maxConnections: 1}\n"))
	f.Add([]byte(minimal + "http: {readHeaderTimeout: -1s, bodyTimeout: 0s, readTimeout: 10m1s, maxConnections: -1}\n"))
	f.Add([]byte(minimal + "http: {bodyTimeout: 8s, writeTimeout: 8s, idleTimeout: 1ns, maxConnections: 65537}\n"))
	f.Add([]byte(minimal + "http: {readTimeout: 10, maxHeaderBytes: 1023}\n"))
	f.Add([]byte(minimal + "http: {maxHeaderBytes: 1048577}\n"))
	f.Add([]byte(minimal + "http: null\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			return
		}
		h := cfg.HTTP
		for _, d := range []time.Duration{h.ReadHeaderTimeout.Duration, h.BodyTimeout.Duration, h.ReadTimeout.Duration, h.WriteTimeout.Duration, h.IdleTimeout.Duration} {
			if d <= 0 || d > MaxHTTPTimeout {
				t.Fatalf("accepted a timeout of %v: %+v", d, h)
			}
		}
		if h.ReadHeaderTimeout.Duration+h.BodyTimeout.Duration > h.ReadTimeout.Duration || h.WriteTimeout.Duration <= h.BodyTimeout.Duration {
			t.Fatalf("accepted inconsistent timeouts: %+v", h)
		}
		if h.MaxConnections < 1 || h.MaxConnections > MaxHTTPConnections || h.MaxHeaderBytes < MinHeaderBytes || h.MaxHeaderBytes > MaxHeaderBytes {
			t.Fatalf("accepted maxConnections %d, maxHeaderBytes %d", h.MaxConnections, h.MaxHeaderBytes)
		}
		if h != h.WithDefaults() {
			t.Fatalf("Parse left fields to default: %+v", h)
		}
	})
}
