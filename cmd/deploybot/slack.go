package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/deploybot/deploybot/bot/slack"
)

// newSlackAdapter builds the Slack platform from the config's slack section
// and the SLACK_* environment. Secrets come only from the environment (or
// the files *_FILE variables name), never from the config file. It returns
// nil when neither configures Slack.
func newSlackAdapter(env adapterEnv) (adapter, error) {
	secret, err := secretEnv(env.getenv, "SLACK_SIGNING_SECRET")
	if err != nil {
		return nil, err
	}
	botToken, err := secretEnv(env.getenv, "SLACK_BOT_TOKEN")
	if err != nil {
		return nil, err
	}
	appToken, err := secretEnv(env.getenv, "SLACK_APP_TOKEN")
	if err != nil {
		return nil, err
	}
	sc := env.cfg.Slack
	if sc == nil && secret == "" && botToken == "" && appToken == "" {
		return nil, nil
	}
	mode := slack.ModeHTTP
	apiURL := ""
	if sc != nil {
		if sc.Mode != "" {
			mode = slack.Mode(sc.Mode)
		}
		apiURL = sc.APIURL
	}
	// The environment wins over the file, so one config serves a real
	// workspace and a local fake Slack.
	if u := env.getenv("SLACK_API_URL"); u != "" {
		apiURL = u
	}
	switch {
	case mode == slack.ModeHTTP && secret == "" && appToken != "":
		return nil, errors.New("slack (mode http) needs the app's signing secret (SLACK_SIGNING_SECRET); to use SLACK_APP_TOKEN instead, set slack.mode: socket in the config")
	case mode == slack.ModeHTTP && secret == "":
		return nil, errors.New("slack (mode http) needs the app's signing secret: set SLACK_SIGNING_SECRET or SLACK_SIGNING_SECRET_FILE (Slack app settings → Basic Information → Signing Secret)")
	case mode == slack.ModeSocket && appToken == "":
		return nil, errors.New("slack (mode socket) needs an app-level token with connections:write: set SLACK_APP_TOKEN or SLACK_APP_TOKEN_FILE (xapp-...)")
	case mode == slack.ModeSocket && botToken == "":
		env.log.Warn("slack: Socket Mode without SLACK_BOT_TOKEN answers through response_url only and cannot read user groups")
	}
	if botToken == "" {
		// Scheduled imports announce themselves with no command to answer,
		// so there is no response_url: only the Web API can post there.
		for _, e := range env.cfg.Environments {
			if e.Channel != nil && e.Channel.Platform == slack.Name {
				return nil, fmt.Errorf("environment %s announces scheduled imports in Slack channel %s, which needs SLACK_BOT_TOKEN (or SLACK_BOT_TOKEN_FILE)", e.Name, e.Channel.ID)
			}
		}
	}
	if botToken != "" && !strings.HasPrefix(botToken, "xoxb-") {
		env.log.Warn("slack: SLACK_BOT_TOKEN does not look like a bot token (xoxb-...)")
	}
	opts := []slack.Option{
		slack.WithMode(mode),
		slack.WithSigningSecret(secret),
		slack.WithBotToken(botToken),
		slack.WithAppToken(appToken),
		slack.WithAPIURL(apiURL),
		slack.WithLogger(env.log),
	}
	if env.inbox != nil {
		opts = append(opts, slack.WithInbox(env.inbox))
	}
	a, err := slack.New(env.bot, opts...)
	if err != nil {
		return nil, err
	}
	how := "response_url only (no SLACK_BOT_TOKEN)"
	if botToken != "" {
		how = "chat.postMessage and chat.update"
	}
	env.log.Info("slack configured", "mode", string(mode), "answers", how, "apiURL", apiURL)
	return a, nil
}

// secretEnv reads a secret from $NAME or from the file $NAME_FILE names
// (a mounted Kubernetes Secret), trimming the trailing newline files carry.
// Setting both is an error: which one wins would be a guess.
func secretEnv(getenv func(string) string, name string) (string, error) {
	v, file := getenv(name), getenv(name+"_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("both %s and %s_FILE are set; set one", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading %s_FILE: %w", name, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s_FILE (%s) is empty", name, file)
		}
		return s, nil
	}
	return strings.TrimSpace(v), nil
}
