package bot

import (
	"context"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/store"
)

// Request is one inbound chat event, normalised by an adapter after it has
// verified the platform's signature.
type Request struct {
	Platform string
	User     ChatUser
	// Channel is where the event came from; replies and the request message go there.
	Channel string
	// Text is a command line ("import prod worker"), or empty for a button press.
	Text string
	// Action is a button press; it carries only the request ID.
	Action *Action
	// DedupeKey, when set, makes a redelivered event (a Slack retry, a gateway
	// replay) a no-op: the bot handles each key once.
	DedupeKey string
	// Replayed marks an event an earlier run acknowledged and did not finish
	// (from the adapter's inbox). If the bot had already taken it up, it was
	// cut off mid-way: the sender is told so instead of being left waiting.
	Replayed bool
}

// ChatUser is the sender as the platform knows them.
type ChatUser struct {
	// ID is the platform's stable user ID (Slack "TEAM/USER", Discord user ID,
	// terminal user name); identities are mapped from it.
	ID   string
	Name string
	// Groups are chat groups or roles (Slack user groups, Discord role IDs).
	Groups []string
}

// ActionKind is what a button does.
type ActionKind string

// The buttons.
const (
	ActionConfirm ActionKind = "confirm"
	ActionCancel  ActionKind = "cancel"
	ActionApprove ActionKind = "approve"
	ActionDeny    ActionKind = "deny"
	// ActionSkip skips the next run of a scheduled import; its RequestID is
	// the ID that run's request will have.
	ActionSkip ActionKind = "skip"
	// ActionImport opens an import request; its RequestID is no request's
	// but an ImportOffer (offer.go): the env and services to import.
	ActionImport ActionKind = "import"
)

// Action is a button press.
type Action struct {
	Kind      ActionKind
	RequestID string
}

// Reply is what the bot says: content plus, for a request message, its
// buttons. Private replies go to the sender only.
type Reply struct {
	commands.Output
	// RequestID is set when the reply shows a request; adapters may use it to
	// update one message in place.
	RequestID string
	Buttons   []Button
	// Final is set on a request message whose request reached a terminal
	// state: nothing will update it again, so adapters that must ration
	// updates (Slack's response_url allows five) keep one for it.
	Final bool
}

// Button is one button of a request message. It carries only the request ID;
// the Plan stays server-side.
type Button struct {
	Action    ActionKind
	RequestID string
	Label     string
	// Danger buttons are styled as destructive.
	Danger bool
	// Confirm, when set, is the text of a "are you sure?" dialog before the
	// click counts.
	Confirm string
}

// Responder answers the sender of one inbound request.
type Responder interface {
	// Respond sends a reply to the sender, privately if r.Private.
	Respond(ctx context.Context, r Reply) error
}

// Inbox keeps inbound events between acknowledging and answering them, so
// that a crash in between loses none: an adapter persists an event before
// the platform is told it was accepted (after which the platform never sends
// it again), marks it done once handled, and handles whatever is still there
// at its next start. store.Store implements it.
type Inbox interface {
	Enqueue(ctx context.Context, events []store.InboxEvent) ([]bool, error)
	Inbox(ctx context.Context) ([]store.InboxEvent, error)
	InboxDone(ctx context.Context, key, outcome string) error
}

// Platform posts and updates request messages on one chat platform; the bot
// keeps a request's messages up to date as it moves through its states and
// its rollout progresses, long after the inbound request was answered.
type Platform interface {
	// Name is the platform name used in identities: slack, discord, terminal.
	Name() string
	// Post publishes a new message in channel and returns where it is.
	Post(ctx context.Context, channel string, r Reply) (store.MessageRef, error)
	// Update replaces the content of a message posted earlier.
	Update(ctx context.Context, ref store.MessageRef, r Reply) error
}
