package slack

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
)

func TestDecodeCommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		want    inbound
		wantErr string
	}{
		{
			name: "slash command",
			body: string(commandBody("T0PACKIT", "U0ALICE", "alice", "C0DEPLOY", " import prod worker ", "https://hooks.slack.com/commands/T0/1/x", "123.456.abc")),
			want: inbound{kind: kindCommand, team: "T0PACKIT", user: "U0ALICE", userName: "alice", channel: "C0DEPLOY",
				text: "import prod worker", responseURL: "https://hooks.slack.com/commands/T0/1/x", dedupeKey: "command/123.456.abc"},
		},
		{
			name: "bare /deploy asks for help",
			body: string(commandBody("T0PACKIT", "U0ALICE", "alice", "C0DEPLOY", "", "https://hooks.slack.com/x", "t1")),
			want: inbound{kind: kindCommand, team: "T0PACKIT", user: "U0ALICE", userName: "alice", channel: "C0DEPLOY",
				text: "help", responseURL: "https://hooks.slack.com/x", dedupeKey: "command/t1"},
		},
		{name: "no user", body: "team_id=T1&channel_id=C1&text=status", wantErr: "no user ID"},
		{name: "no team", body: "user_id=U1&channel_id=C1&text=status", wantErr: "no team ID"},
		{name: "user ID that is not Slack's", body: "team_id=T1&user_id=U1%2F..&channel_id=C1", wantErr: "not a Slack ID"},
		{name: "response_url that is not http", body: "team_id=T1&user_id=U1&channel_id=C1&response_url=file%3A%2F%2F%2Fetc%2Fpasswd", wantErr: "not an http(s) URL"},
		{name: "broken form", body: "team_id=%zz", wantErr: "decoding the slash command form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCommand([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestDecodeCommandText: the parser gets what the user typed and saw, not
// Slack's wire form: the three entities unescaped, links as their visible
// text, mentions and channel references as @name and #name.
func TestDecodeCommandText(t *testing.T) {
	const digest = "sha256:1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"
	for _, tc := range []struct {
		name, text, want string
	}{
		{"plain text is kept", "import prod worker", "import prod worker"},
		{"entities are unescaped", "deny #abc123 &lt;worker&gt; &amp; more", "deny #abc123 <worker> & more"},
		{"an escaped entity stays literal once", "deny #abc &amp;lt;", "deny #abc &lt;"},
		{"a user mention with a name", "deny <@U0CAROL|carol> wrong person", "deny @carol wrong person"},
		{"a user mention without a name", "deny <@U0CAROL> wrong person", "deny @U0CAROL wrong person"},
		{"a mention in a reason", "deny #abc123 ask <@U0CAROL|carol> first", "deny #abc123 ask @carol first"},
		{"a channel reference", "deny #abc123 see <#C0DEPLOY|deploy>", "deny #abc123 see #deploy"},
		{"a channel reference without a name", "deny #abc123 see <#C0DEPLOY>", "deny #abc123 see #C0DEPLOY"},
		{"a user group", "deny #abc123 ask <!subteam^S0OPS|@ops>", "deny #abc123 ask @ops"},
		{"a special mention", "deny #abc123 <!here> look", "deny #abc123 @here look"},
		{"an auto-linked image reference is what was typed", "revert worker prod <http://quay.io/packit/packit-worker@" + digest + "|quay.io/packit/packit-worker@" + digest + ">",
			"revert worker prod quay.io/packit/packit-worker@" + digest},
		{"a pasted link without a label", "revert worker prod <https://quay.io/packit/packit-worker@" + digest + ">",
			"revert worker prod https://quay.io/packit/packit-worker@" + digest},
		{"a link's label is unescaped", "deny #abc <http://x.example/?a=1&amp;b=2|x &amp; y>", "deny #abc x & y"},
		{"an e-mail address", "deny #abc ask <mailto:bob@example.com|bob@example.com>", "deny #abc ask bob@example.com"},
		{"a date", "deny #abc not before <!date^1700000000^{date}|Nov 14>", "deny #abc not before Nov 14"},
		{"an unclosed bracket is text", "deny #abc a < b", "deny #abc a < b"},
		{"an unescaped < before a mention is text", "deny #abc a < b <@U0CAROL|carol>", "deny #abc a < b @carol"},
		{"a mention alone", "<@U0CAROL>", "@U0CAROL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCommand(commandBody("T0PACKIT", "U0ALICE", "alice", "C0DEPLOY", tc.text, "https://hooks.slack.com/x", "t1"))
			if err != nil {
				t.Fatal(err)
			}
			if got.text != tc.want {
				t.Errorf("text = %q, want %q", got.text, tc.want)
			}
		})
	}
}

func TestDecodeInteraction(t *testing.T) {
	click := func(action bot.ActionKind, id string) string {
		return string(clickBody("T0PACKIT", "U0BOB", "bob", "C0DEPLOY", "1700000000.000001", action, id, "https://hooks.slack.com/actions/T0/1/y", "trig-9"))
	}
	for _, tc := range []struct {
		name    string
		body    string
		want    inbound
		wantErr error
		errText string
	}{
		{
			name: "approve click",
			body: click(bot.ActionApprove, "k3xq9v2m1p"),
			want: inbound{kind: kindAction, team: "T0PACKIT", user: "U0BOB", userName: "bob", channel: "C0DEPLOY",
				action: &bot.Action{Kind: bot.ActionApprove, RequestID: "k3xq9v2m1p"}, responseURL: "https://hooks.slack.com/actions/T0/1/y",
				messageTS: "1700000000.000001", dedupeKey: "action/trig-9"},
		},
		{
			name: "import click",
			body: click(bot.ActionImport, "prod+packit-service+packit-worker"),
			want: inbound{kind: kindAction, team: "T0PACKIT", user: "U0BOB", userName: "bob", channel: "C0DEPLOY",
				action: &bot.Action{Kind: bot.ActionImport, RequestID: "prod+packit-service+packit-worker"}, responseURL: "https://hooks.slack.com/actions/T0/1/y",
				messageTS: "1700000000.000001", dedupeKey: "action/trig-9"},
		},
		{
			name: "a feed message's second Undo (action_id numbered)",
			body: click(bot.ActionUndoChange+":1", "k3xq9v2m1p-3"),
			want: inbound{kind: kindAction, team: "T0PACKIT", user: "U0BOB", userName: "bob", channel: "C0DEPLOY",
				action: &bot.Action{Kind: bot.ActionUndoChange, RequestID: "k3xq9v2m1p-3"}, responseURL: "https://hooks.slack.com/actions/T0/1/y",
				messageTS: "1700000000.000001", dedupeKey: "action/trig-9"},
		},
		{name: "a change button without a target", body: click(bot.ActionPinChange, "k3xq9v2m1p"), errText: "is not a change deploybot posted"},
		{name: "a numbered action_id that is not a number", body: click(bot.ActionApprove+":x", "k3xq9v2m1p"), wantErr: errNotAButton},
		{name: "import of text is refused", body: click(bot.ActionImport, "prod *now*"), errText: "is not an import deploybot offers"},
		{name: "import with a request ID's '#'", body: click(bot.ActionImport, "#prod"), errText: "is not an import deploybot offers"},
		{name: "unknown action is not ours", body: click("launch", "k3xq9v2m1p"), wantErr: errNotAButton},
		{name: "shortcut is not a button", body: "payload=" + url.QueryEscape(`{"type":"shortcut","callback_id":"x"}`), wantErr: errNotAButton},
		{name: "request ID with a path", body: click(bot.ActionApprove, "../../etc"), errText: "not one deploybot issues"},
		{name: "no payload", body: "x=1", errText: "no payload"},
		{name: "payload not JSON", body: "payload=%7Bnope", errText: "decoding the interaction payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeInteraction([]byte(tc.body))
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			case tc.errText != "":
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if *got.action != *tc.want.action {
				t.Errorf("action = %+v, want %+v", *got.action, *tc.want.action)
			}
			got.action, tc.want.action = nil, nil
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// FuzzDecodeCommand: any body either decodes into an event with the IDs
// deploybot needs and a dedupe key, or is an error; it never panics.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(commandBody("T0PACKIT", "U0ALICE", "alice", "C0DEPLOY", "import prod", "https://hooks.slack.com/commands/1", "1.2.3"))
	f.Add(commandBody("T1", "U1", "", "C1", "", "", ""))
	f.Add([]byte("team_id=T1&user_id=U1&channel_id=C1&text=%E2%80%94dry-run&response_url=http%3A%2F%2F%5B%3A%3A1%5D%3A80%2F"))
	f.Add([]byte("%zz"))
	f.Add([]byte(""))
	f.Add(commandBody("T1", "U1", "", "C1", "deny <@U0CAROL|carol> wrong &amp; <#C1|deploy> <http://x|y> <!here> <", "", ""))
	f.Add(commandBody("T1", "U1", "", "C1", "<>", "", ""))
	f.Add(commandBody("T1", "U1", "", "C1", "<|> &amp;amp; <@|> <#> <!subteam^|>", "", ""))
	f.Add(commandBody("T1", "U1", "", "C1", "revert worker prod \u201csha256:a67e8e3\u201d", "", ""))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeCommand(body)
		if err != nil {
			return
		}
		if in.kind != kindCommand || in.team == "" || in.user == "" || in.channel == "" || in.text == "" || in.dedupeKey == "" {
			t.Fatalf("decoded an incomplete command: %+v", in)
		}
		if err := in.check(); err != nil {
			t.Fatalf("decoded a command that fails its own check: %v", err)
		}
		// Decoding only takes away Slack's wrapping, never adds.
		form, err := url.ParseQuery(string(body))
		if raw := strings.TrimSpace(form.Get("text")); err == nil && raw != "" && in.text != "help" {
			if len(in.text) > len(raw) {
				t.Fatalf("decoded %q from %q: longer than what Slack sent", in.text, raw)
			}
			if !strings.ContainsAny(raw, "<&") && in.text != raw {
				t.Fatalf("decoded %q from %q: changed text without Slack markup", in.text, raw)
			}
		}
	})
}

// FuzzDecodeInteraction: any body either decodes into a click on one of
// deploybot's buttons carrying a well-formed request ID, or is an error.
func FuzzDecodeInteraction(f *testing.F) {
	f.Add(clickBody("T0PACKIT", "U0BOB", "bob", "C0DEPLOY", "1700000000.000001", bot.ActionApprove, "k3xq9v2m1p", "https://hooks.slack.com/actions/1", "t"))
	f.Add(clickBody("T1", "U1", "", "C1", "", bot.ActionDeny, "#abc", "", ""))
	f.Add([]byte("payload=" + url.QueryEscape(`{"type":"block_actions","team":{"id":"T1"},"user":{"id":"U1"},"channel":{"id":"C1"},"actions":[null]}`)))
	f.Add([]byte("payload=" + url.QueryEscape(`{"type":"block_actions","state":{"values":{"a":{"b":{"type":"x"}}}},"actions":[{"action_id":"confirm","value":"x"}]}`)))
	f.Add([]byte("payload=%7B"))
	f.Add(clickBody("T1", "U1", "", "C1", "", bot.ActionImport, "prod+web", "", ""))
	f.Add(clickBody("T1", "U1", "", "C1", "", bot.ActionSkip, "run-prod-20261124t0200", "", ""))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeInteraction(body)
		if err != nil {
			return
		}
		if in.kind != kindAction || in.action == nil || in.dedupeKey == "" {
			t.Fatalf("decoded an incomplete click: %+v", in)
		}
		switch in.action.Kind {
		case bot.ActionConfirm, bot.ActionCancel, bot.ActionApprove, bot.ActionDeny, bot.ActionSkip:
			if !validRequestID(in.action.RequestID) {
				t.Fatalf("decoded a click with request ID %q", in.action.RequestID)
			}
		case bot.ActionImport:
			if _, _, ok := bot.ParseImportOffer(in.action.RequestID); !ok {
				t.Fatalf("decoded an Import click offering %q", in.action.RequestID)
			}
		default:
			t.Fatalf("decoded a click on a button deploybot does not have: %q", in.action.Kind)
		}
		if err := in.check(); err != nil {
			t.Fatalf("decoded a click that fails its own check: %v", err)
		}
	})
}

// Slack refuses a block whose action_ids repeat: a feed message with two
// failed services has two Undo and two Pin previous buttons.
func TestActionIDsUnique(t *testing.T) {
	block := actionsBlock([]bot.Button{
		{Action: bot.ActionUndoChange, RequestID: "k3xq9v2m1p-0", Label: "Undo a"},
		{Action: bot.ActionPinChange, RequestID: "k3xq9v2m1p-0", Label: "Pin previous a"},
		{Action: bot.ActionUndoChange, RequestID: "k3xq9v2m1p-1", Label: "Undo b"},
		{Action: bot.ActionPinChange, RequestID: "k3xq9v2m1p-1", Label: "Pin previous b"},
	})
	seen := map[string]bool{}
	for _, e := range block.Elements.ElementSet {
		id := e.(*slackgo.ButtonBlockElement).ActionID
		if seen[id] {
			t.Errorf("action_id %q twice in one block", id)
		}
		seen[id] = true
	}
	if !seen["undo-change"] || !seen["undo-change:1"] {
		t.Errorf("action_ids %v", seen)
	}
}
