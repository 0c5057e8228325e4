package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/auth"
	"github.com/deploybot/deploybot/clock"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/feed"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/store"
)

// DefaultSweepEvery is how often the leader expires requests and reports
// dead executions.
const DefaultSweepEvery = 30 * time.Second

// Access answers whether a Kubernetes identity may make API calls.
// *access.Checker implements it.
type Access interface {
	Denied(ctx context.Context, env, user string, groups []string, calls []plan.Access) ([]plan.Denial, error)
}

// Bot is the dispatcher: every adapter hands it Requests. It maps the chat
// user to an identity, parses the text, and hands the typed command to the
// stage that owns it: read-only commands to commands.Run, mutating ones and
// clicks to the request lifecycle, schedule commands to the scheduler.
type Bot struct {
	cfg   *config.Config
	deps  commands.Deps
	store store.Store
	life  *lifecycle.Lifecycle
	sched *schedule.Scheduler
	// feed is the deploy feed, nil when no env has one or the cluster
	// cannot be watched.
	feed    *feed.Feed
	clock   clock.Clock
	log     *slog.Logger
	metrics Metrics
	// sweepEvery is how often Lead sweeps.
	sweepEvery time.Duration

	mu        sync.Mutex
	platforms map[string]Platform
}

// settings collect the options before the parts are built.
type settings struct {
	log             *slog.Logger
	metrics         Metrics
	clock           clock.Clock
	rolloutDeadline time.Duration
	executorFor     func(store.Person) (lifecycle.Executor, error)
	platforms       []Platform
	replica         string
	heartbeat       [2]time.Duration
	sweepEvery      time.Duration
	scheduleUser    string
	scheduleGroups  []string
	git             commands.Git
	releaser        lifecycle.Executor
	feed            []feed.Option
}

// Option configures a Bot.
type Option func(*settings)

// WithGit lets import Plans list the commits between the running image's
// revision and the new one's, from the repository that builds the service,
// and release Plans compare the repositories' stable branches.
func WithGit(g commands.Git) Option { return func(s *settings) { s.git = g } }

// WithReleaser executes release Plans (release.Releaser): the pushes and
// the wait for the builds. Without it a release fails, saying why.
func WithReleaser(e lifecycle.Executor) Option { return func(s *settings) { s.releaser = e } }

// WithFeedOptions passes options to the deploy feed (its timings, in
// tests).
func WithFeedOptions(opts ...feed.Option) Option {
	return func(s *settings) { s.feed = append(s.feed, opts...) }
}

// WithLogger sets the structured logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.log = l } }

// WithClock makes the bot read the time from c and wait on its timers: the
// lifecycle, the scheduler, heartbeats and the sweeper all use it.
func WithClock(c clock.Clock) Option { return func(s *settings) { s.clock = c } }

// WithRolloutDeadline bounds how long rollouts are followed (default 10m).
func WithRolloutDeadline(d time.Duration) Option { return func(s *settings) { s.rolloutDeadline = d } }

// WithExecutorFor makes approved Plans execute through the executor fn
// returns for the request's requester, e.g. clients that impersonate them so
// the API server enforces their RBAC again.
func WithExecutorFor(fn func(requester store.Person) (lifecycle.Executor, error)) Option {
	return func(s *settings) { s.executorFor = fn }
}

// WithPlatform registers a platform that request messages are posted to.
func WithPlatform(p Platform) Option {
	return func(s *settings) { s.platforms = append(s.platforms, p) }
}

// WithMetrics makes the bot report to m (default: nowhere).
func WithMetrics(m Metrics) Option { return func(s *settings) { s.metrics = m } }

// WithReplicaName names this replica in requests it executes (and should be
// its leader-election identity); see lifecycle.WithReplicaName.
func WithReplicaName(name string) Option { return func(s *settings) { s.replica = name } }

// WithHeartbeat sets how often an executing replica records that it is
// alive and after how long without one another replica reports the
// execution as dead (lifecycle.DefaultHeartbeat, DefaultStaleAfter).
func WithHeartbeat(every, staleAfter time.Duration) Option {
	return func(s *settings) { s.heartbeat = [2]time.Duration{every, staleAfter} }
}

// WithSweepInterval sets how often the leader expires requests and reports
// dead executions (DefaultSweepEvery).
func WithSweepInterval(d time.Duration) Option { return func(s *settings) { s.sweepEvery = d } }

// WithScheduleIdentity is the Kubernetes identity scheduled imports are
// requested as (the bot's own service account); its access is checked like
// anyone's. Default user "deploybot".
func WithScheduleIdentity(user string, groups []string) Option {
	return func(s *settings) { s.scheduleUser, s.scheduleGroups = user, groups }
}

// New builds a Bot. cl reads cluster state, access checks identities, st
// keeps requests and exec carries out approved Plans.
func New(cfg *config.Config, cl commands.Cluster, access Access, st store.Store, exec lifecycle.Executor, opts ...Option) *Bot {
	s := settings{log: slog.Default(), metrics: noMetrics{}, clock: clock.Real, sweepEvery: DefaultSweepEvery}
	for _, o := range opts {
		o(&s)
	}
	b := &Bot{
		cfg:        cfg,
		deps:       commands.Deps{Config: cfg, Cluster: cl, Access: access, Now: s.clock.Now, Git: s.git},
		store:      st,
		clock:      s.clock,
		log:        s.log,
		metrics:    s.metrics,
		sweepEvery: s.sweepEvery,
		platforms:  map[string]Platform{},
	}
	for _, p := range s.platforms {
		b.platforms[p.Name()] = p
	}
	lopts := []lifecycle.Option{lifecycle.WithClock(s.clock), lifecycle.WithLogger(s.log), lifecycle.WithMetrics(s.metrics)}
	if s.rolloutDeadline > 0 {
		lopts = append(lopts, lifecycle.WithRolloutDeadline(s.rolloutDeadline))
	}
	if s.executorFor != nil {
		lopts = append(lopts, lifecycle.WithExecutorFor(s.executorFor))
	}
	if s.releaser != nil {
		lopts = append(lopts, lifecycle.WithReleaser(s.releaser))
	}
	if s.replica != "" {
		lopts = append(lopts, lifecycle.WithReplicaName(s.replica))
	}
	if s.heartbeat[0] > 0 {
		lopts = append(lopts, lifecycle.WithHeartbeat(s.heartbeat[0], s.heartbeat[1]))
	}
	b.life = lifecycle.New(lifecycle.Deps{Config: cfg, Store: st, Planner: planner{b.deps}, Access: access, Executor: exec, Messages: messages{b}}, lopts...)
	// The cluster answers what the registry has, for the environments the
	// scheduler polls (plain Kubernetes, scheduled: true), and what a tag
	// has now, for registry webhooks (Pushed).
	sopts := []schedule.Option{schedule.WithClock(s.clock), schedule.WithLogger(s.log), schedule.WithRegistry(cl), schedule.WithTags(cl)}
	if s.scheduleUser != "" {
		sopts = append(sopts, schedule.WithIdentity(s.scheduleUser, s.scheduleGroups))
	}
	b.sched = schedule.New(cfg, st, b.life, messages{b}, sopts...)
	if w, ok := cl.(feed.Watcher); ok {
		fopts := []feed.Option{feed.WithClock(s.clock), feed.WithLogger(s.log), feed.WithReplicaName(b.life.Replica())}
		if s.rolloutDeadline > 0 {
			fopts = append(fopts, feed.WithRolloutDeadline(s.rolloutDeadline))
		}
		fopts = append(fopts, s.feed...)
		if f := feed.New(cfg, st, feedObserver{b.deps}, w, exec, feedMessages{b}, fopts...); f.Enabled() {
			b.feed = f
		}
	} else if hasFeed(cfg) {
		s.log.Warn("the deploy feed is configured, but this cluster cannot be watched; no feed")
	}
	return b
}

// hasFeed reports whether any env of cfg has a deploy feed.
func hasFeed(cfg *config.Config) bool {
	for i := range cfg.Environments {
		if _, ok := cfg.Environments[i].FeedChannel(); ok {
			return true
		}
	}
	return false
}

// planner is commands.BuildPlan as the lifecycle consumes it.
type planner struct{ deps commands.Deps }

func (p planner) BuildPlan(ctx context.Context, caller plan.Caller, c plan.Command) (plan.Plan, error) {
	return commands.BuildPlan(ctx, p.deps, caller, c)
}

// AddPlatform registers a platform after construction (adapters that need
// the Bot to exist first).
func (b *Bot) AddPlatform(p Platform) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.platforms[p.Name()] = p
}

func (b *Bot) platform(name string) (Platform, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.platforms[name]
	return p, ok
}

// Wait blocks until background work (executions, rollout following) is done.
func (b *Bot) Wait() { b.life.Wait() }

// Close stops background work at once and waits for it; running
// executions record that they were interrupted.
func (b *Bot) Close() { b.life.Close() }

// Shutdown starts no more executions, lets running ones finish for up to
// grace and then interrupts them (see lifecycle.Shutdown); it returns how
// many it interrupted.
func (b *Bot) Shutdown(grace time.Duration) int { return b.life.Shutdown(grace) }

// ReplicaName returns the name this replica executes requests under.
func (b *Bot) ReplicaName() string { return b.life.Replica() }

// Sweep expires requests whose approval window has passed, reports
// executions whose replica died, and ends the holds whose --until time
// has come.
func (b *Bot) Sweep(ctx context.Context) error {
	return errors.Join(b.life.Sweep(ctx), b.sched.EndHolds(ctx))
}

// Recover reports executions a dead replica left behind, at start-up.
func (b *Bot) Recover(ctx context.Context) error { return b.life.Recover(ctx) }

// Lead runs the duties of the leader replica until ctx ends: the
// scheduler, the deploy feed and, every sweep interval, the sweeper
// (expiry, dead executions) and the end of holds placed with --until. Every
// step is a compare-and-swap claim in the store, so a second leader for a
// moment (a lost lease) does no harm.
func (b *Bot) Lead(ctx context.Context) {
	b.log.Info("leading: running the scheduler and the sweeper", "replica", b.ReplicaName())
	var wg sync.WaitGroup
	wg.Go(func() { b.sched.Run(ctx) })
	if b.feed != nil {
		wg.Go(func() { b.feed.Run(ctx) })
	}
	for {
		if err := b.Sweep(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("sweeping requests", "err", err)
		}

		select {
		case <-ctx.Done():
			wg.Wait()
			b.log.Info("no longer leading", "replica", b.ReplicaName())
			return
		case <-b.clock.After(b.sweepEvery):
		}
	}
}

// RunFeed runs only the deploy feed until ctx ends (a process that leads
// alone without running the schedule: the demo's chat); Lead runs it too.
func (b *Bot) RunFeed(ctx context.Context) {
	if b.feed != nil {
		b.feed.Run(ctx)
	}
}

// Handle takes one inbound request to its reply. It returns an error only
// when replying itself failed; everything the user did wrong is a reply.
func (b *Bot) Handle(ctx context.Context, req Request, resp Responder) (err error) {
	ctx = lifecycle.WithEvent(ctx, eventID(req))
	rec := &outcomeResponder{Responder: resp}
	resp = rec
	command := "none" // until the text is parsed
	if req.Action != nil {
		command = string(req.Action.Kind)
	}
	defer func() { b.metrics.Request(req.Platform, command, rec.result(err)) }()
	if req.DedupeKey != "" {
		first, err := b.store.Once(ctx, "event/"+req.Platform+"/"+req.DedupeKey, 24*time.Hour)
		if err != nil {
			return b.fail(ctx, resp, "checking for a redelivered event", err)
		}
		if !first && req.Replayed {
			// Taken up before the restart and cut off: the reply may or may
			// not have gone out, and what it did is in the store either way.
			b.logFor(ctx).Info("replayed event was already taken up before a restart", "platform", req.Platform)
			return b.refuse(ctx, resp, "deploybot restarted while answering this, so the answer may not have reached you. Nothing was run twice; send it again if you still need it (`pending` and `status` show what is open).")
		}
		if !first {
			b.logFor(ctx).Info("ignoring redelivered event", "platform", req.Platform)
			markOutcome(resp, OutcomeDuplicate)
			return nil
		}
	}
	caller := b.caller(req)
	if req.Action != nil {
		// Every button acts on a request or a schedule: identity first.
		if caller.User == "" {
			return b.refuse(ctx, resp, "%s", config.NotMapped(caller.Platform, caller.ChatID))
		}
		return b.handleAction(ctx, req, caller, resp)
	}
	res := commands.Parse(b.cfg, commands.Input{Text: req.Text, ChannelEnv: caller.ChannelEnv, Now: b.clock.Now()})
	switch res.Kind {
	case commands.Ignore:
		markOutcome(resp, OutcomeIgnored)
		return nil
	case commands.ReplyKind:
		command = replyCommand(req.Text, res.Reply)
		if command != "help" {
			markOutcome(resp, OutcomeInvalid)
		}
		return resp.Respond(ctx, Reply{Output: res.Reply})
	}
	cmd := res.Command
	command = cmd.Name
	spec, _ := commands.Lookup(cmd.Name)
	b.logFor(ctx).Info("command", "platform", req.Platform, "user", req.User.ID, "k8sUser", caller.User, "command", cmd.Name, "text", req.Text)
	if caller.User == "" && !spec.Anyone {
		return b.refuse(ctx, resp, "%s", config.NotMapped(caller.Platform, caller.ChatID))
	}
	switch {
	case spec.Flow:
		return b.handleFlow(ctx, req, caller, cmd, resp)
	case spec.Mutates:
		return b.open(ctx, req, caller, cmd, resp)
	default:
		out, err := commands.Run(ctx, b.deps, caller, cmd)
		if err != nil {
			return b.fail(ctx, resp, "running "+cmd.Name, err)
		}
		return resp.Respond(ctx, Reply{Output: out})
	}
}

// open hands a mutating command to the lifecycle; the request message it
// posts is the answer, or, when nothing was opened, the Plan.
func (b *Bot) open(ctx context.Context, req Request, caller plan.Caller, cmd plan.Command, resp Responder) error {
	opened, err := b.life.Open(ctx, lifecycle.Open{Caller: caller, Command: cmd, Platform: req.Platform, Channel: req.Channel})
	if err != nil {
		return b.fail(ctx, resp, "opening the request", err)
	}
	if opened.Request != nil {
		return nil
	}
	out := commands.RenderPlan(opened.Plan)
	note := "Nothing to change, so no request was opened."
	if len(opened.Plan.Notes) > 0 {
		note = "Nothing to change, so no request was opened; the notes above say what could not be read or moved."
	}
	if cmd.DryRun {
		note = "Dry run: nothing was changed and no request was opened."
	}
	out.Sections = append(out.Sections, commands.Section{Lines: []string{note}})
	return resp.Respond(ctx, Reply{Output: out})
}

// handleAction handles a button press.
func (b *Bot) handleAction(ctx context.Context, req Request, caller plan.Caller, resp Responder) error {
	id := strings.TrimPrefix(req.Action.RequestID, "#")
	by := lifecycle.Person(caller)
	switch req.Action.Kind {
	case ActionConfirm, ActionApprove, ActionDeny, ActionCancel:
		return b.step(ctx, req.Action.Kind, by, id, "", resp)
	case ActionSkip:
		out, err := b.sched.SkipRun(ctx, by, schedule.Origin{Platform: req.Platform, Channel: req.Channel}, id)
		return b.answer(ctx, resp, "skipping the run", out, err)
	case ActionImport:
		return b.importOffered(ctx, req, caller, resp)
	case ActionUndoChange, ActionPinChange:
		return b.changeClicked(ctx, req, caller, resp)
	}
	return b.refuse(ctx, resp, "Unknown button %q.", req.Action.Kind)
}

// importOffered opens the import an Import button offers, as if the person
// who clicked had typed it: the names are checked against the config (a
// button from before a config change may name what is gone), and the
// request is a normal one under the env's policy, Planned now.
func (b *Bot) importOffered(ctx context.Context, req Request, caller plan.Caller, resp Responder) error {
	env, services, ok := ParseImportOffer(req.Action.RequestID)
	if !ok {
		return b.refuse(ctx, resp, "That Import button is not one deploybot makes; nothing was changed.")
	}
	cmd := plan.Command{Name: "import", Env: env}
	var gone []string
	if _, ok := b.cfg.Env(env); !ok {
		gone = append(gone, "environment "+env)
	}
	for _, name := range services {
		if s, ok := b.cfg.Service(name); ok {
			cmd.Services = append(cmd.Services, s.Name)
		} else {
			gone = append(gone, "service "+name)
		}
	}
	if len(gone) > 0 {
		return b.refuse(ctx, resp, "The Import button asks for `%s`, which this deploybot does not know now (%s; did its config change?); nothing was changed.",
			strings.Join(append([]string{"import", env}, services...), " "), strings.Join(gone, ", "))
	}
	cmd.Text = strings.Join(append([]string{"import", env}, cmd.Services...), " ") // what the request shows as asked
	b.logFor(ctx).Info("command", "platform", req.Platform, "user", req.User.ID, "k8sUser", caller.User, "command", "import", "text", cmd.Text, "button", true)
	return b.open(ctx, req, caller, cmd, resp)
}

// handleFlow runs the commands that act on requests and schedules rather
// than clusters.
func (b *Bot) handleFlow(ctx context.Context, req Request, caller plan.Caller, cmd plan.Command, resp Responder) error {
	by := lifecycle.Person(caller)
	switch cmd.Name {
	case "pending":
		return b.pending(ctx, resp)
	case "audit":
		return b.auditLog(ctx, cmd.N, resp)
	case "schedule":
		var out commands.Output
		var err error
		switch cmd.Sub {
		case commands.ScheduleSkip:
			out, err = b.sched.SkipNext(ctx, by, schedule.Origin{Platform: req.Platform, Channel: req.Channel}, cmd.Env)
		case commands.SchedulePause:
			out, err = b.sched.Pause(ctx, by, cmd.Env, cmd.Until)
		case commands.ScheduleResume:
			out, err = b.sched.Resume(ctx, by, cmd.Env)
		default:
			out, err = b.sched.Show(ctx, cmd.Env)
		}
		return b.answer(ctx, resp, "changing the schedule", out, err)
	case "confirm", "approve", "deny", "cancel":
		id := cmd.ID
		if id == "" {
			var err error
			if id, err = b.life.Pick(ctx, by, cmd.Name); err != nil {
				return b.fail(ctx, resp, "finding the request", err)
			}
		}
		return b.step(ctx, ActionKind(cmd.Name), by, id, cmd.Reason, resp)
	}
	return b.refuse(ctx, resp, "`%s` is not handled here.", cmd.Name)
}

// step takes one lifecycle step on request id; the request's message shows
// the result, so only a refusal is answered.
func (b *Bot) step(ctx context.Context, kind ActionKind, by store.Person, id, reason string, resp Responder) error {
	id = strings.ToLower(strings.TrimPrefix(id, "#"))
	var err error
	switch kind {
	case ActionConfirm:
		_, err = b.life.Confirm(ctx, by, id)
	case ActionApprove:
		_, err = b.life.Approve(ctx, by, id)
	case ActionDeny:
		_, err = b.life.Deny(ctx, by, id, reason)
	case ActionCancel:
		_, err = b.life.Cancel(ctx, by, id)
	}
	if err != nil {
		return b.fail(ctx, resp, string(kind)+" #"+id, err)
	}
	return nil
}

// answer replies with out, or with what went wrong.
func (b *Bot) answer(ctx context.Context, resp Responder, doing string, out commands.Output, err error) error {
	if err != nil {
		return b.fail(ctx, resp, doing, err)
	}
	return resp.Respond(ctx, Reply{Output: out})
}

// caller maps the chat user to a Kubernetes identity.
func (b *Bot) caller(req Request) plan.Caller {
	c := plan.Caller{
		Platform:   req.Platform,
		ChatID:     req.User.ID,
		Name:       req.User.Name,
		ChannelEnv: b.cfg.ChannelEnv(req.Platform, req.Channel),
	}
	if c.Name == "" {
		c.Name = req.User.ID
	}
	if id, ok := auth.Identify(b.cfg, req.Platform, req.User.ID, req.User.Groups); ok {
		c.User, c.Groups = id.User, id.Groups
	}
	return c
}

// refuse answers the sender privately; a refusal changes nothing.
func (b *Bot) refuse(ctx context.Context, resp Responder, format string, args ...any) error {
	markOutcome(resp, OutcomeRefused)
	return resp.Respond(ctx, Reply{Output: commands.Output{Private: true, Sections: []commands.Section{{Lines: []string{fmt.Sprintf(format, args...)}}}}})
}

// fail answers a step that did not happen: a mistake the user can fix or a
// refusal, in words for them; an internal error without a stack trace, logged.
func (b *Bot) fail(ctx context.Context, resp Responder, doing string, err error) error {
	var ue *commands.UserError
	if errors.As(err, &ue) {
		markOutcome(resp, OutcomeInvalid)
		out := ue.Output
		out.Private = true
		return resp.Respond(ctx, Reply{Output: out})
	}
	var rf *lifecycle.Refusal
	if errors.As(err, &rf) {
		return b.refuse(ctx, resp, "%s", rf.Text)
	}
	var te *store.TransitionError
	if errors.As(err, &te) {
		return b.refuse(ctx, resp, "%s", te.Error())
	}
	var busy *store.BusyError
	if errors.As(err, &busy) {
		return b.refuse(ctx, resp, "%s is busy with #%s; wait for it to finish or cancel it.", busy.Lock, busy.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return b.refuse(ctx, resp, "There is no such request. `pending` lists the open ones.")
	}
	b.logFor(ctx).Error(doing, "err", err)
	markOutcome(resp, OutcomeError)
	return b.refuse(ctx, resp, "Something went wrong while %s: %v", doing, err)
}

// joinLines is a short helper for single-section outputs.
func joinLines(lines ...string) commands.Output {
	return commands.Output{Sections: []commands.Section{{Lines: lines}}}
}
