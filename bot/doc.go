// Package bot is deploybot's platform-independent core: the Request and Reply
// model every chat adapter speaks, the Platform interface they implement, and
// the dispatcher that takes a request through identity, parsing, planning,
// access checks, confirmation and approval, exactly-once execution, rollout
// following and audit. Adapters live in bot/slack, bot/discord and
// bot/terminal; only they import a chat SDK.
package bot
