package registry_test

import (
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// requestLog is an http.RoundTripper that records every request the client
// sends ("HEAD /v2/shop/web/manifests/latest"), then passes it on.
type requestLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func newRequestLog() *requestLog {
	return &requestLog{next: http.DefaultTransport.(*http.Transport).Clone()}
}

func (l *requestLog) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.reqs = append(l.reqs, req.Method+" "+req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
	l.mu.Unlock()
	return l.next.RoundTrip(req)
}

// take returns the requests recorded since the last take, without scheme and
// host, and forgets them.
func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.reqs))
	for i, r := range l.reqs {
		method, url, _ := strings.Cut(r, " ")
		if _, rest, ok := strings.Cut(url, "://"); ok {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				url = rest[i:]
			}
		}
		out[i] = method + " " + url
	}
	l.reqs = nil
	return out
}

// labelled returns a small random image whose config carries labels.
func labelled(t testing.TB, labels map[string]string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = labels
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes img to ref and returns its digest.
func push(t testing.TB, ref string, img v1.Image, opts ...remote.Option) string {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// platformImage is one entry of a multi-arch index.
type platformImage struct {
	os, arch string
	img      v1.Image
}

// pushIndex writes an index of images to ref and returns the index digest.
func pushIndex(t testing.TB, ref string, images []platformImage, opts ...remote.Option) string {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	for _, p := range images {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        p.img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.os, Architecture: p.arch}},
		})
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, opts...); err != nil {
		t.Fatalf("pushing index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func digestOf(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// nopLogger silences the in-process registry's request log.
func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }
