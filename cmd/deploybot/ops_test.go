package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/store"
)

// brokenStore is a store whose reads fail, as an unreachable API server or
// an unreadable state file would make them.
type brokenStore struct{ store.Store }

func (brokenStore) Pauses(context.Context) (map[string]store.Pause, error) {
	return nil, errors.New("reading the state file: permission denied")
}

// envClient is a fake environment whose Deployment list fails with err (nil: works).
func envClient(ns string, err error) cluster.EnvClient {
	kube := kubefake.NewClientset()
	if err != nil {
		kube.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err })
	}
	return cluster.EnvClient{Kube: kube, Images: kubefake.NewImageClientset().ImageV1(), Namespace: ns}
}

func TestReadyz(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "",
		errors.New(`User "system:serviceaccount:deploybot:deploybot" cannot list resource "deployments"`))
	tests := []struct {
		name      string
		store     store.Store
		prodErr   error
		wantCode  int
		wantLines []string
	}{
		{"all reachable", store.NewMemory(), nil, http.StatusOK,
			[]string{"[+]store ok", "[+]env prod ok", "[+]env stg ok", "ok"}},
		{"the bot lost its RBAC in prod", store.NewMemory(), forbidden, http.StatusServiceUnavailable,
			[]string{"[+]store ok", `[-]env prod failed: listing deployments in packit--prod: deployments.apps is forbidden: User "system:serviceaccount:deploybot:deploybot" cannot list resource "deployments"`, "[+]env stg ok", "not ready"}},
		{"the store is unreadable", brokenStore{store.NewMemory()}, nil, http.StatusServiceUnavailable,
			[]string{"[-]store failed: reading the state file: permission denied", "[+]env prod ok", "[+]env stg ok", "not ready"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &setup{
				cfg: &config.Config{Environments: []config.Environment{{Name: "stg", Namespace: "packit--stg"}, {Name: "prod", Namespace: "packit--prod"}}},
				set: cluster.NewSet(map[string]cluster.EnvClient{
					"stg":  envClient("packit--stg", nil),
					"prod": envClient("packit--prod", tt.prodErr),
				}),
				store: tt.store,
			}
			var logs bytes.Buffer
			mux := http.NewServeMux()
			s.opsRoutes(mux, s.newMetrics(), slog.New(slog.NewJSONHandler(&logs, nil)))
			// Probed twice: the answer holds, and a failure is logged once.
			for range 2 {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				if rec.Code != tt.wantCode {
					t.Errorf("status %d, want %d", rec.Code, tt.wantCode)
				}
				got := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
				if strings.Join(got, "\n") != strings.Join(tt.wantLines, "\n") {
					t.Errorf("body:\n%s\nwant:\n%s", rec.Body.String(), strings.Join(tt.wantLines, "\n"))
				}
			}
			wantLogs := 0
			if tt.wantCode != http.StatusOK {
				wantLogs = 1
			}
			if n := strings.Count(logs.String(), `"msg":"not ready"`); n != wantLogs {
				t.Errorf("%d \"not ready\" log lines, want %d:\n%s", n, wantLogs, logs.String())
			}
		})
	}
}

// holdAdapter is a chat platform whose ack handler can be held mid-flight:
// POST /hold/ack runs `help` through the bot and answers with the reply, the
// way a platform's webhook acks; with ?hold=1 it first waits for release.
type holdAdapter struct {
	bot     *bot.Bot
	entered chan struct{}
	release chan struct{}
}

func (a *holdAdapter) Name() string { return "hold" }
func (a *holdAdapter) Post(context.Context, string, bot.Reply) (store.MessageRef, error) {
	return store.MessageRef{}, errors.New("the hold platform posts nothing")
}
func (a *holdAdapter) Update(context.Context, store.MessageRef, bot.Reply) error { return nil }
func (a *holdAdapter) Run(context.Context) error                                 { return nil }
func (a *holdAdapter) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /hold/ack", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.URL.Query().Get("hold") != "" {
			a.entered <- struct{}{}
			<-a.release
		}
		var reply textReply
		if err := a.bot.Handle(r.Context(), bot.Request{Platform: "hold", User: bot.ChatUser{ID: "u1"}, Channel: "c1", Text: "help"}, &reply); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, reply.String())
		a.bot.ObserveAck(a.Name(), time.Since(start))
	})
}

// textReply keeps the titles of the replies to one request.
type textReply struct{ strings.Builder }

func (t *textReply) Respond(_ context.Context, r bot.Reply) error {
	_, err := t.WriteString(r.Title + "\n")
	return err
}

// TestServeOpsAndGracefulShutdown runs `serve --demo` with a platform whose
// ack can be held: /healthz, /readyz and /metrics answer, and on SIGTERM (the
// context ends) the server stops taking connections but the ack in flight
// still completes before serve returns.
func TestServeOpsAndGracefulShutdown(t *testing.T) {
	hold := &holdAdapter{entered: make(chan struct{}), release: make(chan struct{})}
	saved := adapters
	t.Cleanup(func() { adapters = saved })
	adapters = append(adapters[:0:0], struct {
		name  string
		build func(adapterEnv) (adapter, error)
	}{"hold", func(env adapterEnv) (adapter, error) { hold.bot = env.bot; return hold, nil }})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--demo", "--listen", "127.0.0.1:0", "--log-level", "warn"},
			func(string) string { return "" }, io.Discard, io.Discard, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start within 30s")
	}
	base := "http://" + addr
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	ack := func(query string) (int, string, error) {
		resp, err := client.Post(base+"/hold/ack"+query, "text/plain", nil)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "[+]store ok\n[+]env prod ok\n[+]env stg ok\nok\n" {
		t.Errorf("/readyz: %d %q, want 200 with the store and both demo envs ok", code, body)
	}
	if code, body, err := ack(""); err != nil || code != http.StatusOK || body != "deploybot commands\n" {
		t.Fatalf("ack: %d %q %v, want the help overview", code, body, err)
	}
	code, page := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`deploybot_requests_total{command="help",outcome="ok",platform="hold"} 1`,
		`deploybot_ack_latency_seconds_count{platform="hold"} 1`,
		`deploybot_approvals_pending{env="prod",state="AwaitingApproval"} 0`,
		`deploybot_approvals_pending_up 1`,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(page, "\n"+want) {
			t.Errorf("/metrics has no line %q", want)
		}
	}

	type result struct {
		code int
		body string
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		code, body, err := ack("?hold=1")
		inflight <- result{code, body, err}
	}()
	<-hold.entered
	cancel() // what SIGTERM does in main

	// Shutdown closes the listener at once: wait until new connections are
	// refused, while the held ack is still in flight.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		_ = conn.Close()
		select {
		case <-deadline:
			t.Fatal("the listener still accepts connections 10s after shutdown began")
		case <-tick.C:
		}
	}
	select {
	case err := <-done:
		t.Fatalf("serve returned (%v) while an ack was in flight", err)
	case r := <-inflight:
		t.Fatalf("the held ack finished before it was released: %+v", r)
	default:
	}

	close(hold.release)
	select {
	case r := <-inflight:
		if r.err != nil || r.code != http.StatusOK || r.body != "deploybot commands\n" {
			t.Errorf("in-flight ack during shutdown: %d %q %v, want 200 with the help overview", r.code, r.body, r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the in-flight ack did not complete within 15s of its release")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return within 15s after the last ack")
	}
}
