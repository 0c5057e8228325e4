// Command discord-sign signs Discord interaction requests the way Discord
// does (Ed25519 over X-Signature-Timestamp + body) and POSTs them, for trying
// `deploybot serve` by hand without Discord:
//
//	go run ./hack/discord-sign -genkey -key /tmp/discord.key   # prints DISCORD_PUBLIC_KEY
//	go run ./hack/discord-sign -key /tmp/discord.key -url http://127.0.0.1:18081/discord/interactions -ping
//	go run ./hack/discord-sign -key /tmp/discord.key -url ... -command "status prod" -guild 100 -user 201
//	go run ./hack/discord-sign -key /tmp/discord.key -url ... -button deploybot/confirm/ID -origin INTERACTION
//
// -origin names the interaction whose response carries the clicked buttons
// (printed when it was sent), as Discord says in a click's message. -curl
// prints the equivalent curl command instead of sending.
package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "discord-sign:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("discord-sign", flag.ContinueOnError)
	keyFile := fs.String("key", "", "file with the private key seed (hex); -genkey writes it")
	genkey := fs.Bool("genkey", false, "generate a key pair: write the seed to -key, print the public key")
	url := fs.String("url", "http://127.0.0.1:8080/discord/interactions", "the interactions endpoint")
	ping := fs.Bool("ping", false, "send a PING")
	command := fs.String("command", "", "send /deploy with this command text")
	button := fs.String("button", "", "send a button click with this custom_id, e.g. deploybot/approve/abc123")
	body := fs.String("body", "", "send this JSON body as is")
	origin := fs.String("origin", "", "with -button: the interaction whose response holds the button")
	guild := fs.String("guild", "100", "guild ID of the interaction")
	channel := fs.String("channel", "500", "channel ID of the interaction")
	user := fs.String("user", "201", "user ID of the member sending it")
	name := fs.String("name", "alice", "user name of the member")
	age := fs.Duration("age", 0, "sign with a timestamp this long ago (to try the window)")
	curl := fs.Bool("curl", false, "print a curl command instead of sending")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("-key is required")
	}
	if *genkey {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*keyFile, []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing the key: %w", err)
		}
		fmt.Fprintln(out, hex.EncodeToString(pub))
		return nil
	}
	seedHex, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("reading the key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(seedHex)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return fmt.Errorf("%s does not hold a %d-byte hex seed", *keyFile, ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)

	payload := []byte(*body)
	if len(payload) == 0 {
		payload, err = interaction(*ping, *command, *button, *origin, *guild, *channel, *user, *name)
		if err != nil {
			return err
		}
	}
	ts := strconv.FormatInt(time.Now().Add(-*age).Unix(), 10)
	sig := hex.EncodeToString(ed25519.Sign(priv, append([]byte(ts), payload...)))
	if *curl {
		fmt.Fprintf(out, "curl -sS -X POST %s -H 'Content-Type: application/json' -H 'X-Signature-Timestamp: %s' -H 'X-Signature-Ed25519: %s' --data-binary %s\n",
			*url, ts, sig, shellQuote(string(payload)))
		return nil
	}
	req, err := http.NewRequest(http.MethodPost, *url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature-Timestamp", ts)
	req.Header.Set("X-Signature-Ed25519", sig)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("posting the interaction: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	var sent struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(payload, &sent)
	fmt.Fprintf(out, "interaction %s: %s\n", sent.ID, res.Status)
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") == nil {
		b = pretty.Bytes()
	}
	fmt.Fprintln(out, strings.TrimSpace(string(b)))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the endpoint answered %s", res.Status)
	}
	return nil
}

// interaction builds the JSON Discord would send.
func interaction(ping bool, command, button, origin, guild, channel, user, name string) ([]byte, error) {
	id := strconv.FormatInt(time.Now().UnixNano(), 10)
	i := map[string]any{"id": id, "application_id": "0", "token": "hand-" + id, "version": 1}
	member := map[string]any{"user": map[string]any{"id": user, "username": name}, "roles": []string{}}
	switch {
	case ping:
		i["type"] = 1
	case command != "":
		i["type"], i["guild_id"], i["channel_id"], i["member"] = 2, guild, channel, member
		i["data"] = map[string]any{"id": "1", "name": "deploy", "type": 1,
			"options": []any{map[string]any{"name": "command", "type": 3, "value": command}}}
	case button != "":
		i["type"], i["guild_id"], i["channel_id"], i["member"] = 3, guild, channel, member
		i["data"] = map[string]any{"custom_id": button, "component_type": 2}
		msg := map[string]any{"id": "1", "channel_id": channel}
		if origin != "" {
			msg["interaction_metadata"] = map[string]any{"id": origin, "type": 2}
		}
		i["message"] = msg
	default:
		return nil, errors.New("say what to send: -ping, -command TEXT, -button CUSTOM_ID or -body JSON")
	}
	return json.Marshal(i)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
