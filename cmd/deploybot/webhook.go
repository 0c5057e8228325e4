package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/webhook"
)

// webhookSecretEnv is the environment variable of a source's secret: the
// token it sends, or GitHub's webhook secret it signs with; each also has
// its _FILE variant, as the Slack secrets.
func webhookSecretEnv(src webhook.Source) string {
	return "DEPLOYBOT_WEBHOOK_SECRET_" + strings.ToUpper(string(src))
}

// newWebhooks builds the registry webhooks of the sources that have a
// secret in the environment; nil when none has.
func newWebhooks(cfg *config.Config, getenv func(string) string, b *bot.Bot, seen store.Store, log *slog.Logger) (*webhook.Server, error) {
	secrets := map[webhook.Source]string{}
	for _, src := range webhook.Sources {
		secret, err := secretEnv(getenv, webhookSecretEnv(src))
		if err != nil {
			return nil, err
		}
		if secret != "" {
			secrets[src] = secret
		}
	}
	if len(secrets) == 0 {
		return nil, nil
	}
	var hosts webhook.Hosts
	if w := cfg.Webhooks; w != nil {
		hosts = webhook.Hosts{Distribution: w.DistributionHost, Harbor: w.HarborHost}
	}
	srv, err := webhook.New(secrets, seen, b.Pushed, webhook.WithHosts(hosts), webhook.WithLogger(log))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, src := range srv.Sources() {
		names = append(names, string(src))
	}
	log.Info("registry webhooks configured", "path", webhook.Path+"{source}", "sources", names,
		"distributionHost", hosts.Distribution, "harborHost", hosts.Harbor)
	return srv, nil
}

// stopWebhooks lets the deliveries being handled finish for a few seconds,
// then cancels them; the registries' own retries and the schedules catch up
// what was cut off.
func stopWebhooks(srv *webhook.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}
