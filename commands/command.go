package commands

import "time"

// Input is one chat message as the parser sees it.
type Input struct {
	// Text is the message, with or without a /deploy, deploy or !deploy prefix.
	Text string
	// ChannelEnv is the environment the channel defaults to, if any.
	ChannelEnv string
	// Now is the time relative times (schedule pause --until 2h) count from;
	// zero means time.Now().
	Now time.Time
}

// Kind says what a parse Result is.
type Kind int

// The kinds of parse Result.
const (
	// Ignore: the message is not for the bot (it is empty).
	Ignore Kind = iota
	// ReplyKind: answer with Result.Reply (help, usage or an error) and do nothing else.
	ReplyKind
	// RunKind: Result.Command is a valid command to run or plan.
	RunKind
)

func (k Kind) String() string {
	switch k {
	case Ignore:
		return "ignore"
	case ReplyKind:
		return "reply"
	case RunKind:
		return "run"
	}
	return "unknown"
}

// Result is what Parse makes of a message: exactly one of nothing, a reply,
// or a command. User mistakes are replies, not Go errors.
type Result struct {
	Kind    Kind
	Reply   Output
	Command Command
}

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
	// Topic (help) is the command to explain; empty lists all commands.
	Topic string `json:"topic,omitempty"`
	// Text is the message without its /deploy prefix; parsing it again gives
	// the same Command (the bot stores it with a request and re-plans from it).
	Text string `json:"text"`
}
