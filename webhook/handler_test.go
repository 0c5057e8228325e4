package webhook_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

// The store's Once is the replay guard.
var _ webhook.Seen = store.Store(nil)

const (
	token        = "0b1c2d3e4f5a6b7c8d9e"
	githubSecret = "It's a Secret to Everybody"
)

// TestSignGitHubExample pins Sign to the example of GitHub's "Validating
// webhook deliveries".
func TestSignGitHubExample(t *testing.T) {
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := webhook.Sign(githubSecret, []byte("Hello, World!")); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// received collects what the server hands off.
type received struct {
	mu         sync.Mutex
	deliveries []webhook.Delivery
}

func (r *received) receive(_ context.Context, d webhook.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, d)
}

func (r *received) pushes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.deliveries {
		for _, p := range d.Pushes {
			out = append(out, p.String())
		}
	}
	return out
}

// countingSeen counts how often the replay guard is asked.
type countingSeen struct {
	webhook.Seen
	mu    sync.Mutex
	calls int
}

func (c *countingSeen) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.Seen.Once(ctx, key, ttl)
}

type testServer struct {
	t    *testing.T
	url  string
	srv  *webhook.Server
	got  *received
	seen *countingSeen
}

func newTestServer(t *testing.T, opts ...webhook.Option) *testServer {
	t.Helper()
	secrets := map[webhook.Source]string{webhook.Distribution: token, webhook.Quay: token, webhook.DockerHub: token, webhook.Harbor: token, webhook.GitHub: githubSecret}
	ts := &testServer{t: t, got: &received{}, seen: &countingSeen{Seen: store.NewMemory()}}
	srv, err := webhook.New(secrets, ts.seen, ts.got.receive, append([]webhook.Option{webhook.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	mux := http.NewServeMux()
	// Without the method in the pattern, so the server's own 405 answers.
	mux.Handle(webhook.Path+"{source}", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() { hs.Close(); srv.Shutdown(context.Background()) })
	ts.url = hs.URL
	return ts
}

// delivery is one request as a registry sends it.
type delivery struct {
	method string
	source webhook.Source
	query  string
	header map[string]string
	body   []byte
}

func (ts *testServer) send(d delivery) (int, string) {
	ts.t.Helper()
	if d.method == "" {
		d.method = http.MethodPost
	}
	u := ts.url + webhook.Path + string(d.source)
	if d.query != "" {
		u += "?" + d.query
	}
	req, err := http.NewRequest(d.method, u, bytes.NewReader(d.body))
	if err != nil {
		ts.t.Fatal(err)
	}
	for k, v := range d.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ts.srv.Wait()
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func signed(secret, event, id string, body []byte) map[string]string {
	return map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": id, webhook.SignatureHeader: webhook.Sign(secret, body)}
}

// TestServer: each source's documented example is accepted when it carries
// the source's token or GitHub's signature, and refused 401 without it or
// with a wrong one, before anything is parsed or remembered.
func TestServer(t *testing.T) {
	ghBody := tagged(t, "github-package-published.json")
	tests := []struct {
		name string
		d    delivery
		code int
		// answer is a substring of the answer; pushes what was handed off.
		answer string
		pushes []string
	}{
		{name: "distribution with Authorization: Bearer", d: delivery{source: webhook.Distribution, header: bearer(token), body: fixture(t, "distribution-tagged-push.json")},
			code: 202, answer: "accepted: registry.example.com/packit/packit-worker:prod", pushes: []string{"registry.example.com/packit/packit-worker:prod"}},
		{name: "distribution's documented envelope: nothing to do", d: delivery{source: webhook.Distribution, header: bearer(token), body: fixture(t, "distribution-docs-envelope.json")},
			code: 200, answer: "nothing to do"},
		{name: "quay with ?token=", d: delivery{source: webhook.Quay, query: "token=" + token, body: fixture(t, "quay-repository-push.json")},
			code: 202, pushes: []string{"quay.io/dgangaia/test:latest"}},
		{name: "docker hub with ?token=", d: delivery{source: webhook.DockerHub, query: "token=" + token, body: fixture(t, "dockerhub-push.json")},
			code: 202, pushes: []string{"docker.io/svendowideit/testhook:latest"}},
		{name: "harbor with its auth header holding the bare token", d: delivery{source: webhook.Harbor, header: map[string]string{"Authorization": token}, body: fixture(t, "harbor-push-artifact.json")},
			code: 202, pushes: []string{"hub.harbor.com/test-webhook/debian:latest"}},
		{name: "github signed", d: delivery{source: webhook.GitHub, header: signed(githubSecret, "package", "d-1", ghBody), body: ghBody},
			code: 202, pushes: []string{"ghcr.io/codertocat/hello-world-npm:prod"}},
		{name: "github's untagged example, signed: nothing to do", d: delivery{source: webhook.GitHub,
			header: signed(githubSecret, "registry_package", "d-2", fixture(t, "github-registry_package-published.json")), body: fixture(t, "github-registry_package-published.json")},
			code: 200, answer: "no tag"},

		{name: "forged: no token", d: delivery{source: webhook.Quay, body: fixture(t, "quay-repository-push.json")}, code: 401, answer: "missing token"},
		{name: "forged: wrong bearer token", d: delivery{source: webhook.Distribution, header: bearer("guess"), body: fixture(t, "distribution-tagged-push.json")}, code: 401, answer: "wrong token"},
		{name: "forged: wrong query token", d: delivery{source: webhook.DockerHub, query: "token=" + token + "x", body: fixture(t, "dockerhub-push.json")}, code: 401, answer: "wrong token"},
		{name: "forged: another source's header does not count", d: delivery{source: webhook.Harbor, header: map[string]string{webhook.SignatureHeader: webhook.Sign(token, fixture(t, "harbor-push-artifact.json"))},
			body: fixture(t, "harbor-push-artifact.json")}, code: 401, answer: "missing token"},
		{name: "forged: github unsigned", d: delivery{source: webhook.GitHub, header: map[string]string{"X-GitHub-Event": "package"}, body: ghBody}, code: 401, answer: "missing X-Hub-Signature-256"},
		{name: "forged: github signed with another secret", d: delivery{source: webhook.GitHub, header: signed("not the secret", "package", "d-3", ghBody), body: ghBody},
			code: 401, answer: "does not match"},
		{name: "forged: github body changed after signing", d: delivery{source: webhook.GitHub, header: signed(githubSecret, "package", "d-4", ghBody),
			body: bytes.Replace(ghBody, []byte(`"name": "prod"`), []byte(`"name": "latest"`), 1)}, code: 401, answer: "does not match"},
		{name: "forged: github token instead of a signature", d: delivery{source: webhook.GitHub, header: map[string]string{"X-GitHub-Event": "package", "Authorization": "Bearer " + githubSecret}, body: ghBody},
			code: 401, answer: "missing X-Hub-Signature-256"},

		{name: "GET", d: delivery{method: http.MethodGet, source: webhook.Quay, query: "token=" + token}, code: 405, answer: "POST"},
		{name: "unknown source", d: delivery{source: "gitlab", header: bearer(token), body: []byte(`{}`)}, code: 404, answer: "no webhook source"},
		{name: "malformed body", d: delivery{source: webhook.Quay, query: "token=" + token, body: []byte(`{"docker_url":`)}, code: 400, answer: "not a quay webhook"},
		{name: "too large", d: delivery{source: webhook.Quay, query: "token=" + token, body: bytes.Repeat([]byte(" "), webhook.DefaultMaxBytes+1)}, code: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t)
			code, answer := ts.send(tt.d)
			if code != tt.code || !strings.Contains(answer, tt.answer) {
				t.Fatalf("answer %d %q, want %d containing %q", code, answer, tt.code, tt.answer)
			}
			if got := ts.got.pushes(); strings.Join(got, " ") != strings.Join(tt.pushes, " ") {
				t.Errorf("handed off %v, want %v", got, tt.pushes)
			}
			if code >= 400 && ts.seen.calls > 0 {
				t.Errorf("a refused delivery was remembered (%d replay-guard calls)", ts.seen.calls)
			}
		})
	}
}

// TestServerReplay: a delivery sent again, however it is dressed, answers
// "already seen" and is handed off once.
func TestServerReplay(t *testing.T) {
	dist := fixture(t, "distribution-tagged-push.json")
	gh := tagged(t, "github-package-published.json")
	tests := []struct {
		name          string
		first, second delivery
	}{
		{"distribution redelivers the same event", delivery{source: webhook.Distribution, header: bearer(token), body: dist},
			// distribution re-encodes the envelope on each retry; the event ID is the identity.
			delivery{source: webhook.Distribution, header: bearer(token), body: bytes.ReplaceAll(dist, []byte("   "), []byte("  "))}},
		{"github redelivers (same GUID)", delivery{source: webhook.GitHub, header: signed(githubSecret, "package", "g-1", gh), body: gh},
			delivery{source: webhook.GitHub, header: signed(githubSecret, "package", "g-1", gh), body: gh}},
		{"a captured github request replayed under a new GUID", delivery{source: webhook.GitHub, header: signed(githubSecret, "package", "g-2", gh), body: gh},
			delivery{source: webhook.GitHub, header: signed(githubSecret, "package", "g-3", gh), body: gh}},
		{"docker hub sends the same body again", delivery{source: webhook.DockerHub, query: "token=" + token, body: fixture(t, "dockerhub-push.json")},
			delivery{source: webhook.DockerHub, header: bearer(token), body: fixture(t, "dockerhub-push.json")}},
		{"harbor sends the same body again", delivery{source: webhook.Harbor, header: bearer(token), body: fixture(t, "harbor-push-artifact.json")},
			delivery{source: webhook.Harbor, header: bearer(token), body: fixture(t, "harbor-push-artifact.json")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t)
			if code, answer := ts.send(tt.first); code != 202 {
				t.Fatalf("first: %d %q", code, answer)
			}
			if code, answer := ts.send(tt.second); code != 200 || answer != "already seen" {
				t.Fatalf("second: %d %q, want 200 \"already seen\"", code, answer)
			}
			if n := len(ts.got.deliveries); n != 1 {
				t.Fatalf("handed off %d times, want once", n)
			}
		})
	}
}

// TestServerBusy: beyond its concurrency a delivery is refused 503 and not
// remembered, so the registry's retry is handled.
func TestServerBusy(t *testing.T) {
	block := make(chan struct{})
	var got received
	srv, err := webhook.New(map[webhook.Source]string{webhook.Quay: token}, store.NewMemory(), func(ctx context.Context, d webhook.Delivery) {
		<-block
		got.receive(ctx, d)
	}, webhook.WithConcurrency(1), webhook.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	post := func(body string) int {
		req := httptest.NewRequest(http.MethodPost, webhook.Path+"quay?token="+token, strings.NewReader(body))
		req.SetPathValue("source", "quay")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		return w.Code
	}
	if code := post(`{"docker_url":"quay.io/a/b","updated_tags":["stg"]}`); code != 202 {
		t.Fatalf("first: %d", code)
	}
	if code := post(`{"docker_url":"quay.io/a/c","updated_tags":["stg"]}`); code != 503 {
		t.Fatalf("second while busy: %d, want 503", code)
	}
	close(block)
	srv.Wait()
	if code := post(`{"docker_url":"quay.io/a/c","updated_tags":["stg"]}`); code != 202 {
		t.Fatalf("the retry: %d, want 202", code)
	}
	srv.Shutdown(context.Background())
	if n := len(got.pushes()); n != 2 {
		t.Fatalf("handled %d pushes, want 2", n)
	}
}
