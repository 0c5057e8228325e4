package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/store"
)

// WithInbox persists every accepted event in ib before Slack gets its 200
// (see bot.Inbox).
func WithInbox(ib bot.Inbox) Option { return func(a *Adapter) { a.inbox = ib } }

const (
	// inboxTTL is how long a handled event's key stays a dedupe key.
	inboxTTL = 24 * time.Hour
	// replayWindow is how old an event left in the inbox may be and still be
	// handled at start-up: its response_url lives thirty minutes.
	replayWindow = 25 * time.Minute
	// maxBatch bounds one group commit.
	maxBatch = 512
)

// commit is one accepted event waiting for the group commit.
type commit struct {
	in      inbound
	verdict chan verdict
}

// inboxRecord is the stored form of an inbound event: what handling it needs.
type inboxRecord struct {
	Kind        kind        `json:"kind"`
	Team        string      `json:"team"`
	User        string      `json:"user"`
	UserName    string      `json:"userName,omitempty"`
	Channel     string      `json:"channel"`
	Text        string      `json:"text,omitempty"`
	Action      *bot.Action `json:"action,omitempty"`
	ResponseURL string      `json:"responseURL,omitempty"`
	MessageTS   string      `json:"messageTS,omitempty"`
	Ephemeral   bool        `json:"ephemeral,omitempty"`
}

func recordOf(in inbound) ([]byte, error) {
	return json.Marshal(inboxRecord{Kind: in.kind, Team: in.team, User: in.user, UserName: in.userName, Channel: in.channel,
		Text: in.text, Action: in.action, ResponseURL: in.responseURL, MessageTS: in.messageTS, Ephemeral: in.ephemeral})
}

// inboundOf decodes a stored event; what did not come from recordOf is
// refused.
func inboundOf(ev store.InboxEvent) (inbound, error) {
	var r inboxRecord
	if err := json.Unmarshal(ev.Payload, &r); err != nil {
		return inbound{}, fmt.Errorf("decoding inbox event %q: %w", ev.Key, err)
	}
	switch {
	case r.Kind != kindCommand && r.Kind != kindAction:
		return inbound{}, fmt.Errorf("inbox event %q: unknown kind %d", ev.Key, r.Kind)
	case r.Team == "" || r.User == "" || len(r.Team) > maxIDLen || len(r.User) > maxIDLen || len(r.Channel) > maxIDLen:
		return inbound{}, fmt.Errorf("inbox event %q: missing or overlong team, user or channel", ev.Key)
	case r.Kind == kindAction && (r.Action == nil || r.Action.RequestID == "" || len(r.Action.RequestID) > maxRequestIDLen):
		return inbound{}, fmt.Errorf("inbox event %q: a click without a request", ev.Key)
	case len(r.Text) > MaxBody:
		return inbound{}, fmt.Errorf("inbox event %q: text longer than %d bytes", ev.Key, MaxBody)
	}
	return inbound{kind: r.Kind, team: r.Team, user: r.User, userName: r.UserName, channel: r.Channel, text: r.Text,
		action: r.Action, responseURL: r.ResponseURL, messageTS: r.MessageTS, ephemeral: r.Ephemeral,
		dedupeKey: ev.Key, received: ev.Received, replayed: true}, nil
}

// acceptDurably hands in to the group commit and waits for its verdict;
// a.qmu is read-held, so Close waits for it.
func (a *Adapter) acceptDurably(in inbound) verdict {
	c := commit{in: in, verdict: make(chan verdict, 1)}
	select {
	case a.commits <- c:
	case <-a.ctx.Done():
		return overloaded
	}
	select {
	case v := <-c.verdict:
		return v
	case <-a.ctx.Done():
		return overloaded
	}
}

// commitLoop persists accepted events in batches: whatever arrives while
// one write is on its way goes into the next, so many concurrent acks share
// one transaction (and one fsync) instead of queueing behind each other.
func (a *Adapter) commitLoop() {
	for {
		var batch []commit
		select {
		case c := <-a.commits:
			batch = append(batch, c)
		case <-a.ctx.Done():
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case c := <-a.commits:
				batch = append(batch, c)
			default:
				break more
			}
		}
		a.commitBatch(batch)
	}
}

func (a *Adapter) commitBatch(batch []commit) {
	events := make([]store.InboxEvent, 0, len(batch))
	keep := batch[:0]
	for _, c := range batch {
		payload, err := recordOf(c.in)
		if err != nil {
			a.log.Error("slack: encoding an event for the inbox", "key", c.in.dedupeKey, "err", err)
			c.verdict <- overloaded
			continue
		}
		events = append(events, store.InboxEvent{Key: c.in.dedupeKey, Platform: Name, Received: c.in.received, TTL: inboxTTL, Payload: payload})
		keep = append(keep, c)
	}
	if len(keep) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	fresh, err := a.inbox.Enqueue(ctx, events)
	if err != nil {
		// Not persisted, so not acknowledged: Slack shows the user an error
		// (or retries an event), rather than the bot losing it silently.
		a.log.Error("slack: persisting events in the inbox", "events", len(keep), "err", err)
		for _, c := range keep {
			c.verdict <- overloaded
		}
		return
	}
	for i, c := range keep {
		if !fresh[i] {
			a.stats.duplicates.Add(1)
			a.log.Info("slack: ignoring redelivered event", "key", c.in.dedupeKey)
			c.verdict <- duplicate
			continue
		}
		select {
		case a.queue <- c.in:
			a.stats.enqueued.Add(1)
			c.verdict <- accepted
		default:
			a.done(c.in.dedupeKey, "turned away: the event queue was full")
			a.stats.overloaded.Add(1)
			a.log.Warn("slack: event queue full, turning an event away", "key", c.in.dedupeKey)
			c.verdict <- overloaded
		}
	}
}

// done marks an event handled in the inbox, if there is one. The mark goes
// to doneLoop, which writes whatever has gathered in one batch, so workers
// do not wait for a disk sync per event; with the loop full or gone it is
// written here. A crash between handling and the mark replays the event,
// and the bot's own dedupe key keeps it from running twice.
func (a *Adapter) done(key, outcome string) {
	if a.inbox == nil {
		return
	}
	a.donesMu.RLock()
	if !a.donesClosed {
		select {
		case a.dones <- store.InboxOutcome{Key: key, Outcome: outcome}:
			a.donesMu.RUnlock()
			return
		default:
		}
	}
	a.donesMu.RUnlock()
	a.markDone([]store.InboxOutcome{{Key: key, Outcome: outcome}})
}

// doneLoop writes done marks in batches, as commitLoop writes events.
func (a *Adapter) doneLoop() {
	defer close(a.donesDone)
	for d := range a.dones {
		batch := []store.InboxOutcome{d}
	more:
		for len(batch) < maxBatch {
			select {
			case d, ok := <-a.dones:
				if !ok {
					break more
				}
				batch = append(batch, d)
			default:
				break more
			}
		}
		a.markDone(batch)
	}
}

// closeDones stops doneLoop once the marks sent so far are written.
func (a *Adapter) closeDones() {
	if a.dones == nil {
		return
	}
	a.donesMu.Lock()
	if !a.donesClosed {
		a.donesClosed = true
		close(a.dones)
	}
	a.donesMu.Unlock()
	<-a.donesDone
}

// markDone writes done marks: in one write where the store can.
func (a *Adapter) markDone(batch []store.InboxOutcome) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), 10*time.Second)
	defer cancel()
	if b, ok := a.inbox.(store.InboxBatcher); ok && len(batch) > 1 {
		if err := b.InboxDoneAll(ctx, batch); err != nil {
			a.log.Error("slack: marking events done in the inbox", "events", len(batch), "err", err)
		}
		return
	}
	for _, d := range batch {
		if err := a.inbox.InboxDone(ctx, d.Key, d.Outcome); err != nil && !errors.Is(err, store.ErrNoEvent) {
			a.log.Error("slack: marking an event done in the inbox", "key", d.Key, "err", err)
		}
	}
}

// Replay handles the events an earlier run of the bot acknowledged but did
// not finish (it crashed, or was killed): those young enough to answer are
// queued for the workers (the bot's own dedupe keys keep one that was in fact
// handled from being handled twice); older ones are marked done and logged,
// since their response_url has expired. It returns how many were queued.
func (a *Adapter) Replay(ctx context.Context) (int, error) {
	if a.inbox == nil {
		return 0, nil
	}
	events, err := a.inbox.Inbox(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the inbox: %w", err)
	}
	queued := 0
	for _, ev := range events {
		if ev.Platform != Name {
			continue
		}
		in, err := inboundOf(ev)
		if err != nil {
			a.log.Error("slack: an inbox event cannot be handled", "key", ev.Key, "err", err)
			a.markDone([]store.InboxOutcome{{Key: ev.Key, Outcome: "dropped: " + err.Error()}})
			continue
		}
		if age := a.now().Sub(ev.Received); age > replayWindow {
			a.log.Warn("slack: an event was received but not handled before a restart, and is too old to answer now",
				"key", ev.Key, "user", in.team+"/"+in.user, "text", in.text, "received", ev.Received, "age", age.Round(time.Second))
			a.tellNotHandled(ctx, in)
			a.markDone([]store.InboxOutcome{{Key: ev.Key, Outcome: "expired: received but not handled before a restart"}})
			continue
		}
		if !a.enqueueReplay(ctx, in) {
			break
		}
		queued++
	}
	if queued > 0 {
		a.log.Info("slack: handling events received before a restart", "events", queued)
	}
	return queued, nil
}

// enqueueReplay queues a replayed event, waiting for room; false once the
// adapter stops (the event stays in the inbox for the next start).
func (a *Adapter) enqueueReplay(ctx context.Context, in inbound) bool {
	a.qmu.RLock()
	defer a.qmu.RUnlock()
	if a.stopping {
		return false
	}
	select {
	case a.queue <- in:
		a.stats.enqueued.Add(1)
		return true
	case <-ctx.Done():
		return false
	case <-a.ctx.Done():
		return false
	}
}

// tellNotHandled tells the sender of an event too old to handle that it was
// received and not acted on, where the Web API can still reach them (its
// response_url has expired).
func (a *Adapter) tellNotHandled(ctx context.Context, in inbound) {
	if a.api == nil || in.channel == "" || in.user == "" {
		return
	}
	what := "your button click"
	if in.kind == kindCommand {
		what = fmt.Sprintf("`/deploy %s`", in.text)
	}
	text := fmt.Sprintf("deploybot received %s at %s but restarted before it handled it, and it is too old to act on now. Nothing was done; send it again if you still need it.",
		what, in.received.UTC().Format("15:04 MST"))
	if _, err := a.api.PostEphemeralContext(ctx, in.channel, in.user, slackgo.MsgOptionText(text, false)); err != nil {
		a.log.Warn("slack: telling a user their event was not handled", "user", in.team+"/"+in.user, "err", err)
	}
}
