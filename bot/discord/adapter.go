package discord

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// Name is the platform name Discord identities are mapped under.
const Name = "discord"

// Defaults and limits.
const (
	// DefaultPrefix starts a message command.
	DefaultPrefix = "!deploy"
	// MaxBodyBytes bounds an interaction request body. The largest Discord
	// sends are button clicks, which carry the clicked message (at most 2000
	// characters of content and 6000 of embeds).
	MaxBodyBytes = 256 << 10
	// TimestampWindow is how far an interaction's signed timestamp may be
	// from now. Discord's signature covers the timestamp but Discord sets no
	// window of its own, so without one a captured request could be replayed
	// forever.
	TimestampWindow = 5 * time.Minute
	// Intents are the only gateway events the bot asks for: guild messages
	// and their text. Message Content is privileged (enabled in the developer
	// portal).
	Intents = discordgo.IntentsGuildMessages | discordgo.IntentsMessageContent

	// interactionTokenTTL is how long an interaction token can follow up
	// and edit its messages.
	interactionTokenTTL = 15 * time.Minute
)

// errNoREST is why a message cannot be edited by an adapter with only a
// public key: it changes only in answer to a click on it.
var errNoREST = errors.New("with only DISCORD_PUBLIC_KEY set, messages change only in answer to a click (set DISCORD_APP_ID or DISCORD_BOT_TOKEN)")

// errTokenExpired is why a request message posted as an interaction's
// response cannot be edited any more: its last interaction token is older
// than Discord's 15 minutes (or the bot restarted). The next click on it
// brings a fresh one.
var errTokenExpired = errors.New("its interaction token expired (Discord allows 15 minutes); the message changes again at the next click")

// Handler is what the adapter hands requests to; *bot.Bot implements it.
type Handler interface {
	Handle(ctx context.Context, req bot.Request, resp bot.Responder) error
}

// ackObserver and errorCounter are implemented by a Handler that records
// metrics (*bot.Bot does): how long interactions wait for their initial
// response, and Discord API calls that failed outside the bot's own Post
// and Update (coalesced edits, interaction responses, follow-ups).
type (
	ackObserver interface {
		ObserveAck(platform string, d time.Duration)
	}
	errorCounter interface{ PlatformError(platform, op string) }
)

// Adapter is the Discord platform: a bot.Platform that also receives
// messages over the gateway and interactions over the gateway or HTTP.
type Adapter struct {
	h         Handler
	log       *slog.Logger
	session   *discordgo.Session
	token     string // the bot token; empty: no gateway, no channel messages
	publicKey ed25519.PublicKey
	prefix    string
	guilds    []string
	channels  []string
	words     []string
	apiURL    string
	now       func() time.Time
	// ackWithin is how long an interaction waits for the bot before it is
	// answered with a deferred response (Discord allows 3 seconds).
	ackWithin     time.Duration
	handleTimeout time.Duration
	editInterval  time.Duration

	edits *editor
	// inbox, when set, keeps interactions acknowledged before they were
	// handled (inbox.go).
	inbox bot.Inbox
	// observeAck and countError report to the handler's metrics, if any.
	observeAck func(platform string, d time.Duration)
	countError func(platform, op string)

	mu         sync.Mutex
	appID      string
	botUserID  string
	registered bool
	hooks      map[string]hook
}

// hook is an interaction token that can edit a request message posted as an
// interaction's response (there is no bot token to edit it with).
type hook struct {
	appID, token, message string
	expires               time.Time
}

// Option configures an Adapter.
type Option func(*Adapter)

// WithBotToken sets the bot token (DISCORD_BOT_TOKEN): the gateway
// connection, request messages in channels, command registration.
func WithBotToken(token string) Option {
	return func(a *Adapter) { a.token = strings.TrimSpace(strings.TrimPrefix(token, "Bot ")) }
}

// WithPublicKey enables POST /discord/interactions, verified with the
// application's public key (DISCORD_PUBLIC_KEY).
func WithPublicKey(k ed25519.PublicKey) Option { return func(a *Adapter) { a.publicKey = k } }

// WithAppID sets the application ID (DISCORD_APP_ID); with it, interactions
// are followed up over REST even without a bot token.
func WithAppID(id string) Option { return func(a *Adapter) { a.appID = id } }

// WithPrefix sets the message prefix (default "!deploy").
func WithPrefix(p string) Option { return func(a *Adapter) { a.prefix = p } }

// WithGuilds restricts the bot to these guilds and registers /deploy in
// each; without guilds it serves every guild and registers /deploy globally.
func WithGuilds(ids ...string) Option { return func(a *Adapter) { a.guilds = ids } }

// WithChannels restricts message commands to these channels.
func WithChannels(ids ...string) Option { return func(a *Adapter) { a.channels = ids } }

// WithAPIURL sends REST calls meant for https://discord.com/api to base
// instead, e.g. http://127.0.0.1:9999/api.
func WithAPIURL(base string) Option { return func(a *Adapter) { a.apiURL = base } }

// WithCompletions sets the words /deploy autocompletes after the command
// name: environment and service names.
func WithCompletions(words ...string) Option { return func(a *Adapter) { a.words = words } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(a *Adapter) { a.log = l } }

// WithClock replaces time.Now for the timestamp window.
func WithClock(now func() time.Time) Option { return func(a *Adapter) { a.now = now } }

// WithAckWithin sets how long an interaction waits for the bot's answer
// before it is deferred (default 2s of Discord's 3).
func WithAckWithin(d time.Duration) Option { return func(a *Adapter) { a.ackWithin = d } }

// WithEditInterval sets the least time between two edits of one message
// (default 2s).
func WithEditInterval(d time.Duration) Option { return func(a *Adapter) { a.editInterval = d } }

// New builds the Discord adapter. It needs a bot token, a public key, or
// both.
func New(h Handler, opts ...Option) (*Adapter, error) {
	a := &Adapter{
		h:             h,
		log:           slog.Default(),
		prefix:        DefaultPrefix,
		now:           time.Now,
		ackWithin:     2 * time.Second,
		handleTimeout: 5 * time.Minute,
		editInterval:  2 * time.Second,
		hooks:         map[string]hook{},
	}
	for _, o := range opts {
		o(a)
	}
	if a.token == "" && a.publicKey == nil {
		return nil, errors.New("the Discord adapter needs a bot token, a public key or both")
	}
	if a.publicKey != nil && len(a.publicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("the Discord public key is %d bytes, want %d", len(a.publicKey), ed25519.PublicKeySize)
	}
	if strings.TrimSpace(a.prefix) == "" {
		a.prefix = DefaultPrefix
	}
	auth := ""
	if a.token != "" {
		auth = "Bot " + a.token
	}
	s, err := discordgo.New(auth)
	if err != nil {
		return nil, fmt.Errorf("creating the Discord session: %w", err)
	}
	var base *url.URL
	if a.apiURL != "" {
		base, err = url.Parse(a.apiURL)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("the Discord API URL %q is not an http(s) URL", a.apiURL)
		}
	}
	// discordgo waits out a 429 and tries again by itself, so the transport
	// is where a rate limit can be counted.
	s.Client = &http.Client{Timeout: 20 * time.Second, Transport: &apiTransport{base: base, next: http.DefaultTransport,
		limited: func() { a.countError(Name, "rate_limited") }}}
	s.Identify.Intents = Intents
	s.StateEnabled = false // nothing reads discordgo's cache; members come with each event
	a.session = s
	a.observeAck, a.countError = func(string, time.Duration) {}, func(string, string) {}
	if o, ok := h.(ackObserver); ok {
		a.observeAck = o.ObserveAck
	}
	if c, ok := h.(errorCounter); ok {
		a.countError = c.PlatformError
	}
	a.edits = newEditor(a.editInterval, a.log, func(ctx context.Context, ref store.MessageRef, r bot.Reply) error {
		err := a.edit(ctx, ref, r)
		if err != nil && !errors.Is(err, errNoREST) && !errors.Is(err, errTokenExpired) {
			a.countError(Name, "update")
		}
		return err
	})
	return a, nil
}

// Name implements bot.Platform.
func (a *Adapter) Name() string { return Name }

// rest reports whether the adapter may call Discord's REST API: a bot token
// or an application ID says the deployment talks to Discord; with only a
// public key (a --demo) it answers interactions inline and calls nothing.
func (a *Adapter) rest() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token != "" || a.appID != ""
}

// Post publishes a request message. With a bot token it is a channel
// message; without one it can only be the response of the interaction that
// opened the request.
func (a *Adapter) Post(ctx context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	ex := exchangeFrom(ctx)
	if a.token == "" {
		if ex == nil {
			return store.MessageRef{}, fmt.Errorf("posting #%s in channel %s: without DISCORD_BOT_TOKEN deploybot can only answer interactions", r.RequestID, channel)
		}
		return ex.post(ctx, channel, r)
	}
	m, err := a.session.ChannelMessageSendComplex(channel, renderRequest(r).send(), discordgo.WithContext(ctx))
	if err != nil {
		return store.MessageRef{}, fmt.Errorf("posting #%s in channel %s: %w", r.RequestID, channel, err)
	}
	if ex != nil {
		ex.notePosted(r.RequestID)
	}
	return store.MessageRef{Platform: Name, Channel: channel, ID: m.ID}, nil
}

// Update replaces a request message's content. Edits are coalesced (see
// editor); the button click being answered gets the new content as its
// response instead of a separate edit.
func (a *Adapter) Update(ctx context.Context, ref store.MessageRef, r bot.Reply) error {
	if ex := exchangeFrom(ctx); ex != nil && ex.capture(ref, r) {
		return nil
	}
	a.edits.update(ref, r)
	return nil
}

// edit sends one edit of a request message.
func (a *Adapter) edit(ctx context.Context, ref store.MessageRef, r bot.Reply) error {
	m := renderRequest(r)
	if strings.HasPrefix(ref.ID, interactionRef) {
		if !a.rest() {
			return fmt.Errorf("editing #%s: %w", r.RequestID, errNoREST)
		}
		h, ok := a.hook(ref.ID)
		if !ok {
			return fmt.Errorf("editing #%s: %w", r.RequestID, errTokenExpired)
		}
		_, err := a.session.WebhookMessageEdit(h.appID, h.token, h.message, m.webhookEdit(), discordgo.WithContext(ctx))
		return err
	}
	if a.token == "" {
		return fmt.Errorf("editing #%s: needs DISCORD_BOT_TOKEN", r.RequestID)
	}
	_, err := a.session.ChannelMessageEditComplex(m.channelEdit(ref.Channel, ref.ID), discordgo.WithContext(ctx))
	return err
}

func (a *Adapter) setHook(refID string, h hook) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for id, old := range a.hooks {
		if now.After(old.expires) {
			delete(a.hooks, id)
		}
	}
	a.hooks[refID] = h
}

func (a *Adapter) hook(refID string) (hook, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.hooks[refID]
	if !ok || a.now().After(h.expires) {
		return hook{}, false
	}
	return h, true
}

// Routes registers POST /discord/interactions when a public key is set.
func (a *Adapter) Routes(mux *http.ServeMux) {
	if a.publicKey != nil {
		mux.HandleFunc("POST /discord/interactions", a.serveInteractions)
	}
}

// Run holds the gateway connection until ctx ends, then delivers the edits
// still pending. With an inbox it first handles what an earlier run
// acknowledged and did not finish (Replay). Without a bot token there is no
// gateway: it returns at once, or once the replay is done.
func (a *Adapter) Run(ctx context.Context) error {
	replayed := make(chan struct{})
	go func() {
		defer close(replayed)
		if _, err := a.Replay(ctx); err != nil {
			a.log.Error("discord: replaying the inbox", "err", err)
		}
	}()
	if a.token == "" {
		<-replayed
		return nil
	}
	a.session.AddHandler(a.onReady)
	a.session.AddHandler(a.onMessage)
	a.session.AddHandler(a.onInteraction)
	if err := a.session.Open(); err != nil {
		<-replayed
		return fmt.Errorf("connecting to the Discord gateway: %w", err)
	}
	<-ctx.Done()
	<-replayed
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.edits.flush(flushCtx)
	if err := a.session.Close(); err != nil {
		return fmt.Errorf("closing the Discord gateway: %w", err)
	}
	return nil
}

// Flush delivers pending message edits now and waits for them until ctx
// ends.
func (a *Adapter) Flush(ctx context.Context) { a.edits.flush(ctx) }

// onReady learns the bot's own user (to see mentions and ignore itself) and
// the application ID, and registers /deploy once.
func (a *Adapter) onReady(_ *discordgo.Session, r *discordgo.Ready) {
	a.mu.Lock()
	if r.User != nil {
		a.botUserID = r.User.ID
	}
	if a.appID == "" && r.Application != nil {
		a.appID = r.Application.ID
	}
	done := a.registered
	a.mu.Unlock()
	if done {
		return // a reconnect; /deploy is in place
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.RegisterCommands(ctx); err != nil {
		// Message commands still work; the next READY tries again.
		a.log.Error("registering /deploy", "err", err)
		return
	}
	a.mu.Lock()
	a.registered = true
	a.mu.Unlock()
}

// RegisterCommands makes /deploy the application's only command in each
// configured guild (globally without guilds). Bulk overwrite is idempotent:
// starting twice, or after a change, leaves exactly the current definition.
func (a *Adapter) RegisterCommands(ctx context.Context) error {
	a.mu.Lock()
	appID := a.appID
	a.mu.Unlock()
	if appID == "" {
		return errors.New("the application ID is unknown (set DISCORD_APP_ID)")
	}
	guilds := a.guilds
	if len(guilds) == 0 {
		guilds = []string{""} // global
	}
	var errs []error
	for _, g := range guilds {
		if _, err := a.session.ApplicationCommandBulkOverwrite(appID, g, []*discordgo.ApplicationCommand{deployCommand()}, discordgo.WithContext(ctx)); err != nil {
			where := "globally"
			if g != "" {
				where = "in guild " + g
			}
			errs = append(errs, fmt.Errorf("registering /deploy %s (was the app invited with the applications.commands scope?): %w", where, err))
		}
	}
	return errors.Join(errs...)
}

func (a *Adapter) selfID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.botUserID
}

// guildAllowed: with guilds configured, only those; otherwise any guild.
func (a *Adapter) guildAllowed(id string) bool {
	return len(a.guilds) == 0 || slices.Contains(a.guilds, id)
}

// apiTransport sends requests for https://discord.com/api/... to base
// instead, so tests and local fakes stand in for Discord.
type apiTransport struct {
	base *url.URL
	next http.RoundTripper
	// limited, if set, is called for every 429 Discord answers.
	limited func()
}

func (t *apiTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.roundTrip(req)
	if err == nil && res.StatusCode == http.StatusTooManyRequests && t.limited != nil {
		t.limited()
	}
	return res, err
}

func (t *apiTransport) roundTrip(req *http.Request) (*http.Response, error) {
	if t.base == nil || req.URL.Host != "discord.com" || !strings.HasPrefix(req.URL.Path, "/api/") {
		return t.next.RoundTrip(req)
	}
	u := *t.base
	u.Path = strings.TrimSuffix(t.base.Path, "/") + strings.TrimPrefix(req.URL.Path, "/api")
	u.RawPath = ""
	if req.URL.RawPath != "" {
		u.RawPath = strings.TrimSuffix(t.base.EscapedPath(), "/") + strings.TrimPrefix(req.URL.RawPath, "/api")
	}
	u.RawQuery = req.URL.RawQuery
	out := req.Clone(req.Context())
	out.URL, out.Host = &u, u.Host
	return t.next.RoundTrip(out)
}
