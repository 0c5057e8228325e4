package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// fakeAPIServer answers the store's ping (a ConfigMap list) and counts it.
func fakeAPIServer(t *testing.T, pings *atomic.Int32) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/namespaces/deploybot/configmaps" {
			http.NotFound(w, r)
			return
		}
		pings.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"kind":"ConfigMapList","apiVersion":"v1","metadata":{},"items":[]}`)
	}))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, srv.URL)
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKubeStoreChoice: the state goes to ConfigMaps when the config says
// kubernetes (or, with no backend, in a pod), and to the file otherwise.
func TestKubeStoreChoice(t *testing.T) {
	var pings atomic.Int32
	kubeconfig := fakeAPIServer(t, &pings)
	// Not in a pod, whatever the machine running the test is.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("POD_NAMESPACE", "")
	tests := []struct {
		name       string
		store      config.Store
		demo       bool
		kubeconfig string
		wantKube   bool
		wantErr    string
	}{
		{name: "file by config", store: config.Store{Backend: "file"}},
		{name: "default outside a pod", store: config.Store{}},
		{name: "default with the demo", store: config.Store{}, demo: true},
		{name: "kubernetes by config", store: config.Store{Backend: "kubernetes", Namespace: "deploybot"}, kubeconfig: kubeconfig, wantKube: true},
		{name: "kubernetes without a namespace outside a pod", store: config.Store{Backend: "kubernetes"}, kubeconfig: kubeconfig,
			wantErr: "no namespace: set store.namespace"},
		{name: "kubernetes without a cluster", store: config.Store{Backend: "kubernetes", Namespace: "deploybot"}, kubeconfig: filepath.Join(t.TempDir(), "none"),
			wantErr: "store backend kubernetes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tt.kubeconfig)
			before := pings.Load()
			ks, err := kubeStore(context.Background(), &config.Config{Store: tt.store}, tt.demo, "")
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case (ks != nil) != tt.wantKube:
				t.Fatalf("kubernetes store = %v, want %v", ks != nil, tt.wantKube)
			case tt.wantKube && (ks.Namespace() != "deploybot" || pings.Load() != before+1):
				t.Errorf("store in %q, pinged %d times; want namespace deploybot, pinged once", ks.Namespace(), pings.Load()-before)
			}
		})
	}
}

// TestStartDutiesReportsAndStops: at start the duties report an execution
// an earlier life of this replica left behind, and stop returns promptly.
func TestStartDutiesReportsAndStops(t *testing.T) {
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	b := bot.New(cfg, cluster.NewSet(nil), nil, st, nil, bot.WithReplicaName("deploybot-0"), bot.WithLogger(slog.New(slog.DiscardHandler)))
	defer b.Close()
	orphan := &store.Request{ID: "orphan0001", State: store.Executing, Executor: "deploybot-0", Heartbeat: time.Now(), Command: "import stg",
		Plan: plan.Plan{Action: plan.ActionImport, Env: "stg", Targets: []plan.Target{{Service: "tokman"}}}}
	if err := st.Create(context.Background(), orphan); err != nil {
		t.Fatal(err)
	}
	s := &setup{cfg: cfg, store: st}
	stop := s.startDuties(context.Background(), b, slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := st.Get(context.Background(), orphan.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == store.Failed {
			if !strings.Contains(r.Reason, "Replica deploybot-0 stopped while executing") {
				t.Errorf("reason: %s", r.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphaned execution still %s", r.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stopping the duties hung")
	}
}
