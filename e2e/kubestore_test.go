package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/deploybot/deploybot/internal/controlplane"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/kube"
	"github.com/deploybot/deploybot/store/storetest"
)

// storeRole is every permission the kubernetes store and the leader election
// need in the bot's namespace, and nothing else: the tests run as the
// deploybot user holding only this, so they prove it is enough.
func storeRole(ns string) rbacv1.Role {
	return rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "deploybot-state", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		},
	}
}

// stateNamespace creates a namespace where the deploybot user holds storeRole.
func stateNamespace(ctx context.Context, t *testing.T, cp *controlplane.ControlPlane, ns string) {
	t.Helper()
	createNamespaces(ctx, t, cp, ns)
	applyRBAC(ctx, t, clientFor(t, cp.AdminConfig()), rbacObjects{
		roles:        []rbacv1.Role{storeRole(ns)},
		roleBindings: []rbacv1.RoleBinding{roleBinding(ns, "deploybot-state", "deploybot-state", userSubject("deploybot"))},
	})
	// The authorizer sees new bindings through its informers: wait until the
	// last rule of the role is in force.
	bot := clientFor(t, cp.UserConfig("deploybot"))
	waitFor(ctx, t, "deploybot's state role in force in "+ns, func() (bool, string) {
		review, err := bot.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: "update", Group: "coordination.k8s.io", Resource: "leases"}},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err.Error()
		}
		return review.Status.Allowed, review.Status.Reason
	})
}

// botClient is a client as the deploybot user, with client-side rate limits
// high enough that the API server, not the client, is what is measured.
func botClient(t *testing.T, cp *controlplane.ControlPlane) kubeclient.Interface {
	t.Helper()
	return botClientFor(t, fast(cp.UserConfig("deploybot")))
}

func fast(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 5000, 10000
	return cfg
}

func newKubeStore(t *testing.T, cs kubeclient.Interface, ns string, opts ...kube.Option) *kube.Store {
	t.Helper()
	s, err := kube.New(cs, ns, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKubeStoreContract runs the store contract suite on ConfigMaps of the
// real API server, as the deploybot user with only storeRole.
func TestKubeStoreContract(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, 3*time.Minute)
	const ns = "deploybot-contract"
	stateNamespace(ctx, t, cp, ns)
	cs := botClient(t, cp)
	var n atomic.Int32
	storetest.Run(t, func() store.Store {
		// A fresh instance per case: an empty store in the same namespace.
		return newKubeStore(t, cs, ns, kube.WithInstance(fmt.Sprintf("contract-%d", n.Add(1))))
	})
}

// TestKubeStoreContractTwoReplicas runs the suite with every call going to
// the next of two Stores with their own clients: two replicas are one store.
func TestKubeStoreContractTwoReplicas(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, 3*time.Minute)
	const ns = "deploybot-contract-two"
	stateNamespace(ctx, t, cp, ns)
	a, b := botClient(t, cp), botClient(t, cp)
	var n atomic.Int32
	storetest.Run(t, func() store.Store {
		inst := kube.WithInstance(fmt.Sprintf("two-%d", n.Add(1)))
		return storetest.Alternate(newKubeStore(t, a, ns, inst), newKubeStore(t, b, ns, inst))
	})
}

func TestKubeStoreObjects(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, time.Minute)
	const ns = "deploybot-objects"
	stateNamespace(ctx, t, cp, ns)
	cs := botClient(t, cp)
	s := newKubeStore(t, cs, ns)
	r := storetest.NewRequest(store.Approved, "prod/packit-worker")
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	byState := func(st store.State) []string {
		l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "deploybot.dev/kind=request,deploybot.dev/state=" + string(st)})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, cm := range l.Items {
			names = append(names, cm.Name)
		}
		return names
	}
	lockExists := func() bool {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, s.LockName("prod/packit-worker"), metav1.GetOptions{})
		return err == nil
	}
	steps := []struct {
		to       store.State
		wantLock bool
	}{
		{store.Executing, true},
		{store.Succeeded, false},
	}
	if got := byState(store.Approved); !slices.Equal(got, []string{s.RequestName(r.ID)}) || !lockExists() {
		t.Fatalf("after Create: Approved requests %v, lock %v; want [%s] and the lock", got, lockExists(), s.RequestName(r.ID))
	}
	for _, st := range steps {
		if _, err := s.Update(ctx, r.ID, func(r *store.Request) error { return store.Transition(r, st.to) }); err != nil {
			t.Fatal(err)
		}
		if got := byState(st.to); !slices.Equal(got, []string{s.RequestName(r.ID)}) {
			t.Errorf("requests labelled %s: %v, want [%s]", st.to, got, s.RequestName(r.ID))
		}
		if got := lockExists(); got != st.wantLock {
			t.Errorf("in %s the lock exists = %v, want %v", st.to, got, st.wantLock)
		}
	}
}

// pendingRequest writes the ConfigMap of a request that is still taking its
// locks, as a creator that died between its steps leaves it.
func pendingRequest(ctx context.Context, t *testing.T, cs kubeclient.Interface, s *kube.Store, id string, since time.Time) {
	t.Helper()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: s.RequestName(id), Namespace: s.Namespace(),
			Labels: map[string]string{kube.LabelInstance: s.Instance(), kube.LabelKind: kube.KindRequest, kube.LabelPending: "true",
				kube.LabelState: string(store.Planned), kube.LabelManagedBy: "deploybot"},
			Annotations: map[string]string{kube.AnnotationPendingSince: since.UTC().Format(time.RFC3339Nano)}},
		Data: map[string]string{"request.json": fmt.Sprintf(`{"id":%q,"state":"Planned","locks":["prod/packit-worker"]}`, id)},
	}
	if _, err := cs.CoreV1().ConfigMaps(s.Namespace()).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// lockFor writes the lock ConfigMap of key naming holder.
func lockFor(ctx context.Context, t *testing.T, cs kubeclient.Interface, s *kube.Store, key, holder string) {
	t.Helper()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: s.LockName(key), Namespace: s.Namespace(),
			Labels: map[string]string{kube.LabelInstance: s.Instance(), kube.LabelKind: kube.KindLock, kube.LabelManagedBy: "deploybot"}},
		Data: map[string]string{"lock": key, "request": holder},
	}
	if _, err := cs.CoreV1().ConfigMaps(s.Namespace()).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKubeStoreStaleLocks: a lock left by a request that is gone, finished
// or abandoned half-created is taken over; one held by a live request, even
// one still being created, is busy.
func TestKubeStoreStaleLocks(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, time.Minute)
	const ns = "deploybot-stale-locks"
	stateNamespace(ctx, t, cp, ns)
	cs := botClient(t, cp)
	const key = "prod/packit-worker"
	tests := []struct {
		name     string
		setup    func(s *kube.Store) (holder string)
		wantBusy bool
	}{
		{name: "holder gone", setup: func(s *kube.Store) string {
			lockFor(ctx, t, cs, s, key, "ghost00000")
			return "ghost00000"
		}},
		{name: "holder finished", setup: func(s *kube.Store) string {
			done := storetest.NewRequest(store.Succeeded)
			if err := s.Create(ctx, done); err != nil {
				t.Fatal(err)
			}
			lockFor(ctx, t, cs, s, key, done.ID)
			return done.ID
		}},
		{name: "holder being created", wantBusy: true, setup: func(s *kube.Store) string {
			pendingRequest(ctx, t, cs, s, "creating00", time.Now())
			lockFor(ctx, t, cs, s, key, "creating00")
			return "creating00"
		}},
		{name: "holder abandoned half-created", setup: func(s *kube.Store) string {
			pendingRequest(ctx, t, cs, s, "abandoned0", time.Now().Add(-10*time.Minute))
			lockFor(ctx, t, cs, s, key, "abandoned0")
			return "abandoned0"
		}},
		{name: "holder open", wantBusy: true, setup: func(s *kube.Store) string {
			open := storetest.NewRequest(store.AwaitingApproval, key)
			if err := s.Create(ctx, open); err != nil {
				t.Fatal(err)
			}
			return open.ID
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newKubeStore(t, cs, ns, kube.WithInstance(fmt.Sprintf("stale-%d", i)))
			holder := tt.setup(s)
			r := storetest.NewRequest(store.Planned, key)
			err := s.Create(ctx, r)
			var busy *store.BusyError
			switch {
			case tt.wantBusy && (!errors.As(err, &busy) || busy.ID != holder):
				t.Fatalf("Create = %v, want busy with #%s", err, holder)
			case tt.wantBusy:
				if _, err := s.Get(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("a refused Create left its request behind (Get: %v)", err)
				}
			case err != nil:
				t.Fatalf("Create = %v, want the stale lock of #%s taken over", err, holder)
			default:
				lock, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, s.LockName(key), metav1.GetOptions{})
				if err != nil || lock.Data["request"] != r.ID {
					t.Errorf("lock after take-over: %v %v, want it naming #%s", lock.Data, err, r.ID)
				}
				if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, s.RequestName("abandoned0"), metav1.GetOptions{}); err == nil {
					t.Errorf("the abandoned half-created request is still there: its creator could still commit it")
				}
			}
		})
	}
}

// TestKubeStorePrune: retention by age and count for finished requests and
// audit events; expired dedupe keys, abandoned half-created requests and
// stale locks go too; open requests and live locks never do.
func TestKubeStorePrune(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, time.Minute)
	const ns = "deploybot-prune"
	stateNamespace(ctx, t, cp, ns)
	cs := botClient(t, cp)
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newKubeStore(t, cs, ns, kube.WithClock(clock), kube.WithRetention(24*time.Hour), kube.WithMaxRequests(2), kube.WithMaxAuditEvents(3))

	create := func(st store.State, age time.Duration, locks ...string) string {
		r := storetest.NewRequest(st, locks...)
		r.CreatedAt = now.Add(-age)
		r.UpdatedAt = now.Add(-age)
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	keep := []string{
		create(store.Succeeded, time.Hour),
		create(store.Failed, 2*time.Hour),
		create(store.AwaitingApproval, 72*time.Hour, "prod/tokman"), // open: never pruned, however old
	}
	drop := []string{
		create(store.Cancelled, 3*time.Hour), // third newest finished: beyond the count
		create(store.Expired, 48*time.Hour),  // past the age
	}
	for i := range 5 {
		if err := s.Record(ctx, store.AuditEvent{Action: fmt.Sprintf("a%d", i), Actor: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	if first, err := s.Once(ctx, "slack/event-1", time.Hour); err != nil || !first {
		t.Fatalf("Once: %v %v", first, err)
	}
	if first, err := s.Once(ctx, "slack/event-2", 3*time.Hour); err != nil || !first {
		t.Fatalf("Once: %v %v", first, err)
	}
	lockFor(ctx, t, cs, s, "prod/packit-service", "ghost00000")
	pendingRequest(ctx, t, cs, s, "abandoned0", now.Add(-time.Hour))
	inbox := []store.InboxEvent{
		{Key: "slack/done-expiring", Received: now, TTL: time.Hour},                 // done, expired by then: pruned
		{Key: "slack/done-live", Received: now, TTL: 3 * time.Hour},                 // done, still a dedupe key
		{Key: "slack/not-done", Received: now.Add(-48 * time.Hour), TTL: time.Hour}, // never pruned while not done
	}
	if _, err := s.Enqueue(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"slack/done-expiring", "slack/done-live"} {
		if err := s.InboxDone(ctx, k, "replied"); err != nil {
			t.Fatal(err)
		}
	}

	mu.Lock()
	now = now.Add(2 * time.Hour) // event-1 has expired, event-2 not
	mu.Unlock()
	// The finished requests' age counts from their UpdatedAt, set above.
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := kube.PruneReport{Requests: 2, Pending: 1, Audit: 2, Once: 1, Locks: 1, Inbox: 1}
	if rep != want {
		t.Errorf("Prune = %+v, want %+v", rep, want)
	}
	for _, id := range keep {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("pruned #%s: %v", id, err)
		}
	}
	for _, id := range drop {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("kept #%s (Get: %v)", id, err)
		}
	}
	events, err := s.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []string{"a4", "a3", "a2"}) {
		t.Errorf("audit after pruning = %v, want the newest three", actions)
	}
	if first, _ := s.Once(ctx, "slack/event-2", 3*time.Hour); first {
		t.Errorf("a live dedupe key was pruned")
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, s.LockName("prod/tokman"), metav1.GetOptions{}); err != nil {
		t.Errorf("the open request's lock was pruned: %v", err)
	}
	if fresh, err := s.Enqueue(ctx, inbox); err != nil || !slices.Equal(fresh, []bool{true, false, false}) {
		t.Errorf("Enqueue after pruning = %v, %v; want only the expired done key free again", fresh, err)
	}
	if pending, err := s.Inbox(ctx); err != nil || len(pending) != 2 || pending[0].Key != "slack/not-done" {
		t.Errorf("Inbox after pruning = %+v, %v; want the old event not done, then the re-enqueued one", pending, err)
	}
	if rep, err := s.Prune(ctx); err != nil || rep.Total() != 0 {
		t.Errorf("second Prune = %+v, %v; want nothing left to prune", rep, err)
	}
}

// TestKubeStoreRefusesDamage: a request or audit ConfigMap that does not
// hold what the store writes is an error naming it, not an empty request
// or a shorter trail.
func TestKubeStoreRefusesDamage(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, time.Minute)
	const ns = "deploybot-damage"
	stateNamespace(ctx, t, cp, ns)
	cs := botClient(t, cp)
	tests := []struct {
		name, kind, data, file string
		read                   func(s *kube.Store) error
	}{
		{"request null", kube.KindRequest, "null", "request.json", func(s *kube.Store) error {
			_, err := s.List(ctx, store.ListOptions{States: []store.State{store.AwaitingApproval}})
			return err
		}},
		{"request without an ID", kube.KindRequest, "{}", "request.json", func(s *kube.Store) error {
			_, err := s.List(ctx, store.ListOptions{})
			return err
		}},
		{"audit event garbage", kube.KindAudit, "{", "event.json", func(s *kube.Store) error {
			_, err := s.Audit(ctx, 10)
			return err
		}},
		{"audit event without time", kube.KindAudit, `{"action":"x"}`, "event.json", func(s *kube.Store) error {
			_, err := s.Audit(ctx, 10)
			return err
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newKubeStore(t, cs, ns, kube.WithInstance(fmt.Sprintf("damage-%d", i)))
			name := fmt.Sprintf("damage-%d-%s-x", i, tt.kind)
			cm := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
					kube.LabelInstance: s.Instance(), kube.LabelKind: tt.kind, kube.LabelManagedBy: "deploybot"}},
				Data: map[string]string{tt.file: tt.data},
			}
			if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := tt.read(s); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("read = %v, want an error naming the ConfigMap %s", err, name)
			}
		})
	}
}

// cuttable is a transport that fails every request once cut, as a network
// partition or a frozen process looks to the API server.
type cuttable struct {
	base http.RoundTripper
	cut  atomic.Bool
}

func (c *cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("cut off")
	}
	return c.base.RoundTrip(r)
}

// TestKubeLeaderElection: of three replicas exactly one leads at any time;
// one that stops hands over at once, one that is cut off loses the lead
// before another takes it, so duties never overlap.
func TestKubeLeaderElection(t *testing.T) {
	cp := controlPlane(t)
	ctx := testContext(t, time.Minute)
	const ns = "deploybot-leader"
	stateNamespace(ctx, t, cp, ns)

	var mu sync.Mutex
	leading := map[string]bool{}
	overlaps := 0
	type replica struct {
		name   string
		cut    *cuttable
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(name string) *replica {
		r := &replica{name: name, cut: &cuttable{}, done: make(chan struct{})}
		cfg := fast(cp.UserConfig("deploybot"))
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { r.cut.base = rt; return r.cut }
		s := newKubeStore(t, botClientFor(t, cfg), ns)
		rctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		go func() {
			defer close(r.done)
			err := s.Lead(rctx, kube.Election{Identity: name, LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond},
				func(dctx context.Context) {
					mu.Lock()
					leading[name] = true
					if len(leading) > 1 {
						overlaps++
					}
					mu.Unlock()
					<-dctx.Done()
					mu.Lock()
					delete(leading, name)
					mu.Unlock()
				})
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
		return r
	}
	replicas := map[string]*replica{}
	for _, name := range []string{"r1", "r2", "r3"} {
		replicas[name] = start(name)
	}
	leader := func(not string) string {
		var got string
		waitFor(ctx, t, "a leader other than "+not, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for n := range leading {
				got = n
			}
			return len(leading) == 1 && got != not, fmt.Sprintf("leading: %v", leading)
		})
		return got
	}
	first := leader("")
	lease, err := clientFor(t, cp.AdminConfig()).CoordinationV1().Leases(ns).Get(ctx, "deploybot-leader", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != first {
		t.Fatalf("Lease = %+v, %v; want held by %s", leaseHolder(lease), err, first)
	}

	// A clean stop hands over within a retry period or so.
	began := time.Now()
	replicas[first].cancel()
	<-replicas[first].done
	second := leader(first)
	t.Logf("stopped leader %s: %s took over in %v", first, second, time.Since(began).Round(time.Millisecond))

	// Cut off, the leader stops its duties after the renew deadline; the
	// others take over once the lease has run out.
	began = time.Now()
	replicas[second].cut.cut.Store(true)
	third := leader(second)
	t.Logf("cut-off leader %s: %s took over in %v", second, third, time.Since(began).Round(time.Millisecond))
	replicas[second].cancel()
	replicas[third].cancel()
	<-replicas[second].done
	<-replicas[third].done
	mu.Lock()
	defer mu.Unlock()
	if overlaps > 0 {
		t.Errorf("two replicas ran the duties at once %d times", overlaps)
	}
}

func leaseHolder(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return "(none)"
	}
	return *l.Spec.HolderIdentity
}
