// Package metrics exposes deploybot's operational measurements in the
// Prometheus text format: inbound requests by command and outcome, how fast
// adapters acknowledge platform events, requests waiting for confirmation or
// approval, how long rollouts take, and failed chat platform API calls.
//
// A *Registry implements the small bot.Metrics interface the dispatcher
// reports to; adapters report their ack latency through the Bot. The package
// knows nothing of the bot: the labels are plain strings.
package metrics
