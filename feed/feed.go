// Package feed is the deploy feed: it watches each environment's image
// stream tags (OpenShift) or listed workloads (plain Kubernetes) through
// informers and posts every change made without the bot — a scheduled
// import, `oc tag`, `kubectl set image` — to the env's channel as one
// message that follows the rollout to its end and, when the rollout
// fails, offers Undo and Pin previous.
//
// Only the leader runs the feed. Each change is claimed once in the store
// (Once), so two leaders for a moment post it once; each message is a
// record in the store (a request of action plan.ActionObserved that
// executes nothing), so the next leader takes over the rollouts the last
// one was following and updates the same messages. Changes that come
// together (a five-service import) are one message, and a message is
// updated at most once per MinUpdate.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/clock"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// Defaults of the feed's timings.
const (
	// DefaultQuiet is how long an env's objects must be still before what
	// changed is read: the changes of one import come together.
	DefaultQuiet = time.Second
	// DefaultMaxBurst bounds the wait for quiet.
	DefaultMaxBurst = 5 * time.Second
	// DefaultMinUpdate is the least time between two updates of a message.
	DefaultMinUpdate = time.Second
	// DefaultLookback is how old a change may be and still be posted by a
	// leader that did not see it happen (it started, or took over, after).
	DefaultLookback = 15 * time.Minute
	// DefaultHeartbeat is how often the follower of a change says so in its
	// record.
	DefaultHeartbeat = 10 * time.Second
	// DefaultRolloutDeadline bounds how long a change's rollout is followed.
	DefaultRolloutDeadline = 10 * time.Minute
	// retryWatch is the wait before watching an env, or reading its tags,
	// again after a failure; maxRetryRead bounds the growing wait between
	// reads that keep failing.
	retryWatch   = 10 * time.Second
	maxRetryRead = 5 * time.Minute
	// lateLook is how long a change taken over after its rollout deadline
	// is looked at before it counts as not settled.
	lateLook = 30 * time.Second
)

// Observer reads what an env's tags have now and builds the record of a
// change; the bot implements it with commands.Observe and ObservedPlan.
type Observer interface {
	// Observe returns every service's tag in env that could be read, and
	// what could not.
	Observe(ctx context.Context, env string) (map[string]plan.TagState, error)
	// ObservedPlan is the Plan of action plan.ActionObserved for changes
	// (Service, From, To, ChangedBy), with the workloads to follow.
	ObservedPlan(ctx context.Context, env string, changes []plan.Target) (plan.Plan, error)
}

// Watcher tells when an env's objects change (cluster.Set.WatchEnv).
type Watcher interface {
	// WatchEnv calls changed after the initial list and after every
	// change that may move an image, until ctx ends.
	WatchEnv(ctx context.Context, env string, changed func()) error
}

// Follower follows rollouts (cluster.Set.Follow).
type Follower interface {
	Follow(ctx context.Context, p plan.Plan, r plan.Result, deadline time.Duration, report func(plan.Progress)) []plan.RolloutResult
}

// Messages shows changes in chat; the bot renders them.
type Messages interface {
	Post(ctx context.Context, platform, channel string, c Change) (store.MessageRef, error)
	Update(ctx context.Context, ref store.MessageRef, c Change) error
}

// Change is what a feed message shows: the change's record and its
// rollout's live progress.
type Change struct {
	Record   *store.Request
	Progress []string
}

// Feed is the deploy feed of a config's environments.
type Feed struct {
	cfg     *config.Config
	store   store.Store
	obs     Observer
	watch   Watcher
	follow  Follower
	msgs    Messages
	clock   clock.Clock
	log     *slog.Logger
	replica string

	quiet, maxBurst, minUpdate, lookback, heartbeat, deadline time.Duration
}

// Option configures a Feed.
type Option func(*Feed)

// WithClock makes the feed read the time from c and wait on its timers.
func WithClock(c clock.Clock) Option { return func(f *Feed) { f.clock = c } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(f *Feed) { f.log = l } }

// WithReplicaName names this replica in the records it follows.
func WithReplicaName(name string) Option { return func(f *Feed) { f.replica = name } }

// WithTimings sets how long the objects must be quiet before they are
// read (and at most how long that waits), and the least time between two
// updates of a message; zero keeps a default.
func WithTimings(quiet, maxBurst, minUpdate time.Duration) Option {
	return func(f *Feed) {
		f.quiet = or(quiet, f.quiet)
		f.maxBurst = or(maxBurst, f.maxBurst)
		f.minUpdate = or(minUpdate, f.minUpdate)
	}
}

// WithLookback sets how old a change may be and still be posted by a
// leader that did not see it happen (DefaultLookback).
func WithLookback(d time.Duration) Option { return func(f *Feed) { f.lookback = or(d, f.lookback) } }

// WithHeartbeat sets how often a followed change's record is refreshed.
func WithHeartbeat(d time.Duration) Option { return func(f *Feed) { f.heartbeat = or(d, f.heartbeat) } }

// WithRolloutDeadline bounds how long a change's rollout is followed.
func WithRolloutDeadline(d time.Duration) Option {
	return func(f *Feed) { f.deadline = or(d, f.deadline) }
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// New builds the feed of cfg's environments that have one
// (config.Environment.FeedChannel).
func New(cfg *config.Config, st store.Store, obs Observer, w Watcher, fl Follower, msgs Messages, opts ...Option) *Feed {
	f := &Feed{
		cfg: cfg, store: st, obs: obs, watch: w, follow: fl, msgs: msgs,
		clock: clock.Real, log: slog.Default(), replica: "deploybot",
		quiet: DefaultQuiet, maxBurst: DefaultMaxBurst, minUpdate: DefaultMinUpdate,
		lookback: DefaultLookback, heartbeat: DefaultHeartbeat, deadline: DefaultRolloutDeadline,
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Enabled reports whether any environment has a feed.
func (f *Feed) Enabled() bool {
	for i := range f.cfg.Environments {
		if _, ok := f.cfg.Environments[i].FeedChannel(); ok {
			return true
		}
	}
	return false
}

// Run is the feed while this replica leads: it takes over the changes
// another replica was following, watches every env with a feed and posts
// what changes, until ctx ends. The rollouts it follows then stay in the
// store for the next leader.
func (f *Feed) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	f.resume(ctx, &wg)
	for i := range f.cfg.Environments {
		e := &f.cfg.Environments[i]
		if _, ok := e.FeedChannel(); ok {
			wg.Go(func() { f.watchEnv(ctx, e, &wg) })
		}
	}
	<-ctx.Done()
}

// watchEnv reads env's tags after each quiet spell of changes and reports
// what moved.
func (f *Feed) watchEnv(ctx context.Context, e *config.Environment, wg *sync.WaitGroup) {
	pokes := make(chan struct{}, 1)
	poke := func() {
		select {
		case pokes <- struct{}{}:
		default:
		}
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			if err := f.watch.WatchEnv(ctx, e.Name, poke); err != nil && ctx.Err() == nil {
				f.log.Error("watching an environment for the deploy feed", "env", e.Name, "err", err)
				select {
				case <-ctx.Done():
				case <-f.clock.After(retryWatch):
				}
			}
		}
	})
	// seen is the digest each service's tag had when last read, for this
	// leadership term only: a replica that leads again after a while starts
	// over, with the lookback.
	var seen map[string]string
	// A read that fails is tried again, sooner after a first failure than
	// after many (a service missing from the env fails every read), and
	// said once per different failure.
	backoff, lastErr := retryWatch, ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-pokes:
		}
		if !f.settle(ctx, pokes) {
			return
		}
		tags, err := f.obs.Observe(ctx, e.Name)
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				f.log.Error("reading an environment's tags for the deploy feed", "env", e.Name, "err", err)
				lastErr = msg
			}
			wait := backoff
			backoff = min(2*backoff, maxRetryRead)
			wg.Go(func() {
				select {
				case <-ctx.Done():
				case <-f.clock.After(wait):
					poke()
				}
			})
		} else {
			backoff, lastErr = retryWatch, ""
		}
		first := seen == nil
		if first {
			seen = map[string]string{}
		}
		changes := diff(seen, first, tags, f.clock.Now().Add(-f.lookback))
		if len(changes) == 0 {
			continue
		}
		if missed := f.report(ctx, e, changes, wg); len(missed) > 0 {
			// Not claimed (the store failed): seen again at the next read.
			for _, c := range missed {
				if c.From.Digest != "" {
					seen[c.Service] = c.From.Digest
				} else {
					delete(seen, c.Service)
				}
			}
			wg.Go(func() {
				select {
				case <-ctx.Done():
				case <-f.clock.After(retryWatch):
					poke()
				}
			})
		}
	}
}

// settle waits until no poke came for quiet, or maxBurst passed; false
// when ctx ended.
func (f *Feed) settle(ctx context.Context, pokes <-chan struct{}) bool {
	limit := f.clock.After(f.maxBurst)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-pokes:
		case <-f.clock.After(f.quiet):
			return true
		case <-limit:
			return true
		}
	}
}

// diff compares env's tags with what was seen before (and records them as
// seen) and returns the changes, in service order. At the first read of a
// leadership term, and for a service not read before, a tag's newest
// image counts as a change from the one before it when it came after
// since: it may have come while no leader watched.
func diff(seen map[string]string, first bool, tags map[string]plan.TagState, since time.Time) []plan.Target {
	services := make([]string, 0, len(tags))
	for s := range tags {
		services = append(services, s)
	}
	slices.Sort(services)
	var out []plan.Target
	for _, svc := range services {
		ts := tags[svc]
		cur := ts.Current.Digest
		if cur == "" {
			continue
		}
		prev, ok := seen[svc]
		seen[svc] = cur
		var from plan.Image
		switch {
		case first || !ok:
			if ts.Current.Created.IsZero() || ts.Current.Created.Before(since) || len(ts.History) < 2 || ts.History[1].Digest == cur {
				continue
			}
			from = plan.Image{Ref: ts.History[1].Ref, Digest: ts.History[1].Digest}
		case prev == cur:
			continue
		default:
			from = plan.Image{Digest: prev}
			for _, h := range ts.History {
				if h.Digest == prev {
					from.Ref = h.Ref
					break
				}
			}
		}
		out = append(out, plan.Target{Service: svc, From: from, To: plan.Image{Ref: ts.Current.Ref, Digest: cur}, ChangedBy: ts.ChangedBy})
	}
	return out
}

// report posts changes of env that are not the bot's own and no other
// replica claimed, as one message, and follows their rollout. It returns
// the changes it could not tell or claim (the store failed), to be read
// again.
func (f *Feed) report(ctx context.Context, e *config.Environment, changes []plan.Target, wg *sync.WaitGroup) (missed []plan.Target) {
	changes, err := f.notOurs(ctx, e.Name, changes)
	if err != nil {
		f.log.Error("telling the bot's own changes apart for the deploy feed", "env", e.Name, "err", err)
		return changes
	}
	var claimed []plan.Target
	for _, c := range changes {
		// Claimed for twice the lookback: any leader that could still see
		// it as new (its first read looks back that far) finds it claimed.
		first, err := f.store.Once(ctx, changeKey(e.Name, c), 2*f.lookback)
		if err != nil {
			f.log.Error("claiming a change for the deploy feed", "env", e.Name, "service", c.Service, "err", err)
			missed = append(missed, c)
			continue
		}
		if first {
			claimed = append(claimed, c)
		}
	}
	if len(claimed) == 0 {
		return missed
	}
	p, err := f.obs.ObservedPlan(ctx, e.Name, claimed)
	if err != nil {
		// Posted all the same: that it changed is the news.
		p = plan.Plan{Action: plan.ActionObserved, Env: e.Name, Namespace: e.Namespace, Targets: claimed,
			Notes: []string{fmt.Sprintf("Its rollout is not followed: %v", err)}}
	}
	ch, _ := e.FeedChannel()
	now := f.clock.Now()
	res := &plan.Result{}
	for _, t := range p.Targets {
		res.Targets = append(res.Targets, plan.TargetResult{Service: t.Service, Outcome: plan.PhaseChanged, From: t.From, To: t.To})
	}
	by := actors(p.Targets)
	r := &store.Request{
		ID: store.NewID(), State: store.Executing,
		Requester: store.Person{Platform: ch.Platform, Name: by},
		Command:   summary(p), Channel: ch.ID, Plan: p, Result: res,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now,
		Executor: f.replica, Heartbeat: now,
	}
	// Claimed: a record that cannot be written now is tried again a few
	// times (the claim is gone for the other replicas too).
	for try := 0; ; try++ {
		err := f.store.Create(ctx, r)
		if err == nil {
			break
		}
		if try == 2 || ctx.Err() != nil {
			f.log.Error("recording a change for the deploy feed; it is not posted", "env", e.Name, "change", r.Command, "err", err)
			return missed
		}
		select {
		case <-ctx.Done():
		case <-f.clock.After(time.Second << try):
		}
	}
	f.audit(ctx, r, "", store.Executing, r.Command)
	f.log.Info("deploy feed: a change made without the bot", "env", e.Name, "record", r.ID, "change", r.Command)
	wg.Go(func() { f.followChange(ctx, r, e) })
	return missed
}

// changeKey names one change in the store, the same on every replica.
func changeKey(env string, c plan.Target) string {
	return "feed/" + env + "/" + c.Service + "/" + c.From.Digest + ">" + c.To.Digest
}

// notOurs drops the changes the bot's own requests made: a request of env
// that is executing (or about to) with a target of the service, or that
// finished within the lookback bringing the tag to that digest; and a
// workload the bot itself patched.
func (f *Feed) notOurs(ctx context.Context, env string, changes []plan.Target) ([]plan.Target, error) {
	reqs, err := f.store.List(ctx, store.ListOptions{States: []store.State{store.Approved, store.Executing, store.Succeeded, store.Failed}})
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", err)
	}
	since := f.clock.Now().Add(-f.lookback)
	var out []plan.Target
	for _, c := range changes {
		if c.ChangedBy == "deploybot" || slices.ContainsFunc(reqs, func(r *store.Request) bool { return made(r, env, c, since) }) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// made reports whether request r made change c of env.
func made(r *store.Request, env string, c plan.Target, since time.Time) bool {
	if r.Plan.Env != env || r.Plan.Action == plan.ActionObserved || r.Plan.Action == plan.ActionRelease {
		return false
	}
	if r.State.Terminal() && r.UpdatedAt.Before(since) {
		return false
	}
	for _, t := range r.Plan.Targets {
		if t.Service != c.Service || t.Unchanged {
			continue
		}
		// What it brought: the result, else what it recorded as the
		// target finished (still executing), else what it planned.
		to := t.To.Digest
		done := r.Done
		if r.Result != nil {
			done = slices.Concat(r.Done, r.Result.Targets)
		}
		for _, tr := range done {
			if tr.Service == t.Service && tr.To.Digest != "" {
				to = tr.To.Digest
			}
		}
		if to == c.To.Digest || (to == "" && !r.State.Terminal()) {
			// its doing; at it now with no digest known: taken for its doing
			return true
		}
	}
	return false
}

// resume takes over the changes whose follower is gone (another replica
// led before) and follows them on.
func (f *Feed) resume(ctx context.Context, wg *sync.WaitGroup) {
	open, err := f.store.List(ctx, store.ListOptions{States: []store.State{store.Executing}})
	if err != nil {
		f.log.Error("listing the deploy feed's open changes", "err", err)
		return
	}
	for _, r := range open {
		if r.Plan.Action != plan.ActionObserved {
			continue
		}
		now := f.clock.Now()
		e, ok := f.cfg.Env(r.Plan.Env)
		feeds := false
		if ok {
			_, feeds = e.FeedChannel()
		}
		if !feeds {
			// Its env has no feed now (config changed): nobody will follow
			// it, so it ends here, saying so.
			_, err := f.store.Update(ctx, r.ID, func(r *store.Request) error {
				if r.State != store.Executing {
					return errNotOurs
				}
				r.Reason = fmt.Sprintf("No longer followed: %s has no deploy feed now.", r.Plan.Env)
				r.UpdatedAt = now
				return store.Transition(r, store.Cancelled)
			})
			if err != nil && !errors.Is(err, errNotOurs) {
				f.log.Error("closing a deploy feed change of an env without a feed", "record", r.ID, "err", err)
			}
			continue
		}
		taken, err := f.store.Update(ctx, r.ID, func(r *store.Request) error {
			if r.State != store.Executing {
				return errNotOurs
			}
			r.Executor, r.Heartbeat, r.UpdatedAt = f.replica, now, now
			return nil
		})
		if err != nil {
			if !errors.Is(err, errNotOurs) {
				f.log.Error("taking over a deploy feed change", "record", r.ID, "err", err)
			}
			continue
		}
		f.log.Info("deploy feed: following a change on", "env", e.Name, "record", r.ID, "from", r.Executor)
		wg.Go(func() { f.followChange(ctx, taken, e) })
	}
}

// errNotOurs stops a write to a record another replica follows now.
var errNotOurs = errors.New("the change is followed elsewhere")

// followChange follows r's rollout and keeps its message up to date: at
// most one update per minUpdate, the final state always. It returns
// without an outcome when ctx ends or another replica takes r over.
func (f *Feed) followChange(ctx context.Context, r *store.Request, e *config.Environment) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := f.log.With("env", e.Name, "record", r.ID)
	failuresOnly := e.Feed != nil && e.Feed.FailuresOnly
	progress := lifecycle.NewProgressLog()

	// Taken over late (no leader for a while): one more look, briefly,
	// rather than a failure nobody saw.
	deadline := max(f.deadline-f.clock.Now().Sub(r.CreatedAt), lateLook)
	done := make(chan []plan.RolloutResult, 1)
	dirty := make(chan struct{}, 1)
	p, res := r.Plan, plan.Result{} // r is replaced as it is stored
	if r.Result != nil {
		res = *r.Result
	}
	go func() {
		done <- f.follow.Follow(ctx, p, res, deadline, func(ev plan.Progress) {
			progress.Add(ev)
			select {
			case dirty <- struct{}{}:
			default:
			}
		})
	}()
	var last time.Time
	if !failuresOnly {
		r = f.show(ctx, r, progress, log)
		last = f.clock.Now()
	}
	beat := f.clock.After(f.heartbeat)
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-beat:
			beat = f.clock.After(f.heartbeat)
			now := f.clock.Now()
			got, err := f.store.Update(ctx, r.ID, func(r *store.Request) error {
				if r.Executor != f.replica {
					return errNotOurs
				}
				r.Heartbeat = now
				return nil
			})
			if err != nil {
				if errors.Is(err, errNotOurs) {
					log.Info("deploy feed: another replica follows the change now")
					cancel()
				} else if ctx.Err() == nil {
					log.Error("refreshing a deploy feed change", "err", err)
				}
				continue
			}
			r = got
		case <-dirty:
			if failuresOnly {
				continue
			}
			if wait := f.minUpdate - f.clock.Now().Sub(last); wait > 0 && !last.IsZero() {
				select {
				case <-f.clock.After(wait):
				case <-ctx.Done():
					continue
				}
			}
			last = f.clock.Now()
			r = f.show(ctx, r, progress, log) // with the message's reference once posted
		case results := <-done:
			if ctx.Err() != nil {
				return
			}
			if wait := f.minUpdate - f.clock.Now().Sub(last); wait > 0 && !last.IsZero() && !failuresOnly {
				select {
				case <-f.clock.After(wait):
				case <-ctx.Done():
					return
				}
			}
			f.finish(ctx, r, results, progress, failuresOnly, log)
			return
		}
	}
}

// finish records how r's rollout ended and shows it.
func (f *Feed) finish(ctx context.Context, r *store.Request, results []plan.RolloutResult, progress *lifecycle.ProgressLog, failuresOnly bool, log *slog.Logger) {
	state := store.Succeeded
	var reasons []string
	for _, rr := range results {
		if rr.Outcome != plan.PhaseSettled {
			state = store.Failed
			reasons = append(reasons, fmt.Sprintf("%s/%s %s: %s", strings.ToLower(rr.Workload.Kind), rr.Workload.Name, rr.Outcome, rr.Reason))
		}
	}
	var got *store.Request
	var err error
	for try := 0; ; try++ { // a record left Executing would say "rolling out" for ever
		now := f.clock.Now()
		got, err = f.store.Update(ctx, r.ID, func(r *store.Request) error {
			if r.Executor != f.replica || r.State != store.Executing {
				return errNotOurs
			}
			if r.Result == nil {
				r.Result = &plan.Result{}
			}
			r.Result.Rollouts = results
			r.Reason = strings.Join(reasons, "; ")
			r.UpdatedAt = now
			return store.Transition(r, state)
		})
		if err == nil {
			break
		}
		if errors.Is(err, errNotOurs) || try == 4 || ctx.Err() != nil {
			if !errors.Is(err, errNotOurs) {
				log.Error("recording how a deploy feed change ended", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-f.clock.After(time.Second << try):
		}
	}
	f.audit(ctx, got, store.Executing, state, got.Reason)
	log.Info("deploy feed: the change's rollout ended", "outcome", state, "reason", got.Reason)
	if failuresOnly && state != store.Failed && len(got.Messages) == 0 {
		return
	}
	f.show(ctx, got, progress, log)
}

// show posts r's message, or updates it where it was posted, and returns
// r as stored (with the message's reference).
func (f *Feed) show(ctx context.Context, r *store.Request, progress *lifecycle.ProgressLog, log *slog.Logger) *store.Request {
	c := Change{Record: r, Progress: progress.Lines()}
	if len(r.Messages) > 0 {
		for _, ref := range r.Messages {
			if err := f.msgs.Update(ctx, ref, c); err != nil && ctx.Err() == nil {
				log.Error("updating a deploy feed message", "err", err)
			}
		}
		return r
	}
	ref, err := f.msgs.Post(ctx, r.Requester.Platform, r.Channel, c)
	if err != nil {
		log.Error("posting a deploy feed message", "err", err)
		return r
	}
	got, err := f.store.Update(ctx, r.ID, func(r *store.Request) error {
		r.Messages = append(r.Messages, ref)
		return nil
	})
	if err != nil {
		log.Error("recording where a deploy feed message is", "err", err)
		r.Messages = append(r.Messages, ref)
		return r
	}
	return got
}

func (f *Feed) audit(ctx context.Context, r *store.Request, from, to store.State, outcome string) {
	err := f.store.Record(ctx, store.AuditEvent{
		Time: f.clock.Now(), RequestID: r.ID, Actor: r.Requester.Name, Action: "observed",
		From: from, To: to, Env: r.Plan.Env, Outcome: outcome,
	})
	if err != nil {
		f.log.Error("auditing a deploy feed change", "record", r.ID, "err", err)
	}
}

// actors names who made the changes: "scheduled import", or several
// joined.
func actors(ts []plan.Target) string {
	var by []string
	for _, t := range ts {
		a := t.ChangedBy
		if a == "" {
			a = "someone or something the cluster does not name"
		}
		if !slices.Contains(by, a) {
			by = append(by, a)
		}
	}
	return strings.Join(by, ", ")
}

// summary is the record's command line: what changed, for the audit and
// `pending`.
func summary(p plan.Plan) string {
	parts := make([]string, 0, len(p.Targets))
	for _, t := range p.Targets {
		parts = append(parts, fmt.Sprintf("%s %s→%s", t.Service, plan.ShortDigest(t.From.Digest), plan.ShortDigest(t.To.Digest)))
	}
	return "observed in " + p.Env + ": " + strings.Join(parts, ", ")
}
