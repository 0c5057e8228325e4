package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Discord IDs of the fake guild; the probe's config maps 100/201 to alice.
const (
	discordGuild   = "100"
	discordAlice   = "201"
	discordChannel = "500"
	discordApp     = "300"
)

// fakeDiscord stands in for Discord's REST API (webhook edits and
// follow-ups of interactions) and signs interactions as Discord does.
type fakeDiscord struct {
	pub    ed25519.PublicKey
	priv   ed25519.PrivateKey
	api    *httptest.Server
	rec    *recorder
	faults faults
	seq    atomic.Int64
}

func newFakeDiscord() (*fakeDiscord, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("making a Discord key pair: %w", err)
	}
	d := &fakeDiscord{pub: pub, priv: priv, rec: newRecorder()}
	d.api = httptest.NewServer(http.HandlerFunc(d.serveAPI))
	return d, nil
}

func (d *fakeDiscord) close() {
	d.api.CloseClientConnections()
	d.api.Close()
}

// opName names a REST call: "webhook edit" (PATCH of an interaction's
// message), "follow-up" (POST to the interaction's webhook), else method
// and path.
func opName(r *http.Request) string {
	switch {
	case strings.Contains(r.URL.Path, "/webhooks/") && r.Method == http.MethodPatch:
		return "webhook edit"
	case strings.Contains(r.URL.Path, "/webhooks/") && r.Method == http.MethodPost:
		return "follow-up"
	}
	return r.Method + " " + r.URL.Path
}

func (d *fakeDiscord) serveAPI(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := call{at: time.Now(), method: opName(r), path: r.URL.Path, text: jsonText(body)}
	if c.fault = d.faults.inject(w, r, c.method); c.fault != "" {
		d.rec.add(c)
		return
	}
	d.rec.add(c)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": strconv.FormatInt(900+d.seq.Add(1), 10), "channel_id": discordChannel, "type": 0, "content": ""})
}

// jsonText is every string of a JSON document under the keys a message's
// text lives in (content, embeds' titles, descriptions, fields).
func jsonText(body []byte) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range []string{"content", "title", "description", "name", "value", "text"} {
				if t, ok := v[k].(string); ok {
					b.WriteString(t + "\n")
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return b.String()
}

// env is the environment of a serve process answering interactions over
// HTTP with REST follow-ups (no bot token, so no gateway).
func (d *fakeDiscord) env() []string {
	return []string{"DISCORD_PUBLIC_KEY=" + hex.EncodeToString(d.pub), "DISCORD_APP_ID=" + discordApp}
}

// interact posts a signed interaction and returns the response's text.
func (d *fakeDiscord) interact(ctx context.Context, addr string, i map[string]any) (string, error) {
	payload, err := json.Marshal(i)
	if err != nil {
		return "", fmt.Errorf("encoding the interaction: %w", err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := hex.EncodeToString(ed25519.Sign(d.priv, append([]byte(ts), payload...)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/discord/interactions", bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("building the interaction: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature-Timestamp", ts)
	req.Header.Set("X-Signature-Ed25519", sig)
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("posting the interaction: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the interaction was answered %s: %s", resp.Status, clip(string(b), 200))
	}
	return jsonText(b), nil
}

// interaction is the JSON of an interaction of alice.
func (d *fakeDiscord) interaction(kind int, id string, data map[string]any) map[string]any {
	return map[string]any{
		"id": id, "application_id": discordApp, "token": "token-" + id, "version": 1, "type": kind,
		"guild_id": discordGuild, "channel_id": discordChannel, "data": data,
		"member": map[string]any{"user": map[string]any{"id": discordAlice, "username": "alice"}, "roles": []string{}},
	}
}

// discordFaults is row 4: /deploy import stg worker as a Discord slash
// command, Confirm clicked, then the webhook edits of the interaction's
// message fail on the schedule.
func (p *probe) discordFaults(ctx context.Context) ([]row, error) {
	d, err := newFakeDiscord()
	if err != nil {
		return nil, err
	}
	defer d.close()
	cfg, err := p.configText(d.api.URL + "/api")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(p.tmp, "deploybot-discord.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("writing the Discord config: %w", err)
	}
	saved := p.config
	p.config = path
	b, err := p.serve(ctx, serveOpts{env: d.env(), name: "row4-discord"})
	p.config = saved
	if err != nil {
		return nil, err
	}
	defer b.stop()

	cmdID := strconv.FormatInt(time.Now().UnixNano(), 10)
	answer, err := d.interact(ctx, b.addr, d.interaction(2, cmdID, map[string]any{"id": "1", "name": "deploy", "type": 1,
		"options": []any{map[string]any{"name": "command", "type": 3, "value": "import stg worker"}}}))
	if err != nil {
		return nil, err
	}
	id := requestID(answer)
	if id == "" {
		return nil, fmt.Errorf("the answer to /deploy import stg worker names no request: %q", clip(answer, 300))
	}
	click := d.interaction(3, strconv.FormatInt(time.Now().UnixNano(), 10), map[string]any{"custom_id": "deploybot/confirm/" + id, "component_type": 2})
	click["message"] = map[string]any{"id": "1", "channel_id": discordChannel, "interaction_metadata": map[string]any{"id": cmdID, "type": 2}}
	answer, err = d.interact(ctx, b.addr, click)
	if err != nil {
		return nil, err
	}
	d.faults.begin(defaultPhases(p.o.scale), func(m string) bool { return m == "webhook edit" || m == "follow-up" })
	got, _ := arrival(ctx, d.rec, &d.faults, id, func(c call) bool { return c.method == "webhook edit" })
	return []row{{
		n: "4",
		scenario: "Discord over HTTP (DISCORD_PUBLIC_KEY + DISCORD_APP_ID, no bot token): `/deploy import stg worker`, Confirm clicked (answered " +
			strconv.Quote(firstLine(answer)) + "), then the interaction webhook edits and follow-ups answer 429 (Retry-After: 2, retry_after 2) for 6 s, 500 for 6 s, hang for 16 s, then recover",
		now:      fmt.Sprintf("webhook edits: %s; %s; %s; %s", hits(d.rec, &d.faults, "webhook edit", "follow-up"), got, errorMetrics(b), giveUps(b)),
		previous: "previous: not measured for Discord (issue 10: \"the same holds for Discord\")",
	}}, nil
}
