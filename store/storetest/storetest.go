package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// Concurrency is how many goroutines race in the concurrency tests.
const Concurrency = 50

// Run runs the contract suite. newStore must return a fresh, empty store on
// every call.
func Run(t *testing.T, newStore func() store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateAssignsID", testCreateAssignsID},
		{"CreateDuplicateID", testCreateDuplicateID},
		{"GetReturnsCopy", testGetReturnsCopy},
		{"UpdateBumpsVersion", testUpdateBumpsVersion},
		{"UpdateErrorChangesNothing", testUpdateErrorChangesNothing},
		{"UpdateNotFound", testUpdateNotFound},
		{"ConcurrentTransitionsOneWins", testConcurrentTransitionsOneWins},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdatesLoseNothing},
		{"BusyLocks", testBusyLocks},
		{"ConcurrentCreateSameLock", testConcurrentCreateSameLock},
		{"List", testList},
		{"AuditOrder", testAuditOrder},
		{"Once", testOnce},
		{"OnceConcurrent", testOnceConcurrent},
		{"OnceExpires", testOnceExpires},
		{"CancelledContext", testCancelledContext},
		{"Pauses", testPauses},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore()) })
	}
}

// NewRequest returns a realistic request in state st holding locks.
func NewRequest(st store.State, locks ...string) *store.Request {
	p := plan.Plan{
		Action:    plan.ActionImport,
		Env:       "prod",
		Namespace: "packit--prod",
		Targets: []plan.Target{{
			Service: "packit-worker", Stream: "packit-worker", Tag: "prod",
			From:      plan.Image{Ref: "quay.io/packit/packit-worker@sha256:aaaa", Digest: "sha256:aaaa"},
			To:        plan.Image{Ref: "quay.io/packit/packit-worker@sha256:bbbb", Digest: "sha256:bbbb"},
			Workloads: []plan.WorkloadRef{{Kind: "StatefulSet", Name: "packit-worker-long-running", Triggered: true}},
		}},
		Access: []plan.Access{{Verb: "create", Group: "image.openshift.io", Resource: "imagestreamimports", Namespace: "packit--prod"}},
		Policy: plan.Policy{Confirm: true, Approvals: 1, Expiry: time.Hour},
	}
	return &store.Request{
		ID:        store.NewID(),
		State:     st,
		Requester: store.Person{Platform: "terminal", ChatID: "alice", Name: "alice", User: "alice", Groups: []string{"packit-devs"}},
		Command:   "import prod worker",
		Channel:   "stg",
		Plan:      p,
		PlanHash:  p.Hash(),
		ExpiresAt: time.Now().Add(time.Hour).UTC(),
		Locks:     locks,
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func mustCreate(t *testing.T, s store.Store, r *store.Request) *store.Request {
	t.Helper()
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatalf("Create(#%s): %v", r.ID, err)
	}
	return r
}

func mustGet(t *testing.T, s store.Store, id string) *store.Request {
	t.Helper()
	r, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get(#%s): %v", id, err)
	}
	return r
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testCreateAndGet(t *testing.T, s store.Store) {
	r := NewRequest(store.AwaitingConfirm, "prod/packit-worker")
	before := time.Now()
	mustCreate(t, s, r)
	if r.Version != 1 {
		t.Errorf("Version after Create = %d, want 1", r.Version)
	}
	if r.CreatedAt.Before(before.Add(-time.Second)) || r.UpdatedAt.IsZero() {
		t.Errorf("timestamps not set by Create: created %v updated %v", r.CreatedAt, r.UpdatedAt)
	}
	got := mustGet(t, s, r.ID)
	if a, b := jsonOf(t, got), jsonOf(t, r); a != b {
		t.Errorf("Get returned\n%s\nwant\n%s", a, b)
	}
	if got.PlanHash != got.Plan.Hash() {
		t.Errorf("stored Plan no longer hashes to its PlanHash: the store changed the Plan")
	}
	if _, err := s.Get(ctx(t), "nosuchid00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
	}
}

func testCreateAssignsID(t *testing.T, s store.Store) {
	r := NewRequest(store.Planned)
	r.ID = ""
	mustCreate(t, s, r)
	if len(r.ID) < 6 {
		t.Fatalf("Create assigned ID %q, want at least 6 characters", r.ID)
	}
	mustGet(t, s, r.ID)
}

func testCreateDuplicateID(t *testing.T, s store.Store) {
	r := mustCreate(t, s, NewRequest(store.AwaitingConfirm))
	dup := NewRequest(store.Planned)
	dup.ID = r.ID
	if err := s.Create(ctx(t), dup); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create(same ID) error = %v, want ErrExists", err)
	}
	if got := mustGet(t, s, r.ID); got.State != store.AwaitingConfirm {
		t.Errorf("duplicate Create overwrote the request: state %s", got.State)
	}
}

func testGetReturnsCopy(t *testing.T, s store.Store) {
	r := mustCreate(t, s, NewRequest(store.AwaitingApproval))
	got := mustGet(t, s, r.ID)
	got.State = store.Succeeded
	got.Plan.Targets[0].To.Digest = "sha256:evil"
	r.Approvals = append(r.Approvals, store.Approval{By: store.Person{User: "mallory"}})
	again := mustGet(t, s, r.ID)
	if again.State != store.AwaitingApproval || again.Plan.Targets[0].To.Digest != "sha256:bbbb" || len(again.Approvals) != 0 {
		t.Errorf("changing returned requests changed the store: %+v", again)
	}
}

func testUpdateBumpsVersion(t *testing.T, s store.Store) {
	r := mustCreate(t, s, NewRequest(store.AwaitingConfirm))
	got, err := s.Update(ctx(t), r.ID, func(r *store.Request) error {
		return store.Transition(r, store.AwaitingApproval)
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.Version != 2 || got.State != store.AwaitingApproval {
		t.Errorf("Update returned version %d state %s, want 2 AwaitingApproval", got.Version, got.State)
	}
	stored := mustGet(t, s, r.ID)
	if stored.Version != 2 || stored.State != store.AwaitingApproval {
		t.Errorf("stored version %d state %s, want 2 AwaitingApproval", stored.Version, stored.State)
	}
	if stored.UpdatedAt.Before(stored.CreatedAt) {
		t.Errorf("UpdatedAt %v before CreatedAt %v", stored.UpdatedAt, stored.CreatedAt)
	}
	// A timestamp fn sets from its own clock is kept.
	stamp := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	got, err = s.Update(ctx(t), r.ID, func(r *store.Request) error { r.UpdatedAt = stamp; return nil })
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if stored := mustGet(t, s, r.ID); !got.UpdatedAt.Equal(stamp) || !stored.UpdatedAt.Equal(stamp) {
		t.Errorf("UpdatedAt set by fn = %v, returned %v, stored %v", stamp, got.UpdatedAt, stored.UpdatedAt)
	}
	// fn cannot forge the ID or the version.
	got, err = s.Update(ctx(t), r.ID, func(r *store.Request) error {
		r.ID, r.Version = "other", 100
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.ID != r.ID || got.Version != 4 {
		t.Errorf("Update let fn set ID %q version %d, want %q 4", got.ID, got.Version, r.ID)
	}
}

func testUpdateErrorChangesNothing(t *testing.T, s store.Store) {
	r := mustCreate(t, s, NewRequest(store.AwaitingConfirm))
	refuse := errors.New("refused")
	_, err := s.Update(ctx(t), r.ID, func(r *store.Request) error {
		r.State = store.Approved
		return refuse
	})
	if err != refuse {
		t.Errorf("Update error = %v, want fn's error as is", err)
	}
	got := mustGet(t, s, r.ID)
	if got.State != store.AwaitingConfirm || got.Version != 1 {
		t.Errorf("after a failed Update: state %s version %d, want AwaitingConfirm 1", got.State, got.Version)
	}
}

func testUpdateNotFound(t *testing.T, s store.Store) {
	called := false
	_, err := s.Update(ctx(t), "nosuchid00", func(*store.Request) error { called = true; return nil })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update(unknown) error = %v, want ErrNotFound", err)
	}
	if called {
		t.Errorf("Update(unknown) called fn")
	}
}

// race runs fn in Concurrency goroutines released at once and returns their errors.
func race(fn func(i int) error) []error {
	errs := make([]error, Concurrency)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range Concurrency {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func testConcurrentTransitionsOneWins(t *testing.T, s store.Store) {
	r := mustCreate(t, s, NewRequest(store.Approved, "prod/packit-worker"))
	errs := race(func(int) error {
		_, err := s.Update(context.Background(), r.ID, func(r *store.Request) error {
			return store.Transition(r, store.Executing)
		})
		return err
	})
	wins := 0
	for _, err := range errs {
		var te *store.TransitionError
		switch {
		case err == nil:
			wins++
		case errors.As(err, &te):
			if te.From != store.Executing {
				t.Errorf("loser saw state %s, want Executing", te.From)
			}
		default:
			t.Errorf("Update: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d racing Approved→Executing transitions won, want exactly 1", wins, Concurrency)
	}
	got := mustGet(t, s, r.ID)
	if got.State != store.Executing || got.Version != 2 {
		t.Errorf("final state %s version %d, want Executing 2", got.State, got.Version)
	}
}

func testConcurrentUpdatesLoseNothing(t *testing.T, s store.Store) {
	r := mustCreate(t, s, NewRequest(store.AwaitingApproval))
	errs := race(func(i int) error {
		_, err := s.Update(context.Background(), r.ID, func(r *store.Request) error {
			r.Approvals = append(r.Approvals, store.Approval{By: store.Person{User: fmt.Sprintf("u%02d", i)}, PlanHash: r.PlanHash})
			return nil
		})
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	got := mustGet(t, s, r.ID)
	var users []string
	for _, a := range got.Approvals {
		users = append(users, a.By.User)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	if len(got.Approvals) != Concurrency || len(users) != Concurrency || got.Version != Concurrency+1 {
		t.Errorf("after %d concurrent appends: %d approvals (%d distinct), version %d; want %d, %d, %d",
			Concurrency, len(got.Approvals), len(users), got.Version, Concurrency, Concurrency, Concurrency+1)
	}
}

func testBusyLocks(t *testing.T, s store.Store) {
	a := mustCreate(t, s, NewRequest(store.AwaitingApproval, "prod/packit-service", "prod/packit-worker"))
	tests := []struct {
		name     string
		locks    []string
		wantBusy string // the lock reported busy, "" for success
	}{
		{"same lock", []string{"prod/packit-worker"}, "prod/packit-worker"},
		{"one of several", []string{"prod/tokman", "prod/packit-service"}, "prod/packit-service"},
		{"same service other env", []string{"stg/packit-worker"}, ""},
		{"no locks", nil, ""},
	}
	for _, tt := range tests {
		b := NewRequest(store.Planned, tt.locks...)
		err := s.Create(ctx(t), b)
		var be *store.BusyError
		switch {
		case tt.wantBusy == "" && err != nil:
			t.Errorf("%s: Create: %v", tt.name, err)
		case tt.wantBusy != "" && !errors.As(err, &be):
			t.Errorf("%s: Create error = %v, want *BusyError", tt.name, err)
		case tt.wantBusy != "" && (be.Lock != tt.wantBusy || be.ID != a.ID):
			t.Errorf("%s: busy with %s on #%s, want %s on #%s", tt.name, be.Lock, be.ID, tt.wantBusy, a.ID)
		}
		if tt.wantBusy != "" {
			if _, err := s.Get(ctx(t), b.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: a busy Create stored the request", tt.name)
			}
		}
	}
	// A terminal request releases its locks.
	if _, err := s.Update(ctx(t), a.ID, func(r *store.Request) error { return store.Transition(r, store.Cancelled) }); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, NewRequest(store.Planned, "prod/packit-worker"))
}

func testConcurrentCreateSameLock(t *testing.T, s store.Store) {
	errs := race(func(int) error {
		return s.Create(context.Background(), NewRequest(store.Planned, "prod/packit-worker"))
	})
	ok := 0
	for _, err := range errs {
		var be *store.BusyError
		switch {
		case err == nil:
			ok++
		case !errors.As(err, &be):
			t.Errorf("Create: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d creates holding the same lock succeeded, want 1", ok, Concurrency)
	}
}

func testList(t *testing.T, s store.Store) {
	// Recent, so no backend's retention of finished requests drops them.
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	states := []store.State{store.Succeeded, store.AwaitingApproval, store.AwaitingConfirm, store.AwaitingApproval}
	var ids []string // oldest first
	for i, st := range states {
		r := NewRequest(st)
		r.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		mustCreate(t, s, r)
		ids = append(ids, r.ID)
	}
	tests := []struct {
		name   string
		states []store.State
		want   []string
	}{
		{"all, newest first", nil, []string{ids[3], ids[2], ids[1], ids[0]}},
		{"one state", []store.State{store.AwaitingApproval}, []string{ids[3], ids[1]}},
		{"two states", []store.State{store.Succeeded, store.AwaitingConfirm}, []string{ids[2], ids[0]}},
		{"no match", []store.State{store.Executing}, nil},
	}
	for _, tt := range tests {
		rs, err := s.List(ctx(t), store.ListOptions{States: tt.states})
		if err != nil {
			t.Fatalf("%s: List: %v", tt.name, err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: List = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func testAuditOrder(t *testing.T, s store.Store) {
	at := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	for i := range 5 {
		e := store.AuditEvent{RequestID: "r", Actor: "alice", Action: fmt.Sprintf("a%d", i), From: store.Approved, To: store.Executing, Env: "prod", PlanHash: "h"}
		if i != 2 {
			e.Time = at.Add(time.Duration(i) * time.Second)
		}
		if err := s.Record(ctx(t), e); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	tests := []struct {
		n    int
		want []string
	}{
		{3, []string{"a4", "a3", "a2"}},
		{1, []string{"a4"}},
		{10, []string{"a4", "a3", "a2", "a1", "a0"}},
		{0, []string{"a4", "a3", "a2", "a1", "a0"}},
	}
	for _, tt := range tests {
		evs, err := s.Audit(ctx(t), tt.n)
		if err != nil {
			t.Fatalf("Audit(%d): %v", tt.n, err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Action)
			if e.Time.IsZero() {
				t.Errorf("event %s has no time; Record must set it", e.Action)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Audit(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	evs, _ := s.Audit(ctx(t), 1)
	want := store.AuditEvent{Time: at.Add(4 * time.Second), RequestID: "r", Actor: "alice", Action: "a4", From: store.Approved, To: store.Executing, Env: "prod", PlanHash: "h"}
	if len(evs) != 1 || !evs[0].Time.Equal(want.Time) || jsonOf(t, evs[0]) != jsonOf(t, want) {
		t.Errorf("Audit(1) = %+v, want %+v", evs, want)
	}
}

func testOnce(t *testing.T, s store.Store) {
	tests := []struct {
		key  string
		want bool
	}{
		{"slack/retry-1", true},
		{"slack/retry-1", false},
		{"slack/retry-2", true},
		{"slack/retry-1", false},
	}
	for i, tt := range tests {
		got, err := s.Once(ctx(t), tt.key, time.Hour)
		if err != nil {
			t.Fatalf("Once: %v", err)
		}
		if got != tt.want {
			t.Errorf("call %d: Once(%q) = %v, want %v", i, tt.key, got, tt.want)
		}
	}
}

func testOnceConcurrent(t *testing.T, s store.Store) {
	var mu sync.Mutex
	firsts := 0
	errs := race(func(int) error {
		first, err := s.Once(context.Background(), "button/abc", time.Hour)
		if first {
			mu.Lock()
			firsts++
			mu.Unlock()
		}
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Once: %v", err)
		}
	}
	if firsts != 1 {
		t.Errorf("%d of %d concurrent Once calls saw the key first, want 1", firsts, Concurrency)
	}
}

func testOnceExpires(t *testing.T, s store.Store) {
	const ttl = 20 * time.Millisecond
	if first, err := s.Once(ctx(t), "k", ttl); err != nil || !first {
		t.Fatalf("Once(k) = %v, %v; want true", first, err)
	}
	// Poll until the key has expired; each false answer must not extend it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		first, err := s.Once(ctx(t), "k", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if first {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Once(k) still false 5s after a %v ttl", ttl)
		}
		time.Sleep(ttl / 4)
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	r := NewRequest(store.Planned)
	if err := s.Create(c, r); !errors.Is(err, context.Canceled) {
		t.Errorf("Create(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := s.Get(ctx(t), r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Create with a cancelled context stored the request (Get error %v)", err)
	}
}

// testPauses: a schedule pause is stored per environment and removed by resume.
func testPauses(t *testing.T, s store.Store) {
	ctx := context.Background()
	until := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if err := s.SetPause(ctx, "prod", &store.Pause{By: "alice", At: until.Add(-time.Hour), Until: until}); err != nil {
		t.Fatalf("SetPause: %v", err)
	}
	if err := s.SetPause(ctx, "stg", &store.Pause{By: "bob"}); err != nil {
		t.Fatalf("SetPause: %v", err)
	}
	got, err := s.Pauses(ctx)
	if err != nil {
		t.Fatalf("Pauses: %v", err)
	}
	if len(got) != 2 || got["prod"].By != "alice" || !got["prod"].Until.Equal(until) || got["stg"].By != "bob" {
		t.Fatalf("Pauses = %+v, want prod by alice until %s and stg by bob", got, until)
	}
	if got["prod"].Active(until) || !got["prod"].Active(until.Add(-time.Minute)) || !got["stg"].Active(until) {
		t.Errorf("Active: a pause holds before Until and forever without one")
	}
	if err := s.SetPause(ctx, "prod", nil); err != nil {
		t.Fatalf("resume: %v", err)
	}
	got, err = s.Pauses(ctx)
	if err != nil {
		t.Fatalf("Pauses: %v", err)
	}
	if _, ok := got["prod"]; ok || len(got) != 1 {
		t.Errorf("after resume Pauses = %+v, want only stg", got)
	}
}
