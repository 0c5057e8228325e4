package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

const (
	// DefaultTimeout bounds one Resolve or Lookup, all its requests together.
	DefaultTimeout = 20 * time.Second
	// DefaultRate and DefaultBurst are each registry's request budget: far
	// above what a bot needs, low enough that a bug cannot flood a registry.
	// The first look at a repository costs about five requests (the
	// registry's ping over HTTPS and HTTP, HEAD, manifest, config), so the
	// burst covers a cold five-service import without waiting.
	DefaultRate  = 10.0 // requests per second
	DefaultBurst = 50
	// DefaultCacheSize is how many digests' labels are remembered.
	DefaultCacheSize = 1024
)

// Client reads registries. It is safe for concurrent use; make one and keep
// it, since it remembers each repository's authentication and each digest's
// labels.
type Client struct {
	keychain  authn.Keychain
	base      http.RoundTripper
	insecure  map[string]bool
	timeout   time.Duration
	rate      rate.Limit
	burst     int
	cache     *labelCache
	labelsFor singleflight.Group // one label read per digest at a time
	now       func() time.Time
	userAgent string

	mu         sync.Mutex
	registries map[string]*registryClient // by registry host as go-containerregistry names it
}

// registryClient is one registry's puller and request budget.
type registryClient struct {
	throttle *throttle
	// puller keeps each repository's authenticated transport, so after the
	// first call a Resolve is one HEAD with no ping or token exchange.
	puller *remote.Puller
}

// Option configures a Client.
type Option func(*options)

type options struct {
	dockerConfig string
	keychain     authn.Keychain
	transport    http.RoundTripper
	insecure     []string
	timeout      time.Duration
	rate         float64
	burst        int
	cacheSize    int
	now          func() time.Time
}

// WithDockerConfig reads registry credentials from the Docker config JSON
// file at path (a mounted kubernetes.io/dockerconfigjson pull secret's
// .dockerconfigjson). Without it every registry is read anonymously.
func WithDockerConfig(path string) Option { return func(o *options) { o.dockerConfig = path } }

// WithKeychain takes credentials from k instead of a Docker config file.
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTransport sends requests through rt (tests count or intercept them
// there). The Client's limits and 429 handling still apply on top of it.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithInsecure reads the named registries (host or host:port) over plain
// HTTP. Loopback (localhost, 127.0.0.0/8, ::1) and RFC 1918 addresses are
// always tried over plain HTTP as well as HTTPS, as go-containerregistry does.
func WithInsecure(hosts ...string) Option {
	return func(o *options) { o.insecure = append(o.insecure, hosts...) }
}

// WithTimeout bounds each Resolve or Lookup (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRate sets each registry's request budget: perSecond on average, with
// bursts of burst (default DefaultRate, DefaultBurst).
func WithRate(perSecond float64, burst int) Option {
	return func(o *options) { o.rate, o.burst = perSecond, burst }
}

// WithCacheSize sets how many digests' labels are remembered (default
// DefaultCacheSize; 0 turns the cache off).
func WithCacheSize(n int) Option { return func(o *options) { o.cacheSize = n } }

// withClock lets tests move time past a Retry-After.
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New returns a Client.
func New(opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, rate: DefaultRate, burst: DefaultBurst, cacheSize: DefaultCacheSize, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{
		keychain:   o.keychain,
		base:       o.transport,
		insecure:   map[string]bool{},
		timeout:    o.timeout,
		rate:       rate.Limit(o.rate),
		burst:      o.burst,
		cache:      newLabelCache(o.cacheSize),
		now:        o.now,
		userAgent:  "deploybot",
		registries: map[string]*registryClient{},
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("registry client: timeout %v is not positive", o.timeout)
	}
	if o.rate <= 0 || o.burst < 1 {
		return nil, fmt.Errorf("registry client: rate %g/s with burst %d allows no requests", o.rate, o.burst)
	}
	if o.dockerConfig != "" {
		if c.keychain != nil {
			return nil, errors.New("registry client: WithDockerConfig and WithKeychain both given; use one")
		}
		dc, err := LoadDockerConfig(o.dockerConfig)
		if err != nil {
			return nil, err
		}
		c.keychain = dc
	}
	if c.keychain == nil {
		c.keychain = &DockerConfig{}
	}
	if c.base == nil {
		c.base = remote.DefaultTransport.(*http.Transport).Clone()
	}
	for _, h := range o.insecure {
		c.insecure[strings.ToLower(strings.TrimSpace(h))] = true
	}
	return c, nil
}

// Resolve asks the registry which image repo:tag names now, with one HEAD
// request once the repository's authentication is known, and reads the
// image's labels unless a previous call already has (a new digest costs two
// or three GETs more). repo is as written in config: quay.io/org/name,
// 127.0.0.1:5000/shop/web, or nginx for docker.io/library/nginx.
//
// If the digest is known but its labels cannot be read, Resolve returns the
// Image with Digest and MediaType set together with the error.
func (c *Client) Resolve(ctx context.Context, repo, tag string) (Image, error) {
	if tag == "" {
		return Image{}, fmt.Errorf("resolving %s: no tag given", repo)
	}
	r, err := c.repository(repo)
	if err != nil {
		return Image{}, fmt.Errorf("resolving %s:%s: %w", repo, tag, err)
	}
	ref := r.Tag(tag)
	if _, err := name.NewTag(ref.String()); err != nil {
		return Image{}, fmt.Errorf("resolving %s:%s: %q is not a valid tag", repo, tag, tag)
	}
	t := c.target(r, tag, false)
	what := "resolving " + t.String()

	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rc := c.registry(r.Registry)
	desc, err := rc.puller.Head(callCtx, ref)
	if err != nil {
		return Image{}, c.fail(ctx, what, t, err)
	}
	img := Image{
		Ref:        repo + ":" + tag,
		Repository: repo,
		Tag:        tag,
		Digest:     desc.Digest.String(),
		MediaType:  string(desc.MediaType),
	}
	if e, ok := c.cache.get(img.Digest); ok {
		return img.withLabels(maps.Clone(e.labels)), nil
	}
	e, err := c.readLabels(callCtx, rc, r, desc.Digest)
	if err != nil {
		return img, c.fail(ctx, "reading the labels of "+t.String()+" ("+shortDigest(img.Digest)+")", c.target(r, img.Digest, true), err)
	}
	return img.withLabels(maps.Clone(e.labels)), nil
}

// Lookup reads what the registry has for repo@digest: its media type and
// labels. A digest seen before (by Resolve or Lookup) costs no request at all.
func (c *Client) Lookup(ctx context.Context, repo, digest string) (Image, error) {
	r, err := c.repository(repo)
	if err != nil {
		return Image{}, fmt.Errorf("looking up %s@%s: %w", repo, digest, err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return Image{}, fmt.Errorf("looking up %s@%s: %q is not a digest (want sha256:<64 hex>)", repo, digest, digest)
	}
	img := Image{Ref: repo + "@" + h.String(), Repository: repo, Digest: h.String()}
	if e, ok := c.cache.get(img.Digest); ok {
		img.MediaType = e.mediaType
		return img.withLabels(maps.Clone(e.labels)), nil
	}
	t := c.target(r, img.Digest, true)
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	e, err := c.readLabels(callCtx, c.registry(r.Registry), r, h)
	if err != nil {
		return Image{}, c.fail(ctx, "looking up "+t.String(), t, err)
	}
	img.MediaType = e.mediaType
	return img.withLabels(maps.Clone(e.labels)), nil
}

// readLabels reads and caches the labels of repo@digest. Concurrent calls for
// one digest share one read (made under the first caller's context).
func (c *Client) readLabels(ctx context.Context, rc *registryClient, r name.Repository, digest v1.Hash) (cacheEntry, error) {
	v, err, _ := c.labelsFor.Do(digest.String(), func() (any, error) {
		mediaType, labels, err := fetchLabels(ctx, rc, r, digest)
		if err != nil {
			return cacheEntry{}, err
		}
		e := cacheEntry{digest: digest.String(), mediaType: mediaType, labels: labels}
		c.cache.put(e)
		return e, nil
	})
	return v.(cacheEntry), err
}

// fetchLabels GETs the manifest of repo@digest and, through an index to the
// image that stands for it, that image's config. It returns the manifest's
// media type (not the child's) and the labels, never nil.
func fetchLabels(ctx context.Context, rc *registryClient, r name.Repository, digest v1.Hash) (string, map[string]string, error) {
	d, err := rc.puller.Get(ctx, r.Digest(digest.String()))
	if err != nil {
		return "", nil, err
	}
	mediaType := string(d.MediaType)
	// An index of indexes is legal; follow at most a few levels.
	for depth := 0; d.MediaType.IsIndex(); depth++ {
		if depth == 3 {
			return "", nil, fmt.Errorf("index %s nests indexes deeper than %d levels", shortDigest(digest.String()), depth)
		}
		idx, err := d.ImageIndex()
		if err != nil {
			return "", nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return "", nil, fmt.Errorf("parsing index %s: %w", shortDigest(d.Digest.String()), err)
		}
		child, ok := labelSource(im.Manifests)
		if !ok {
			return mediaType, map[string]string{}, nil // an empty index has no labels
		}
		if d, err = rc.puller.Get(ctx, r.Digest(child.Digest.String())); err != nil {
			return "", nil, err
		}
	}
	if !d.MediaType.IsImage() {
		return mediaType, map[string]string{}, nil // an artifact, not an image: no config labels
	}
	img, err := d.Image()
	if err != nil {
		return "", nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", nil, err
	}
	labels := maps.Clone(cf.Config.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	return mediaType, labels, nil
}

// repository parses repo, over plain HTTP if its registry was named in
// WithInsecure.
func (c *Client) repository(repo string) (name.Repository, error) {
	r, err := name.NewRepository(repo)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%q is not a repository name (want HOST/PATH, e.g. quay.io/org/name)", repo)
	}
	if c.insecure[strings.ToLower(r.RegistryStr())] {
		if r, err = name.NewRepository(repo, name.Insecure); err != nil {
			return name.Repository{}, fmt.Errorf("%q is not a repository name: %w", repo, err)
		}
	}
	return r, nil
}

// registry returns the registryClient for reg, made on first use.
func (c *Client) registry(reg name.Registry) *registryClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := reg.RegistryStr()
	if rc, ok := c.registries[key]; ok {
		return rc
	}
	th := &throttle{registry: displayHost(key), limiter: rate.NewLimiter(c.rate, c.burst), now: c.now}
	puller, err := remote.NewPuller(
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(&throttledTransport{base: c.base, throttle: th}),
		remote.WithUserAgent(c.userAgent),
		// 429 is left out on purpose: it is answered by waiting out
		// Retry-After, not by asking again a second later.
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}),
	)
	if err != nil {
		// Only conflicting auth options make NewPuller fail, and we pass one.
		panic(fmt.Sprintf("registry: remote.NewPuller: %v", err))
	}
	rc := &registryClient{throttle: th, puller: puller}
	c.registries[key] = rc
	return rc
}

// target describes repo and ident for error messages.
func (c *Client) target(r name.Repository, ident string, isDigest bool) target {
	anonymous := true
	if a, err := c.keychain.Resolve(r.Registry); err == nil && a != authn.Anonymous {
		anonymous = false
	}
	display := displayHost(r.RegistryStr())
	return target{
		registry:  display,
		repo:      display + "/" + r.RepositoryStr(),
		ident:     ident,
		isDigest:  isDigest,
		anonymous: anonymous,
	}
}

// fail wraps err, from a call made under parent, with what was being done.
func (c *Client) fail(parent context.Context, what string, t target, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("%s: %w", what, perr) // the caller gave up, not the registry
	}
	return fmt.Errorf("%s: %w", what, classify(err, t, c.timeout))
}

// shortDigest is the first 12 hex digits of a digest, as people quote them.
func shortDigest(d string) string {
	_, hex, _ := strings.Cut(d, ":")
	if len(hex) > 12 {
		return hex[:12]
	}
	return d
}
