// Package slack is deploybot's Slack platform, built on
// github.com/slack-go/slack.
//
// Inbound: the /deploy slash command and button clicks, either posted to
// /slack/commands and /slack/interactions (HTTP mode: every request is
// size-limited and verified with the app's v0 signing secret before it is
// parsed) or delivered over Socket Mode. Each event is acknowledged at once,
// well inside Slack's three seconds, and handed to the bot by a worker pool;
// redeliveries (X-Slack-Retry-Num, Socket Mode retries, replays) are dropped
// by trigger ID here and by the bot's dedupe key in the store.
//
// Outbound: replies are rendered as Block Kit. With a bot token, request
// messages are posted with chat.postMessage and kept current with
// chat.update, and private replies are chat.postEphemeral. With only a
// signing secret, everything goes through the event's response_url, whose
// five uses in thirty minutes are rationed: updates of one message are
// coalesced and throttled, and one use is kept for the final state.
package slack
