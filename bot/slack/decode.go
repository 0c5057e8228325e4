package slack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
)

// kind is what an inbound event is.
type kind int

const (
	kindCommand kind = iota // a /deploy slash command
	kindAction              // a button click (block_actions)
)

// inbound is one verified Slack event, normalised.
type inbound struct {
	kind     kind
	team     string
	user     string
	userName string
	channel  string
	// text is the command line; empty for a click.
	text   string
	action *bot.Action
	// responseURL answers this event (five uses in thirty minutes).
	responseURL string
	// messageTS is, for a click, the timestamp of the message holding the
	// button; ephemeral says that message was private.
	messageTS string
	ephemeral bool
	// dedupeKey is the same for every redelivery of the event.
	dedupeKey string
	// received is when the event arrived; response_url lives from then.
	received time.Time
	// replayed: it comes from the inbox, left by an earlier run (inbox.go).
	replayed bool
}

// Field bounds: Slack IDs are short; anything longer is not from Slack.
const (
	maxIDLen        = 64
	maxRequestIDLen = 64
)

// decodeCommand decodes a slash command's form body
// (application/x-www-form-urlencoded), the HTTP mode's /slack/commands.
func decodeCommand(body []byte) (inbound, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return inbound{}, fmt.Errorf("decoding the slash command form: %w", err)
	}
	sc := slackgo.SlashCommand{
		TeamID:      form.Get("team_id"),
		ChannelID:   form.Get("channel_id"),
		UserID:      form.Get("user_id"),
		UserName:    form.Get("user_name"),
		Command:     form.Get("command"),
		Text:        form.Get("text"),
		ResponseURL: form.Get("response_url"),
		TriggerID:   form.Get("trigger_id"),
	}
	return fromCommand(sc, body)
}

// fromCommand normalises a slash command from either mode; raw identifies
// the event when Slack sent no trigger ID.
func fromCommand(sc slackgo.SlashCommand, raw []byte) (inbound, error) {
	in := inbound{
		kind:        kindCommand,
		team:        sc.TeamID,
		user:        sc.UserID,
		userName:    sc.UserName,
		channel:     sc.ChannelID,
		text:        strings.TrimSpace(plainText(sc.Text)),
		responseURL: sc.ResponseURL,
	}
	if err := in.check(); err != nil {
		return inbound{}, fmt.Errorf("slash command: %w", err)
	}
	if in.text == "" {
		// "/deploy" alone asks what the bot does. Replace rather than prefix
		// the command name, which the workspace may have renamed.
		in.text = "help"
	}
	in.dedupeKey = dedupeKey("command", sc.TriggerID, raw)
	return in, nil
}

// plainText turns a message as Slack sends it into what the user typed and
// saw, so the command parser reads plain words: Slack escapes only &, < and
// > (as &amp; &lt; &gt;), and wraps mentions, channel references and links
// in <...>, which a literal < can then no longer start. A mention becomes
// @name (@U0123 when Slack sent no name), a channel #name, a special
// mention @here, a link its visible text: the label when there is one (an
// auto-linked "quay.io/x@sha256:..." is exactly what was typed), else the
// URL (mailto: dropped).
// https://docs.slack.dev/messaging/formatting-message-text
func plainText(s string) string {
	if !strings.ContainsAny(s, "<&") {
		return s
	}
	return bot.ReplaceMarkup(s, unescape, func(inner string) (string, bool) {
		if strings.Contains(inner, "<") {
			return "", false // a "<" Slack did not escape (not from a Slack client) is text
		}
		return unescape(markupText(inner)), true
	})
}

// markupText is what one <...> of Slack's markup reads as.
func markupText(inner string) string {
	target, label, _ := strings.Cut(inner, "|")
	switch {
	case strings.HasPrefix(target, "@"): // <@U0123|bob>, <@U0123>
		if label != "" {
			return "@" + strings.TrimPrefix(label, "@")
		}
		return target
	case strings.HasPrefix(target, "#"): // <#C0123|deploy>, <#C0123>
		if label != "" {
			return "#" + strings.TrimPrefix(label, "#")
		}
		return target
	case strings.HasPrefix(target, "!"): // <!here>, <!subteam^S0123|@ops>, <!date^...|Nov 14>
		if label != "" {
			return label
		}
		name, id, _ := strings.Cut(target[1:], "^")
		if name == "subteam" {
			return "@" + id
		}
		return "@" + name
	case label != "":
		return label
	}
	return strings.TrimPrefix(target, "mailto:")
}

// unescape undoes Slack's three entities, in one pass: "&amp;lt;" is "&lt;".
func unescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return entities.Replace(s)
}

var entities = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// decodeInteraction decodes a click's form body: a "payload" field holding
// the JSON interaction, the HTTP mode's /slack/interactions.
func decodeInteraction(body []byte) (inbound, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return inbound{}, fmt.Errorf("decoding the interaction form: %w", err)
	}
	payload := form.Get("payload")
	if payload == "" {
		return inbound{}, errors.New("interaction: no payload")
	}
	var ic slackgo.InteractionCallback
	if err := json.Unmarshal([]byte(payload), &ic); err != nil {
		return inbound{}, fmt.Errorf("decoding the interaction payload: %w", err)
	}
	return fromInteraction(ic, []byte(payload))
}

// errNotAButton marks interactions deploybot does not handle (shortcuts,
// modals): they are acknowledged and dropped.
var errNotAButton = errors.New("not a deploybot button")

// fromInteraction normalises a block_actions click from either mode.
func fromInteraction(ic slackgo.InteractionCallback, raw []byte) (inbound, error) {
	if ic.Type != slackgo.InteractionTypeBlockActions {
		return inbound{}, fmt.Errorf("interaction of type %q: %w", ic.Type, errNotAButton)
	}
	if len(ic.ActionCallback.BlockActions) == 0 || ic.ActionCallback.BlockActions[0] == nil {
		return inbound{}, fmt.Errorf("interaction without an action: %w", errNotAButton)
	}
	act := ic.ActionCallback.BlockActions[0]
	kind, n, numbered := strings.Cut(act.ActionID, ":") // a kind's second button in a block (render.go)
	if numbered && (n == "" || strings.Trim(n, "0123456789") != "" || len(n) > 2) {
		return inbound{}, fmt.Errorf("action %q: %w", clipRunes(act.ActionID, 40), errNotAButton)
	}
	k := bot.ActionKind(kind)
	switch k {
	case bot.ActionConfirm, bot.ActionCancel, bot.ActionApprove, bot.ActionDeny, bot.ActionSkip, bot.ActionImport, bot.ActionUndoChange, bot.ActionPinChange:
	default:
		return inbound{}, fmt.Errorf("action %q: %w", clipRunes(act.ActionID, 40), errNotAButton)
	}
	if k == bot.ActionImport {
		if _, _, ok := bot.ParseImportOffer(act.Value); !ok {
			return inbound{}, fmt.Errorf("action %s: %q is not an import deploybot offers", k, clipRunes(act.Value, 40))
		}
	} else if k == bot.ActionUndoChange || k == bot.ActionPinChange {
		if _, _, ok := bot.ParseChangeButton(act.Value); !ok {
			return inbound{}, fmt.Errorf("action %s: %q is not a change deploybot posted", k, clipRunes(act.Value, 40))
		}
	} else if !validRequestID(act.Value) {
		return inbound{}, fmt.Errorf("action %s: request ID %q is not one deploybot issues", k, clipRunes(act.Value, 40))
	}
	team := ic.Team.ID
	if team == "" {
		team = ic.User.TeamID
	}
	channel := ic.Channel.ID
	if channel == "" {
		channel = ic.Container.ChannelID
	}
	name := ic.User.Username
	if name == "" {
		name = ic.User.Name
	}
	in := inbound{
		kind:        kindAction,
		team:        team,
		user:        ic.User.ID,
		userName:    name,
		channel:     channel,
		action:      &bot.Action{Kind: k, RequestID: strings.TrimPrefix(act.Value, "#")},
		responseURL: ic.ResponseURL,
		messageTS:   ic.Container.MessageTs,
		ephemeral:   ic.Container.IsEphemeral,
	}
	if in.messageTS == "" {
		in.messageTS = ic.Message.Timestamp
	}
	if err := in.check(); err != nil {
		return inbound{}, fmt.Errorf("interaction: %w", err)
	}
	in.dedupeKey = dedupeKey("action", ic.TriggerID, raw)
	return in, nil
}

// check refuses events without the IDs deploybot needs or with ones that
// cannot be Slack's.
func (in inbound) check() error {
	for _, f := range []struct{ name, v string }{{"team", in.team}, {"user", in.user}, {"channel", in.channel}} {
		if f.v == "" {
			return fmt.Errorf("no %s ID", f.name)
		}
		if !validID(f.v) {
			return fmt.Errorf("%s ID %q is not a Slack ID", f.name, clipRunes(f.v, 40))
		}
	}
	if len(in.userName) > 256 {
		return errors.New("user name too long")
	}
	if in.responseURL != "" {
		u, err := url.Parse(in.responseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("response_url %q is not an http(s) URL", clipRunes(in.responseURL, 80))
		}
	}
	return nil
}

// validID accepts Slack's IDs: letters and digits (T0123, U0456, C0789,
// also lowercase in fakes).
func validID(s string) bool {
	if len(s) > maxIDLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// validRequestID accepts what store.NewID makes, with an optional '#'.
func validRequestID(s string) bool {
	s = strings.TrimPrefix(s, "#")
	return s != "" && validID(s) && len(s) <= maxRequestIDLen
}

// dedupeKey names an event the same way on every redelivery: Slack keeps the
// trigger ID across retries. Without one, the body itself is the name.
func dedupeKey(prefix, triggerID string, raw []byte) string {
	if triggerID != "" && len(triggerID) <= 128 {
		return prefix + "/" + triggerID
	}
	sum := sha256.Sum256(raw)
	return prefix + "/sha256:" + hex.EncodeToString(sum[:16])
}
