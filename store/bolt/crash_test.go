package bolt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/bolt"
	"github.com/deploybot/deploybot/store/storetest"
)

// crashChildEnv makes the test binary a writer of TestKillUnderLoad:
// "PATH ROUND COUNTERID".
const crashChildEnv = "DEPLOYBOT_BOLT_CRASH_CHILD"

// counterID is the request every round's writers append approvals to.
const counterID = "counter000"

// TestKillUnderLoad: a child process writing to the database from many
// goroutines (requests through their states with locks, approvals racing
// on one request, audit events, dedupe keys, inbox batches, pauses) is
// killed with SIGKILL at a random moment, 20 times. After each kill the
// database opens (bbolt's page check and Verify: every record decodes,
// every index agrees) and every invariant holds: no request is half
// written, locks belong to open requests, the audit trail is in order
// without gaps, and everything the child was told was stored is there.
func TestKillUnderLoad(t *testing.T) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		crashChild(spec)
		return
	}
	if testing.Short() {
		t.Skip("kills 20 child processes")
	}
	const rounds = 20
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	counter := storetest.NewRequest(store.AwaitingApproval)
	counter.ID, counter.Reason = counterID, "v1"
	if err := s.Create(t.Context(), counter); err != nil {
		t.Fatal(err)
	}
	s.Close()

	var total acks
	for round := 1; round <= rounds; round++ {
		a, after := killChild(t, path, round)
		total.add(a)
		began := time.Now()
		s, err := bolt.Open(path) // refuses the file unless Verify passes
		if err != nil {
			t.Fatalf("round %d: open after kill -9 at %v: %v", round, after, err)
		}
		opened := time.Since(began)
		checkInvariants(t, s, round, a)
		st, _ := os.Stat(path)
		t.Logf("round %2d: killed after %3dms having acked %4d writes (%d creates, %d approvals, %d audit, %d once, %d enqueued, %d done); reopened and verified in %v, %d KiB",
			round, after.Milliseconds(), a.count(), len(a.created), a.approvals, a.audited(), len(a.once), len(a.enqueued), len(a.done), opened.Round(time.Millisecond), st.Size()>>10)
		s.Close()
	}
	t.Logf("%d kills, %d acknowledged writes, every one found after its kill", rounds, total.count())
}

// acks is what a child said was stored.
type acks struct {
	created   []string         // request IDs
	finished  []string         // requests acked Succeeded
	approvals int              // acked appends to the counter
	maxVer    int64            // highest counter version acked
	audit     map[string][]int // actor → sequence numbers acked
	once      []string         // dedupe keys
	enqueued  []string         // inbox keys
	done      []string         // inbox keys acked done
}

func (a *acks) audited() int {
	n := 0
	for _, s := range a.audit {
		n += len(s)
	}
	return n
}

func (a *acks) count() int {
	return len(a.created) + len(a.finished) + a.approvals + a.audited() + len(a.once) + len(a.enqueued) + len(a.done)
}

func (a *acks) add(b acks) {
	a.created = append(a.created, b.created...)
	a.finished = append(a.finished, b.finished...)
	a.approvals += b.approvals
	a.once = append(a.once, b.once...)
	a.enqueued = append(a.enqueued, b.enqueued...)
	a.done = append(a.done, b.done...)
	if a.audit == nil {
		a.audit = map[string][]int{}
	}
	for k, v := range b.audit {
		a.audit[k] = append(a.audit[k], v...)
	}
}

// killChild runs one writer, kills it at a random moment and returns what
// it acknowledged.
func killChild(t *testing.T, path string, round int) (acks, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillUnderLoad$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", crashChildEnv, path, round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var a acks
	a.audit = map[string][]int{}
	var lines []string
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			if sc.Text() == "ready" {
				once.Do(func() { close(ready) })
				continue
			}
			lines = append(lines, sc.Text())
		}
		once.Do(func() { close(ready) })
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("round %d: the writer did not start", round)
	}
	// Random moments, some right at the start, most under full load.
	after := time.Duration(rand.IntN(250)) * time.Millisecond
	time.Sleep(after)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-drained
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: writer ended with %v before it was killed:\n%s", round, err, strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "create":
			a.created = append(a.created, f[1])
		case "finished":
			a.finished = append(a.finished, f[1])
		case "approve":
			a.approvals++
			v, _ := strconv.ParseInt(f[1], 10, 64)
			a.maxVer = max(a.maxVer, v)
		case "audit":
			n, _ := strconv.Atoi(f[2])
			a.audit[f[1]] = append(a.audit[f[1]], n)
		case "once":
			a.once = append(a.once, f[1])
		case "enqueued":
			a.enqueued = append(a.enqueued, f[1:]...)
		case "done":
			a.done = append(a.done, f[1])
		case "error":
			t.Fatalf("round %d: the writer failed: %s", round, l)
		}
	}
	return a, after
}

// checkInvariants checks the database after round's kill against what its
// writer acknowledged.
func checkInvariants(t *testing.T, s *bolt.Store, round int, a acks) {
	t.Helper()
	ctx := context.Background()
	fail := func(format string, args ...any) { t.Fatalf("round %d: "+format, append([]any{round}, args...)...) }

	// No request half written: every update wrote Reason and an approval
	// with the version it made, so they agree in every request.
	all, err := s.List(ctx, store.ListOptions{})
	if err != nil {
		fail("List: %v", err)
	}
	byID := map[string]*store.Request{}
	holders := map[string]string{}
	for _, r := range all {
		byID[r.ID] = r
		if r.Reason != fmt.Sprintf("v%d", r.Version) || len(r.Approvals) != int(r.Version)-1 || r.PlanHash != r.Plan.Hash() {
			fail("request #%s is half written: version %d, reason %q, %d approvals", r.ID, r.Version, r.Reason, len(r.Approvals))
		}
		if !r.State.Terminal() {
			for _, l := range r.Locks {
				if other, taken := holders[l]; taken {
					fail("requests #%s and #%s both hold %s", other, r.ID, l)
				}
				holders[l] = r.ID
			}
		}
	}
	// Locks: every lock an open request holds is busy, with that request.
	for l, id := range holders {
		err := s.Create(ctx, storetest.NewRequest(store.Planned, l))
		var busy *store.BusyError
		if !errors.As(err, &busy) || busy.ID != id {
			fail("lock %s of open request #%s: Create = %v, want busy", l, id, err)
		}
	}
	for _, id := range a.created {
		if byID[id] == nil {
			fail("acknowledged request #%s is gone", id)
		}
	}
	for _, id := range a.finished {
		if r := byID[id]; r == nil || r.State != store.Succeeded {
			fail("request #%s acknowledged Succeeded is %v", id, r)
		}
	}
	if c := byID[counterID]; c == nil || c.Version < a.maxVer {
		fail("the counter is at version %v, below the acknowledged %d", c, a.maxVer)
	}

	// Audit: ordered, without gaps, with every acknowledged event.
	events, err := s.Audit(ctx, 0)
	if err != nil {
		fail("Audit: %v", err)
	}
	seqs := map[string][]int{} // oldest first
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		n, err := strconv.Atoi(e.Action)
		if err != nil {
			continue // the contract checks of other tests
		}
		seqs[e.Actor] = append(seqs[e.Actor], n)
	}
	for actor, got := range seqs {
		for i, n := range got {
			if n != i {
				fail("audit of %s out of order or with a gap: %v", actor, got)
			}
		}
	}
	for actor, acked := range a.audit {
		if len(seqs[actor]) < slices.Max(acked)+1 {
			fail("audit of %s has %d events, but %d were acknowledged", actor, len(seqs[actor]), slices.Max(acked)+1)
		}
	}

	// Dedupe keys: every acknowledged key is still kept.
	for _, k := range a.once {
		if first, err := s.Once(ctx, k, time.Hour); err != nil || first {
			fail("acknowledged dedupe key %s was lost (Once = %v, %v)", k, first, err)
		}
	}
	inbox, err := s.Inbox(ctx)
	if err != nil {
		fail("Inbox: %v", err)
	}
	if !slices.IsSortedFunc(inbox, func(x, y store.InboxEvent) int { return x.Received.Compare(y.Received) }) {
		fail("the inbox is not oldest first")
	}
	pending := map[string]bool{}
	for _, e := range inbox {
		pending[e.Key] = true
	}
	for _, k := range a.done {
		if pending[k] {
			fail("inbox event %s acknowledged done is still in the inbox", k)
		}
	}
	if len(a.enqueued) > 0 {
		batch := make([]store.InboxEvent, len(a.enqueued))
		for i, k := range a.enqueued {
			batch[i] = store.InboxEvent{Key: k, TTL: 24 * time.Hour}
		}
		fresh, err := s.Enqueue(ctx, batch)
		if err != nil {
			fail("Enqueue: %v", err)
		}
		if i := slices.Index(fresh, true); i >= 0 {
			fail("acknowledged inbox event %s was lost", a.enqueued[i])
		}
	}
	if err := s.Verify(ctx); err != nil {
		fail("Verify after the checks: %v", err)
	}
}

// crashChild writes until it is killed, printing what it stored after each
// write returns.
func crashChild(spec string) {
	var path string
	var round int
	if _, err := fmt.Sscan(spec, &path, &round); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	s, err := bolt.Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	ctx := context.Background()
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	die := func(err error) {
		say("error %v", err)
		os.Exit(2)
	}
	bump := func(r *store.Request) { // what every update writes: checked as one
		r.Reason = fmt.Sprintf("v%d", r.Version+1)
		r.Approvals = append(r.Approvals, store.Approval{By: store.Person{User: r.Reason}, PlanHash: r.PlanHash})
	}
	say("ready")
	var wg sync.WaitGroup
	for w := range 4 { // requests through their life, holding a lock
		wg.Go(func() {
			for n := 0; ; n++ {
				r := storetest.NewRequest(store.Approved, fmt.Sprintf("r%d/w%d-%d", round, w, n), "shared/every-writer")
				r.Reason = "v1"
				err := s.Create(ctx, r)
				var busy *store.BusyError
				if errors.As(err, &busy) {
					r.Locks = r.Locks[:1]
					err = s.Create(ctx, r)
				}
				if err != nil {
					die(err)
				}
				say("create %s", r.ID)
				for _, to := range []store.State{store.Executing, store.Succeeded} {
					if _, err := s.Update(ctx, r.ID, func(r *store.Request) error { bump(r); return store.Transition(r, to) }); err != nil {
						die(err)
					}
				}
				say("finished %s", r.ID)
			}
		})
	}
	for range 2 { // approvals racing on one request
		wg.Go(func() {
			for {
				got, err := s.Update(ctx, counterID, func(r *store.Request) error { bump(r); return nil })
				if err != nil {
					die(err)
				}
				say("approve %d", got.Version)
			}
		})
	}
	for w := range 2 { // audit events
		wg.Go(func() {
			actor := fmt.Sprintf("r%dw%d", round, w)
			for n := 0; ; n++ {
				if err := s.Record(ctx, store.AuditEvent{Actor: actor, Action: strconv.Itoa(n), RequestID: counterID}); err != nil {
					die(err)
				}
				say("audit %s %d", actor, n)
			}
		})
	}
	for w := range 2 { // dedupe keys
		wg.Go(func() {
			for n := 0; ; n++ {
				k := fmt.Sprintf("r%dw%dk%d", round, w, n)
				if _, err := s.Once(ctx, k, 24*time.Hour); err != nil {
					die(err)
				}
				say("once %s", k)
			}
		})
	}
	for w := range 2 { // inbox batches, half of them handled
		wg.Go(func() {
			for n := 0; ; n++ {
				var batch []store.InboxEvent
				var keys []string
				for i := range 1 + n%20 {
					k := fmt.Sprintf("r%dw%db%de%d", round, w, n, i)
					keys = append(keys, k)
					batch = append(batch, store.InboxEvent{Key: k, Platform: "slack", TTL: 24 * time.Hour, Payload: []byte(strings.Repeat("p", 200))})
				}
				if _, err := s.Enqueue(ctx, batch); err != nil {
					die(err)
				}
				say("enqueued %s", strings.Join(keys, " "))
				for _, k := range keys[:len(keys)/2] {
					if err := s.InboxDone(ctx, k, "replied"); err != nil {
						die(err)
					}
					say("done %s", k)
				}
			}
		})
	}
	wg.Go(func() { // pauses
		for n := 0; ; n++ {
			var p *store.Pause
			if n%2 == 0 {
				p = &store.Pause{By: "alice", At: time.Now()}
			}
			if err := s.SetPause(ctx, fmt.Sprintf("r%d", round), p); err != nil {
				die(err)
			}
		}
	})
	wg.Wait()
}
