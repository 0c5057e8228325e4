package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election configures the leader election of Lead.
type Election struct {
	// Lease is the Lease's name; default INSTANCE-leader.
	Lease string
	// Identity names this replica in the Lease (holderIdentity); it must be
	// unique among the replicas, e.g. the pod name.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's; zero
	// takes 15s, 10s and 2s. A replica that dies is replaced as leader
	// after about LeaseDuration; one that stops cleanly hands over at once.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnNewLeader, if set, is told every leader this replica observes.
	OnNewLeader func(identity string)
}

// Lead campaigns for the Lease in the store's namespace until ctx ends and
// runs duties whenever this replica holds it. duties' context ends when the
// lease is lost or ctx ends; Lead releases the Lease only after duties have
// returned, so two replicas' duties overlap only when a leader loses its
// lease without noticing in time (the duties must stay safe then: deploybot's
// are compare-and-swap claims in the store). It returns when ctx ends.
func (s *Store) Lead(ctx context.Context, e Election, duties func(ctx context.Context)) error {
	if e.Identity == "" {
		return errors.New("leader election: no identity")
	}
	if e.Lease == "" {
		e.Lease = s.instance + "-leader"
	}
	if e.LeaseDuration == 0 {
		e.LeaseDuration = 15 * time.Second
	}
	if e.RenewDeadline == 0 {
		e.RenewDeadline = 10 * time.Second
	}
	if e.RetryPeriod == 0 {
		e.RetryPeriod = 2 * time.Second
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: e.Lease, Namespace: s.ns},
		Client:     s.cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}

	// The elector runs on its own context, ended only after duties have
	// stopped: client-go releases the Lease as soon as its context ends,
	// without waiting for OnStartedLeading to return.
	electCtx, stopElect := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElect()
	var running sync.RWMutex // read-held while duties run
	go func() {
		<-ctx.Done()
		running.Lock() // waits for duties, whose context ctx also ends
		stopElect()
		running.Unlock()
	}()

	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.Lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				running.RLock()
				defer running.RUnlock()
				dctx, cancel := context.WithCancel(leading)
				defer cancel()
				stop := context.AfterFunc(ctx, cancel)
				defer stop()
				duties(dctx)
			},
			OnStoppedLeading: func() {},
			OnNewLeader:      e.OnNewLeader,
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	// Run returns when leadership is lost; campaign again until told to stop.
	for electCtx.Err() == nil {
		le.Run(electCtx)
	}
	return nil
}
