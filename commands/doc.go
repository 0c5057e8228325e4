// Package commands is deploybot's command language: it turns a chat message
// into a typed Command (or a reply, or nothing), answers the read-only
// commands, and builds the Plan of a mutating command from live cluster state.
//
// Every command lives in its own file and has one row in the explicit table
// of registry.go; help is generated from that table. Parse never panics and
// never touches a cluster. Run answers help, status, images, history and
// whoami. BuildPlan turns import, revert, undo and track into a plan.Plan;
// RenderPlan shows one the same way on every platform.
//
// The commands that act on requests rather than clusters (pending, approve,
// deny, cancel, confirm, audit, schedule) are parsed here but executed by the
// bot's approval flow: their table rows have Flow set and neither Run nor Plan.
//
// Problems a user can fix are returned as *UserError, whose Output is the
// reply; any other error is an internal failure.
package commands
