package plan

import "time"

// Command is a parsed, validated command. Names are canonical: Env is an
// environment name and Services are service names from the config, whatever
// alias the user typed. Fields a command does not take stay zero.
type Command struct {
	// Name is the command's table name, e.g. "import".
	Name string `json:"name"`
	Env  string `json:"env,omitempty"`
	// Services are canonical service names; for import and status, empty
	// means every service of the config.
	Services []string `json:"services,omitempty"`
	// DryRun shows the Plan and changes nothing (mutating commands).
	DryRun bool `json:"dryRun,omitempty"`
	// BreakGlass (mutating commands, --break-glass REASON) asks for a
	// change inside the env's freeze window, saying why: it then needs one
	// approval more than the env's policy, and the audit records the reason.
	BreakGlass string `json:"breakGlass,omitempty"`
	// Digest (revert) is either a full "sha256:<64 hex>" or a bare hex prefix
	// of at least 7 characters, resolved against the tag's history by
	// BuildPlan.
	Digest string `json:"digest,omitempty"`
	// ToRevision (undo) is the revision to roll back to; 0 means the previous one.
	ToRevision int64 `json:"toRevision,omitempty"`
	// Revision (history) selects one revision to show in detail; 0 lists them all.
	Revision int64 `json:"revision,omitempty"`
	// Force (undo) also deletes pods an OrderedReady StatefulSet is stuck on.
	Force bool `json:"force,omitempty"`
	// ID is a request ID without the leading '#' (confirm, approve, deny,
	// cancel); empty lets the bot pick the only request that fits.
	ID string `json:"id,omitempty"`
	// Reason (deny) is the free text after the ID.
	Reason string `json:"reason,omitempty"`
	// N (audit) is how many records to show; 0 means the bot's default.
	N int `json:"n,omitempty"`
	// Until (schedule pause) is when scheduled imports resume by themselves;
	// zero means paused until resumed.
	Until time.Time `json:"until,omitzero"`
	// Sub is the schedule subcommand: "" (show), "pause" or "resume".
	Sub string `json:"sub,omitempty"`
	// Repositories (release) are configured repository names; empty means
	// every repository of Env (or of the config, when they feed one env).
	Repositories []string `json:"repositories,omitempty"`
	// To (release --to) is the commit, a full or abbreviated SHA on the
	// rolling branch, that the one repository's stable branch moves to;
	// empty means the rolling branch's head.
	To string `json:"to,omitempty"`
	// Pins (release) are the commits each repository moves to as the
	// request's Plan was opened with them: a re-plan at confirmation or
	// approval keeps them, so an approval binds to exactly those SHAs while
	// the rolling branch moves on.
	Pins map[string]string `json:"pins,omitempty"`
	// From (promote) is the environment whose running image is promoted to
	// Env.
	From string `json:"from,omitempty"`
	// Topic (help) is the command to explain; empty lists all commands.
	Topic string `json:"topic,omitempty"`
	// Text is the message without its /deploy prefix, for people to read:
	// request titles and lists show it. Nothing parses it again; a request
	// keeps its typed Command and is re-planned from that.
	Text string `json:"text"`
}

// Caller is who sent a command. User is the mapped Kubernetes user; empty
// means the chat user is not mapped (help and whoami only).
type Caller struct {
	Platform string
	ChatID   string
	Name     string
	User     string
	Groups   []string
	// ChannelEnv is the channel's default environment, if it names one.
	ChannelEnv string
}
