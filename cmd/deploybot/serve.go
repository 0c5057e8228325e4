package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

// adapter is a chat platform as `serve` runs it: a bot.Platform that may
// serve HTTP endpoints and may hold a connection of its own (Socket Mode, the
// Discord gateway).
type adapter interface {
	bot.Platform
	// Routes registers the adapter's HTTP endpoints.
	Routes(mux *http.ServeMux)
	// Run holds the adapter's own connection until ctx ends; adapters that
	// only serve HTTP return nil at once.
	Run(ctx context.Context) error
}

// adapterEnv is what building an adapter may use.
type adapterEnv struct {
	cfg    *config.Config
	bot    *bot.Bot
	log    *slog.Logger
	getenv func(string) string
	demo   bool
	// inbox keeps acknowledged events until they are handled (the store).
	inbox store.Store
}

// adapters is the explicit table of chat platforms `serve` can run. Each
// builder returns nil when its platform is not configured (no secrets in the
// environment). Adding a platform is one folder under bot/ and one row here.
var adapters = []struct {
	name  string
	build func(adapterEnv) (adapter, error)
}{
	{"discord", newDiscordAdapter},
	{"slack", newSlackAdapter},
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	common := addCommonFlags(fs, "info")
	listen := fs.String("listen", ":8080", "address of the HTTP endpoints (Slack, Discord, registry webhooks, health)")
	grace := fs.Duration("shutdown-grace", lifecycle.DefaultShutdownGrace, "on SIGTERM, how long running executions may finish before they are stopped and recorded as interrupted (keep it below the pod's terminationGracePeriodSeconds)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, logger, err := common.setUp(ctx, stderr)
	if err != nil {
		return err
	}
	defer s.close()
	opts, err := s.botOptions()
	if err != nil {
		return err
	}
	opts = append(opts, s.replicaOptions(ctx, logger)...)
	reg := s.newMetrics()
	b := bot.New(s.cfg, s.set, s.checker, s.store, s.set, append(opts, bot.WithLogger(logger), bot.WithMetrics(reg))...)
	defer b.Close()
	stopDuties := s.startDuties(ctx, b, logger) // state.go: recovery, leader election, scheduler, sweeper
	defer stopDuties()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	s.opsRoutes(mux, reg, logger)
	env := adapterEnv{cfg: s.cfg, bot: b, log: logger, getenv: getenv, demo: *common.useDemo, inbox: s.store}
	var running []adapter
	for _, a := range adapters {
		ad, err := a.build(env)
		if err != nil {
			return fmt.Errorf("setting up %s: %w", a.name, err)
		}
		if ad == nil {
			logger.Info("platform not configured", "platform", a.name)
			continue
		}
		b.AddPlatform(ad)
		ad.Routes(mux)
		running = append(running, ad)
	}
	if len(running) == 0 {
		return errors.New("no chat platform is configured: set SLACK_SIGNING_SECRET (Slack) or DISCORD_PUBLIC_KEY / DISCORD_BOT_TOKEN (Discord); see README")
	}
	hooks, err := newWebhooks(s.cfg, getenv, b, s.store, logger) // webhook.go
	if err != nil {
		return fmt.Errorf("setting up registry webhooks: %w", err)
	}
	if hooks != nil {
		mux.Handle("POST "+webhook.Path+"{source}", hooks)
	} else {
		logger.Info("registry webhooks not configured (no DEPLOYBOT_WEBHOOK_SECRET_*)")
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	limits := s.cfg.HTTP.WithDefaults()
	srv := newHTTPServer(limits, mux) // httpserver.go
	errs := make(chan error, len(running)+1)
	go func() { errs <- srv.Serve(limitConnections(ln, limits.MaxConnections, logger)) }()
	// Adapters get their own context: on the way out the HTTP server stops
	// first (in-flight acks finish and enqueue), then the adapters drain what
	// they queued and deliver pending message updates before serve returns.
	runCtx, stopAdapters := context.WithCancel(context.Background())
	var adaptersDone sync.WaitGroup
	for _, ad := range running {
		adaptersDone.Add(1)
		go func() {
			defer adaptersDone.Done()
			if err := ad.Run(runCtx); err != nil {
				errs <- fmt.Errorf("%s: %w", ad.Name(), err)
			}
		}()
	}
	logger.Info("serving", "addr", ln.Addr().String(), "readHeaderTimeout", limits.ReadHeaderTimeout.Duration,
		"bodyTimeout", limits.BodyTimeout.Duration, "readTimeout", limits.ReadTimeout.Duration, "writeTimeout", limits.WriteTimeout.Duration,
		"idleTimeout", limits.IdleTimeout.Duration, "maxConnections", limits.MaxConnections, "maxHeaderBytes", limits.MaxHeaderBytes)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	var failure error
	select {
	case <-ctx.Done():
	case err := <-errs:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("stopping", "err", err)
			failure = err
		}
	}
	// On the way out: no new events; no new scheduled runs; running
	// executions finish within the grace period or are recorded as
	// interrupted; then the adapters handle what they acknowledged and
	// deliver the last message updates.
	shutdown(srv)
	if hooks != nil {
		stopWebhooks(hooks)
	}
	stopDuties()
	if n := b.Shutdown(*grace); n > 0 {
		logger.Warn("stopped executions still running after the grace period; each is recorded as interrupted", "executions", n, "grace", *grace)
	}
	stopAdapters()
	adaptersDone.Wait()
	return failure
}

// shutdown stops accepting requests and lets in-flight acks finish.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
