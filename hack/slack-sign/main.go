// Command slack-sign plays Slack by hand against `deploybot serve`.
//
// It signs a request body the way Slack does (v0 HMAC-SHA256 with the app's
// signing secret) and prints the two headers as a curl config:
//
//	BODY='team_id=T0PACKIT&user_id=U0ALICE&user_name=alice&channel_id=C0DEPLOY&command=%2Fdeploy&text=whoami&response_url=http%3A%2F%2F127.0.0.1%3A9999%2Fhook&trigger_id=demo.1'
//	go run ./hack/slack-sign "$BODY" | curl -sS -i -K - --data "$BODY" http://127.0.0.1:8080/slack/commands
//
// With -catch ADDR it is a stand-in response_url instead: it prints what
// deploybot posts there (response type and the blocks' text).
//
// The secret comes from $SLACK_SIGNING_SECRET or -secret.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/deploybot/deploybot/bot/slack"
)

func main() {
	secret := flag.String("secret", os.Getenv("SLACK_SIGNING_SECRET"), "signing secret (default $SLACK_SIGNING_SECRET)")
	ts := flag.Int64("ts", 0, "timestamp to sign with, Unix seconds (default now)")
	catch := flag.String("catch", "", "serve a stand-in response_url on this address and print what arrives")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: slack-sign [-secret S] [-ts UNIX] BODY | curl -K - --data BODY URL\n       slack-sign -catch 127.0.0.1:9999")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *catch != "" {
		log.Fatal(serveCatcher(*catch))
	}
	if flag.NArg() != 1 || *secret == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *ts == 0 {
		*ts = time.Now().Unix()
	}
	fmt.Printf("header = \"X-Slack-Request-Timestamp: %d\"\n", *ts)
	fmt.Printf("header = \"X-Slack-Signature: %s\"\n", slack.Sign(*secret, *ts, []byte(flag.Arg(0))))
	fmt.Println(`header = "Content-Type: application/x-www-form-urlencoded"`)
}

// serveCatcher prints every message posted to it, as Slack would show it.
func serveCatcher(addr string) error {
	log.SetFlags(log.Ltime)
	log.Printf("response_url stand-in on http://%s/ (any path)", addr)
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var msg struct {
			ResponseType    string `json:"response_type"`
			ReplaceOriginal bool   `json:"replace_original"`
			Blocks          []struct {
				Type string `json:"type"`
				Text *struct {
					Text string `json:"text"`
				} `json:"text"`
				Elements []struct {
					ActionID string `json:"action_id"`
					Value    string `json:"value"`
				} `json:"elements"`
			} `json:"blocks"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			log.Printf("%s %s: not JSON: %s", r.Method, r.URL.Path, body)
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s response_type=%s replace_original=%v\n", r.Method, r.URL.Path, msg.ResponseType, msg.ReplaceOriginal)
		for _, bl := range msg.Blocks {
			switch {
			case bl.Text != nil:
				fmt.Fprintf(&b, "  [%s] %s\n", bl.Type, strings.ReplaceAll(bl.Text.Text, "\n", "\n  "))
			case bl.Type == "actions":
				for _, e := range bl.Elements {
					fmt.Fprintf(&b, "  [button] %s value=%s\n", e.ActionID, e.Value)
				}
			}
		}
		log.Print(b.String())
		_, _ = io.WriteString(w, "ok")
	}))
}
