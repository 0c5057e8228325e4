package kube

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/kubeclient"
)

// Election configures the leader election of Lead.
type Election struct {
	// Lease is the Lease's name; default INSTANCE-leader.
	Lease string
	// Identity names this replica in the Lease (holderIdentity); it must be
	// unique among the replicas, e.g. the pod name.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod mean what they mean in
	// client-go's leaderelection; zero takes 15s, 10s and 2s. A replica that
	// dies is replaced as leader after about LeaseDuration; one that stops
	// cleanly hands over at once.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnNewLeader, if set, is told every leader this replica observes.
	OnNewLeader func(identity string)
}

// Lead campaigns for the Lease in the store's namespace until ctx ends and
// runs duties whenever this replica holds it. duties' context ends when the
// lease is lost or ctx ends; Lead keeps renewing the Lease while duties
// finish and releases it only after they have returned, so two replicas'
// duties overlap only when a leader loses its lease without noticing in time
// (the duties must stay safe then: deploybot's are compare-and-swap claims
// in the store). It returns when ctx ends.
//
// The protocol is client-go's tools/leaderelection with a LeaseLock (which
// this replaces, because its resourcelock package links every API group's
// client): a Lease is free when it has no holder or when its record has not
// changed for LeaseDuration by this replica's own clock (so clock skew
// between replicas does not matter); every write is an update guarded by
// the Lease's resourceVersion, so two candidates never both win.
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
	if e.LeaseDuration <= e.RenewDeadline || e.RenewDeadline <= e.RetryPeriod {
		return errors.New("leader election: need LeaseDuration > RenewDeadline > RetryPeriod")
	}
	el := &elector{leases: s.cs.CoordinationV1().Leases(s.ns), e: e}
	for ctx.Err() == nil {
		if !el.acquire(ctx) {
			break
		}
		el.lead(ctx, duties)
	}
	return nil
}

// elector is one replica's view of the Lease.
type elector struct {
	leases kubeclient.Resource[*coordinationv1.Lease, *coordinationv1.LeaseList]
	e      Election

	observed   coordinationv1.LeaseSpec // the record as last read or written
	observedAt time.Time                // when it last changed, by our clock
	reported   string                   // the holder last told to OnNewLeader
}

// jitter is client-go's wait.Jitter(d, 1.2): replicas do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Float64()*1.2*float64(d))
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// acquire tries every RetryPeriod until this replica holds the Lease (true)
// or ctx ends (false).
func (l *elector) acquire(ctx context.Context) bool {
	for {
		if l.tryAcquireOrRenew(ctx) {
			return true
		}
		if !sleep(ctx, jitter(l.e.RetryPeriod)) {
			return false
		}
	}
}

// lead runs duties while renewing the Lease every RetryPeriod. A renewal
// that does not succeed within RenewDeadline loses the Lease: duties' context
// ends and lead returns when they have. When ctx ends, lead waits for duties
// (renewing meanwhile) and then releases the Lease for the next leader.
func (l *elector) lead(ctx context.Context, duties func(context.Context)) {
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		duties(dctx)
	}()
	// Renewals outlive ctx until duties have returned.
	renewCtx := context.WithoutCancel(ctx)
	for {
		t := time.NewTimer(l.e.RetryPeriod)
		select {
		case <-done:
			t.Stop()
			if ctx.Err() != nil {
				l.release(renewCtx)
				return
			}
			// Duties ended on their own: hold the Lease until ctx ends, as
			// client-go does, rather than campaign in a loop.
			select {
			case <-ctx.Done():
				l.release(renewCtx)
				return
			case <-time.After(l.e.RetryPeriod):
			}
		case <-t.C:
		}
		if !l.renew(renewCtx) {
			stop()
			<-done
			return
		}
	}
}

// renew retries tryAcquireOrRenew every RetryPeriod for up to RenewDeadline.
func (l *elector) renew(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, l.e.RenewDeadline)
	defer cancel()
	for {
		if l.tryAcquireOrRenew(ctx) {
			return true
		}
		if !sleep(ctx, l.e.RetryPeriod) {
			return false
		}
	}
}

// tryAcquireOrRenew makes one attempt to create, take over or renew the
// Lease; true when this replica holds it afterwards.
func (l *elector) tryAcquireOrRenew(ctx context.Context) bool {
	now := metav1.NewMicroTime(time.Now())
	seconds := int32(l.e.LeaseDuration / time.Second)
	if seconds < 1 {
		seconds = 1
	}
	lease, err := l.leases.Get(ctx, l.e.Lease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		created, err := l.leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: l.e.Lease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &l.e.Identity,
				LeaseDurationSeconds: &seconds,
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return false
		}
		l.observe(created.Spec, now.Time)
		return true
	}
	if err != nil {
		return false
	}
	if !sameRecord(lease.Spec, l.observed) {
		l.observe(lease.Spec, now.Time)
	}
	holder := deref(lease.Spec.HolderIdentity)
	if holder != "" && holder != l.e.Identity && now.Time.Before(l.observedAt.Add(l.e.LeaseDuration)) {
		return false // someone else holds a valid lease
	}
	spec := lease.Spec
	if holder != l.e.Identity {
		spec.AcquireTime = &now
		transitions := deref(spec.LeaseTransitions) + 1
		spec.LeaseTransitions = &transitions
	}
	spec.HolderIdentity = &l.e.Identity
	spec.LeaseDurationSeconds = &seconds
	spec.RenewTime = &now
	lease.Spec = spec
	updated, err := l.leases.Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return false // a conflict means another replica wrote first
	}
	l.observe(updated.Spec, now.Time)
	return true
}

// release hands the Lease over at once: no holder, as client-go's
// ReleaseOnCancel leaves it.
func (l *elector) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, l.e.RenewDeadline)
	defer cancel()
	lease, err := l.leases.Get(ctx, l.e.Lease, metav1.GetOptions{})
	if err != nil || deref(lease.Spec.HolderIdentity) != l.e.Identity {
		return
	}
	now := metav1.NewMicroTime(time.Now())
	one := int32(1)
	empty := ""
	lease.Spec.HolderIdentity = &empty
	lease.Spec.LeaseDurationSeconds = &one
	lease.Spec.RenewTime = &now
	lease.Spec.AcquireTime = &now
	if updated, err := l.leases.Update(ctx, lease, metav1.UpdateOptions{}); err == nil {
		l.observe(updated.Spec, now.Time)
	}
}

// observe records a new version of the Lease and tells OnNewLeader of a new
// holder.
func (l *elector) observe(spec coordinationv1.LeaseSpec, at time.Time) {
	l.observed, l.observedAt = spec, at
	holder := deref(spec.HolderIdentity)
	if holder == l.reported {
		return
	}
	l.reported = holder
	if l.e.OnNewLeader != nil {
		go l.e.OnNewLeader(holder)
	}
}

// sameRecord compares what client-go compares: the holder and the times and
// counters it writes.
func sameRecord(a, b coordinationv1.LeaseSpec) bool {
	return deref(a.HolderIdentity) == deref(b.HolderIdentity) &&
		deref(a.LeaseDurationSeconds) == deref(b.LeaseDurationSeconds) &&
		deref(a.LeaseTransitions) == deref(b.LeaseTransitions) &&
		microEqual(a.RenewTime, b.RenewTime) && microEqual(a.AcquireTime, b.AcquireTime)
}

func microEqual(a, b *metav1.MicroTime) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
