package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/deploybot/deploybot/registry"
)

// startLocal serves go-containerregistry's in-memory registry on loopback,
// behind wrap if not nil, and returns its host:port.
func startLocal(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcr.New(ggcr.Logger(nopLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func dockerConfigFile(t *testing.T, host, user, pass string) string {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	path := filepath.Join(t.TempDir(), "config.json")
	data := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newClient(t *testing.T, opts ...registry.Option) *registry.Client {
	t.Helper()
	c, err := registry.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var webLabels = map[string]string{
	registry.LabelRevision: "3f2a9c1e0b",
	registry.LabelSource:   "https://github.com/packit/packit-service",
	registry.LabelCreated:  "2026-05-04T10:20:30Z",
	"maintainer":           "packit",
}

func TestResolveUnchangedTagIsOneHEAD(t *testing.T) {
	host := startLocal(t, nil)
	repo := host + "/shop/web"
	want := push(t, repo+":latest", labelled(t, webLabels))
	log := newRequestLog()
	c := newClient(t, registry.WithTransport(log))
	ctx := context.Background()

	img, err := c.Resolve(ctx, repo, "latest")
	if err != nil {
		t.Fatal(err)
	}
	first := log.take()
	t.Logf("first Resolve: %d requests %q", len(first), first)
	if img.Digest != want || img.Revision != "3f2a9c1e0b" || img.Source != webLabels[registry.LabelSource] ||
		!img.Created.Equal(time.Date(2026, 5, 4, 10, 20, 30, 0, time.UTC)) || img.Labels["maintainer"] != "packit" {
		t.Errorf("Resolve = %+v, want digest %s and the labels %v", img, want, webLabels)
	}
	if img.Pinned() != repo+":latest@"+want {
		t.Errorf("Pinned() = %s", img.Pinned())
	}

	for range 3 {
		again, err := c.Resolve(ctx, repo, "latest")
		if err != nil {
			t.Fatal(err)
		}
		if reqs := log.take(); !slices.Equal(reqs, []string{"HEAD /v2/shop/web/manifests/latest"}) {
			t.Fatalf("repeated Resolve sent %q, want exactly one HEAD", reqs)
		}
		if again.Digest != want || again.Revision != img.Revision {
			t.Errorf("repeated Resolve = %+v", again)
		}
	}

	// A moved tag: one HEAD, then the new digest's labels (GETs), once.
	moved := push(t, repo+":latest", labelled(t, map[string]string{registry.LabelRevision: "1be038b"}))
	img, err = c.Resolve(ctx, repo, "latest")
	if err != nil || img.Digest != moved || img.Revision != "1be038b" || img.Source != "" {
		t.Fatalf("Resolve after push = %+v, %v; want %s at revision 1be038b", img, err, moved)
	}
	reqs := log.take()
	if reqs[0] != "HEAD /v2/shop/web/manifests/latest" || slices.Contains(reqs[1:], "HEAD /v2/shop/web/manifests/latest") {
		t.Errorf("Resolve of a moved tag sent %q, want one HEAD then GETs", reqs)
	}
	t.Logf("Resolve of a moved tag: %q", reqs)
}

func TestResolveIndex(t *testing.T) {
	host := startLocal(t, nil)
	amd64 := labelled(t, map[string]string{registry.LabelRevision: "amd64rev"})
	arm64 := labelled(t, map[string]string{registry.LabelRevision: "arm64rev"})
	s390x := labelled(t, map[string]string{registry.LabelRevision: "s390xrev"})
	tests := []struct {
		name   string
		images []platformImage
		want   string // revision
	}{
		{"linux/amd64 wins wherever it is", []platformImage{{"linux", "arm64", arm64}, {"linux", "amd64", amd64}}, "amd64rev"},
		{"else the first", []platformImage{{"linux", "s390x", s390x}, {"linux", "arm64", arm64}}, "s390xrev"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := fmt.Sprintf("%s/multi%d/web", host, i)
			want := pushIndex(t, repo+":prod", tt.images)
			log := newRequestLog()
			c := newClient(t, registry.WithTransport(log))
			img, err := c.Resolve(context.Background(), repo, "prod")
			if err != nil {
				t.Fatal(err)
			}
			if img.Digest != want || img.Revision != tt.want || !strings.Contains(img.MediaType, "index") {
				t.Errorf("Resolve = %+v, want the index digest %s, an index media type, revision %s", img, want, tt.want)
			}
			log.take()
			if _, err := c.Resolve(context.Background(), repo, "prod"); err != nil {
				t.Fatal(err)
			}
			if reqs := log.take(); len(reqs) != 1 || !strings.HasPrefix(reqs[0], "HEAD ") {
				t.Errorf("repeated Resolve of an index sent %q, want one HEAD", reqs)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	host := startLocal(t, nil)
	repo := host + "/shop/web"
	old := push(t, repo+":latest", labelled(t, map[string]string{registry.LabelRevision: "old"}))
	cur := push(t, repo+":latest", labelled(t, map[string]string{registry.LabelRevision: "new"}))
	log := newRequestLog()
	c := newClient(t, registry.WithTransport(log))
	ctx := context.Background()

	img, err := c.Lookup(ctx, repo, old)
	if err != nil || img.Revision != "old" || img.Digest != old || img.Tag != "" || img.MediaType == "" {
		t.Fatalf("Lookup(old) = %+v, %v", img, err)
	}
	for _, r := range log.take() {
		if strings.HasPrefix(r, "HEAD") {
			t.Errorf("Lookup of an unseen digest sent %s; it needs GETs only", r)
		}
	}
	if img.Pinned() != repo+"@"+old {
		t.Errorf("Pinned() = %s", img.Pinned())
	}

	if _, err := c.Resolve(ctx, repo, "latest"); err != nil {
		t.Fatal(err)
	}
	log.take()
	for _, d := range []string{old, cur} {
		img, err := c.Lookup(ctx, repo, d)
		if err != nil || img.Digest != d {
			t.Fatalf("Lookup(%s) = %+v, %v", d, img, err)
		}
	}
	if reqs := log.take(); len(reqs) != 0 {
		t.Errorf("Lookup of digests seen before sent %q, want nothing", reqs)
	}
}

func TestCacheIsBounded(t *testing.T) {
	host := startLocal(t, nil)
	repo := host + "/shop/web"
	var digests []string
	for i := range 3 {
		digests = append(digests, push(t, fmt.Sprintf("%s:v%d", repo, i), labelled(t, map[string]string{"i": fmt.Sprint(i)})))
	}
	log := newRequestLog()
	c := newClient(t, registry.WithTransport(log), registry.WithCacheSize(2))
	ctx := context.Background()
	for _, d := range digests {
		if _, err := c.Lookup(ctx, repo, d); err != nil {
			t.Fatal(err)
		}
	}
	log.take()
	// The two most recent are remembered, the first was evicted.
	for _, d := range digests[1:] {
		if _, err := c.Lookup(ctx, repo, d); err != nil {
			t.Fatal(err)
		}
	}
	if reqs := log.take(); len(reqs) != 0 {
		t.Errorf("Lookup of the 2 most recent digests sent %q", reqs)
	}
	img, err := c.Lookup(ctx, repo, digests[0])
	if err != nil || img.Labels["i"] != "0" {
		t.Fatalf("Lookup(evicted) = %+v, %v", img, err)
	}
	if reqs := log.take(); len(reqs) == 0 {
		t.Error("Lookup of an evicted digest sent nothing; the cache is not bounded")
	}
}

func TestCredentials(t *testing.T) {
	host := startLocal(t, basicAuth("deploybot", "s3cret"))
	repo := host + "/shop/web"
	want := push(t, repo+":latest", labelled(t, webLabels), remote.WithAuth(&authn.Basic{Username: "deploybot", Password: "s3cret"}))

	t.Run("right", func(t *testing.T) {
		c := newClient(t, registry.WithDockerConfig(dockerConfigFile(t, host, "deploybot", "s3cret")))
		img, err := c.Resolve(context.Background(), repo, "latest")
		if err != nil || img.Digest != want || img.Revision != webLabels[registry.LabelRevision] {
			t.Fatalf("Resolve = %+v, %v", img, err)
		}
	})
	t.Run("wrong", func(t *testing.T) {
		c := newClient(t, registry.WithDockerConfig(dockerConfigFile(t, host, "deploybot", "guess")))
		_, err := c.Resolve(context.Background(), repo, "latest")
		if !errors.Is(err, registry.ErrDenied) {
			t.Fatalf("Resolve = %v, want ErrDenied", err)
		}
		for _, s := range []string{"resolving " + repo + ":latest", host + " refused deploybot's credentials", "pull secret"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
		if strings.Contains(err.Error(), "guess") {
			t.Errorf("error %q quotes the password", err)
		}
	})
	t.Run("none", func(t *testing.T) {
		c := newClient(t)
		_, err := c.Resolve(context.Background(), repo, "latest")
		if !errors.Is(err, registry.ErrDenied) || !strings.Contains(err.Error(), "deploybot has none for "+host) {
			t.Fatalf("Resolve = %v, want ErrDenied saying there are no credentials", err)
		}
	})
}

func TestErrors(t *testing.T) {
	host := startLocal(t, nil)
	repo := host + "/shop/web"
	push(t, repo+":latest", labelled(t, nil))
	closed := closedPort(t)
	hanging := hangingServer(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)

	tests := []struct {
		name      string
		repo, tag string
		lookup    bool
		timeout   time.Duration
		kind      error
		says      []string
	}{
		{name: "missing tag", repo: repo, tag: "nope", kind: registry.ErrNotFound,
			says: []string{"resolving " + repo + ":nope: ", `has no tag "nope" in ` + repo}},
		{name: "missing digest", repo: repo, tag: "sha256:" + strings.Repeat("0", 64), lookup: true, kind: registry.ErrNotFound,
			says: []string{"looking up " + repo + "@sha256:000", "has no image"}},
		{name: "closed port", repo: closed + "/shop/web", tag: "latest", kind: registry.ErrUnreachable,
			says: []string{"cannot reach " + closed, "connection refused"}},
		{name: "no answer", repo: hanging + "/shop/web", tag: "latest", timeout: 300 * time.Millisecond, kind: registry.ErrUnreachable,
			says: []string{hanging + " did not answer within 300ms"}},
		{name: "server error", repo: strings.TrimPrefix(failing.URL, "http://") + "/shop/web", tag: "latest",
			says: []string{"is failing (HTTP 500 Internal Server Error); try again later"}},
		{name: "bad repository", repo: "Not A Repo", tag: "latest", says: []string{`"Not A Repo" is not a repository name`}},
		{name: "bad tag", repo: repo, tag: "a b", says: []string{`"a b" is not a valid tag`}},
		{name: "bad digest", repo: repo, tag: "sha256:abc", lookup: true, says: []string{"is not a digest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []registry.Option{}
			if tt.timeout > 0 {
				opts = append(opts, registry.WithTimeout(tt.timeout))
			}
			c := newClient(t, opts...)
			start := time.Now()
			var err error
			if tt.lookup {
				_, err = c.Lookup(context.Background(), tt.repo, tt.tag)
			} else {
				_, err = c.Resolve(context.Background(), tt.repo, tt.tag)
			}
			took := time.Since(start)
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tt.timeout > 0 && took > tt.timeout+2*time.Second {
				t.Errorf("took %v with a timeout of %v", took, tt.timeout)
			}
		})
	}
}

func TestCallerCancelIsNotBlamedOnTheRegistry(t *testing.T) {
	hanging := hangingServer(t)
	c := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Resolve(ctx, hanging+"/shop/web", "latest")
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, registry.ErrUnreachable) {
		t.Fatalf("Resolve = %v, want the caller's context error", err)
	}
}

// rateLimiter answers 429 with retryAfter while limited is set.
type rateLimiter struct {
	limited    atomic.Bool
	retryAfter string
	mu         sync.Mutex
	seen       int // requests that reached it
}

func (rl *rateLimiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rl.mu.Lock()
		rl.seen++
		rl.mu.Unlock()
		if rl.limited.Load() {
			w.Header().Set("Retry-After", rl.retryAfter)
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rl *rateLimiter) requests() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	n := rl.seen
	rl.seen = 0
	return n
}

func TestRateLimited(t *testing.T) {
	rl := &rateLimiter{retryAfter: "40"}
	host := startLocal(t, rl.wrap)
	repo := host + "/shop/web"
	want := push(t, repo+":latest", labelled(t, nil))

	var mu sync.Mutex
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	c := newClient(t, registry.WithClock(clock))
	ctx := context.Background()
	if _, err := c.Resolve(ctx, repo, "latest"); err != nil {
		t.Fatal(err)
	}
	rl.requests()

	rl.limited.Store(true)
	_, err := c.Resolve(ctx, repo, "latest")
	var rle *registry.RateLimitedError
	if !errors.As(err, &rle) || rle.Registry != host || rle.RetryAfter != 40*time.Second {
		t.Fatalf("Resolve = %v, want a RateLimitedError for %s with RetryAfter 40s", err, host)
	}
	if msg := host + " is rate-limiting deploybot; try again in 40s"; !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not say %q", err, msg)
	}
	if n := rl.requests(); n != 1 {
		t.Errorf("the registry saw %d requests for a rate-limited Resolve, want 1 (no retries)", n)
	}

	// Until Retry-After has passed, nothing is sent, even to other repositories.
	rl.limited.Store(false)
	advance(25 * time.Second)
	for _, r := range []string{repo, host + "/shop/other"} {
		_, err = c.Resolve(ctx, r, "latest")
		if !errors.As(err, &rle) || rle.RetryAfter != 15*time.Second {
			t.Errorf("Resolve(%s) 25s later = %v, want RateLimitedError with 15s left", r, err)
		}
		if _, err := c.Lookup(ctx, r, "sha256:"+strings.Repeat("1", 64)); !errors.As(err, &rle) {
			t.Errorf("Lookup(%s) 25s later = %v, want RateLimitedError", r, err)
		}
	}
	if n := rl.requests(); n != 0 {
		t.Errorf("the registry saw %d requests while it had asked for a pause", n)
	}

	advance(15 * time.Second)
	img, err := c.Resolve(ctx, repo, "latest")
	if err != nil || img.Digest != want {
		t.Fatalf("Resolve after Retry-After = %+v, %v", img, err)
	}
	if n := rl.requests(); n != 1 {
		t.Errorf("Resolve after the pause sent %d requests, want 1", n)
	}
}

func TestOwnRateLimit(t *testing.T) {
	host := startLocal(t, nil)
	repo := host + "/shop/web"
	push(t, repo+":latest", labelled(t, nil))
	// One request a minute: the first Resolve needs several, so it cannot
	// finish within its timeout, and says why instead of hanging.
	c := newClient(t, registry.WithRate(1.0/60, 1), registry.WithTimeout(time.Second))
	start := time.Now()
	_, err := c.Resolve(context.Background(), repo, "latest")
	if err == nil || !strings.Contains(err.Error(), "deploybot's own request limit for "+host) {
		t.Fatalf("Resolve = %v, want it to name deploybot's own limit", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v with a 1s timeout", took)
	}
}

func TestNewRejects(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(bad, []byte(`{"auths":{"quay.io":{"auth":"!!"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []registry.Option
		says string
	}{
		{"missing docker config", []registry.Option{registry.WithDockerConfig("/nonexistent/config.json")}, "reading registry credentials"},
		{"bad docker config", []registry.Option{registry.WithDockerConfig(bad)}, "entry for quay.io: auth is not base64"},
		{"zero timeout", []registry.Option{registry.WithTimeout(0)}, "timeout"},
		{"zero rate", []registry.Option{registry.WithRate(0, 1)}, "allows no requests"},
		{"two credential sources", []registry.Option{registry.WithDockerConfig(bad), registry.WithKeychain(authn.DefaultKeychain)}, "use one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.New(tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("New = %v, want an error saying %q", err, tt.says)
			}
		})
	}
}

// closedPort returns a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// hangingServer returns a loopback host:port that accepts connections and
// never answers.
func hangingServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestConcurrentResolve(t *testing.T) {
	host := startLocal(t, nil)
	repos := []string{host + "/shop/web", host + "/shop/api"}
	want := map[string]string{}
	for _, r := range repos {
		want[r] = push(t, r+":latest", labelled(t, map[string]string{registry.LabelRevision: r}))
	}
	log := newRequestLog()
	c := newClient(t, registry.WithTransport(log), registry.WithRate(1000, 1000))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			r := repos[i%len(repos)]
			img, err := c.Resolve(context.Background(), r, "latest")
			if err != nil || img.Digest != want[r] || img.Revision != r {
				t.Errorf("Resolve(%s) = %+v, %v", r, img, err)
			}
			img.Labels["mutated"] = "by a caller" // must not reach the cache
		})
	}
	wg.Wait()
	gets := 0
	for _, r := range log.take() {
		if strings.HasPrefix(r, "GET /v2/shop/") {
			gets++
		}
	}
	// Two GETs per new digest (manifest, config), however many ask at once;
	// a late caller may find the cache filled and the read done, never more.
	if gets > 2*len(repos)*2 {
		t.Errorf("16 concurrent Resolves of 2 new digests sent %d label GETs", gets)
	}
	t.Logf("16 concurrent Resolves of 2 new digests: %d label GETs", gets)
	img, err := c.Resolve(context.Background(), repos[0], "latest")
	if err != nil || img.Labels["mutated"] != "" {
		t.Errorf("a caller's change to Labels reached the cache: %v, %v", img.Labels, err)
	}
}

func TestInsecure(t *testing.T) {
	local := startLocal(t, nil)
	push(t, local+"/shop/web:latest", labelled(t, nil))
	// registry.test is not loopback, so it is HTTPS unless named insecure;
	// the dialer sends it to the local registry.
	const host = "registry.test:5000"
	dial := &net.Dialer{}
	rt := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dial.DialContext(ctx, network, local)
	}}
	if _, err := newClient(t, registry.WithTransport(rt)).Resolve(context.Background(), host+"/shop/web", "latest"); err == nil {
		t.Error("Resolve over HTTPS of a plain-HTTP registry succeeded")
	}
	c := newClient(t, registry.WithTransport(rt), registry.WithInsecure(host))
	if _, err := c.Resolve(context.Background(), host+"/shop/web", "latest"); err != nil {
		t.Errorf("Resolve with WithInsecure(%s) = %v", host, err)
	}
}

func TestRateLimitedOnFirstContact(t *testing.T) {
	rl := &rateLimiter{retryAfter: "Mon, 04 May 2026 12:01:00 GMT"}
	rl.limited.Store(true)
	host := startLocal(t, rl.wrap)
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	c := newClient(t, registry.WithClock(func() time.Time { return now }))
	_, err := c.Resolve(context.Background(), host+"/shop/web", "latest")
	var rle *registry.RateLimitedError
	if !errors.As(err, &rle) || rle.RetryAfter != time.Minute {
		t.Fatalf("Resolve = %v, want a RateLimitedError with the minute its HTTP-date Retry-After gives", err)
	}
	seen := rl.requests()
	if _, err := c.Resolve(context.Background(), host+"/shop/web", "latest"); !errors.As(err, &rle) {
		t.Fatalf("second Resolve = %v, want RateLimitedError", err)
	}
	if n := rl.requests(); n != 0 {
		t.Errorf("second Resolve sent %d requests (the first sent %d), want none", n, seen)
	}
}
