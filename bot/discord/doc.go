// Package discord is deploybot's Discord platform, on bwmarrin/discordgo.
//
// Commands arrive three ways and become the same bot.Request: a gateway
// message that starts with the prefix (default "!deploy") or mentions the bot,
// the /deploy application command (one string option holding the command
// text, so the grammar is the same everywhere), and, for deployments without a
// gateway connection, interactions POSTed to /discord/interactions, verified
// with the application's Ed25519 public key and a timestamp window.
//
// Request messages carry Confirm/Cancel/Approve/Deny buttons whose custom_id
// holds only the action and the request ID. Discord has no confirmation
// dialog, so a button that asks first answers with an ephemeral "Really …?"
// and a second button. Interactions are answered within Discord's 3 seconds
// (deferred when the bot is slower), refusals are ephemeral, and the request
// message is edited as the request and its rollout progress, with edits of one
// message coalesced so a fast rollout does not run into rate limits.
//
// All REST calls go through Session.Client, whose transport can send them to
// another base URL than discord.com (tests, local fakes).
package discord
