package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/registry"
)

// countingTransport counts requests by method and the last element of the
// path.
type countingTransport struct {
	mu    sync.Mutex
	calls map[string]int
	next  http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.calls[r.Method+" "+path.Base(r.URL.Path)]++ // "HEAD latest", "GET v2"
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *countingTransport) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

// TestPollCostsOneHEADPerService measures what a scheduled poll of a plain
// Kubernetes environment with five services asks the registry (an OCI
// registry, go-containerregistry's pkg/registry, over HTTP): once warm, one
// HEAD per service and nothing else.
func TestPollCostsOneHEADPerService(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	services := map[string]cluster.Service{}
	var objs []runtime.Object
	for i := range 5 {
		svc := fmt.Sprintf("svc%d", i)
		repo := host + "/shop/" + svc
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(repo+":latest", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
		objs = append(objs, deployment(svc, repo+":latest", 1, nil))
		services[svc] = cluster.Service{Name: svc, Repository: repo, Workloads: []cluster.ServiceWorkload{{Kind: "Deployment", Name: svc}}}
	}
	counting := &countingTransport{calls: map[string]int{}, next: http.DefaultTransport}
	client, err := registry.New(registry.WithInsecure(host), registry.WithTransport(counting))
	if err != nil {
		t.Fatal(err)
	}
	set := cluster.NewSet(map[string]cluster.EnvClient{testEnv: {Kube: kubefake.NewClientset(objs...), Namespace: testNS,
		Kubernetes: &cluster.Kubernetes{Registry: cluster.RegistryClient(client), Services: services, Scheduled: true}}})
	poll := func() {
		for svc := range services {
			if _, err := set.RegistryImage(context.Background(), testEnv, svc, "latest"); err != nil {
				t.Fatalf("asking the registry for %s: %v", svc, err)
			}
		}
	}
	poll()
	cold := counting.take()
	poll()
	warm := counting.take()
	byMethod := map[string]int{}
	for k, n := range cold {
		byMethod[strings.Fields(k)[0]] += n
	}
	t.Logf("registry requests of a poll of 5 services: first (cold) %v, then %v", byMethod, warm)
	if len(warm) != 1 || warm["HEAD latest"] != 5 {
		t.Errorf("a warm poll of 5 services made %v, want 5 HEADs of the tag and nothing else", warm)
	}
}
