package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
	"k8s.io/client-go/rest"
)

// TestImpersonatedExecution: with execution: impersonate every API call of
// an execution carries the requester's identity in impersonation headers.
func TestImpersonatedExecution(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Impersonate-User")+"/"+r.Header.Get("Impersonate-Group")] = true
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`))
	}))
	defer srv.Close()

	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Execution = config.ExecutionImpersonate
	cfg.Repositories = nil // no git client, no releaser: the executor alone
	s := &setup{cfg: cfg, rest: map[string]*rest.Config{}}
	for _, e := range cfg.Environments {
		s.rest[e.Name] = &rest.Config{Host: srv.URL}
	}
	opts, err := s.botOptions()
	if err != nil || len(opts) != 1 {
		t.Fatalf("botOptions = %d options, %v; want the impersonating executor", len(opts), err)
	}
	exec, err := s.impersonating()(store.Person{User: "alice", Groups: []string{"packit-devs"}})
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Plan{Action: plan.ActionImport, Env: "prod", Namespace: "packit--prod",
		Targets: []plan.Target{{Service: "tokman", Stream: "tokman", Tag: "prod"}}}
	res, _ := exec.Execute(context.Background(), p, func(plan.Progress) {})
	if !res.Failed() {
		t.Errorf("an execution the API server forbade did not fail: %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || !seen["alice/packit-devs"] {
		t.Errorf("requests carried impersonation %v, want only alice/packit-devs", seen)
	}

	cfg.Execution = config.ExecutionServiceAccount
	if opts, err := s.botOptions(); err != nil || len(opts) != 0 {
		t.Errorf("serviceaccount execution: %d options, %v; want none", len(opts), err)
	}
	cfg.Execution = config.ExecutionImpersonate
	if _, err := (&setup{cfg: cfg, demo: &demo.Cluster{}}).botOptions(); err == nil {
		t.Error("impersonation on the demo cluster was accepted; it cannot be enforced there")
	}
}
