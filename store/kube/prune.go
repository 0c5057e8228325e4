package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/store"
)

// PruneReport says what one Prune deleted.
type PruneReport struct {
	Requests, Pending, Audit, Once, Locks int
	// Inbox counts done inbox events whose dedupe key expired.
	Inbox int
}

// Total is the number of objects deleted.
func (p PruneReport) Total() int {
	return p.Requests + p.Pending + p.Audit + p.Once + p.Locks + p.Inbox
}

// Prune deletes what retention no longer keeps: finished requests last
// changed before the retention age or beyond the newest maxRequests,
// audit events recorded before the age or beyond the newest maxAudit,
// expired dedupe keys, done inbox events whose key expired, pending requests
// past the abandon timeout and locks whose holder is gone or finished. Requests that are not finished are never
// deleted. It is meant to run on the leader now and then; running it on two
// replicas at once is harmless.
func (s *Store) Prune(ctx context.Context) (PruneReport, error) {
	var rep PruneReport
	var errs []error
	now := s.now()
	del := func(cm *corev1.ConfigMap, n *int) {
		err := s.cms().Delete(ctx, cm.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cm.ResourceVersion}})
		switch {
		case err == nil:
			*n++
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		default:
			errs = append(errs, fmt.Errorf("deleting %s: %w", cm.Name, err))
		}
	}

	reqs, err := s.list(ctx, s.selector(KindRequest))
	if err != nil {
		return rep, fmt.Errorf("pruning: listing requests: %w", err)
	}
	var finished []*store.Request
	byID := map[string]*corev1.ConfigMap{}
	live := map[string]bool{} // requests that hold their locks
	for i := range reqs {
		cm := &reqs[i]
		if cm.Labels[LabelPending] != "" {
			if s.abandoned(cm) {
				del(cm, &rep.Pending)
			} else {
				live[cm.Name] = true
			}
			continue
		}
		r, err := s.decodeRequest(cm)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !r.State.Terminal() {
			live[cm.Name] = true
			continue
		}
		finished = append(finished, r)
		byID[r.ID] = cm
	}
	sortNewestFirst(finished)
	for i, r := range finished {
		old := s.retention > 0 && r.UpdatedAt.Before(now.Add(-s.retention))
		tooMany := s.maxRequests > 0 && i >= s.maxRequests
		if old || tooMany {
			del(byID[r.ID], &rep.Requests)
		}
	}

	audit, err := s.list(ctx, s.selector(KindAudit))
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("pruning: listing audit events: %w", err))...)
	}
	slices.SortFunc(audit, func(a, b corev1.ConfigMap) int { return strings.Compare(b.Name, a.Name) })
	for i := range audit {
		at, ok := s.auditTime(audit[i].Name)
		old := s.retention > 0 && ok && at.Before(now.Add(-s.retention))
		tooMany := s.maxAudit > 0 && i >= s.maxAudit
		if old || tooMany {
			del(&audit[i], &rep.Audit)
		}
	}

	once, err := s.list(ctx, s.selector(KindOnce))
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("pruning: listing dedupe keys: %w", err))...)
	}
	for i := range once {
		if s.expired(&once[i], now) {
			del(&once[i], &rep.Once)
		}
	}

	inbox, err := s.list(ctx, s.selector(KindInbox)+","+LabelInbox+"="+inboxDone)
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("pruning: listing done inbox events: %w", err))...)
	}
	for i := range inbox {
		if s.expired(&inbox[i], now) {
			del(&inbox[i], &rep.Inbox)
		}
	}

	locks, err := s.list(ctx, s.selector(KindLock))
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("pruning: listing locks: %w", err))...)
	}
	for i := range locks {
		holder := locks[i].Data["request"]
		if live[s.requestName(holder)] {
			continue
		}
		// Not live in the list above; read the holder again, since it may
		// have been created after the list.
		stale, err := s.staleHolder(ctx, holder)
		if err != nil {
			errs = append(errs, fmt.Errorf("checking the holder #%s of lock %s: %w", holder, locks[i].Name, err))
			continue
		}
		if stale {
			del(&locks[i], &rep.Locks)
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("pruning the store: %w", errors.Join(errs...))
	}
	return rep, nil
}
