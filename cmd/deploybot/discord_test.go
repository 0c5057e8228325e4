package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/discord"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
)

func TestNewDiscordAdapter(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := hex.EncodeToString(pub)
	keyFile := filepath.Join(t.TempDir(), "public-key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		demo    bool
		want    bool   // an adapter is built
		wantErr string // or this error
	}{
		{name: "nothing set: not configured", env: map[string]string{}},
		{name: "public key with --demo", env: map[string]string{"DISCORD_PUBLIC_KEY": key}, demo: true, want: true},
		{name: "public key from a file", env: map[string]string{"DISCORD_PUBLIC_KEY_FILE": keyFile}, demo: true, want: true},
		{name: "public key alone outside the demo", env: map[string]string{"DISCORD_PUBLIC_KEY": key}, wantErr: "that is for trying it with --demo"},
		{name: "public key and app ID", env: map[string]string{"DISCORD_PUBLIC_KEY": key, "DISCORD_APP_ID": "900"}, want: true},
		{name: "bot token", env: map[string]string{"DISCORD_BOT_TOKEN": "Bot abc"}, want: true},
		{name: "a key that is not hex", env: map[string]string{"DISCORD_PUBLIC_KEY": "xyz"}, demo: true, wantErr: "64 hex digits"},
		{name: "a key of the wrong length", env: map[string]string{"DISCORD_PUBLIC_KEY": key[:60]}, demo: true, wantErr: "64 hex digits"},
		{name: "both a variable and its file", env: map[string]string{"DISCORD_PUBLIC_KEY": key, "DISCORD_PUBLIC_KEY_FILE": keyFile}, demo: true, wantErr: "set one"},
		{name: "a file that is missing", env: map[string]string{"DISCORD_BOT_TOKEN_FILE": filepath.Join(t.TempDir(), "nope")}, wantErr: "reading DISCORD_BOT_TOKEN_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := adapterEnv{cfg: cfg, log: slog.New(slog.DiscardHandler), demo: tt.demo, getenv: func(k string) string { return tt.env[k] }}
			a, err := newDiscordAdapter(env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (a != nil) != tt.want {
				t.Fatalf("adapter = %v, want built: %v", a, tt.want)
			}
			if a != nil && a.Name() != discord.Name {
				t.Errorf("Name() = %q", a.Name())
			}
		})
	}
}

// TestServeDiscordDemo runs `deploybot serve --demo` with only a public key,
// as the README's hand test does, and sends it hand-signed interactions: a
// PING gets a PONG, `/deploy status prod` by a mapped member gets the demo
// cluster's status inline, an unsigned request is refused.
func TestServeDiscordDemo(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identities.Users = append(cfg.Identities.Users, config.UserMapping{Platform: "discord", ID: "100/201", User: "alice", Groups: []string{"packit-devs"}})
	cfg.Discord = &config.Discord{Guilds: []string{"100"}}
	addr := serveDemo(t, cfg, map[string]string{"DISCORD_PUBLIC_KEY": hex.EncodeToString(pub)}, nil)

	post := func(body string, sign bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/discord/interactions", bytes.NewReader([]byte(body)))
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature-Timestamp", ts)
		if sign {
			req.Header.Set("X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(priv, []byte(ts+body))))
		} else {
			req.Header.Set("X-Signature-Ed25519", strings.Repeat("00", ed25519.SignatureSize))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	if code, body := post(`{"id":"1","application_id":"900","type":1,"token":"t","version":1}`, true); code != http.StatusOK || strings.TrimSpace(body) != `{"type":1}` {
		t.Errorf("PING: %d %s, want the PONG", code, body)
	}
	status := `{"id":"2","application_id":"900","type":2,"token":"t2","version":1,"guild_id":"100","channel_id":"500",` +
		`"member":{"user":{"id":"201","username":"alice"},"roles":[]},` +
		`"data":{"id":"1","name":"deploy","type":1,"options":[{"name":"command","type":3,"value":"status prod"}]}}`
	if code, body := post(status, false); code != http.StatusUnauthorized {
		t.Errorf("unsigned /deploy: %d %s, want 401", code, body)
	}
	code, body := post(status, true)
	var resp struct {
		Type int `json:"type"`
		Data struct {
			Flags  int `json:"flags"`
			Embeds []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
			} `json:"embeds"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != http.StatusOK {
		t.Fatalf("/deploy status prod: %d %s (%v)", code, body, err)
	}
	if resp.Type != 4 || resp.Data.Flags != 0 || len(resp.Data.Embeds) == 0 || resp.Data.Embeds[0].Title != "status prod (namespace packit--prod)" ||
		!strings.Contains(resp.Data.Embeds[0].Description, "packit-worker") {
		t.Errorf("/deploy status prod answered %s, want the prod status as a public channel message", body)
	}
}
