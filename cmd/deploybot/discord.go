package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot/discord"
)

// newDiscordAdapter builds the Discord platform from the config's discord
// section and the DISCORD_* secrets (never from the config file), or returns
// nil when neither DISCORD_BOT_TOKEN nor DISCORD_PUBLIC_KEY is set.
func newDiscordAdapter(env adapterEnv) (adapter, error) {
	var token, key, appID string
	for name, dst := range map[string]*string{"DISCORD_BOT_TOKEN": &token, "DISCORD_PUBLIC_KEY": &key, "DISCORD_APP_ID": &appID} {
		v, err := discordSecret(env.getenv, name)
		if err != nil {
			return nil, err
		}
		*dst = v
	}
	if token == "" && key == "" {
		return nil, nil
	}
	if token == "" && appID == "" && !env.demo {
		return nil, errors.New("with only DISCORD_PUBLIC_KEY deploybot can answer interactions inline but never post, follow up or show progress; " +
			"that is for trying it with --demo. Set DISCORD_BOT_TOKEN (and DISCORD_APP_ID) for a real deployment")
	}
	opts := []discord.Option{
		discord.WithLogger(env.log),
		discord.WithAppID(appID),
		discord.WithCompletions(append(env.cfg.EnvNames(), env.cfg.ServiceWords()...)...),
	}
	if key != "" {
		pk, err := hex.DecodeString(key)
		if err != nil || len(pk) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("DISCORD_PUBLIC_KEY must be the application's public key as %d hex digits (developer portal, General Information)", 2*ed25519.PublicKeySize)
		}
		opts = append(opts, discord.WithPublicKey(pk))
	}
	if token != "" {
		opts = append(opts, discord.WithBotToken(token))
	}
	if env.inbox != nil {
		opts = append(opts, discord.WithInbox(env.inbox))
	}
	if c := env.cfg.Discord; c != nil {
		opts = append(opts, discord.WithPrefix(c.Prefix), discord.WithGuilds(c.Guilds...), discord.WithChannels(c.Channels...), discord.WithAPIURL(c.APIURL))
	}
	routeDiscordgoLogs(env.log)
	a, err := discord.New(env.bot, opts...)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// discordSecret reads NAME, or the file NAME_FILE names (a mounted Secret).
func discordSecret(getenv func(string) string, name string) (string, error) {
	v, file := strings.TrimSpace(getenv(name)), strings.TrimSpace(getenv(name+"_FILE"))
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("both %s and %s_FILE are set; set one", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading %s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return v, nil
}

// routeDiscordgoLogs sends discordgo's own log lines (gateway reconnects,
// rate limits) to the JSON log instead of the standard logger.
func routeDiscordgoLogs(l *slog.Logger) {
	discordgo.Logger = func(level, _ int, format string, a ...any) {
		lv := slog.LevelDebug
		switch level {
		case discordgo.LogError:
			lv = slog.LevelError
		case discordgo.LogWarning:
			lv = slog.LevelWarn
		case discordgo.LogInformational:
			lv = slog.LevelInfo
		}
		l.Log(context.Background(), lv, fmt.Sprintf(format, a...), "component", "discordgo")
	}
}
