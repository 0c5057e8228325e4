package demo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/registry"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ociRegistry is the registry of the demo's plain Kubernetes environments:
// go-containerregistry's in-memory OCI registry (pkg/registry), served on a
// 127.0.0.1 listener while the demo runs, and reached under the readable
// hosts the config's repositories name (registry.demo.local/shop/web): the
// client's dialer sends those hosts to the listener, so the config never
// names a port that changes every run. The bot reads it with the same
// registry client as a real one.
type ociRegistry struct {
	handler http.Handler
	hosts   map[string]bool // registry hosts, without port, the dialer serves
	client  *registry.Client
	// transport is the client's: every demo host dials the listener.
	transport *http.Transport

	mu     sync.Mutex
	addr   string                     // the listener's address; "" while stopped
	pushed map[string]map[string]bool // repo → digests, what the kubelet can pull
}

// ociTimeout bounds a registry call of the demo: the registry is in-process,
// so anything slower is a bug, reported quickly.
const ociTimeout = 5 * time.Second

// ociRate is the demo registry client's request budget per second.
const ociRate = 1000

func newOCIRegistry(hosts []string) (*ociRegistry, error) {
	r := &ociRegistry{
		handler: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))),
		hosts:   map[string]bool{},
		pushed:  map[string]map[string]bool{},
	}
	for _, h := range hosts {
		r.hosts[hostOnly(h)] = true
	}
	r.transport = &http.Transport{DialContext: r.dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	// The default request budget protects a remote registry; against this
	// one it would only make the demo wait 200ms a request after the first
	// few commands.
	c, err := registry.New(registry.WithInsecure(hosts...), registry.WithTransport(r.transport), registry.WithTimeout(ociTimeout),
		registry.WithRate(ociRate, ociRate))
	if err != nil {
		return nil, fmt.Errorf("building the demo registry's client: %w", err)
	}
	r.client = c
	return r, nil
}

// hostOnly is host without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// dial sends every demo host to the listener, whatever port the client
// asks for (go-containerregistry tries HTTPS first, which fails at once on
// the plain HTTP listener, then HTTP).
func (r *ociRegistry) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host := hostOnly(addr)
	if !r.hosts[host] {
		return nil, fmt.Errorf("the demo reaches only its own registry (%s), not %s", strings.Join(r.hostList(), ", "), host)
	}
	r.mu.Lock()
	to := r.addr
	r.mu.Unlock()
	if to == "" {
		return nil, errors.New("the demo registry is not running (start the demo)")
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", to)
}

func (r *ociRegistry) hostList() []string {
	out := make([]string, 0, len(r.hosts))
	for h := range r.hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// serve opens the listener and serves the registry on it until ctx ends;
// done is called once the server has stopped.
func (r *ociRegistry) serve(ctx context.Context, done func()) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the demo registry: %w", err)
	}
	srv := &http.Server{Handler: r.handler, ReadHeaderTimeout: ociTimeout, ErrorLog: log.New(io.Discard, "", 0)}
	r.mu.Lock()
	r.addr = ln.Addr().String()
	r.mu.Unlock()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns ErrServerClosed once Close is called
	}()
	go func() {
		defer done()
		<-ctx.Done()
		r.mu.Lock()
		r.addr = ""
		r.mu.Unlock()
		_ = srv.Close()
		<-served
		// Kept-alive connections to the closed listener are dead.
		r.transport.CloseIdleConnections()
	}()
	return nil
}

// inProcess serves a request with the registry's handler directly: the
// demo pushes its images in New, before any listener is open.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	// A server's handler may read a request's Body, which a client's
	// request can leave nil.
	in := req.Clone(req.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// push builds the n-th image of repo:tag and pushes it, tagged: its
// layer is pseudo-random from a seed of (repo, tag, n) and its labels are
// fixed, so every run of the demo has the same digests. It returns the
// image's digest.
func (r *ociRegistry) push(ctx context.Context, repo, tag string, n int) (string, error) {
	return r.pushImage(ctx, repo, tag, n, nil)
}

// pushImage is push with the given labels instead of the fixed ones (the
// image's creation time is then its created label's).
func (r *ociRegistry) pushImage(ctx context.Context, repo, tag string, n int, labels map[string]string) (string, error) {
	img, err := demoImage(repo, tag, n, labels)
	if err != nil {
		return "", fmt.Errorf("building image %d of %s:%s: %w", n, repo, tag, err)
	}
	ref, err := name.NewTag(repo+":"+tag, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("pushing to %s:%s: %w", repo, tag, err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(inProcess{r.handler})); err != nil {
		return "", fmt.Errorf("pushing image %d to %s:%s: %w", n, repo, tag, err)
	}
	h, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("pushing image %d to %s:%s: %w", n, repo, tag, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pushed[repo] == nil {
		r.pushed[repo] = map[string]bool{}
	}
	r.pushed[repo][h.String()] = true
	return h.String(), nil
}

// demoEpoch is when the demo's first images were built: a fixed time, as
// the created label is part of each image's digest.
var demoEpoch = time.Date(2025, 5, 5, 9, 30, 0, 0, time.UTC)

// demoImage is the n-th image of repo:tag, labelled as CI would label it:
// the commit it was built from, the repository's URL and when it was
// built — labels, or without them a stable fake commit, a made-up URL and
// a fixed time.
func demoImage(repo, tag string, n int, labels map[string]string) (v1.Image, error) {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s:%s#%d", repo, tag, n))
	img, err := random.Image(512, 1, random.WithSource(rand.NewSource(int64(binary.BigEndian.Uint64(sum[:8])))))
	if err != nil {
		return nil, err
	}
	created := demoEpoch.Add(time.Duration(n) * 7 * 24 * time.Hour)
	if labels == nil {
		labels = map[string]string{
			registry.LabelRevision: hex.EncodeToString(sum[:20]),
			registry.LabelSource:   sourceURL(repo),
			registry.LabelCreated:  created.Format(time.RFC3339),
		}
	} else if t, err := time.Parse(time.RFC3339Nano, labels[registry.LabelCreated]); err == nil {
		created = t
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cf.Config
	cfg.Labels = maps.Clone(labels)
	if img, err = mutate.Config(img, cfg); err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: created})
}

// sourceURL is the (made-up) git repository an image of repo is built from:
// registry.demo.local/shop/web → https://git.demo.local/shop/web.
func sourceURL(repo string) string {
	host, path, _ := strings.Cut(repo, "/")
	host = hostOnly(host)
	if h, rest, ok := strings.Cut(host, "."); ok && h == "registry" {
		host = "git." + rest
	}
	return "https://" + host + "/" + path
}

// pullable is the digest the kubelet pulls for image (REPO@DIGEST or
// REPO:TAG@DIGEST), when the demo pushed it.
func (r *ociRegistry) pullable(image string) (string, bool) {
	repo, _, digest, err := fakeopenshift.ParseReference(image)
	if err != nil || digest == "" {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return digest, r.pushed[repo][digest]
}
