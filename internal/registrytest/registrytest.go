// Package registrytest runs a real CNCF Distribution registry (the
// `registry` program of github.com/distribution/distribution/v3, built by
// hack/registry/build.sh) on 127.0.0.1 for tests and for hand use: htpasswd
// authentication, deletes enabled, filesystem storage in a temporary
// directory, and optionally notifications sent to an endpoint (the bot's
// webhook).
//
//	reg := registrytest.Start(t) // stopped in t.Cleanup
//	remote.Write(name.MustParseReference(reg.Host()+"/shop/web:latest"), img, remote.WithAuth(reg.Auth()))
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a running Distribution registry.
type Registry struct {
	host     string
	user     string
	password string
	dir      string
	logPath  string

	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	err      error         // Wait's result, valid after done
	stopOnce sync.Once
}

// Option configures a registry.
type Option func(*options)

type options struct {
	bin          string
	user         string
	password     string
	notify       string
	notifyHeader http.Header
	startTimeout time.Duration
	progress     io.Writer
}

// WithNotifications makes the registry POST its notification envelopes
// (application/vnd.docker.distribution.events.v1+json) for pushes, pulls and
// deletes to url, with headers added to every request (for example an
// Authorization token the receiver checks).
func WithNotifications(url string, headers http.Header) Option {
	return func(o *options) { o.notify, o.notifyHeader = url, headers }
}

// WithUser sets the one htpasswd user (default: deploybot with a random
// password).
func WithUser(user, password string) Option {
	return func(o *options) { o.user, o.password = user, password }
}

// WithBinary runs the registry binary at path instead of FindBinary's.
func WithBinary(path string) Option { return func(o *options) { o.bin = path } }

// WithStartTimeout bounds the wait for the registry to answer (default 30s).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// WithProgress sends build progress (a cold build of the registry takes
// minutes) to w.
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }

// Start starts a registry in a temporary directory and stops it in
// t.Cleanup. It fails the test if the registry cannot be built or started;
// it never skips.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	dir := t.TempDir()
	opts = append([]Option{WithProgress(testWriter{t})}, opts...)
	r, err := StartProcess(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("starting the registry: %v", err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(r.logPath); err == nil {
				t.Logf("registry log %s (last lines):\n%s", r.logPath, tail(string(b), 40))
			}
		}
	})
	return r
}

// testWriter logs build progress lines through t.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// StartProcess starts a registry with its config, htpasswd file, storage and
// log in dir, and returns once it answers on /v2/. Stop it with Stop; the
// process also dies with this one.
func StartProcess(ctx context.Context, dir string, opts ...Option) (*Registry, error) {
	o := options{user: "deploybot", startTimeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.password == "" {
		o.password = randomHex(12)
	}
	bin := o.bin
	if bin == "" {
		var err error
		if bin, err = FindBinary(o.progress); err != nil {
			return nil, err
		}
	}
	if err := writeHtpasswd(filepath.Join(dir, "htpasswd"), o.user, o.password); err != nil {
		return nil, err
	}
	// A free port can be taken between choosing and binding it; try again.
	var lastErr error
	for range 3 {
		r, err := start(ctx, bin, dir, o)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, lastErr
}

var errExitedEarly = errors.New("the registry exited before it answered")

func start(ctx context.Context, bin, dir string, o options) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		host:     fmt.Sprintf("127.0.0.1:%d", port),
		user:     o.user,
		password: o.password,
		dir:      dir,
		logPath:  filepath.Join(dir, "registry.log"),
		done:     make(chan struct{}),
	}
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, config(r.host, dir, o), 0o600); err != nil {
		return nil, fmt.Errorf("writing the registry config: %w", err)
	}
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the registry log: %w", err)
	}
	r.cmd = exec.Command(bin, "serve", configPath)
	r.cmd.Env = childEnv()
	r.cmd.Stdout = logFile
	r.cmd.Stderr = logFile
	// Its own process group, so Stop reaches everything it started, and
	// SIGKILL if this process dies, so a crashed test leaves nothing behind.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logFile, "### %s serve %s (listening on %s)\n", bin, configPath, r.host)
	if err := r.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		_ = logFile.Close()
		close(r.done)
	}()
	if err := r.waitReady(ctx, o.startTimeout); err != nil {
		r.Stop()
		return nil, fmt.Errorf("%w (log: %s)\n%s", err, r.logPath, tail(readFile(r.logPath), 20))
	}
	return r, nil
}

// waitReady polls /v2/ until the registry answers (401: it wants the
// htpasswd credentials, as configured).
func (r *Registry) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v2/", nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.done:
			return fmt.Errorf("%w: %v", errExitedEarly, r.err)
		case <-ctx.Done():
			return fmt.Errorf("the registry did not answer on %s/v2/ within %v", r.URL(), within)
		case <-tick.C:
		}
	}
}

// Stop stops the registry (SIGTERM, then SIGKILL after 5s) and waits for it.
func (r *Registry) Stop() {
	r.stopOnce.Do(func() {
		pid := r.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-r.done
	})
}

// Host is the registry's 127.0.0.1:PORT, the registry part of its image
// references.
func (r *Registry) Host() string { return r.host }

// URL is the registry's base URL, http://127.0.0.1:PORT.
func (r *Registry) URL() string { return "http://" + r.host }

// User and Password are the htpasswd credentials.
func (r *Registry) User() string     { return r.user }
func (r *Registry) Password() string { return r.password }

// Auth is the registry's credentials for go-containerregistry's remote.WithAuth.
func (r *Registry) Auth() authn.Authenticator {
	return &authn.Basic{Username: r.user, Password: r.password}
}

// DockerConfigJSON is a Docker config JSON (the .dockerconfigjson of a pull
// secret) with the registry's credentials.
func (r *Registry) DockerConfigJSON() []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(r.user + ":" + r.password))
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{r.host: map[string]string{"auth": auth}}})
	return b
}

// Dir holds the registry's config, htpasswd file, storage and log.
func (r *Registry) Dir() string { return r.dir }

// LogPath is the registry's log file.
func (r *Registry) LogPath() string { return r.logPath }

// config is the registry's configuration. JSON is YAML, and json.Marshal
// quotes every value correctly.
func config(host, dir string, o options) []byte {
	cfg := map[string]any{
		"version": "0.1",
		"log": map[string]any{
			"level":     "info",
			"formatter": "text",
		},
		"storage": map[string]any{
			"filesystem":  map[string]any{"rootdirectory": filepath.Join(dir, "data")},
			"delete":      map[string]any{"enabled": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
		},
		"http": map[string]any{
			"addr":    host,
			"secret":  randomHex(16),
			"headers": map[string][]string{"X-Content-Type-Options": {"nosniff"}},
		},
		"auth": map[string]any{
			"htpasswd": map[string]any{"realm": "deploybot-test", "path": filepath.Join(dir, "htpasswd")},
		},
	}
	if o.notify != "" {
		endpoint := map[string]any{
			"name":      "deploybot",
			"url":       o.notify,
			"timeout":   "2s",
			"threshold": 5,
			"backoff":   "1s",
		}
		if len(o.notifyHeader) > 0 {
			endpoint["headers"] = o.notifyHeader
		}
		cfg["notifications"] = map[string]any{
			"events":    map[string]any{"includereferences": true},
			"endpoints": []any{endpoint},
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // only maps of strings, numbers and bools
	}
	return b
}

// writeHtpasswd writes an htpasswd file with one bcrypt entry. The lowest
// bcrypt cost keeps tests fast: the registry checks the hash on every
// request.
func writeHtpasswd(path, user, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return fmt.Errorf("hashing the registry password: %w", err)
	}
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the registry's htpasswd file: %w", err)
	}
	return nil
}

// childEnv is this process's environment without REGISTRY_* variables (the
// registry reads them as config overrides) and with OpenTelemetry's
// exporter off (it would try to reach a collector on localhost).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return append(env, "OTEL_TRACES_EXPORTER=none")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
