package store

import (
	"fmt"
	"strings"
)

// edges are the allowed moves of the request state machine. Terminal states
// have none.
var edges = map[State][]State{
	Planned:          {AwaitingConfirm, AwaitingApproval, Approved, Cancelled},
	AwaitingConfirm:  {AwaitingApproval, Approved, Cancelled, Expired, Denied},
	AwaitingApproval: {Approved, Denied, Cancelled, Expired},
	Approved:         {Executing, Cancelled, Expired},
	Executing:        {Succeeded, Failed},
}

// CanTransition reports whether a request may move from one state to another.
// Staying in the same state is not a move: a second click must fail.
func CanTransition(from, to State) bool {
	for _, s := range edges[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Transition moves r to state to, or returns a *TransitionError that says in
// words why it cannot move. Use it inside Store.Update so the move is a
// compare-and-swap.
func Transition(r *Request, to State) error {
	if !CanTransition(r.State, to) {
		return &TransitionError{ID: r.ID, From: r.State, To: to}
	}
	r.State = to
	return nil
}

// TransitionError is a refused state change. Its message is written for the
// user who clicked: "request #abc123 was already approved".
type TransitionError struct {
	ID   string
	From State
	To   State
}

func (e *TransitionError) Error() string {
	msg := fmt.Sprintf("request #%s %s", e.ID, e.From.Phrase())
	// When the request already moved on, where it is says it all; otherwise
	// also say what could not be done.
	if e.From == e.To || e.From.Terminal() || e.From == Approved || e.From == Executing {
		return msg
	}
	return msg + ", so it cannot be " + e.To.verb()
}

// Phrase describes a request in state s for a sentence starting
// "request #ID ...".
func (s State) Phrase() string {
	switch s {
	case Planned:
		return "has not been offered yet"
	case AwaitingConfirm:
		return "is waiting for its requester to confirm"
	case AwaitingApproval:
		return "is waiting for approval"
	case Approved:
		return "was already approved"
	case Executing:
		return "is already running"
	case Succeeded:
		return "already ran and succeeded"
	case Failed:
		return "already ran and failed"
	case Cancelled:
		return "was cancelled"
	case Denied:
		return "was denied"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("is in an unknown state %q", string(s))
}

// verb is the past participle for moving into s: "it cannot be <verb>".
func (s State) verb() string {
	switch s {
	case Planned:
		return "planned again"
	case AwaitingConfirm:
		return "offered for confirmation"
	case AwaitingApproval:
		return "confirmed"
	case Approved:
		return "approved"
	case Executing:
		return "started"
	case Succeeded, Failed:
		return "finished"
	case Cancelled:
		return "cancelled"
	case Denied:
		return "denied"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("moved to %q", string(s))
}

// Status is how a request in state s is shown in titles and lists:
// "waiting for approval", "succeeded".
func (s State) Status() string {
	switch s {
	case Planned:
		return "planned"
	case AwaitingConfirm:
		return "waiting for the requester to confirm"
	case AwaitingApproval:
		return "waiting for approval"
	}
	return strings.ToLower(string(s))
}
