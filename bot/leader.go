package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// Clock is the bot's time source with timers. The scheduler, the sweeper and
// execution heartbeats wait on it, so tests pass a fake they move by hand and
// nothing sleeps.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
	// Until fires once the clock reads t or later. Unlike After(t - Now())
	// it cannot miss t if the clock moves between the two calls.
	Until(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (realClock) Until(t time.Time) <-chan time.Time     { return time.After(time.Until(t)) }

// Defaults of the replica options.
const (
	DefaultHeartbeat  = 10 * time.Second
	DefaultStaleAfter = time.Minute
	DefaultSweepEvery = 30 * time.Second
)

// replica is what a Bot needs to be one of several: its name, timers,
// heartbeat timing and the identity scheduled imports run as.
type replica struct {
	name           string
	clock          Clock
	heartbeatEvery time.Duration
	staleAfter     time.Duration
	sweepEvery     time.Duration
	scheduleUser   string
	scheduleGroups []string

	mu sync.Mutex
	// running are the requests this process is executing now.
	running map[string]bool
}

func newReplica() *replica {
	return &replica{
		name:           defaultReplicaName(),
		clock:          realClock{},
		heartbeatEvery: DefaultHeartbeat,
		staleAfter:     DefaultStaleAfter,
		sweepEvery:     DefaultSweepEvery,
		scheduleUser:   "deploybot",
		running:        map[string]bool{},
	}
}

// defaultReplicaName is the pod name ($POD_NAME, else the host name) and a
// random suffix, so that a restarted process is a new replica.
func defaultReplicaName() string {
	host := os.Getenv("POD_NAME")
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "deploybot"
	}
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return host + "-" + hex.EncodeToString(b[:])
}

// WithReplicaName names this replica in requests it executes (and should be
// its leader-election identity). Names must be unique among live replicas; a
// replica that finds a request executing under its own name that it is not
// running knows it was its earlier life and reports it at once.
func WithReplicaName(name string) Option { return func(b *Bot) { b.rep.name = name } }

// WithTimeSource makes the bot read the time from c and wait on its timers.
func WithTimeSource(c Clock) Option {
	return func(b *Bot) {
		b.rep.clock = c
		b.deps.Now = c.Now
	}
}

// WithHeartbeat sets how often an executing replica records that it is alive
// (DefaultHeartbeat) and after how long without a heartbeat another replica
// reports the execution as dead (DefaultStaleAfter).
func WithHeartbeat(every, staleAfter time.Duration) Option {
	return func(b *Bot) { b.rep.heartbeatEvery, b.rep.staleAfter = every, staleAfter }
}

// WithSweepInterval sets how often the leader expires requests and reports
// dead executions (DefaultSweepEvery).
func WithSweepInterval(d time.Duration) Option { return func(b *Bot) { b.rep.sweepEvery = d } }

// WithScheduleIdentity is the Kubernetes identity scheduled imports are
// requested as (the bot's own service account); its access is checked like
// anyone's. Default user "deploybot".
func WithScheduleIdentity(user string, groups []string) Option {
	return func(b *Bot) { b.rep.scheduleUser, b.rep.scheduleGroups = user, groups }
}

// ReplicaName returns the name this replica executes requests under.
func (b *Bot) ReplicaName() string { return b.rep.name }

// Lead runs the duties of the leader replica until ctx ends: the scheduler
// and, every sweep interval, the sweeper (expiry, dead executions). Every
// step is a compare-and-swap claim in the store, so a second leader for a
// moment (a lost lease) does no harm.
func (b *Bot) Lead(ctx context.Context) {
	b.log.Info("leading: running the scheduler and the sweeper", "replica", b.rep.name)
	var wg sync.WaitGroup
	wg.Go(func() { b.runSchedule(ctx) })
	for {
		if err := b.Sweep(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("sweeping requests", "err", err)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			b.log.Info("no longer leading", "replica", b.rep.name)
			return
		case <-b.rep.clock.After(b.rep.sweepEvery):
		}
	}
}

// Recover reports executions a dead replica left behind, at start-up (any
// replica may call it; the reports are compare-and-swap transitions).
func (b *Bot) Recover(ctx context.Context) error { return b.recoverExecutions(ctx) }

// claimExecution marks r as executed by this replica, as of now.
func (b *Bot) claimExecution(r *store.Request) {
	r.Executor = b.rep.name
	r.Heartbeat = b.now()
	r.Done = nil
	b.rep.mu.Lock()
	b.rep.running[r.ID] = true
	b.rep.mu.Unlock()
}

// errTaken aborts a heartbeat: the request is no longer ours to execute.
var errTaken = errors.New("the request is no longer executing on this replica")

// heartbeat records every heartbeat interval that this replica still
// executes request id. The returned context, for the execution, ends when
// ctx does or when another replica has meanwhile reported the execution as
// dead: this replica then stops instead of changing more than was reported.
// stop ends the heartbeat and waits for it.
func (b *Bot) heartbeat(ctx context.Context, id string) (execCtx context.Context, stop func()) {
	execCtx, cancel := context.WithCancel(ctx)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-execCtx.Done():
				return
			case <-quit:
				return
			case <-b.rep.clock.After(b.rep.heartbeatEvery):
			}
			_, err := b.store.Update(ctx, id, func(r *store.Request) error {
				if r.State != store.Executing || r.Executor != b.rep.name {
					return errTaken
				}
				r.Heartbeat = b.now()
				return nil
			})
			switch {
			case errors.Is(err, errTaken):
				b.log.Error("stopping an execution another replica reported as dead", "request", id, "replica", b.rep.name)
				cancel()
				return
			case err != nil && ctx.Err() == nil:
				b.log.Error("recording execution heartbeat", "request", id, "err", err)
			}
		}
	}()
	return execCtx, func() {
		close(quit)
		<-done
		cancel()
		b.rep.mu.Lock()
		delete(b.rep.running, id)
		b.rep.mu.Unlock()
	}
}

// recordTarget stores a target's result as soon as the executor reports it
// finished, so that the request tells what was done even if this replica
// dies before the end.
func (b *Bot) recordTarget(ctx context.Context, id string, p plan.Progress) {
	if p.Workload.Name != "" || p.Service == "" {
		return
	}
	switch p.Phase {
	case plan.PhaseChanged, plan.PhaseUnchanged, plan.PhaseFailed:
	default:
		return
	}
	_, err := b.store.Update(ctx, id, func(r *store.Request) error {
		tr := plan.TargetResult{Service: p.Service, Outcome: p.Phase}
		for _, t := range r.Plan.Targets {
			if t.Service == p.Service {
				tr.From, tr.To = t.From, t.To
			}
		}
		if p.Phase == plan.PhaseFailed {
			tr.Error = p.Message
		}
		r.Done = slices.DeleteFunc(r.Done, func(d plan.TargetResult) bool { return d.Service == p.Service })
		r.Done = append(r.Done, tr)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		b.log.Error("recording a target's result", "request", id, "service", p.Service, "err", err)
	}
}

// finish records the outcome of this replica's execution of r. If another
// replica reported the execution dead meanwhile, r stays as reported and what
// this replica did after all is added to the reason: the record never claims
// less than happened.
func (b *Bot) finish(r *store.Request, result plan.Result, final store.State, reason string) error {
	if r.State != store.Executing && r.Executor == b.rep.name {
		r.Result = &result
		did := resultSummary(result)
		if len(result.Targets) == 0 && reason != "" {
			did = reason
		}
		late := fmt.Sprintf("Later, replica %s, which had been taken for dead, stopped with: %s", b.rep.name, did)
		r.Reason = strings.TrimSpace(r.Reason + " " + late + ".")
		return nil
	}
	r.Result = &result
	if reason != "" {
		r.Reason = reason
	}
	return store.Transition(r, final)
}

// resultSummary says per target what an execution did.
func resultSummary(res plan.Result) string {
	var parts []string
	for _, t := range res.Targets {
		parts = append(parts, targetSummary(t))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func targetSummary(t plan.TargetResult) string {
	switch t.Outcome {
	case plan.PhaseChanged:
		return fmt.Sprintf("%s changed %s → %s", t.Service, shortOr(t.From.Digest, t.From.Ref), shortOr(t.To.Digest, t.To.Ref))
	case plan.PhaseUnchanged:
		return t.Service + " unchanged"
	case plan.PhaseFailed:
		return t.Service + " failed: " + t.Error
	}
	return t.Service + " " + t.Outcome
}

func shortOr(digest, ref string) string {
	if digest != "" {
		return plan.ShortDigest(digest)
	}
	if ref != "" {
		return ref
	}
	return "(none)"
}

// orphaned reports whether an executing request's executor is gone: its
// heartbeat is older than the stale limit, or it names this replica, which
// is not running it (an earlier life of this replica).
func (b *Bot) orphaned(r *store.Request, now time.Time) bool {
	if r.State != store.Executing {
		return false
	}
	if r.Executor == b.rep.name {
		b.rep.mu.Lock()
		defer b.rep.mu.Unlock()
		return !b.rep.running[r.ID]
	}
	hb := r.Heartbeat
	if hb.IsZero() {
		hb = r.UpdatedAt
	}
	return now.Sub(hb) > b.rep.staleAfter
}

// recoverExecutions reports executions whose replica died as Failed, saying
// what was done and what not, and never runs them again; and it starts
// approved requests that no replica started within the stale limit (their
// approver's replica died between approving and executing; nothing of them
// ran yet, and the Approved → Executing compare-and-swap still runs each once).
func (b *Bot) recoverExecutions(ctx context.Context) error {
	open, err := b.store.List(ctx, store.ListOptions{States: []store.State{store.Executing, store.Approved}})
	if err != nil {
		return fmt.Errorf("listing executing requests: %w", err)
	}
	now := b.now()
	for _, r := range open {
		if r.State == store.Approved {
			if now.Sub(r.UpdatedAt) > b.rep.staleAfter && now.Before(r.ExpiresAt) {
				b.log.Info("starting an approved request no replica started", "request", r.ID)
				b.startExecution(r.ID)
			}
			continue
		}
		if !b.orphaned(r, now) {
			continue
		}
		_, err := b.transition(ctx, r.ID, "deploybot", "reap", func(r *store.Request) error {
			if !b.orphaned(r, now) {
				return errTaken // it moved on or its replica spoke up meanwhile
			}
			r.Reason = orphanReason(r, b.rep.name)
			r.Result = &plan.Result{Targets: r.Done}
			return store.Transition(r, store.Failed)
		})
		if err != nil {
			if !errors.Is(err, errTaken) {
				b.log.Error("reporting a dead execution", "request", r.ID, "err", err)
			}
			continue
		}
		b.log.Info("reported a dead execution", "request", r.ID, "executor", r.Executor)
		b.refresh(ctx, r.ID)
	}
	return nil
}

// orphanReason tells truthfully what is known of an execution whose replica
// died: which targets finished (and how) and which were not reported
// finished, so they may or may not have changed.
func orphanReason(r *store.Request, reporter string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Replica %s stopped while executing this request", r.Executor)
	if !r.Heartbeat.IsZero() {
		fmt.Fprintf(&b, " (last heard from at %s)", r.Heartbeat.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	b.WriteString(". ")
	done := map[string]plan.TargetResult{}
	for _, d := range r.Done {
		done[d.Service] = d
	}
	var did, unknown []string
	for _, t := range r.Plan.Targets {
		if d, ok := done[t.Service]; ok {
			did = append(did, targetSummary(d))
			continue
		}
		if t.Unchanged {
			continue
		}
		unknown = append(unknown, t.Service)
	}
	if len(did) > 0 {
		fmt.Fprintf(&b, "Done: %s. ", strings.Join(did, ", "))
	} else {
		b.WriteString("No target was reported finished. ")
	}
	if len(unknown) > 0 {
		fmt.Fprintf(&b, "Not reported finished, so they may or may not have changed: %s. ", strings.Join(unknown, ", "))
	}
	fmt.Fprintf(&b, "Rollouts were not followed. Replica %s reported this and did not run anything again; check `status %s`", reporter, r.Plan.Env)
	if len(unknown) > 0 {
		fmt.Fprintf(&b, " and run `%s` again if needed", r.Command)
	}
	b.WriteString(".")
	return b.String()
}
