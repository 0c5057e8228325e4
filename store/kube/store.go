package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/kubeclient"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/store"
)

// Labels and annotations of the store's objects.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelInstance  = "deploybot.dev/instance"
	LabelKind      = "deploybot.dev/kind"
	LabelState     = "deploybot.dev/state"
	// LabelPending marks a request whose locks are being taken.
	LabelPending = "deploybot.dev/pending"
	// AnnotationPendingSince is when (store clock, RFC 3339) a pending request was created.
	AnnotationPendingSince = "deploybot.dev/pending-since"
	// AnnotationExpires is when (RFC 3339) a dedupe key expires.
	AnnotationExpires = "deploybot.dev/expires"

	managedBy = "deploybot"
)

// The values of LabelKind.
const (
	KindRequest = "request"
	KindLock    = "lock"
	KindOnce    = "once"
	KindAudit   = "audit"
	KindPauses  = "pauses"
	KindInbox   = "inbox"
	KindImages  = "images"
)

// Defaults of the options.
const (
	DefaultInstance     = "deploybot"
	DefaultMaxRequests  = 1000
	DefaultMaxAudit     = 10000
	DefaultAbandonAfter = 2 * time.Minute
	// listPage is how many objects one List call asks for.
	listPage = 250
	// cleanupTimeout bounds clean-up calls that must happen even when the
	// caller's context has ended (releasing locks, dropping a pending request).
	cleanupTimeout = 10 * time.Second
)

// Store is a store.Store on ConfigMaps in one namespace. It is safe for
// concurrent use, and several Stores (replicas) on one namespace and instance
// behave as one store.
type Store struct {
	cs           kubeclient.Interface
	ns           string
	instance     string
	now          func() time.Time
	retention    time.Duration
	maxRequests  int
	maxAudit     int
	abandonAfter time.Duration

	mu      sync.Mutex
	lastSeq int64 // the last audit sequence number (unix nanos) handed out
	seq     int64 // events recorded by this Store, a tiebreak within one nanosecond
}

var _ store.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock for timestamps, dedupe-key expiry and retention.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithRetention sets how long finished requests and audit events are kept
// (store.DefaultRetention); zero or negative keeps them regardless of age.
func WithRetention(d time.Duration) Option { return func(s *Store) { s.retention = d } }

// WithMaxRequests keeps at most n finished requests (DefaultMaxRequests); zero or negative: no limit.
func WithMaxRequests(n int) Option { return func(s *Store) { s.maxRequests = n } }

// WithMaxAuditEvents keeps at most n audit events (DefaultMaxAudit); zero or negative: no limit.
func WithMaxAuditEvents(n int) Option { return func(s *Store) { s.maxAudit = n } }

// WithInstance names the bot instance (DefaultInstance): it prefixes object
// names and is a label, so several bots can share a namespace.
func WithInstance(name string) Option { return func(s *Store) { s.instance = name } }

// WithAbandonAfter sets how long a request may stay pending (taking its
// locks) before other replicas consider its creator dead (DefaultAbandonAfter).
func WithAbandonAfter(d time.Duration) Option { return func(s *Store) { s.abandonAfter = d } }

// New returns a store on the ConfigMaps of namespace. It does not contact
// the API server; Ping does.
func New(cs kubeclient.Interface, namespace string, opts ...Option) (*Store, error) {
	s := &Store{
		cs:           cs,
		ns:           namespace,
		instance:     DefaultInstance,
		now:          time.Now,
		retention:    store.DefaultRetention,
		maxRequests:  DefaultMaxRequests,
		maxAudit:     DefaultMaxAudit,
		abandonAfter: DefaultAbandonAfter,
	}
	for _, o := range opts {
		o(s)
	}
	if namespace == "" {
		return nil, errors.New("kubernetes store: no namespace")
	}
	if !dnsLabel(s.instance) || len(s.instance) > 40 {
		return nil, fmt.Errorf("kubernetes store: instance %q is not a DNS label of at most 40 characters", s.instance)
	}
	return s, nil
}

// Namespace returns the namespace of the store's objects.
func (s *Store) Namespace() string { return s.ns }

// Instance returns the instance name.
func (s *Store) Instance() string { return s.instance }

// Client returns the clientset the store uses.
func (s *Store) Client() kubeclient.Interface { return s.cs }

// Ping checks that the store's ConfigMaps can be listed, for readiness.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.cms().List(ctx, metav1.ListOptions{LabelSelector: s.selector(KindPauses), Limit: 1})
	if err != nil {
		return fmt.Errorf("reaching the store in namespace %s: %w", s.ns, err)
	}
	return nil
}

func (s *Store) cms() kubeclient.Resource[*corev1.ConfigMap, *corev1.ConfigMapList] {
	return s.cs.CoreV1().ConfigMaps(s.ns)
}

func (s *Store) labels(kind string) map[string]string {
	return map[string]string{LabelManagedBy: managedBy, LabelInstance: s.instance, LabelKind: kind}
}

func (s *Store) selector(kind string) string {
	return LabelInstance + "=" + s.instance + "," + LabelKind + "=" + kind
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, r *store.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := clone(r)
	if c.ID == "" {
		c.ID = store.NewID()
	}
	now := s.now()
	c.Version = 1
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	locks := sortedLocks(c.Locks)
	hold := len(locks) > 0 && !c.State.Terminal()
	cm, err := s.requestConfigMap(c, nil)
	if err != nil {
		return err
	}
	if hold {
		cm.Labels[LabelPending] = "true"
		cm.Annotations = map[string]string{AnnotationPendingSince: now.UTC().Format(time.RFC3339Nano)}
	}
	created, err := s.cms().Create(ctx, cm, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("creating request #%s: %w", c.ID, store.ErrExists)
	case err != nil:
		return fmt.Errorf("creating request #%s: %w", c.ID, err)
	}
	if hold {
		if err := s.commit(ctx, c.ID, locks, created); err != nil {
			return err
		}
	}
	*r = *clone(c)
	return nil
}

// commit takes the locks of a pending request and then drops its pending
// mark; on any failure it gives back what it took and deletes the request.
func (s *Store) commit(ctx context.Context, id string, locks []string, pending *corev1.ConfigMap) error {
	held, err := s.acquire(ctx, id, locks)
	if err == nil {
		done := pending.DeepCopy()
		delete(done.Labels, LabelPending)
		delete(done.Annotations, AnnotationPendingSince)
		if _, err = s.cms().Update(ctx, done, metav1.UpdateOptions{}); err != nil {
			// NotFound or Conflict: another replica took this request for
			// abandoned and deleted it, and may have taken its locks.
			err = fmt.Errorf("creating request #%s: committing it after taking its locks: %w", id, err)
		}
	}
	if err == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	s.release(cctx, id, held)
	uid := pending.UID
	if derr := s.cms().Delete(cctx, pending.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); derr != nil && !apierrors.IsNotFound(derr) {
		err = errors.Join(err, fmt.Errorf("removing the refused request #%s: %w", id, derr))
	}
	return err
}

// acquire takes each lock for request id, in order; it returns the locks it
// took, also on error.
func (s *Store) acquire(ctx context.Context, id string, locks []string) ([]string, error) {
	var held []string
	for _, l := range locks {
		if err := s.acquireOne(ctx, id, l); err != nil {
			return held, err
		}
		held = append(held, l)
	}
	return held, nil
}

func (s *Store) acquireOne(ctx context.Context, id, lock string) error {
	name := s.lockName(lock)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: s.labels(KindLock)},
			Data:       map[string]string{"lock": lock, "request": id},
		}
		_, err := s.cms().Create(ctx, cm, metav1.CreateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("taking lock %s for #%s: %w", lock, id, err)
		}
		cur, err := s.cms().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("reading lock %s: %w", lock, err)
		}
		holder := cur.Data["request"]
		if holder == id {
			return nil
		}
		stale, err := s.staleHolder(ctx, holder)
		if err != nil {
			return fmt.Errorf("checking the holder #%s of lock %s: %w", holder, lock, err)
		}
		if !stale {
			return &store.BusyError{Lock: lock, ID: holder}
		}
		if err := s.deleteAt(ctx, cur); err != nil {
			return fmt.Errorf("removing the stale lock %s of #%s: %w", lock, holder, err)
		}
		backoff(ctx, attempt)
	}
}

// staleHolder reports whether a lock's holder no longer holds it: it is gone,
// terminal, or pending past the abandon timeout (then it is deleted first).
func (s *Store) staleHolder(ctx context.Context, id string) (bool, error) {
	cm, err := s.cms().Get(ctx, s.requestName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if cm.Labels[LabelPending] != "" {
		if !s.abandoned(cm) {
			return false, nil
		}
		if err := s.deleteAt(ctx, cm); err != nil {
			return false, err
		}
		return true, nil
	}
	r, err := s.decodeRequest(cm)
	if err != nil {
		return false, err
	}
	return r.State.Terminal(), nil
}

// abandoned reports whether a pending request is older than the abandon timeout.
func (s *Store) abandoned(cm *corev1.ConfigMap) bool {
	since, err := time.Parse(time.RFC3339Nano, cm.Annotations[AnnotationPendingSince])
	if err != nil {
		since = cm.CreationTimestamp.Time
	}
	return s.now().Sub(since) > s.abandonAfter
}

// deleteAt deletes cm if it is still at the resourceVersion read; someone
// else's change or deletion meanwhile is no error.
func (s *Store) deleteAt(ctx context.Context, cm *corev1.ConfigMap) error {
	rv := cm.ResourceVersion
	err := s.cms().Delete(ctx, cm.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// release deletes the locks that still name request id. Failures leave
// stale locks, which the next taker or Prune removes.
func (s *Store) release(ctx context.Context, id string, locks []string) {
	for _, l := range locks {
		cm, err := s.cms().Get(ctx, s.lockName(l), metav1.GetOptions{})
		if err != nil || cm.Data["request"] != id {
			continue
		}
		_ = s.deleteAt(ctx, cm)
	}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*store.Request, error) {
	_, r, err := s.get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("getting request #%s: %w", id, err)
	}
	return r, nil
}

// get reads a request and its ConfigMap; a pending request is not there yet.
func (s *Store) get(ctx context.Context, id string) (*corev1.ConfigMap, *store.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	cm, err := s.cms().Get(ctx, s.requestName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && cm.Labels[LabelPending] != "") {
		return nil, nil, store.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	r, err := s.decodeRequest(cm)
	if err != nil {
		return nil, nil, err
	}
	return cm, r, nil
}

// Update implements store.Store: fn runs on the latest version and the
// result is written with that version's resourceVersion; on 409 Conflict fn
// runs again on the newer version.
func (s *Store) Update(ctx context.Context, id string, fn func(r *store.Request) error) (*store.Request, error) {
	for attempt := 0; ; attempt++ {
		cm, cur, err := s.get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("updating request #%s: %w", id, err)
		}
		next := clone(cur)
		if err := fn(next); err != nil {
			return nil, err
		}
		next.ID = id
		next.Version = cur.Version + 1
		if next.UpdatedAt.Equal(cur.UpdatedAt) {
			next.UpdatedAt = s.now() // fn did not stamp it with its own clock
		}
		upd, err := s.requestConfigMap(next, cm)
		if err != nil {
			return nil, err
		}
		_, err = s.cms().Update(ctx, upd, metav1.UpdateOptions{})
		switch {
		case err == nil:
			if !cur.State.Terminal() && next.State.Terminal() {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
				s.release(cctx, id, sortedLocks(cur.Locks))
				cancel()
			}
			return clone(next), nil
		case apierrors.IsConflict(err):
			backoff(ctx, attempt)
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("updating request #%s: %w", id, store.ErrNotFound)
		default:
			return nil, fmt.Errorf("updating request #%s: %w", id, err)
		}
	}
}

// List implements store.Store. The state filter is a label selector, so only
// the wanted requests travel; a second selector fetches the requests in
// states this deploybot does not know (or without the label), which
// store.ListOptions lists under every filter.
func (s *Store) List(ctx context.Context, opts store.ListOptions) ([]*store.Request, error) {
	base := s.selector(KindRequest) + ",!" + LabelPending
	sels := []string{base}
	if len(opts.States) > 0 {
		sels = []string{
			base + "," + LabelState + " in (" + joinStates(opts.States) + ")",
			base + "," + LabelState + " notin (" + joinStates(store.States) + ")",
		}
	}
	seen := map[string]bool{}
	var out []*store.Request
	for _, sel := range sels {
		cms, err := s.list(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("listing requests: %w", err)
		}
		for i := range cms {
			if seen[cms[i].Name] {
				continue
			}
			seen[cms[i].Name] = true
			r, err := s.decodeRequest(&cms[i])
			if err != nil {
				return nil, fmt.Errorf("listing requests: %w", err)
			}
			if opts.Includes(r.State) { // the label and the record agree
				out = append(out, r)
			}
		}
	}
	sortNewestFirst(out)
	return out, nil
}

func joinStates(states []store.State) string {
	out := make([]string, len(states))
	for i, st := range states {
		out[i] = string(st)
	}
	return strings.Join(out, ",")
}

func (s *Store) list(ctx context.Context, selector string) ([]corev1.ConfigMap, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []corev1.ConfigMap
	opts := metav1.ListOptions{LabelSelector: selector, Limit: listPage}
	for {
		l, err := s.cms().List(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Items...)
		if l.Continue == "" {
			return out, nil
		}
		opts.Continue = l.Continue
	}
}

// Record implements store.Store: one ConfigMap per event, named so that
// names sort in recording order. A zero Time is set to now.
func (s *Store) Record(ctx context.Context, e store.AuditEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now()
	if e.Time.IsZero() {
		e.Time = now
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit event: %w", err)
	}
	for {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: s.auditName(now), Namespace: s.ns, Labels: s.labels(KindAudit)},
			Data:       map[string]string{"event.json": string(b)},
		}
		_, err := s.cms().Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue // a random suffix clashed: draw again
		}
		if err != nil {
			return fmt.Errorf("recording audit event: %w", err)
		}
		return nil
	}
}

// Audit implements store.Store; n <= 0 returns every event.
func (s *Store) Audit(ctx context.Context, n int) ([]store.AuditEvent, error) {
	cms, err := s.list(ctx, s.selector(KindAudit))
	if err != nil {
		return nil, fmt.Errorf("reading audit trail: %w", err)
	}
	slices.SortFunc(cms, func(a, b corev1.ConfigMap) int { return strings.Compare(b.Name, a.Name) })
	if n > 0 && n < len(cms) {
		cms = cms[:n]
	}
	out := make([]store.AuditEvent, 0, len(cms))
	for _, cm := range cms {
		var e *store.AuditEvent
		err := json.Unmarshal([]byte(cm.Data["event.json"]), &e)
		switch {
		case err != nil:
		case e == nil:
			err = errors.New("the audit event is null")
		default:
			err = store.CheckAuditEvent(e)
		}
		if err != nil {
			return nil, fmt.Errorf("reading audit event %s: %w", cm.Name, err)
		}
		out = append(out, *e)
	}
	return out, nil
}

// Once implements store.Store.
func (s *Store) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	name := s.onceName(key)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		now := s.now()
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: s.ns, Labels: s.labels(KindOnce),
				Annotations: map[string]string{AnnotationExpires: now.Add(ttl).UTC().Format(time.RFC3339Nano)},
			},
			Data: map[string]string{"key": key},
		}
		_, err := s.cms().Create(ctx, cm, metav1.CreateOptions{})
		if err == nil {
			return true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("recording dedupe key: %w", err)
		}
		cur, err := s.cms().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("reading dedupe key: %w", err)
		}
		if !s.expired(cur, now) {
			return false, nil
		}
		// Expired: whoever deletes this version and then creates the key
		// anew is first; everyone else sees the new key.
		if err := s.deleteAt(ctx, cur); err != nil {
			return false, fmt.Errorf("removing expired dedupe key: %w", err)
		}
		backoff(ctx, attempt)
	}
}

func (s *Store) expired(cm *corev1.ConfigMap, now time.Time) bool {
	until, err := time.Parse(time.RFC3339Nano, cm.Annotations[AnnotationExpires])
	return err != nil || !now.Before(until)
}

// Pauses implements store.Store.
func (s *Store) Pauses(ctx context.Context) (map[string]store.Pause, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]store.Pause{}
	cm, err := s.cms().Get(ctx, s.pausesName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading schedule pauses: %w", err)
	}
	for env, v := range cm.Data {
		var p store.Pause
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, fmt.Errorf("reading the schedule pause of %s: %w", env, err)
		}
		out[env] = p
	}
	return out, nil
}

// SetPause implements store.Store: a compare-and-swap on the one pauses
// ConfigMap, created on first use.
func (s *Store) SetPause(ctx context.Context, env string, p *store.Pause) error {
	var val string
	if p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encoding the schedule pause of %s: %w", env, err)
		}
		val = string(b)
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		cm, err := s.cms().Get(ctx, s.pausesName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if p == nil {
				return nil
			}
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: s.pausesName(), Namespace: s.ns, Labels: s.labels(KindPauses)},
				Data:       map[string]string{env: val},
			}
			_, err = s.cms().Create(ctx, cm, metav1.CreateOptions{})
		case err != nil:
		default:
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			if p == nil {
				delete(cm.Data, env)
			} else {
				cm.Data[env] = val
			}
			_, err = s.cms().Update(ctx, cm, metav1.UpdateOptions{})
		}
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
			backoff(ctx, attempt)
		default:
			return fmt.Errorf("recording the schedule pause of %s: %w", env, err)
		}
	}
}

// requestConfigMap encodes r into a new ConfigMap, or into a copy of base
// (keeping its resourceVersion for the compare-and-swap).
func (s *Store) requestConfigMap(r *store.Request, base *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding request #%s: %w", r.ID, err)
	}
	var cm *corev1.ConfigMap
	if base != nil {
		cm = base.DeepCopy()
	} else {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.requestName(r.ID), Namespace: s.ns, Labels: s.labels(KindRequest)}}
	}
	if cm.Labels == nil {
		cm.Labels = s.labels(KindRequest)
	}
	cm.Labels[LabelState] = string(r.State)
	cm.Data = map[string]string{"request.json": string(b)}
	return cm, nil
}

// decodeRequest decodes and checks the request of cm: damage (a missing or
// `null` request.json, a request under another's name) is an error naming
// the ConfigMap, never an empty request.
func (s *Store) decodeRequest(cm *corev1.ConfigMap) (*store.Request, error) {
	var r *store.Request
	if err := json.Unmarshal([]byte(cm.Data["request.json"]), &r); err != nil {
		return nil, fmt.Errorf("decoding request from ConfigMap %s: %w", cm.Name, err)
	}
	if err := store.CheckRequest(r, ""); err != nil {
		return nil, fmt.Errorf("decoding request from ConfigMap %s: %w", cm.Name, err)
	}
	if want := s.requestName(r.ID); want != cm.Name {
		return nil, fmt.Errorf("decoding request from ConfigMap %s: it holds request #%s, whose ConfigMap is %s", cm.Name, r.ID, want)
	}
	return r, nil
}

// clone deep-copies a request through its JSON form, the form it is stored in.
func clone(r *store.Request) *store.Request {
	b, err := json.Marshal(r)
	if err != nil {
		panic("kube store: encoding request: " + err.Error()) // plain data cannot fail
	}
	var c store.Request
	if err := json.Unmarshal(b, &c); err != nil {
		panic("kube store: decoding request: " + err.Error())
	}
	return &c
}

func sortNewestFirst(rs []*store.Request) {
	slices.SortFunc(rs, func(a, b *store.Request) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func sortedLocks(locks []string) []string {
	out := slices.Clone(locks)
	slices.Sort(out)
	return slices.Compact(out)
}

// backoff waits a little, more after more attempts, with jitter so that
// racing replicas do not retry in lockstep.
func backoff(ctx context.Context, attempt int) {
	d := time.Duration(1+min(attempt, 8)) * time.Millisecond
	d += rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
