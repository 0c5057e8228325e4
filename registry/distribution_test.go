package registry_test

// Tests against the real CNCF Distribution registry (internal/registrytest
// builds and starts it), the registry most self-hosted setups and Harbor run.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/internal/registrytest"
	"github.com/deploybot/deploybot/registry"
)

// clientFor returns a Client with a Docker config holding creds for host,
// recording its requests in log.
func clientFor(t *testing.T, host, user, password string, log *requestLog, opts ...registry.Option) *registry.Client {
	t.Helper()
	opts = append([]registry.Option{registry.WithDockerConfig(dockerConfigFile(t, host, user, password))}, opts...)
	if log != nil {
		opts = append(opts, registry.WithTransport(log))
	}
	return newClient(t, opts...)
}

func TestDistributionResolve(t *testing.T) {
	reg := registrytest.Start(t)
	repo := reg.Host() + "/shop/web"
	want := push(t, repo+":latest", labelled(t, webLabels), remote.WithAuth(reg.Auth()))
	log := newRequestLog()
	c := clientFor(t, reg.Host(), reg.User(), reg.Password(), log)
	ctx := context.Background()

	img, err := c.Resolve(ctx, repo, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != want || img.Revision != webLabels[registry.LabelRevision] || img.Source != webLabels[registry.LabelSource] || img.Created.IsZero() {
		t.Errorf("Resolve = %+v, want %s with its labels", img, want)
	}
	first := log.take()
	t.Logf("first Resolve: %d requests %q", len(first), first)

	for range 5 {
		if _, err := c.Resolve(ctx, repo, "latest"); err != nil {
			t.Fatal(err)
		}
		if reqs := log.take(); !slices.Equal(reqs, []string{"HEAD /v2/shop/web/manifests/latest"}) {
			t.Fatalf("repeated Resolve of an unchanged tag sent %q, want exactly one HEAD", reqs)
		}
	}
	t.Logf("repeated Resolve: 1 request each (HEAD /v2/shop/web/manifests/latest)")

	// Another repository on the same registry: its own first contact.
	push(t, reg.Host()+"/shop/api:latest", labelled(t, nil), remote.WithAuth(reg.Auth()))
	if _, err := c.Resolve(ctx, reg.Host()+"/shop/api", "latest"); err != nil {
		t.Fatal(err)
	}
	t.Logf("first Resolve of a second repository: %q", log.take())
	if _, err := c.Resolve(ctx, reg.Host()+"/shop/api", "latest"); err != nil {
		t.Fatal(err)
	}
	if reqs := log.take(); len(reqs) != 1 {
		t.Errorf("repeated Resolve of the second repository sent %q", reqs)
	}
}

func TestDistributionIndex(t *testing.T) {
	reg := registrytest.Start(t)
	repo := reg.Host() + "/shop/multi"
	amd64 := labelled(t, map[string]string{registry.LabelRevision: "amd64rev", registry.LabelSource: "https://example.com/multi"})
	arm64 := labelled(t, map[string]string{registry.LabelRevision: "arm64rev"})
	want := pushIndex(t, repo+":prod", []platformImage{{"linux", "arm64", arm64}, {"linux", "amd64", amd64}}, remote.WithAuth(reg.Auth()))
	log := newRequestLog()
	c := clientFor(t, reg.Host(), reg.User(), reg.Password(), log)

	img, err := c.Resolve(context.Background(), repo, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != want || img.MediaType != string(types.OCIImageIndex) {
		t.Errorf("Resolve = digest %s, media type %s; want the index %s, %s", img.Digest, img.MediaType, want, types.OCIImageIndex)
	}
	if img.Revision != "amd64rev" || img.Source != "https://example.com/multi" {
		t.Errorf("labels %v, want the linux/amd64 image's", img.Labels)
	}
	if img.Digest == digestOf(t, amd64) || img.Digest == digestOf(t, arm64) {
		t.Error("Resolve returned a platform image's digest, not the index's")
	}
	t.Logf("first Resolve of an index: %q", log.take())
	if _, err := c.Resolve(context.Background(), repo, "prod"); err != nil {
		t.Fatal(err)
	}
	if reqs := log.take(); !slices.Equal(reqs, []string{"HEAD /v2/shop/multi/manifests/prod"}) {
		t.Errorf("repeated Resolve of an index sent %q, want one HEAD", reqs)
	}
}

func TestDistributionWrongCredentials(t *testing.T) {
	reg := registrytest.Start(t)
	repo := reg.Host() + "/shop/web"
	push(t, repo+":latest", labelled(t, nil), remote.WithAuth(reg.Auth()))

	c := clientFor(t, reg.Host(), reg.User(), "not-the-password", nil)
	_, err := c.Resolve(context.Background(), repo, "latest")
	if !errors.Is(err, registry.ErrDenied) {
		t.Fatalf("Resolve = %v, want ErrDenied", err)
	}
	t.Logf("wrong credentials: %v", err)
	for _, s := range []string{"resolving " + repo + ":latest: ", reg.Host() + " refused deploybot's credentials for " + repo + " (HTTP 401)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}

	_, err = newClient(t).Resolve(context.Background(), repo, "latest")
	if !errors.Is(err, registry.ErrDenied) || !strings.Contains(err.Error(), "deploybot has none for "+reg.Host()) {
		t.Errorf("anonymous Resolve = %v, want ErrDenied saying there are no credentials", err)
	}
	t.Logf("no credentials: %v", err)
}

// limitingProxy is a reverse proxy in front of a registry that answers 429
// with Retry-After while limited is set, and counts what reaches it.
type limitingProxy struct {
	limited    atomic.Bool
	retryAfter string
	mu         sync.Mutex
	reqs       []string
}

func (p *limitingProxy) start(t *testing.T, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Method+" "+r.URL.Path)
		p.mu.Unlock()
		if p.limited.Load() {
			w.Header().Set("Retry-After", p.retryAfter)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (p *limitingProxy) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.reqs
	p.reqs = nil
	return r
}

func TestDistributionRateLimited(t *testing.T) {
	reg := registrytest.Start(t)
	proxy := &limitingProxy{retryAfter: "2"}
	host := proxy.start(t, reg.URL())
	repo := host + "/shop/web"
	want := push(t, reg.Host()+"/shop/web:latest", labelled(t, webLabels), remote.WithAuth(reg.Auth()))
	c := clientFor(t, host, reg.User(), reg.Password(), nil)
	ctx := context.Background()
	if _, err := c.Resolve(ctx, repo, "latest"); err != nil {
		t.Fatal(err)
	}
	proxy.take()

	proxy.limited.Store(true)
	start := time.Now()
	_, err := c.Resolve(ctx, repo, "latest")
	var rle *registry.RateLimitedError
	if !errors.As(err, &rle) || rle.Registry != host || rle.RetryAfter != 2*time.Second {
		t.Fatalf("Resolve = %v, want a RateLimitedError from %s with RetryAfter 2s", err, host)
	}
	t.Logf("429: %v", err)
	if reqs := proxy.take(); len(reqs) != 1 {
		t.Errorf("a 429 took %q, want one request and no retries", reqs)
	}

	// The registry would answer now, but asked for 2s of quiet: calls fail
	// fast with the same error and send nothing until then.
	proxy.limited.Store(false)
	blocked := 0
	poll.Until(t, 5*time.Second, "Resolve to succeed after Retry-After", func() (bool, string) {
		img, err := c.Resolve(ctx, repo, "latest")
		if err != nil {
			if !errors.As(err, &rle) {
				t.Fatalf("Resolve while rate-limited = %v, want RateLimitedError", err)
			}
			if reqs := proxy.take(); len(reqs) != 0 {
				t.Fatalf("Resolve while rate-limited sent %q", reqs)
			}
			blocked++
			return false, err.Error()
		}
		return img.Digest == want, img.Digest
	})
	waited := time.Since(start)
	if waited < 2*time.Second {
		t.Errorf("the client asked again after %v, before Retry-After (2s)", waited)
	}
	if reqs := proxy.take(); !slices.Equal(reqs, []string{"HEAD /v2/shop/web/manifests/latest"}) {
		t.Errorf("the Resolve after the pause sent %q, want one HEAD", reqs)
	}
	t.Logf("%d calls answered without a request during the pause; the first request after it came %v after the 429", blocked, waited.Round(10*time.Millisecond))
}

func TestDistributionDeleted(t *testing.T) {
	reg := registrytest.Start(t)
	repo := reg.Host() + "/shop/web"
	auth := remote.WithAuth(reg.Auth())
	img := labelled(t, webLabels)
	digest := push(t, repo+":prod", img, auth)
	push(t, repo+":stg", img, auth)
	c := clientFor(t, reg.Host(), reg.User(), reg.Password(), nil)
	ctx := context.Background()
	for _, tag := range []string{"prod", "stg"} {
		if _, err := c.Resolve(ctx, repo, tag); err != nil {
			t.Fatal(err)
		}
	}

	// Deleting a tag leaves the manifest and its other tags.
	if err := remote.Delete(mustRef(t, repo+":prod"), auth); err != nil {
		t.Fatalf("deleting the tag: %v", err)
	}
	_, err := c.Resolve(ctx, repo, "prod")
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), `has no tag "prod" in `+repo) {
		t.Fatalf("Resolve of a deleted tag = %v, want ErrNotFound naming the tag", err)
	}
	t.Logf("deleted tag: %v", err)
	if got, err := c.Resolve(ctx, repo, "stg"); err != nil || got.Digest != digest {
		t.Fatalf("Resolve of the other tag = %+v, %v", got, err)
	}

	// Deleting the manifest takes every tag with it.
	if err := remote.Delete(mustRef(t, repo+"@"+digest), auth); err != nil {
		t.Fatalf("deleting the manifest: %v", err)
	}
	_, err = c.Resolve(ctx, repo, "stg")
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Resolve of a tag whose manifest was deleted = %v, want ErrNotFound", err)
	}
	t.Logf("deleted manifest: %v", err)
	fresh := clientFor(t, reg.Host(), reg.User(), reg.Password(), nil)
	_, err = fresh.Lookup(ctx, repo, digest)
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "has no image "+digest) {
		t.Fatalf("Lookup of a deleted digest = %v, want ErrNotFound naming the digest", err)
	}
	t.Logf("deleted digest: %v", err)
}

func TestDistributionUnreachable(t *testing.T) {
	reg := registrytest.Start(t)
	repo := reg.Host() + "/shop/web"
	push(t, repo+":latest", labelled(t, nil), remote.WithAuth(reg.Auth()))
	const timeout = 2 * time.Second
	c := clientFor(t, reg.Host(), reg.User(), reg.Password(), nil, registry.WithTimeout(timeout))
	ctx := context.Background()
	if _, err := c.Resolve(ctx, repo, "latest"); err != nil {
		t.Fatal(err)
	}

	// The registry goes away while the client knows it (its auth cached),
	// and a client that never reached it.
	reg.Stop()
	for name, c := range map[string]*registry.Client{
		"known": c,
		"fresh": clientFor(t, reg.Host(), reg.User(), reg.Password(), nil, registry.WithTimeout(timeout)),
	} {
		start := time.Now()
		_, err := c.Resolve(ctx, repo, "latest")
		took := time.Since(start)
		if !errors.Is(err, registry.ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach "+reg.Host()) {
			t.Errorf("%s client: Resolve of a stopped registry = %v, want ErrUnreachable", name, err)
		}
		if took > timeout {
			t.Errorf("%s client: took %v, more than the %v timeout", name, took, timeout)
		}
		t.Logf("%s client, after %v: %v", name, took.Round(time.Millisecond), err)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// dockerConfigFor writes reg's own Docker config JSON to a file.
func dockerConfigFor(t *testing.T, reg *registrytest.Registry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, reg.DockerConfigJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDistributionPullSecret(t *testing.T) {
	reg := registrytest.Start(t)
	repo := reg.Host() + "/shop/web"
	want := push(t, repo+":latest", labelled(t, nil), remote.WithAuth(reg.Auth()))
	c := newClient(t, registry.WithDockerConfig(dockerConfigFor(t, reg)))
	if img, err := c.Resolve(context.Background(), repo, "latest"); err != nil || img.Digest != want {
		t.Fatalf("Resolve with the registry's pull secret = %+v, %v", img, err)
	}
}
