package commands

import (
	"time"

	"github.com/deploybot/deploybot/plan"
)

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
	Command plan.Command
}
