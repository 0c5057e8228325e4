// Package store keeps deploybot's requests, approvals, audit trail and
// dedupe keys. Every change is a compare-and-swap, so a retried webhook, a
// double click or two replicas never run a request twice. Backends: a local
// file (the embedded default) and, for clusters, Kubernetes objects.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deploybot/deploybot/plan"
)

// State is where a request is in its life.
type State string

// The request states. Planned → AwaitingConfirm → AwaitingApproval → Approved
// → Executing → Succeeded | Failed, or Cancelled | Denied | Expired.
const (
	Planned          State = "Planned"
	AwaitingConfirm  State = "AwaitingConfirm"
	AwaitingApproval State = "AwaitingApproval"
	Approved         State = "Approved"
	Executing        State = "Executing"
	Succeeded        State = "Succeeded"
	Failed           State = "Failed"
	Cancelled        State = "Cancelled"
	Denied           State = "Denied"
	Expired          State = "Expired"
)

// Person is a chat user and the Kubernetes identity they map to.
type Person struct {
	Platform string   `json:"platform"`
	ChatID   string   `json:"chatID"`
	Name     string   `json:"name"`
	User     string   `json:"user"`
	Groups   []string `json:"groups,omitempty"`
}

// Approval is one approver's click, bound to the Plan hash they saw.
type Approval struct {
	By       Person    `json:"by"`
	At       time.Time `json:"at"`
	PlanHash string    `json:"planHash"`
}

// MessageRef is a chat message that shows the request, updated in place.
type MessageRef struct {
	Platform string `json:"platform"`
	Channel  string `json:"channel"`
	ID       string `json:"id"`
}

// Request is one mutating command on its way from Plan to outcome.
type Request struct {
	ID string `json:"id"`
	// Version is bumped by the store on every successful update (compare-and-swap).
	Version   int64  `json:"version"`
	State     State  `json:"state"`
	Requester Person `json:"requester"`
	// Command is the command line as its requester typed it (or as the
	// schedule names its run), for people to read.
	Command string `json:"command"`
	// Intent is the typed Command the Plan was built from; approval
	// re-plans from it. Requests stored before it existed have none.
	Intent    *plan.Command `json:"intent,omitempty"`
	Channel   string        `json:"channel,omitempty"`
	Plan      plan.Plan     `json:"plan"`
	PlanHash  string        `json:"planHash"`
	Approvals []Approval    `json:"approvals,omitempty"`
	CreatedAt time.Time     `json:"createdAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
	ExpiresAt time.Time     `json:"expiresAt"`
	ClosedBy  *Person       `json:"closedBy,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Result    *plan.Result  `json:"result,omitempty"`
	Messages  []MessageRef  `json:"messages,omitempty"`
	// Locks are the "env/service" keys this request holds while not terminal.
	Locks []string `json:"locks,omitempty"`
	// Executor is the replica that moved the request to Executing; with
	// Heartbeat it tells the other replicas whether it is still at it.
	Executor string `json:"executor,omitempty"`
	// Heartbeat is when the executor last said it was still executing.
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	// Done are the per-target results recorded as each target finished, so
	// that a request whose executor died can say what was done and what not.
	Done []plan.TargetResult `json:"done,omitempty"`
}

// AuditEvent is one recorded transition.
type AuditEvent struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"requestID,omitempty"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	From      State     `json:"from,omitempty"`
	To        State     `json:"to,omitempty"`
	Env       string    `json:"env,omitempty"`
	PlanHash  string    `json:"planHash,omitempty"`
	Outcome   string    `json:"outcome,omitempty"`
}

// ListOptions filters List. Empty States means all.
type ListOptions struct {
	States []State
}

// Store is the state backend. Implementations must make Update a
// compare-and-swap across goroutines and processes.
type Store interface {
	// Create stores a new request. It fails with ErrExists if the ID is taken
	// and with a *BusyError if a non-terminal request holds one of its Locks.
	Create(ctx context.Context, r *Request) error
	// Get returns the request or ErrNotFound.
	Get(ctx context.Context, id string) (*Request, error)
	// Update applies fn to the latest version and stores the result only if
	// nobody changed the request meanwhile, retrying fn on conflict. An error
	// from fn aborts with no change and is returned as is.
	Update(ctx context.Context, id string, fn func(r *Request) error) (*Request, error)
	// List returns requests, newest first.
	List(ctx context.Context, opts ListOptions) ([]*Request, error)
	// Record appends an audit event.
	Record(ctx context.Context, e AuditEvent) error
	// Audit returns the last n audit events, newest first.
	Audit(ctx context.Context, n int) ([]AuditEvent, error)
	// Once reports true the first time key is seen within ttl, false after.
	Once(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Pauses returns the paused schedules by environment name.
	Pauses(ctx context.Context) (map[string]Pause, error)
	// SetPause pauses env's scheduled imports; a nil p resumes them.
	SetPause(ctx context.Context, env string, p *Pause) error
}

// Pause is a paused schedule: who paused it, when, and until when (zero:
// until resumed).
type Pause struct {
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Until time.Time `json:"until,omitempty"`
}

// Active reports whether the pause still holds at now.
func (p Pause) Active(now time.Time) bool { return p.Until.IsZero() || now.Before(p.Until) }

// Errors callers branch on.
var (
	ErrNotFound = errors.New("no such request")
	ErrExists   = errors.New("request ID already exists")
)

// BusyError says another request holds a lock.
type BusyError struct {
	Lock string
	ID   string
}

func (e *BusyError) Error() string { return fmt.Sprintf("%s is busy with #%s", e.Lock, e.ID) }

// Terminal reports whether a request in state s can no longer change.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Cancelled, Denied, Expired:
		return true
	}
	return false
}
