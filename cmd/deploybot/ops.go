package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/metrics"
	"github.com/deploybot/deploybot/store"
)

// readyTimeout bounds one /readyz check; the chart's probe waits a little
// longer, so a slow API server shows as a failed check, not a probe timeout.
const readyTimeout = 2 * time.Second

// newMetrics returns the Prometheus registry of a serving bot. Its pending
// gauge is read from the store on every scrape, so it is the same on every
// replica and right after a restart.
func (s *setup) newMetrics() *metrics.Registry {
	return metrics.New(metrics.WithVersion(buildVersion()), metrics.WithPending(s.pending, readyTimeout))
}

// pending counts the requests waiting for a person, by env and state.
func (s *setup) pending(ctx context.Context) (map[metrics.PendingKey]int, error) {
	open, err := s.store.List(ctx, store.ListOptions{States: []store.State{store.AwaitingConfirm, store.AwaitingApproval}})
	if err != nil {
		return nil, fmt.Errorf("listing pending requests: %w", err)
	}
	out := map[metrics.PendingKey]int{}
	// Every env appears, with 0, so a dashboard shows "none waiting" rather
	// than no data.
	for _, e := range s.cfg.Environments {
		for _, st := range []store.State{store.AwaitingConfirm, store.AwaitingApproval} {
			out[metrics.PendingKey{Env: e.Name, State: string(st)}] = 0
		}
	}
	for _, r := range open {
		out[metrics.PendingKey{Env: r.Plan.Env, State: string(r.State)}]++
	}
	return out, nil
}

// opsRoutes adds the operations endpoints next to GET /healthz (the process
// is up): GET /readyz (the store and every environment's cluster answer) and
// GET /metrics (Prometheus). Neither is meant for the Ingress or Route,
// which expose only the chat platforms' paths.
func (s *setup) opsRoutes(mux *http.ServeMux, reg *metrics.Registry, log *slog.Logger) {
	mux.Handle("GET /readyz", &readiness{checks: s.readyChecks(), log: log})
	mux.Handle("GET /metrics", reg.Handler())
}

// readyCheck is one dependency /readyz asks.
type readyCheck struct {
	name  string
	check func(ctx context.Context) error
}

// storePinger is a store that can say cheaply whether it is reachable (the
// kubernetes backend lists one ConfigMap); other stores are asked for their
// schedule pauses, their cheapest read.
type storePinger interface {
	Ping(ctx context.Context) error
}

// readyChecks are the store and, per environment, one cheap API call in the
// env's namespace: listing at most one Deployment. It proves the network
// path, the credentials and the bot's RBAC in that namespace at once, which
// /version alone would not.
func (s *setup) readyChecks() []readyCheck {
	checks := []readyCheck{{name: "store", check: func(ctx context.Context) error {
		if p, ok := s.store.(storePinger); ok {
			return p.Ping(ctx)
		}
		_, err := s.store.Pauses(ctx)
		return err
	}}}
	names := make([]string, 0, len(s.cfg.Environments))
	for _, e := range s.cfg.Environments {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	for _, name := range names {
		checks = append(checks, readyCheck{name: "env " + name, check: func(ctx context.Context) error {
			ec, err := s.set.Env(name)
			if err != nil {
				return err
			}
			_, err = ec.Kube.AppsV1().Deployments(ec.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
			if err != nil {
				return fmt.Errorf("listing deployments in %s: %w", ec.Namespace, err)
			}
			return nil
		}})
	}
	return checks
}

// readiness serves /readyz: every check runs at once, each bounded by
// readyTimeout; 200 when all pass, else 503. The body has one line per
// check, like the API server's /readyz?verbose. A check that starts or stops
// failing is logged once, not on every probe.
type readiness struct {
	checks []readyCheck
	log    *slog.Logger

	mu     sync.Mutex
	failed map[string]bool
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	errs := make([]error, len(rd.checks))
	var wg sync.WaitGroup
	for i, c := range rd.checks {
		wg.Go(func() { errs[i] = c.check(ctx) })
	}
	wg.Wait()

	var body strings.Builder
	ok := true
	rd.mu.Lock()
	if rd.failed == nil {
		rd.failed = map[string]bool{}
	}
	for i, c := range rd.checks {
		err := errs[i]
		if err != nil {
			ok = false
			fmt.Fprintf(&body, "[-]%s failed: %v\n", c.name, err)
		} else {
			fmt.Fprintf(&body, "[+]%s ok\n", c.name)
		}
		switch {
		case err != nil && !rd.failed[c.name]:
			rd.log.Warn("not ready", "check", c.name, "err", err)
		case err == nil && rd.failed[c.name]:
			rd.log.Info("ready again", "check", c.name)
		}
		rd.failed[c.name] = err != nil
	}
	rd.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		body.WriteString("not ready\n")
	} else {
		body.WriteString("ok\n")
	}
	_, _ = w.Write([]byte(body.String()))
}
