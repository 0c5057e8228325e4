package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/store"
)

// Labels, annotations and values of the inbox's objects.
const (
	// LabelInbox is pending or done.
	LabelInbox = "deploybot.dev/inbox"
	// AnnotationReceived is when (RFC 3339) the event was received.
	AnnotationReceived = "deploybot.dev/received"
	// AnnotationOrder orders events received at the same time: the
	// enqueueing Store's clock (unix nanos) and the index in the batch.
	AnnotationOrder = "deploybot.dev/order"
	// AnnotationDoneAt is when (store clock, RFC 3339) the event was marked done.
	AnnotationDoneAt = "deploybot.dev/done-at"

	inboxPending = "pending"
	inboxDone    = "done"
	// enqueueParallel bounds the creates one Enqueue has in flight.
	enqueueParallel = 16
)

func (s *Store) inboxName(key string) string { return s.instance + "-inbox-" + hashHex(key, 40) }

// Enqueue implements store.Store: one ConfigMap per event, named after its
// dedupe key, so that Create is the atomic test-and-set of the key across
// replicas, as for Once. The batch's creates go out in parallel, and etcd
// commits concurrent writes together, so a batch costs about one round trip.
// The API server has no transaction over several objects: if Enqueue fails,
// some events of the batch may be stored; they are in the Inbox and will be
// handled, and a retry of the batch finds them as duplicates.
func (s *Store) Enqueue(ctx context.Context, events []store.InboxEvent) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, e := range events {
		if err := e.Check(); err != nil {
			return nil, fmt.Errorf("enqueueing inbound events: %w", err)
		}
	}
	now := s.now()
	fresh := make([]bool, len(events))
	errs := make([]error, len(events))
	first := map[string]bool{}
	sem := make(chan struct{}, enqueueParallel)
	var wg sync.WaitGroup
	for i, e := range events {
		if first[e.Key] {
			continue // a duplicate within the batch
		}
		first[e.Key] = true
		if e.Received.IsZero() {
			e.Received = now
		}
		order := fmt.Sprintf("%019d-%06d", now.UnixNano(), i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			fresh[i], errs[i] = s.enqueueOne(ctx, e, order)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("enqueueing inbound events: %w", err)
	}
	return fresh, nil
}

// enqueueOne creates e's ConfigMap; it reports false when the key is kept.
func (s *Store) enqueueOne(ctx context.Context, e store.InboxEvent, order string) (bool, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("encoding inbox event %q: %w", e.Key, err)
	}
	name := s.inboxName(e.Key)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		labels := s.labels(KindInbox)
		labels[LabelInbox] = inboxPending
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: labels, Annotations: map[string]string{
				AnnotationReceived: e.Received.UTC().Format(time.RFC3339Nano),
				AnnotationExpires:  e.Expires().UTC().Format(time.RFC3339Nano),
				AnnotationOrder:    order,
			}},
			Data: map[string]string{"event.json": string(b)},
		}
		_, err := s.cms().Create(ctx, cm, metav1.CreateOptions{})
		if err == nil {
			return true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("storing inbox event %q: %w", e.Key, err)
		}
		cur, err := s.cms().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // pruned meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("reading inbox event %q: %w", e.Key, err)
		}
		// Kept while not done, and once done until it expires.
		if cur.Labels[LabelInbox] != inboxDone || !s.expired(cur, s.now()) {
			return false, nil
		}
		if err := s.deleteAt(ctx, cur); err != nil {
			return false, fmt.Errorf("removing the expired inbox event %q: %w", e.Key, err)
		}
		backoff(ctx, attempt)
	}
}

// Inbox implements store.Store.
func (s *Store) Inbox(ctx context.Context) ([]store.InboxEvent, error) {
	cms, err := s.list(ctx, s.selector(KindInbox)+","+LabelInbox+"="+inboxPending)
	if err != nil {
		return nil, fmt.Errorf("reading the inbox: %w", err)
	}
	type entry struct {
		e     store.InboxEvent
		order string
	}
	out := make([]entry, 0, len(cms))
	for i := range cms {
		e, err := s.decodeInbox(&cms[i])
		if err != nil {
			return nil, fmt.Errorf("reading the inbox: %w", err)
		}
		out = append(out, entry{e, cms[i].Annotations[AnnotationOrder]})
	}
	slices.SortFunc(out, func(a, b entry) int {
		if c := a.e.Received.Compare(b.e.Received); c != 0 {
			return c
		}
		return strings.Compare(a.order, b.order)
	})
	events := make([]store.InboxEvent, len(out))
	for i, en := range out {
		events[i] = en.e
	}
	return events, nil
}

// InboxDone implements store.Store: a compare-and-swap that relabels the
// event done; Prune deletes it once its key has expired.
func (s *Store) InboxDone(ctx context.Context, key, outcome string) error {
	name := s.inboxName(key)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		cm, err := s.cms().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("marking inbox event %q done: %w", key, store.ErrNoEvent)
		case err != nil:
			return fmt.Errorf("marking inbox event %q done: %w", key, err)
		}
		if _, err := s.decodeInbox(cm); err != nil {
			return fmt.Errorf("marking inbox event %q done: %w", key, err)
		}
		if cm.Labels[LabelInbox] == inboxDone {
			return nil
		}
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Labels[LabelInbox] = inboxDone
		cm.Annotations[AnnotationDoneAt] = s.now().UTC().Format(time.RFC3339Nano)
		cm.Data["outcome"] = outcome
		_, err = s.cms().Update(ctx, cm, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err):
			backoff(ctx, attempt)
		case apierrors.IsNotFound(err):
			return fmt.Errorf("marking inbox event %q done: %w", key, store.ErrNoEvent)
		default:
			return fmt.Errorf("marking inbox event %q done: %w", key, err)
		}
	}
}

// decodeInbox decodes and checks the event of an inbox ConfigMap.
func (s *Store) decodeInbox(cm *corev1.ConfigMap) (store.InboxEvent, error) {
	var e *store.InboxEvent
	if err := json.Unmarshal([]byte(cm.Data["event.json"]), &e); err != nil {
		return store.InboxEvent{}, fmt.Errorf("decoding inbox event from ConfigMap %s: %w", cm.Name, err)
	}
	switch {
	case e == nil:
		return store.InboxEvent{}, fmt.Errorf("decoding inbox event from ConfigMap %s: the event is null", cm.Name)
	case e.Check() != nil:
		return store.InboxEvent{}, fmt.Errorf("decoding inbox event from ConfigMap %s: %w", cm.Name, e.Check())
	case s.inboxName(e.Key) != cm.Name:
		return store.InboxEvent{}, fmt.Errorf("decoding inbox event from ConfigMap %s: it holds the event %q, whose ConfigMap is %s", cm.Name, e.Key, s.inboxName(e.Key))
	case e.Received.IsZero():
		return store.InboxEvent{}, fmt.Errorf("decoding inbox event from ConfigMap %s: no receive time", cm.Name)
	}
	return *e, nil
}
