package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/kubeclient"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/store/bolt"
	"github.com/deploybot/deploybot/store/kube"
)

// inClusterNamespaceFile is where a pod finds its own namespace.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// pruneEvery is how often the leader applies the store's retention.
const pruneEvery = 10 * time.Minute

// kubeStore returns the Kubernetes store when the state belongs in the
// cluster: store.backend kubernetes, or no backend, no state file asked for
// and running in a pod (not the demo). nil means the file store.
func kubeStore(ctx context.Context, cfg *config.Config, useDemo bool, statePath string) (*kube.Store, error) {
	inCluster, inClusterErr := rest.InClusterConfig()
	switch cfg.Store.Backend {
	case "file":
		return nil, nil
	case "":
		if useDemo || statePath != "" || cfg.Store.Path != "" || inClusterErr != nil {
			return nil, nil
		}
	}
	rc := inCluster
	if inClusterErr != nil {
		// Outside a pod (a workstation trying the backend): $KUBECONFIG.
		var err error
		if rc, err = cluster.RESTConfig("", ""); err != nil {
			return nil, fmt.Errorf("store backend kubernetes: %w", err)
		}
	}
	ns := cfg.Store.Namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if b, err := os.ReadFile(inClusterNamespaceFile); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	if ns == "" {
		return nil, errors.New("store backend kubernetes: no namespace: set store.namespace (outside a pod there is no namespace of its own)")
	}
	cs, err := kubeclient.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("store backend kubernetes: %w", err)
	}
	opts := []kube.Option{}
	if r := cfg.Store.Retention; r.Age.Duration > 0 {
		opts = append(opts, kube.WithRetention(r.Age.Duration))
	}
	if r := cfg.Store.Retention; r.Requests > 0 {
		opts = append(opts, kube.WithMaxRequests(r.Requests))
	}
	if r := cfg.Store.Retention; r.AuditEvents > 0 {
		opts = append(opts, kube.WithMaxAuditEvents(r.AuditEvents))
	}
	ks, err := kube.New(cs, ns, opts...)
	if err != nil {
		return nil, err
	}
	// Fail at start, not at the first chat command, if the store is out of reach.
	if err := ks.Ping(ctx); err != nil {
		return nil, err
	}
	return ks, nil
}

// localStore opens the single-replica store for statePath (the --state
// flag or store.path; state.json by default): the bbolt database beside it
// (state.db), into which the JSON file store at statePath is migrated the
// first time, kept as state.json.migrated-TIME. The store backend "file"
// still means this, state in a local file, so no config changes; its
// store.retention.age applies (the counts are the kubernetes backend's).
func localStore(statePath string, cfg *config.Config, log *slog.Logger) (*bolt.Store, error) {
	if log == nil {
		log = slog.Default()
	}
	var opts []bolt.Option
	if r := cfg.Store.Retention; r.Age.Duration > 0 {
		opts = append(opts, bolt.WithRetention(r.Age.Duration))
	}
	dbPath, jsonPath := bolt.Paths(statePath)
	s, m, err := bolt.OpenMigrating(dbPath, jsonPath, opts...)
	if err != nil {
		return nil, err
	}
	if m != nil {
		log.Info("migrated the JSON state file into the state database: "+m.String(),
			"database", dbPath, "from", m.From, "backup", m.Backup, "auditBackup", m.AuditBackup,
			"requests", m.Requests, "open", m.Open, "audit", m.Audit, "dedupe", m.Once,
			"pauses", m.Pauses, "inbox", m.Inbox, "images", m.Images, "resumed", m.Resumed)
		for _, n := range m.Notes {
			log.Warn("migrating the JSON state file: "+n, "database", dbPath, "from", m.From)
		}
	}
	return s, nil
}

// replicaOptions name this replica and give the schedule the bot's own
// Kubernetes identity, as the API server knows it.
func (s *setup) replicaOptions(ctx context.Context, log *slog.Logger) []bot.Option {
	var cs kubeclient.Interface
	if ks, ok := s.store.(*kube.Store); ok {
		cs = ks.Client()
	} else if s.demo == nil && len(s.cfg.Environments) > 0 {
		if ec, err := s.set.Env(s.cfg.Environments[0].Name); err == nil {
			cs = ec.Kube
		}
	}
	if cs == nil {
		return nil
	}
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || review.Status.UserInfo.Username == "" {
		log.Warn("could not learn the bot's own identity; scheduled imports are requested as \"deploybot\"", "err", err)
		return nil
	}
	u := review.Status.UserInfo
	log.Info("scheduled imports run as the bot's identity", "user", u.Username, "groups", u.Groups)
	return []bot.Option{bot.WithScheduleIdentity(u.Username, u.Groups)}
}

// startDuties reports executions a dead replica left, then runs the leader's
// duties (scheduler, sweeper, store retention): under leader election with
// a Lease when the state is in the cluster, else in this process, which is
// then the only one. stop ends them and waits.
func (s *setup) startDuties(ctx context.Context, b *bot.Bot, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := b.Recover(ctx); err != nil {
			log.Error("reporting executions of dead replicas", "err", err)
		}
		ks, ok := s.store.(*kube.Store)
		if !ok {
			b.Lead(ctx)
			return
		}
		err := ks.Lead(ctx, kube.Election{
			Identity:    b.ReplicaName(),
			OnNewLeader: func(id string) { log.Info("leader elected", "leader", id, "me", b.ReplicaName()) },
		}, func(ctx context.Context) {
			var duties sync.WaitGroup
			duties.Go(func() { prune(ctx, ks, log) })
			b.Lead(ctx)
			duties.Wait()
		})
		if err != nil {
			log.Error("leader election", "err", err)
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// prune applies the store's retention every pruneEvery while ctx lasts.
func prune(ctx context.Context, ks *kube.Store, log *slog.Logger) {
	for {
		rep, err := ks.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("pruning the store", "err", err)
		case rep.Total() > 0:
			log.Info("pruned the store", "requests", rep.Requests, "audit", rep.Audit, "dedupe", rep.Once, "pending", rep.Pending, "locks", rep.Locks, "inbox", rep.Inbox)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pruneEvery):
		}
	}
}
