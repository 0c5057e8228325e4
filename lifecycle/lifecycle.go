// Package lifecycle is the one home of a request's life, from a typed
// Command to its outcome: Open plans it, authorizes it and stores it; the
// approval rules (rules.go) decide every confirm, approve, deny and cancel;
// expiry ends what waited too long; and the execution runner (execution.go)
// performs an approved Plan exactly once, keeps a heartbeat while it runs and
// reports honestly what a replica that died left behind. Every state change
// is one compare-and-swap in the store and one audit event.
//
// Chat commands, buttons and the scheduler all open requests through Open.
// The package knows no chat platform: it shows requests through Messages,
// which the bot implements.
package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deploybot/deploybot/clock"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// SchedulePlatform is the Requester.Platform of the requests the schedule
// opens; their requester is the schedule, acting as the bot's own
// Kubernetes identity.
const SchedulePlatform = "schedule"

// Defaults of the replica options.
const (
	DefaultHeartbeat       = 10 * time.Second
	DefaultStaleAfter      = time.Minute
	DefaultRolloutDeadline = 10 * time.Minute
	// defaultExpiry is how long a request waits when its Plan names no expiry.
	defaultExpiry = time.Hour
)

// Planner builds the Plan of a mutating command from live cluster state,
// changing nothing. commands.BuildPlan is the implementation; errors the
// user can fix are returned as they are, for the caller to show.
type Planner interface {
	BuildPlan(ctx context.Context, caller plan.Caller, c plan.Command) (plan.Plan, error)
}

// Access answers whether a Kubernetes identity may make the given API calls.
// *access.Checker implements it.
type Access interface {
	Denied(ctx context.Context, env, user string, groups []string, calls []plan.Access) ([]plan.Denial, error)
}

// Executor performs Plans and follows their rollouts. *cluster.Set
// implements it.
type Executor interface {
	Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error)
	Follow(ctx context.Context, p plan.Plan, r plan.Result, deadline time.Duration, report func(plan.Progress)) []plan.RolloutResult
}

// Messages shows requests in chat; the bot implements it by rendering the
// request and calling the platform.
type Messages interface {
	// Post shows a newly opened request in channel on platform.
	Post(ctx context.Context, platform, channel string, r *store.Request) (store.MessageRef, error)
	// Update shows r's current state in a message posted earlier.
	Update(ctx context.Context, ref store.MessageRef, r *store.Request) error
}

// Metrics receives how long following a request's rollouts took.
type Metrics interface {
	Rollout(env, action, outcome string, d time.Duration)
}

// Deps are what a Lifecycle cannot work without.
type Deps struct {
	Config   *config.Config
	Store    store.Store
	Planner  Planner
	Access   Access
	Executor Executor
	Messages Messages
}

// Lifecycle takes requests from open to outcome. It is safe for concurrent
// use; executions run in the background until Close.
type Lifecycle struct {
	cfg      *config.Config
	store    store.Store
	planner  Planner
	access   Access
	exec     Executor
	messages Messages

	clock   clock.Clock
	log     *slog.Logger
	metrics Metrics
	// executorFor, when set, gives the executor that acts for a requester
	// (execution: impersonate); exec is used otherwise.
	executorFor func(requester store.Person) (Executor, error)
	// releaser executes release Plans (nil: releases fail, saying why).
	releaser        Executor
	replica         string
	heartbeatEvery  time.Duration
	staleAfter      time.Duration
	rolloutDeadline time.Duration

	ctx     context.Context // ended by Close; parent of executions
	cancel  context.CancelFunc
	work    sync.WaitGroup
	closing atomic.Bool // Shutdown began: no new executions start here

	mu sync.Mutex
	// running are the requests this process is executing now.
	running map[string]bool
	// progress is the live progress of the requests executing here.
	progress map[string]*ProgressLog
}

// Option configures a Lifecycle.
type Option func(*Lifecycle)

// WithClock sets the time source of timestamps, expiry and heartbeats.
func WithClock(c clock.Clock) Option { return func(l *Lifecycle) { l.clock = c } }

// WithLogger sets the structured logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l *Lifecycle) { l.log = log } }

// WithMetrics reports rollout durations to m.
func WithMetrics(m Metrics) Option { return func(l *Lifecycle) { l.metrics = m } }

// WithExecutorFor makes approved Plans execute through the executor fn
// returns for the request's requester, e.g. clients that impersonate them.
func WithExecutorFor(fn func(requester store.Person) (Executor, error)) Option {
	return func(l *Lifecycle) { l.executorFor = fn }
}

// WithReleaser makes release Plans execute through e (release.Releaser):
// pushes of stable branches and the wait for their builds.
func WithReleaser(e Executor) Option { return func(l *Lifecycle) { l.releaser = e } }

// WithReplicaName names this replica in the requests it executes. Names must
// be unique among live replicas; a replica that finds a request executing
// under its own name that it is not running knows it was its earlier life.
func WithReplicaName(name string) Option { return func(l *Lifecycle) { l.replica = name } }

// WithHeartbeat sets how often an executing replica records that it is alive
// (DefaultHeartbeat) and after how long without a heartbeat another replica
// reports the execution as dead (DefaultStaleAfter).
func WithHeartbeat(every, staleAfter time.Duration) Option {
	return func(l *Lifecycle) { l.heartbeatEvery, l.staleAfter = every, staleAfter }
}

// WithRolloutDeadline bounds how long rollouts are followed.
func WithRolloutDeadline(d time.Duration) Option { return func(l *Lifecycle) { l.rolloutDeadline = d } }

// New returns a Lifecycle over d.
func New(d Deps, opts ...Option) *Lifecycle {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Lifecycle{
		cfg: d.Config, store: d.Store, planner: d.Planner, access: d.Access, exec: d.Executor, messages: d.Messages,
		clock:           clock.Real,
		log:             slog.Default(),
		metrics:         noMetrics{},
		replica:         DefaultReplicaName(),
		heartbeatEvery:  DefaultHeartbeat,
		staleAfter:      DefaultStaleAfter,
		rolloutDeadline: DefaultRolloutDeadline,
		ctx:             ctx,
		cancel:          cancel,
		running:         map[string]bool{},
		progress:        map[string]*ProgressLog{},
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

type noMetrics struct{}

func (noMetrics) Rollout(string, string, string, time.Duration) {}

// DefaultReplicaName is the pod name ($POD_NAME, else the host name) and a
// random suffix, so that a restarted process is a new replica.
func DefaultReplicaName() string {
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

// Plan builds the Plan c would have for caller now, changing nothing (a
// scheduled run's heads-up shows it).
func (l *Lifecycle) Plan(ctx context.Context, caller plan.Caller, c plan.Command) (plan.Plan, error) {
	return l.planner.BuildPlan(ctx, caller, c)
}

// Replica returns the name this replica executes requests under.
func (l *Lifecycle) Replica() string { return l.replica }

// Now is the lifecycle's time.
func (l *Lifecycle) Now() time.Time { return l.clock.Now() }

// Wait blocks until background executions are done.
func (l *Lifecycle) Wait() { l.work.Wait() }

// Close stops background executions at once and waits for them; each
// records that it was interrupted, with what it had done.
func (l *Lifecycle) Close() { l.Shutdown(0) }

// DefaultShutdownGrace is how long Shutdown lets running executions finish:
// below Kubernetes' default 30 s between SIGTERM and SIGKILL, so what is
// still running can be recorded before the kill.
const DefaultShutdownGrace = 25 * time.Second

// Shutdown stops starting executions (approved requests stay Approved, for
// the next replica or the next start to run), lets the running ones finish
// for up to grace, then stops them; each records its outcome, or that it
// was interrupted and what it had done, before Shutdown returns. It reports
// how many executions it had to interrupt.
func (l *Lifecycle) Shutdown(grace time.Duration) (interrupted int) {
	l.closing.Store(true)
	done := make(chan struct{})
	go func() {
		l.work.Wait()
		close(done)
	}()
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
			l.cancel()
			return 0
		case <-t.C:
		}
	}
	l.mu.Lock()
	interrupted = len(l.running)
	l.mu.Unlock()
	if interrupted > 0 {
		l.log.Warn("shutting down: interrupting running executions", "executions", interrupted, "grace", grace)
	}
	l.cancel()
	<-done
	return interrupted
}

// step applies fn to request id as one compare-and-swap and audits the state
// change it made; actor and action name who did what.
func (l *Lifecycle) step(ctx context.Context, id, actor, action string, fn func(r *store.Request) error) (*store.Request, error) {
	var from store.State
	r, err := l.store.Update(ctx, id, func(r *store.Request) error {
		from = r.State
		if err := fn(r); err != nil {
			return err
		}
		r.UpdatedAt = l.Now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.Audit(ctx, store.AuditEvent{RequestID: r.ID, Actor: actor, Action: action, From: from, To: r.State, Env: r.Plan.Env, PlanHash: r.PlanHash})
	return r, nil
}

// Audit records e (stamped now if it has no time) in the store and the log.
// Every state change of a request and every schedule action goes through it.
func (l *Lifecycle) Audit(ctx context.Context, e store.AuditEvent) {
	if e.Time.IsZero() {
		e.Time = l.Now()
	}
	if err := l.store.Record(ctx, e); err != nil {
		l.log.Error("recording audit event", "request", e.RequestID, "action", e.Action, "err", err)
	}
	l.logFor(ctx).Info("audit", "request", e.RequestID, "actor", e.Actor, "action", e.Action, "from", string(e.From), "to", string(e.To),
		"env", e.Env, "planHash", e.PlanHash, "outcome", e.Outcome)
}

// Refresh re-renders request id's messages everywhere they are shown.
func (l *Lifecycle) Refresh(ctx context.Context, id string) {
	r, err := l.store.Get(ctx, id)
	if err != nil {
		l.log.Error("reading request for update", "request", id, "err", err)
		return
	}
	for _, ref := range r.Messages {
		if err := l.messages.Update(ctx, ref, r); err != nil {
			l.log.Error("updating request message", "request", id, "platform", ref.Platform, "err", err)
		}
	}
}

// post shows a newly opened request and remembers where; an error means
// the message was not posted.
func (l *Lifecycle) post(ctx context.Context, platform, channel string, r *store.Request) error {
	ref, err := l.messages.Post(ctx, platform, channel, r)
	if err != nil {
		l.log.Error("posting request message", "request", r.ID, "err", err)
		return err
	}
	if _, err := l.store.Update(ctx, r.ID, func(r *store.Request) error {
		r.Messages = append(r.Messages, ref)
		return nil
	}); err != nil {
		l.log.Error("remembering request message", "request", r.ID, "err", err)
	}
	return nil
}

// Person is the stored form of a caller.
func Person(c plan.Caller) store.Person {
	return store.Person{Platform: c.Platform, ChatID: c.ChatID, Name: c.Name, User: c.User, Groups: c.Groups}
}

// caller is the caller form of a stored person, acting in env.
func caller(p store.Person, env string) plan.Caller {
	return plan.Caller{Platform: p.Platform, ChatID: p.ChatID, Name: p.Name, User: p.User, Groups: p.Groups, ChannelEnv: env}
}

func shortID(id string) string { return "#" + id }

// eventKey carries an inbound event's ID in a context, for log lines.
type eventKey struct{}

// WithEvent returns ctx carrying the ID of the inbound event (a webhook, a
// click) on whose behalf work is done; every audit line logged for it
// carries the ID as "event", so one click can be followed from the webhook
// to the audit trail.
func WithEvent(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, eventKey{}, id)
}

// EventOf returns the inbound event ID carried by ctx, or "".
func EventOf(ctx context.Context) string {
	id, _ := ctx.Value(eventKey{}).(string)
	return id
}

// logFor returns the logger for work done on behalf of ctx's inbound event.
func (l *Lifecycle) logFor(ctx context.Context) *slog.Logger {
	if id := EventOf(ctx); id != "" {
		return l.log.With("event", id)
	}
	return l.log
}
