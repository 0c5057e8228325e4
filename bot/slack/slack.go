package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// Name is the platform name Slack identities are mapped under.
const Name = "slack"

// Mode is how Slack reaches the bot.
type Mode string

// The modes.
const (
	// ModeHTTP receives slash commands and clicks as signed HTTP requests.
	ModeHTTP Mode = "http"
	// ModeSocket receives them over a Socket Mode WebSocket, for clusters
	// with no public ingress.
	ModeSocket Mode = "socket"
)

// Handler is what the adapter hands each event to; *bot.Bot implements it.
type Handler interface {
	Handle(ctx context.Context, req bot.Request, resp bot.Responder) error
}

// Defaults.
const (
	// MaxBody bounds an inbound request body; a slash command or a click
	// payload is a few KiB.
	MaxBody = 64 << 10
	// DefaultWorkers is how many events are handled at once.
	DefaultWorkers = 32
	// DefaultQueue is how many acknowledged events may wait for a worker.
	DefaultQueue = 4096
	// DefaultUpdateInterval spaces chat.update calls of one message (Slack
	// allows about one message write per second per channel).
	DefaultUpdateInterval = time.Second
	// DefaultHookInterval spaces intermediate updates through response_url,
	// which allows five uses in thirty minutes.
	DefaultHookInterval = 10 * time.Second
	// DefaultGroupsTTL is how long user group memberships are cached.
	DefaultGroupsTTL = 5 * time.Minute
	// jobTimeout bounds the handling of one event (not the execution it may
	// start, which the bot runs in the background).
	jobTimeout = 5 * time.Minute
	// dedupeWindow is how long the adapter itself remembers an event's key;
	// the bot's store remembers it for a day.
	dedupeWindow = 15 * time.Minute
)

// Adapter is the Slack platform: it implements bot.Platform, serves the HTTP
// endpoints (or holds the Socket Mode connection) and answers each event
// through a bot.Responder.
type Adapter struct {
	handler  Handler
	mode     Mode
	secret   string
	botToken string
	appToken string
	apiURL   string
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	workers        int
	updateInterval time.Duration
	hookInterval   time.Duration
	retryBase      time.Duration // first backoff of a retried Web API call
	groupsTTL      time.Duration
	socketOpts     []socketmode.Option

	// api is the Web API client; nil without a bot token (and without an
	// app token in Socket Mode).
	api *slackgo.Client

	queue chan inbound
	// inbox, when set, persists events before they are acknowledged;
	// commits feeds its group commit (inbox.go).
	inbox   bot.Inbox
	commits chan commit
	// dones feeds the batched marking of handled events (inbox.go);
	// doneMu guards it against being closed while a mark is sent to it.
	dones       chan store.InboxOutcome
	donesMu     sync.RWMutex
	donesClosed bool
	donesDone   chan struct{}
	replays     *expiringSet // signatures seen (HTTP replay guard)
	seen        *expiringSet // event dedupe keys
	hooks       *hookBook
	messages    *messageBook
	groups      *groupCache

	ctx       context.Context // parent of workers and deliveries; cancelled by Close
	cancel    context.CancelFunc
	workersWG sync.WaitGroup
	closeOnce sync.Once
	// qmu guards queue against being closed while an ack sends to it.
	qmu      sync.RWMutex
	stopping bool

	stats counters
	// observeAck reports ack latency when the handler records metrics.
	observeAck func(platform string, d time.Duration)
	// countError counts a failed Web API or response_url call in the
	// handler's metrics, when it records them.
	countError func(platform, op string)
}

// errorCounter is implemented by a Handler that counts failed platform API
// calls (*bot.Bot does).
type errorCounter interface {
	PlatformError(platform, op string)
}

// ackObserver is implemented by a Handler that records how long adapters
// take to acknowledge events (*bot.Bot does).
type ackObserver interface {
	ObserveAck(platform string, d time.Duration)
}

// Option configures an Adapter.
type Option func(*Adapter)

// WithMode selects HTTP (default) or Socket Mode.
func WithMode(m Mode) Option { return func(a *Adapter) { a.mode = m } }

// WithSigningSecret sets the app's signing secret (HTTP mode).
func WithSigningSecret(s string) Option { return func(a *Adapter) { a.secret = s } }

// WithBotToken sets the bot token (xoxb-...): request messages are then
// posted and updated with chat.postMessage and chat.update, and user groups
// are read.
func WithBotToken(t string) Option { return func(a *Adapter) { a.botToken = t } }

// WithAppToken sets the app-level token (xapp-...) Socket Mode connects with.
func WithAppToken(t string) Option { return func(a *Adapter) { a.appToken = t } }

// WithAPIURL replaces https://slack.com/api/, e.g. with a fake Slack.
func WithAPIURL(u string) Option { return func(a *Adapter) { a.apiURL = u } }

// WithHTTPClient sets the client for the Web API and response_url.
func WithHTTPClient(c *http.Client) Option { return func(a *Adapter) { a.client = c } }

// WithLogger sets the structured logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(a *Adapter) { a.log = l } }

// WithClock replaces time.Now for response_url and cache expiry, for tests.
func WithClock(now func() time.Time) Option { return func(a *Adapter) { a.now = now } }

// WithWorkers sets how many events are handled at once.
func WithWorkers(n int) Option { return func(a *Adapter) { a.workers = n } }

// WithQueue sets how many acknowledged events may wait for a worker.
func WithQueue(n int) Option { return func(a *Adapter) { a.queue = make(chan inbound, n) } }

// WithUpdateInterval spaces the chat.update calls of one message.
func WithUpdateInterval(d time.Duration) Option { return func(a *Adapter) { a.updateInterval = d } }

// WithHookInterval spaces intermediate updates of one message through
// response_url.
func WithHookInterval(d time.Duration) Option { return func(a *Adapter) { a.hookInterval = d } }

// WithGroupsTTL sets how long user group memberships are cached.
func WithGroupsTTL(d time.Duration) Option { return func(a *Adapter) { a.groupsTTL = d } }

// WithSocketModeOptions passes options to the Socket Mode client (a
// custom dialer, ping interval).
func WithSocketModeOptions(opts ...socketmode.Option) Option {
	return func(a *Adapter) { a.socketOpts = append(a.socketOpts, opts...) }
}

// New builds the Slack adapter handing events to h and starts its workers.
// HTTP mode needs a signing secret, Socket Mode an app token.
func New(h Handler, opts ...Option) (*Adapter, error) {
	a := &Adapter{
		handler:        h,
		mode:           ModeHTTP,
		client:         &http.Client{Timeout: 15 * time.Second},
		log:            slog.Default(),
		now:            time.Now,
		workers:        DefaultWorkers,
		updateInterval: DefaultUpdateInterval,
		hookInterval:   DefaultHookInterval,
		groupsTTL:      DefaultGroupsTTL,
	}
	for _, o := range opts {
		o(a)
	}
	switch a.mode {
	case ModeHTTP:
		if a.secret == "" {
			return nil, errors.New("slack HTTP mode needs the app's signing secret (SLACK_SIGNING_SECRET)")
		}
	case ModeSocket:
		if a.appToken == "" {
			return nil, errors.New("slack Socket Mode needs an app-level token (SLACK_APP_TOKEN, xapp-...)")
		}
	default:
		return nil, fmt.Errorf("unknown slack mode %q (want %s or %s)", a.mode, ModeHTTP, ModeSocket)
	}
	if o, ok := h.(ackObserver); ok {
		a.observeAck = o.ObserveAck
	}
	if a.retryBase <= 0 {
		a.retryBase = DefaultRetryBase
	}
	a.countError = func(string, string) {}
	if c, ok := h.(errorCounter); ok {
		a.countError = c.PlatformError
	}
	if a.workers < 1 {
		a.workers = 1
	}
	if a.queue == nil {
		a.queue = make(chan inbound, DefaultQueue)
	}
	if a.botToken != "" || a.appToken != "" {
		apiOpts := []slackgo.Option{slackgo.OptionHTTPClient(a.client)}
		if a.apiURL != "" {
			apiOpts = append(apiOpts, slackgo.OptionAPIURL(strings.TrimSuffix(a.apiURL, "/")+"/"))
		}
		if a.appToken != "" {
			apiOpts = append(apiOpts, slackgo.OptionAppLevelToken(a.appToken))
		}
		a.api = slackgo.New(a.botToken, apiOpts...)
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.replays = newExpiringSet(a.now)
	a.seen = newExpiringSet(a.now)
	a.hooks = newHookBook(a.now)
	a.messages = newMessageBook()
	if a.botToken != "" {
		a.groups = newGroupCache(a.api, a.groupsTTL, a.now, a.log)
	}
	for range a.workers {
		a.workersWG.Add(1)
		go a.work()
	}
	if a.inbox != nil {
		// Each ack waits for its commit, so the buffer needs only hold what
		// arrives during one write, not the whole queue.
		a.commits = make(chan commit, maxBatch)
		go a.commitLoop()
		a.dones, a.donesDone = make(chan store.InboxOutcome, 4*maxBatch), make(chan struct{})
		go a.doneLoop()
	}
	return a, nil
}

// Name implements bot.Platform.
func (a *Adapter) Name() string { return Name }

// Routes registers the HTTP endpoints Slack posts to. Socket Mode has none.
func (a *Adapter) Routes(mux *http.ServeMux) {
	if a.mode != ModeHTTP {
		return
	}
	mux.Handle("POST /slack/commands", a.endpoint(kindCommand))
	mux.Handle("POST /slack/interactions", a.endpoint(kindAction))
}

// Run holds the Socket Mode connection until ctx ends; in HTTP mode it only
// waits for ctx. With an inbox it first handles what an earlier run left in
// it (Replay). Either way it then stops the workers, letting acknowledged
// events finish, and delivers pending message updates.
func (a *Adapter) Run(ctx context.Context) error {
	if a.inbox != nil {
		// What an earlier run acknowledged but did not answer.
		go func() {
			if _, err := a.Replay(ctx); err != nil {
				a.log.Error("slack: replaying the inbox", "err", err)
			}
		}()
	}
	var err error
	if a.mode == ModeSocket {
		err = a.runSocket(ctx)
	} else {
		<-ctx.Done()
	}
	a.Close()
	return err
}

// Close stops accepting events, waits for the queued ones to be handled and
// for pending message updates to be delivered (at most 30 seconds), then
// stops.
func (a *Adapter) Close() {
	a.closeOnce.Do(func() {
		a.qmu.Lock()
		a.stopping = true
		close(a.queue)
		a.qmu.Unlock()
		done := make(chan struct{})
		go func() {
			a.workersWG.Wait()
			a.messages.flush()
			a.closeDones()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			a.log.Warn("slack: gave up waiting for events and updates to finish")
		}
		a.cancel()
	})
}

// Stats are the adapter's counters since it started.
type Stats struct {
	// Rejected requests failed size or signature checks and were not parsed.
	Rejected int64
	// Parsed requests passed the checks and were decoded.
	Parsed int64
	// Malformed requests passed the checks but did not decode.
	Malformed int64
	// Duplicates were redeliveries of an event already accepted.
	Duplicates int64
	// Enqueued events were acknowledged and queued for the bot.
	Enqueued int64
	// Overloaded events found the queue full and were turned away.
	Overloaded int64
	// Handled events were handed to the bot.
	Handled int64
}

type counters struct {
	rejected, parsed, malformed, duplicates, enqueued, overloaded, handled atomic.Int64
}

// Stats returns the adapter's counters.
func (a *Adapter) Stats() Stats {
	return Stats{
		Rejected:   a.stats.rejected.Load(),
		Parsed:     a.stats.parsed.Load(),
		Malformed:  a.stats.malformed.Load(),
		Duplicates: a.stats.duplicates.Load(),
		Enqueued:   a.stats.enqueued.Load(),
		Overloaded: a.stats.overloaded.Load(),
		Handled:    a.stats.handled.Load(),
	}
}
