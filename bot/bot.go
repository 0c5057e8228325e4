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
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// Executor performs stored, approved Plans and follows their rollouts.
// *cluster.Set implements it.
type Executor interface {
	Execute(ctx context.Context, p plan.Plan, report func(plan.Progress)) (plan.Result, error)
	Follow(ctx context.Context, p plan.Plan, r plan.Result, deadline time.Duration, report func(plan.Progress)) []plan.RolloutResult
}

// Bot is the dispatcher: every adapter hands it Requests.
type Bot struct {
	cfg   *config.Config
	deps  commands.Deps
	store store.Store
	exec  Executor
	// executorFor, when set, gives the executor that acts for a requester
	// (execution: impersonate); exec is used otherwise.
	executorFor func(requester store.Person) (Executor, error)
	log         *slog.Logger
	metrics     Metrics
	platforms   map[string]Platform
	// rolloutDeadline bounds how long a rollout is followed.
	rolloutDeadline time.Duration

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	work   sync.WaitGroup

	mu       sync.Mutex
	progress map[string]*progressLog

	// rep is this replica's name, clock, heartbeat and schedule identity (leader.go).
	rep *replica
}

// Option configures a Bot.
type Option func(*Bot)

// WithLogger sets the structured logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(b *Bot) { b.log = l } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(b *Bot) { b.deps.Now = now } }

// WithRolloutDeadline bounds how long rollouts are followed (default 10m).
func WithRolloutDeadline(d time.Duration) Option { return func(b *Bot) { b.rolloutDeadline = d } }

// WithExecutorFor makes approved Plans execute through the executor fn
// returns for the request's requester, e.g. clients that impersonate them so
// the API server enforces their RBAC again.
func WithExecutorFor(fn func(requester store.Person) (Executor, error)) Option {
	return func(b *Bot) { b.executorFor = fn }
}

// WithPlatform registers a platform that request messages are posted to.
func WithPlatform(p Platform) Option { return func(b *Bot) { b.platforms[p.Name()] = p } }

// New builds a Bot. cl reads cluster state, access checks identities, st keeps
// requests and exec carries out approved Plans.
func New(cfg *config.Config, cl commands.Cluster, access commands.Access, st store.Store, exec Executor, opts ...Option) *Bot {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bot{
		cfg:             cfg,
		deps:            commands.Deps{Config: cfg, Cluster: cl, Access: access, Now: time.Now},
		store:           st,
		exec:            exec,
		log:             slog.Default(),
		metrics:         noMetrics{},
		platforms:       map[string]Platform{},
		rolloutDeadline: 10 * time.Minute,
		ctx:             ctx,
		cancel:          cancel,
		progress:        map[string]*progressLog{},
		rep:             newReplica(),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// AddPlatform registers a platform after construction (adapters that need
// the Bot to exist first).
func (b *Bot) AddPlatform(p Platform) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.platforms[p.Name()] = p
}

// Wait blocks until background work (executions, rollout following) is done.
func (b *Bot) Wait() { b.work.Wait() }

// Close stops background work and waits for it.
func (b *Bot) Close() {
	b.cancel()
	b.work.Wait()
}

func (b *Bot) now() time.Time { return b.deps.Now() }

// background runs fn as tracked background work.
func (b *Bot) background(fn func(ctx context.Context)) {
	b.work.Add(1)
	go func() {
		defer b.work.Done()
		fn(b.ctx)
	}()
}

// Handle takes one inbound request to its reply. It returns an error only
// when replying itself failed; everything the user did wrong is a reply.
func (b *Bot) Handle(ctx context.Context, req Request, resp Responder) (err error) {
	ctx = withEvent(ctx, eventID(req))
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
		if !first {
			b.logFor(ctx).Info("ignoring redelivered event", "platform", req.Platform)
			markOutcome(resp, OutcomeDuplicate)
			return nil
		}
	}
	caller := b.caller(req)
	if req.Action != nil {
		return b.handleAction(ctx, req, caller, resp)
	}
	res := commands.Parse(b.cfg, commands.Input{Text: req.Text, ChannelEnv: caller.ChannelEnv})
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
	switch {
	case spec.Flow:
		return b.handleFlow(ctx, req, caller, cmd, resp)
	case spec.Mutates:
		return b.handleMutating(ctx, req, caller, cmd, resp)
	default:
		out, err := commands.Run(ctx, b.deps, caller, cmd)
		if err != nil {
			return b.fail(ctx, resp, "running "+cmd.Name, err)
		}
		return resp.Respond(ctx, Reply{Output: out})
	}
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

func person(c plan.Caller) store.Person {
	return store.Person{Platform: c.Platform, ChatID: c.ChatID, Name: c.Name, User: c.User, Groups: c.Groups}
}

// refuse answers the sender privately; a refusal changes nothing.
func (b *Bot) refuse(ctx context.Context, resp Responder, format string, args ...any) error {
	markOutcome(resp, OutcomeRefused)
	return resp.Respond(ctx, Reply{Output: commands.Output{Private: true, Sections: []commands.Section{{Lines: []string{fmt.Sprintf(format, args...)}}}}})
}

// fail reports an internal error to the sender without a stack trace and logs it.
func (b *Bot) fail(ctx context.Context, resp Responder, doing string, err error) error {
	var ue *commands.UserError
	if errors.As(err, &ue) {
		markOutcome(resp, OutcomeInvalid)
		out := ue.Output
		out.Private = true
		return resp.Respond(ctx, Reply{Output: out})
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

// unmapped is the reply to a chat user with no Kubernetes identity.
func unmappedReply(c plan.Caller) string {
	return fmt.Sprintf("You (%s user %q) are not mapped to a Kubernetes identity, so you can only run `help` and `whoami`. "+
		"Ask an admin to add you under identities.users with platform: %s and id: %q.", c.Platform, c.ChatID, c.Platform, c.ChatID)
}

// joinLines is a short helper for single-section outputs.
func joinLines(lines ...string) commands.Output {
	return commands.Output{Sections: []commands.Section{{Lines: lines}}}
}

func shortID(id string) string { return "#" + strings.TrimPrefix(id, "#") }
