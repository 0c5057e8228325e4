package webhook_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/webhook"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tagged is GitHub's documented example with its version tagged, as a push
// of ghcr.io/codertocat/hello-world-npm:prod sends it (the examples are of
// an untagged version).
func tagged(t testing.TB, name string) []byte {
	t.Helper()
	b := fixture(t, name)
	out := bytes.Replace(b, []byte(`"tag": {
          "name": "",`), []byte(`"tag": {
          "name": "prod",`), 1)
	if bytes.Equal(out, b) {
		t.Fatalf("%s: no empty tag.name to set", name)
	}
	return out
}

func githubHeader(event, delivery string) http.Header {
	h := http.Header{}
	h.Set("X-GitHub-Event", event)
	if delivery != "" {
		h.Set("X-GitHub-Delivery", delivery)
	}
	return h
}

// TestDecode pins what each source's documented payload announces.
func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		src    webhook.Source
		body   []byte
		header http.Header
		hosts  webhook.Hosts
		want   []webhook.Push
		note   string // a substring of the Note when want is empty
	}{
		{name: "distribution: a tagged manifest push, host from request.host", src: webhook.Distribution, body: fixture(t, "distribution-tagged-push.json"),
			want: []webhook.Push{{Repository: "registry.example.com/packit/packit-worker", Tag: "prod"}}},
		{name: "distribution: the configured host wins", src: webhook.Distribution, body: fixture(t, "distribution-tagged-push.json"),
			hosts: webhook.Hosts{Distribution: "quay.io"}, want: []webhook.Push{{Repository: "quay.io/packit/packit-worker", Tag: "prod"}}},
		{name: "distribution: the documented envelope pushes no tag", src: webhook.Distribution, body: fixture(t, "distribution-docs-envelope.json"),
			note: "no tagged manifest push"},
		{name: "distribution: a pull is not a push", src: webhook.Distribution, body: fixture(t, "distribution-docs-pull.json"), note: "no push event"},
		{name: "distribution: no host anywhere", src: webhook.Distribution,
			body: []byte(`{"events":[{"id":"1","action":"push","target":{"repository":"shop/web","tag":"latest"}}]}`), note: "webhooks.distributionHost"},
		{name: "quay: repository push", src: webhook.Quay, body: fixture(t, "quay-repository-push.json"),
			want: []webhook.Push{{Repository: "quay.io/dgangaia/test", Tag: "latest"}}},
		{name: "quay: early versions sent updated_tags as a map", src: webhook.Quay,
			body: []byte(`{"docker_url":"quay.io/devtable/ubuntu","updated_tags":{"latest":"b750fe79269d","prod":"b750fe79269d"}}`),
			want: []webhook.Push{{Repository: "quay.io/devtable/ubuntu", Tag: "latest"}, {Repository: "quay.io/devtable/ubuntu", Tag: "prod"}}},
		{name: "docker hub: push", src: webhook.DockerHub, body: fixture(t, "dockerhub-push.json"),
			want: []webhook.Push{{Repository: "docker.io/svendowideit/testhook", Tag: "latest"}}},
		{name: "docker hub: an official image is library/", src: webhook.DockerHub,
			body: []byte(`{"push_data":{"tag":"1.27"},"repository":{"repo_name":"nginx"}}`), want: []webhook.Push{{Repository: "docker.io/library/nginx", Tag: "1.27"}}},
		{name: "github: the documented registry_package example is untagged", src: webhook.GitHub, body: fixture(t, "github-registry_package-published.json"),
			header: githubHeader("registry_package", "72d3162e-cc78-11e3-81ab-4c9367dc0958"), note: "no tag"},
		{name: "github: registry_package, tagged", src: webhook.GitHub, body: tagged(t, "github-registry_package-published.json"),
			header: githubHeader("registry_package", ""), want: []webhook.Push{{Repository: "ghcr.io/codertocat/hello-world-npm", Tag: "prod"}}},
		{name: "github: package, tagged", src: webhook.GitHub, body: tagged(t, "github-package-published.json"),
			header: githubHeader("package", ""), want: []webhook.Push{{Repository: "ghcr.io/codertocat/hello-world-npm", Tag: "prod"}}},
		{name: "github: ping", src: webhook.GitHub, body: []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`), header: githubHeader("ping", ""), note: "ping"},
		{name: "github: another event", src: webhook.GitHub, body: []byte(`{}`), header: githubHeader("push", ""), note: "not a package event"},
		{name: "harbor: host from resource_url", src: webhook.Harbor, body: fixture(t, "harbor-push-artifact.json"),
			want: []webhook.Push{{Repository: "hub.harbor.com/test-webhook/debian", Tag: "latest"}}},
		{name: "harbor: the configured host wins", src: webhook.Harbor, body: fixture(t, "harbor-push-artifact.json"), hosts: webhook.Hosts{Harbor: "harbor.example.com"},
			want: []webhook.Push{{Repository: "harbor.example.com/test-webhook/debian", Tag: "latest"}}},
		{name: "harbor: a pull is not a push", src: webhook.Harbor, body: []byte(`{"type":"PULL_ARTIFACT","event_data":{}}`), note: "not a push"},
		{name: "a tag that is not a tag is dropped", src: webhook.DockerHub,
			body: []byte(`{"push_data":{"tag":"prod; import prod"},"repository":{"repo_name":"shop/web"}}`), note: "no tagged push"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := webhook.Decode(tt.src, tt.header, tt.body, tt.hosts)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(d.Pushes, tt.want) {
				t.Errorf("pushes = %v, want %v", d.Pushes, tt.want)
			}
			if len(tt.want) == 0 && !strings.Contains(d.Note, tt.note) {
				t.Errorf("note = %q, want it to say %q", d.Note, tt.note)
			}
			if d.ID == "" {
				t.Error("delivery has no ID")
			}
		})
	}
}

// TestDecodeRefuses pins the bodies that are answered 400.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name   string
		src    webhook.Source
		header http.Header
		body   string
	}{
		{"not JSON", webhook.Quay, nil, `docker_url=quay.io/x`},
		{"distribution without events", webhook.Distribution, nil, `{}`},
		{"quay without docker_url", webhook.Quay, nil, `{"updated_tags":["x"]}`},
		{"quay updated_tags of numbers", webhook.Quay, nil, `{"docker_url":"quay.io/a/b","updated_tags":7}`},
		{"docker hub without push_data", webhook.DockerHub, nil, `{"repository":{"repo_name":"a/b"}}`},
		{"github without its event header", webhook.GitHub, nil, `{"action":"published"}`},
		{"github package event without a package", webhook.GitHub, githubHeader("package", ""), `{"action":"published"}`},
		{"harbor CloudEvents", webhook.Harbor, nil, `{"specversion":"1.0","type":"harbor.artifact.pushed","data":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := webhook.Decode(tt.src, tt.header, []byte(tt.body), webhook.Hosts{}); err == nil {
				t.Fatal("Decode accepted it")
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"quay.io/packit/packit-worker", "quay.io/packit/packit-worker"},
		{"Quay.IO/Packit/Packit-Worker:prod", "quay.io/packit/packit-worker"},
		{"https://quay.io/packit/packit-worker/", "quay.io/packit/packit-worker"},
		{"quay.io/packit/packit-worker@sha256:" + strings.Repeat("a", 64), "quay.io/packit/packit-worker"},
		{"nginx", "docker.io/library/nginx"},
		{"index.docker.io/library/nginx", "docker.io/library/nginx"},
		{"registry-1.docker.io/svendowideit/testhook", "docker.io/svendowideit/testhook"},
		{"svendowideit/testhook", "docker.io/svendowideit/testhook"},
		{"127.0.0.1:5000/shop/web", "127.0.0.1:5000/shop/web"},
		{"localhost/shop/web", "localhost/shop/web"},
		{"", ""},
		{"quay.io/a b", ""},
		{"quay.io//x", ""},
	}
	for _, tt := range tests {
		if got := webhook.Canonical(tt.in); got != tt.want {
			t.Errorf("Canonical(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// FuzzDecode feeds every decoder arbitrary bodies (seeded with the
// documented examples): none panics, and every push it returns is a
// canonical repository and a valid tag, so nothing a body says reaches a
// command text or a registry lookup unchecked.
func FuzzDecode(f *testing.F) {
	seeds := []struct {
		src  webhook.Source
		file string
	}{
		{webhook.Distribution, "distribution-tagged-push.json"},
		{webhook.Distribution, "distribution-docs-envelope.json"},
		{webhook.Quay, "quay-repository-push.json"},
		{webhook.DockerHub, "dockerhub-push.json"},
		{webhook.GitHub, "github-package-published.json"},
		{webhook.GitHub, "github-registry_package-published.json"},
		{webhook.Harbor, "harbor-push-artifact.json"},
	}
	for i, s := range seeds {
		f.Add(uint8(i), fixture(f, s.file))
	}
	f.Add(uint8(2), []byte(`{"docker_url":"quay.io/a/b","updated_tags":{"x":1}}`))
	f.Add(uint8(4), tagged(f, "github-package-published.json"))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		src := webhook.Sources[int(which)%len(webhook.Sources)]
		h := githubHeader([]string{"package", "registry_package", "ping"}[int(which)%3], "d")
		for _, hosts := range []webhook.Hosts{{}, {Distribution: "registry.example.com", Harbor: "harbor.example.com"}} {
			d, err := webhook.Decode(src, h, body, hosts)
			if err != nil {
				continue
			}
			if len(d.Pushes) == 0 && d.Note == "" {
				t.Errorf("%s: no pushes and no note", src)
			}
			for _, p := range d.Pushes {
				if webhook.Canonical(p.Repository) != p.Repository || p.Repository == "" {
					t.Errorf("%s: repository %q is not canonical", src, p.Repository)
				}
				if !tagRE.MatchString(p.Tag) {
					t.Errorf("%s: tag %q is not a tag", src, p.Tag)
				}
			}
		}
	})
}

// FuzzVerifySignature: a body's own signature verifies, and any other
// header, or the signature of any other body, does not.
func FuzzVerifySignature(f *testing.F) {
	f.Add("It's a Secret to Everybody", []byte("Hello, World!"), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", []byte("x"))
	f.Add("s", []byte{}, "", []byte{})
	f.Add("s", []byte("{}"), "sha256=", []byte("{} "))
	f.Fuzz(func(t *testing.T, secret string, body []byte, header string, other []byte) {
		sig := webhook.Sign(secret, body)
		if err := webhook.VerifySignature(secret, body, sig); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if header != sig && webhook.VerifySignature(secret, body, header) == nil && !strings.EqualFold(header, sig) {
			t.Fatalf("header %q accepted for a body signed %q", header, sig)
		}
		if !bytes.Equal(other, body) && webhook.VerifySignature(secret, other, sig) == nil {
			t.Fatal("the signature of one body accepted for another")
		}
	})
}
