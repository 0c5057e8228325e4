// Package store keeps deploybot's requests, approvals, audit trail, dedupe
// keys and inbox of inbound events. Every change is a compare-and-swap, so a
// retried webhook, a double click or two replicas never run a request twice.
// Backends: an embedded bbolt database (store/bolt, the single-replica
// default), Kubernetes objects for clusters (store/kube), and here an
// in-memory store for tests and the JSON file store that bolt replaces (kept
// to read old state for migration, and for tests).
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// Hook is, for a message posted through a reply URL (Slack's
	// response_url, with no bot token), that URL and when it was issued, so
	// any replica can update the message, not only the one that posted it.
	Hook   string    `json:"hook,omitempty"`
	HookAt time.Time `json:"hookAt,omitzero"`
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
//
// A request in a state this deploybot does not know (written by a newer
// version, or damaged) is listed under every filter: hidden from `pending`
// it could hold a lock nobody can see; listed, its state is shown as it is.
type ListOptions struct {
	States []State
}

// Includes reports whether List with these options lists a request in state s.
func (o ListOptions) Includes(s State) bool {
	return len(o.States) == 0 || slices.Contains(o.States, s) || !s.Known()
}

// States are all request states, in the order of their life.
var States = []State{Planned, AwaitingConfirm, AwaitingApproval, Approved, Executing, Succeeded, Failed, Cancelled, Denied, Expired}

// Known reports whether s is one of States.
func (s State) Known() bool { return slices.Contains(States, s) }

// InboxEvent is one inbound chat event, persisted before the platform is
// told it was accepted, so that a crash between the acknowledgement and the
// reply loses nothing: on start, what is still in the inbox is handled (or
// answered as received but not handled).
type InboxEvent struct {
	// Key is the event's dedupe key: the platform's retry of an event has
	// the same key and is not stored again while the key lives.
	Key      string `json:"key"`
	Platform string `json:"platform"`
	// Received is when the adapter received it; zero is set to now.
	Received time.Time `json:"received"`
	// TTL is how long after Received the key is kept as a dedupe key once
	// the event is done. An event not yet done is kept however old it is.
	TTL time.Duration `json:"ttl"`
	// Payload is the raw inbound bytes the adapter needs to replay it.
	Payload []byte `json:"payload,omitempty"`
}

// Check says what makes e unfit to be stored, or nil.
func (e InboxEvent) Check() error {
	switch {
	case e.Key == "":
		return errors.New("inbox event without a dedupe key")
	case e.TTL < 0:
		return fmt.Errorf("inbox event %q: negative TTL %v", e.Key, e.TTL)
	}
	return nil
}

// Expires is when a done event's dedupe key may be pruned.
func (e InboxEvent) Expires() time.Time { return e.Received.Add(e.TTL) }

// CheckRequest says what makes a decoded request implausible, or nil: every
// request a store wrote has an ID, a version, a state and a creation time,
// so one without is damage, not an empty request. key is the ID the record
// is stored under ("" when there is none to compare).
func CheckRequest(r *Request, key string) error {
	switch {
	case r == nil:
		return errors.New("the request is null")
	case r.ID == "":
		return errors.New("the request has no ID")
	case key != "" && r.ID != key:
		return fmt.Errorf("the request stored as #%s says it is #%s", key, r.ID)
	case r.Version < 1:
		return fmt.Errorf("request #%s has version %d; stored requests start at 1", r.ID, r.Version)
	case r.State == "":
		return fmt.Errorf("request #%s has no state", r.ID)
	case r.CreatedAt.IsZero():
		return fmt.Errorf("request #%s has no creation time", r.ID)
	}
	return nil
}

// CheckAuditEvent says what makes a decoded audit event implausible, or
// nil: Record stamps every event with a time.
func CheckAuditEvent(e *AuditEvent) error {
	if e.Time.IsZero() {
		return errors.New("the audit event has no time")
	}
	return nil
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

	// Enqueue persists a batch of inbound events in one write (group
	// commit: the caller gathers concurrent events into one batch) and
	// reports for each whether it was new. false means a duplicate of an
	// event whose key is still kept (not done, or done within its TTL, or
	// earlier in the same batch); duplicates are not stored again. Only
	// after Enqueue returns may the platform be told the events were
	// accepted. Dedupe keys of the inbox are apart from those of Once.
	Enqueue(ctx context.Context, events []InboxEvent) ([]bool, error)
	// Inbox returns the events not yet marked done, oldest (by Received,
	// then by enqueueing) first.
	Inbox(ctx context.Context) ([]InboxEvent, error)
	// InboxDone marks the event with key handled, with a word on how
	// ("replied", "expired", ...). Its key stays a dedupe key until
	// Received+TTL, then is pruned. Marking a done event again changes
	// nothing; an unknown key is ErrNoEvent.
	InboxDone(ctx context.Context, key, outcome string) error

	// RecordImage notes an image of a service in an environment whose
	// platform keeps no tag history (plain Kubernetes: the registry keeps
	// none either): first seen in the registry, or imported. Records are
	// keyed by Env, Service and Digest; recording a known digest again keeps
	// its first Seen and Ref and takes the newer import (Imported, By,
	// Request) when rec has one. At most MaxImageRecords per Env and Service
	// are kept, the oldest (by Latest) dropped first.
	RecordImage(ctx context.Context, rec ImageRecord) error
	// Images returns the records of a service in an environment, newest
	// (by Latest) first; none is an empty list, not an error.
	Images(ctx context.Context, env, service string) ([]ImageRecord, error)
}

// InboxOutcome is one event to mark done: its key and how it was handled.
type InboxOutcome struct {
	Key, Outcome string
}

// InboxBatcher is implemented by a store that can mark many inbox events
// done in one write (one transaction, one fsync): an adapter marking every
// handled event done one by one would otherwise spend a disk sync per event.
// Unknown and already done keys are skipped, as InboxDone would refuse or
// ignore them one by one.
type InboxBatcher interface {
	InboxDoneAll(ctx context.Context, done []InboxOutcome) error
}

// MaxImageRecords bounds the image records kept per environment and service.
const MaxImageRecords = 50

// ImageRecord is one image a service's tag has had in an environment (the
// type lives in plan, as cluster reads it).
type ImageRecord = plan.ImageRecord

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
	ErrNoEvent  = errors.New("no such inbox event")
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
