package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/deploybot/deploybot/internal/registrytest"
)

// Helpers for tests that run the real CNCF Distribution registry
// (internal/registrytest) beside the control plane.

// pushImage pushes a new random image, labelled as built from revision of
// the shop repository, to host/repo:tag with remote.Write and returns its
// digest.
func pushImage(ctx context.Context, t *testing.T, reg *registrytest.Registry, repo, tag, revision string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.source":   "https://git.example/shop/" + repo[strings.LastIndex(repo, "/")+1:],
		"org.opencontainers.image.created":  time.Now().UTC().Format(time.RFC3339),
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(reg.Auth()), remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// deleteManifest deletes repo@digest from the registry (DELETE
// /v2/REPO/manifests/DIGEST), which removes the tags that name it, and
// checks that repo:tag is gone with it.
func deleteManifest(ctx context.Context, t *testing.T, reg *registrytest.Registry, repo, tag, digest string) {
	t.Helper()
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(reg.Host() + "/" + repo + "@" + h.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref, remote.WithAuth(reg.Auth()), remote.WithContext(ctx)); err != nil {
		t.Fatalf("deleting %s: %v", ref, err)
	}
	tagRef, err := name.ParseReference(reg.Host() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := remote.Head(tagRef, remote.WithAuth(reg.Auth()), remote.WithContext(ctx)); err == nil {
		t.Fatalf("after deleting %s the registry still has %s, at %s", ref, tagRef, d.Digest)
	}
}

// writeDockerConfig writes a Docker config JSON with user:password for each
// host and returns its path.
func writeDockerConfig(t *testing.T, user, password string, hosts ...string) string {
	t.Helper()
	auths := map[string]any{}
	for _, h := range hosts {
		auths[h] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	}
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "dockerconfig-"+fmt.Sprint(len(hosts))+"-"+user+".json", b)
}

func writeFile(t *testing.T, base string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), base)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rateLimitingProxy is a reverse proxy in front of a registry that answers
// every manifest request 429 Too Many Requests with Retry-After, as Docker
// Hub does past its pull limit; the /v2/ ping and token exchange pass.
type rateLimitingProxy struct {
	srv        *httptest.Server
	retryAfter string
	limited    atomic.Int32 // manifest requests answered 429
	passed     atomic.Int32 // requests passed to the registry
}

func startRateLimitingProxy(t *testing.T, reg *registrytest.Registry, retryAfter time.Duration) *rateLimitingProxy {
	t.Helper()
	u, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := &rateLimitingProxy{retryAfter: fmt.Sprint(int(retryAfter.Seconds()))}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			p.limited.Add(1)
			w.Header().Set("Retry-After", p.retryAfter)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit exceeded"}]}`))
			return
		}
		p.passed.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// host is the proxy's 127.0.0.1:PORT.
func (p *rateLimitingProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// closedPort is 127.0.0.1:PORT where nothing listens (a port just released).
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
