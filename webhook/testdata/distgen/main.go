// Command distgen writes the envelope CNCF Distribution v3.1.2 posts to a
// notification endpoint for `docker push registry.example.com/packit/packit-worker:prod`
// (a tagged manifest push), using distribution's own notifications bridge
// and the httpSink's encoding (json.MarshalIndent with three spaces).
//
// It needs distribution's module, which the main module does not require:
//
//	cp -r webhook/testdata/distgen /tmp/distgen && cp hack/tools/registry/go.mod hack/tools/registry/go.sum /tmp/distgen/
//	(cd /tmp/distgen && GOFLAGS=-mod=mod go run .) > webhook/testdata/distribution-tagged-push.json
package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/notifications"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
	events "github.com/docker/go-events"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

type capture struct{ evs []events.Event }

func (c *capture) Write(e events.Event) error { c.evs = append(c.evs, e); return nil }
func (c *capture) Close() error               { return nil }

func main() {
	ub, err := v2.NewURLBuilderFromString("https://registry.example.com", false)
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest("PUT", "https://registry.example.com/v2/packit/packit-worker/manifests/prod", nil)
	r.RemoteAddr = "10.0.0.7:51234"
	r.Header.Set("User-Agent", "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0 os/linux arch/amd64")
	c := &capture{}
	l := notifications.NewBridge(ub, notifications.SourceRecord{Addr: "registry-7c9d5:5000", InstanceID: "9f2b0c6e-1d4a-4c1e-9b57-6f8a3e2d1c40"},
		notifications.ActorRecord{Name: "ci-bot"}, notifications.NewRequestRecord("c3e1b9a4-5f27-4d0b-8e61-2a9d7f3b4c15", r), c, false)
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":{"org.opencontainers.image.revision":"3f2a9c1"}},"rootfs":{"type":"layers","diff_ids":[]}}`)
	m, err := ocischema.FromStruct(ocischema.Manifest{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromString("layer"), Size: 5}},
	})
	if err != nil {
		panic(err)
	}
	repo, _ := reference.WithName("packit/packit-worker")
	if err := l.ManifestPushed(repo, m, distribution.WithTag("prod")); err != nil {
		panic(err)
	}
	for _, e := range c.evs {
		p, err := json.MarshalIndent(notifications.Envelope{Events: []events.Event{e}}, "", "   ")
		if err != nil {
			panic(err)
		}
		fmt.Println(string(p))
	}
}
