package storetest

import (
	"bytes"
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
		{"ListUnknownState", testListUnknownState},
		{"InboxEnqueue", testInboxEnqueue},
		{"InboxOrder", testInboxOrder},
		{"InboxDone", testInboxDone},
		{"InboxKeyOutlivesTTLUntilDone", testInboxKeyOutlivesTTLUntilDone},
		{"InboxConcurrent", testInboxConcurrent},
		{"InboxRefusesInvalid", testInboxRefusesInvalid},
		{"InboxApartFromOnce", testInboxApartFromOnce},
		{"ImagesFirstRecord", testImagesFirstRecord},
		{"ImagesReRecord", testImagesReRecord},
		{"ImagesOrder", testImagesOrder},
		{"ImagesTrim", testImagesTrim},
		{"ImagesSeparate", testImagesSeparate},
		{"ImagesRefuseInvalid", testImagesRefuseInvalid},
		{"ImagesConcurrent", testImagesConcurrent},
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

// testListUnknownState: a request in a state this deploybot does not know
// is listed under every filter, never hidden from `pending`.
func testListUnknownState(t *testing.T, s store.Store) {
	odd := mustCreate(t, s, NewRequest(store.State("Paused")))
	known := mustCreate(t, s, NewRequest(store.AwaitingApproval))
	tests := []struct {
		name   string
		states []store.State
		want   []string
	}{
		{"all", nil, []string{odd.ID, known.ID}},
		{"pending", []store.State{store.AwaitingConfirm, store.AwaitingApproval, store.Approved, store.Executing}, []string{odd.ID, known.ID}},
		{"other states", []store.State{store.Succeeded}, []string{odd.ID}},
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
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tt.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: List = %v, want %v (the request in state Paused must not be hidden)", tt.name, got, want)
		}
	}
	if got := mustGet(t, s, odd.ID); got.State != "Paused" {
		t.Errorf("Get = state %q, want the unknown state as stored", got.State)
	}
}

// inboxEvent is an inbound event received at, kept ttl once done.
func inboxEvent(key string, at time.Time, ttl time.Duration) store.InboxEvent {
	return store.InboxEvent{Key: key, Platform: "slack", Received: at, TTL: ttl,
		Payload: []byte("token=x&command=%2Fdeploy&text=help\x00\xff" + key)}
}

func mustEnqueue(t *testing.T, s store.Store, events ...store.InboxEvent) []bool {
	t.Helper()
	fresh, err := s.Enqueue(ctx(t), events)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if len(fresh) != len(events) {
		t.Fatalf("Enqueue of %d events answered for %d", len(events), len(fresh))
	}
	return fresh
}

func inboxKeys(t *testing.T, s store.Store) []string {
	t.Helper()
	evs, err := s.Inbox(ctx(t))
	if err != nil {
		t.Fatalf("Inbox: %v", err)
	}
	var keys []string
	for _, e := range evs {
		keys = append(keys, e.Key)
	}
	return keys
}

// testInboxEnqueue: a batch is stored with each event's dedupe key; a key
// already kept, in an earlier batch or earlier in the same one, is a
// duplicate and not stored again; events come back as they went in.
func testInboxEnqueue(t *testing.T, s store.Store) {
	if evs, err := s.Inbox(ctx(t)); err != nil || len(evs) != 0 {
		t.Fatalf("Inbox of an empty store = %v, %v; want none", evs, err)
	}
	if fresh, err := s.Enqueue(ctx(t), nil); err != nil || len(fresh) != 0 {
		t.Errorf("Enqueue(nil) = %v, %v; want nothing", fresh, err)
	}
	at := time.Now().UTC().Add(-time.Minute)
	a, b := inboxEvent("slack/a", at, time.Hour), inboxEvent("slack/b", at.Add(time.Second), time.Hour)
	a.Payload = []byte{0, 0xff, '\n', 'a'}
	if got := mustEnqueue(t, s, a, b, inboxEvent("slack/a", at, time.Hour)); !slices.Equal(got, []bool{true, true, false}) {
		t.Errorf("Enqueue(a, b, a) = %v, want [true true false]", got)
	}
	if got := mustEnqueue(t, s, inboxEvent("slack/b", at, time.Hour), inboxEvent("slack/c", at.Add(2*time.Second), time.Hour)); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("Enqueue(b, c) = %v, want [false true]", got)
	}
	evs, err := s.Inbox(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("Inbox = %d events, want 3: %+v", len(evs), evs)
	}
	for i, want := range []store.InboxEvent{a, b, inboxEvent("slack/c", at.Add(2*time.Second), time.Hour)} {
		got := evs[i]
		if got.Key != want.Key || got.Platform != want.Platform || !got.Received.Equal(want.Received) || got.TTL != want.TTL || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("Inbox[%d] = %+v, want %+v", i, got, want)
		}
	}
	// A zero Received is set to now.
	z := inboxEvent("slack/z", time.Time{}, time.Hour)
	before := time.Now()
	mustEnqueue(t, s, z)
	evs, _ = s.Inbox(ctx(t))
	if last := evs[len(evs)-1]; last.Key != "slack/z" || last.Received.Before(before.Add(-time.Second)) {
		t.Errorf("event with no Received came back as %+v, want it last with Received set to now", last)
	}
}

// testInboxOrder: oldest Received first, ties in enqueueing order.
func testInboxOrder(t *testing.T, s store.Store) {
	at := time.Now().UTC().Add(-time.Hour)
	mustEnqueue(t, s, inboxEvent("k2", at.Add(2*time.Second), time.Hour), inboxEvent("k0", at, time.Hour), inboxEvent("k1a", at.Add(time.Second), time.Hour))
	mustEnqueue(t, s, inboxEvent("k1b", at.Add(time.Second), time.Hour), inboxEvent("k1c", at.Add(time.Second), time.Hour))
	if got, want := inboxKeys(t, s), []string{"k0", "k1a", "k1b", "k1c", "k2"}; !slices.Equal(got, want) {
		t.Errorf("Inbox = %v, want %v", got, want)
	}
}

// testInboxDone: a done event leaves the inbox but its key stays a dedupe
// key within its TTL and is pruned after; marking it again changes nothing.
func testInboxDone(t *testing.T, s store.Store) {
	now := time.Now().UTC()
	mustEnqueue(t, s,
		inboxEvent("live", now, time.Hour),                      // done, key kept for an hour
		inboxEvent("old", now.Add(-time.Hour), time.Minute),     // done, key expired at once
		inboxEvent("open", now.Add(-time.Second), 24*time.Hour)) // not done
	for _, k := range []string{"live", "old"} {
		if err := s.InboxDone(ctx(t), k, "replied"); err != nil {
			t.Fatalf("InboxDone(%s): %v", k, err)
		}
	}
	if err := s.InboxDone(ctx(t), "live", "replied again"); err != nil {
		t.Errorf("InboxDone of a done event = %v, want nil", err)
	}
	if err := s.InboxDone(ctx(t), "nosuchkey", "replied"); !errors.Is(err, store.ErrNoEvent) {
		t.Errorf("InboxDone(unknown) = %v, want ErrNoEvent", err)
	}
	if got := inboxKeys(t, s); !slices.Equal(got, []string{"open"}) {
		t.Errorf("Inbox after two were done = %v, want [open]", got)
	}
	got := mustEnqueue(t, s, inboxEvent("live", now, time.Hour), inboxEvent("old", now, time.Minute))
	if !slices.Equal(got, []bool{false, true}) {
		t.Errorf("Enqueue(live, old) after both were done = %v, want [false true]: a done key is kept until its TTL, then pruned", got)
	}
	if got := inboxKeys(t, s); !slices.Equal(got, []string{"open", "old"}) {
		t.Errorf("Inbox = %v, want [open old]", got)
	}
}

// testInboxKeyOutlivesTTLUntilDone: an event not handled stays in the inbox
// and its key stays a dedupe key however old it is.
func testInboxKeyOutlivesTTLUntilDone(t *testing.T, s store.Store) {
	long := time.Now().UTC().Add(-48 * time.Hour)
	mustEnqueue(t, s, inboxEvent("stale", long, time.Hour))
	if got := mustEnqueue(t, s, inboxEvent("stale", time.Now(), time.Hour)); !slices.Equal(got, []bool{false}) {
		t.Errorf("Enqueue of a key whose event is not done yet = %v, want [false]", got)
	}
	if got := inboxKeys(t, s); !slices.Equal(got, []string{"stale"}) {
		t.Errorf("Inbox = %v, want the event received two days ago", got)
	}
}

// testInboxConcurrent: of racing Enqueues of one key exactly one is first;
// nothing of the others' batches is lost.
func testInboxConcurrent(t *testing.T, s store.Store) {
	var mu sync.Mutex
	firsts := 0
	at := time.Now().UTC()
	errs := race(func(i int) error {
		fresh, err := s.Enqueue(context.Background(), []store.InboxEvent{
			inboxEvent("shared", at, time.Hour), inboxEvent(fmt.Sprintf("own-%02d", i), at, time.Hour)})
		if err != nil {
			return err
		}
		if !fresh[1] {
			return fmt.Errorf("own key of goroutine %d reported a duplicate", i)
		}
		if fresh[0] {
			mu.Lock()
			firsts++
			mu.Unlock()
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if firsts != 1 {
		t.Errorf("%d of %d concurrent Enqueues saw the shared key first, want 1", firsts, Concurrency)
	}
	if got := inboxKeys(t, s); len(got) != Concurrency+1 {
		t.Errorf("Inbox holds %d events, want %d", len(got), Concurrency+1)
	}
}

// testInboxRefusesInvalid: a batch with an event without a key or with a
// negative TTL is refused whole; a cancelled context stores nothing.
func testInboxRefusesInvalid(t *testing.T, s store.Store) {
	at := time.Now().UTC()
	for _, bad := range []store.InboxEvent{inboxEvent("", at, time.Hour), inboxEvent("neg", at, -time.Second)} {
		if _, err := s.Enqueue(ctx(t), []store.InboxEvent{inboxEvent("good", at, time.Hour), bad}); err == nil {
			t.Errorf("Enqueue with %+v succeeded, want an error", bad)
		}
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Enqueue(c, []store.InboxEvent{inboxEvent("good", at, time.Hour)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Enqueue(cancelled ctx) = %v, want context.Canceled", err)
	}
	if got := inboxKeys(t, s); len(got) != 0 {
		t.Errorf("refused Enqueues stored %v", got)
	}
}

// testInboxApartFromOnce: the inbox's dedupe keys and Once's do not mix.
func testInboxApartFromOnce(t *testing.T, s store.Store) {
	if first, err := s.Once(ctx(t), "event/slack/1", time.Hour); err != nil || !first {
		t.Fatalf("Once = %v, %v", first, err)
	}
	if got := mustEnqueue(t, s, inboxEvent("event/slack/1", time.Now(), time.Hour)); !got[0] {
		t.Errorf("Enqueue of a key Once has seen = duplicate, want new")
	}
	if first, err := s.Once(ctx(t), "event/slack/1", time.Hour); err != nil || first {
		t.Errorf("Once after Enqueue = %v, %v; want false", first, err)
	}
}
