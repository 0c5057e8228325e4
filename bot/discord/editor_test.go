package discord

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/store"
)

// sentEdits records what an editor sends; gate, when set, holds each send
// until the test lets it through, and entered says which one is waiting.
type sentEdits struct {
	mu      sync.Mutex
	titles  []string
	gate    chan struct{}
	entered chan string
	sent    chan string
}

func (s *sentEdits) send(_ context.Context, _ store.MessageRef, r bot.Reply) error {
	if s.gate != nil {
		s.entered <- r.Title
		<-s.gate
	}
	s.mu.Lock()
	s.titles = append(s.titles, r.Title)
	s.mu.Unlock()
	s.sent <- r.Title
	return nil
}

func (s *sentEdits) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.titles)
}

func titled(s string) bot.Reply { return bot.Reply{Output: commands.Output{Title: s}} }

// next waits for the next send.
func (s *sentEdits) next(t *testing.T) string {
	t.Helper()
	select {
	case title := <-s.sent:
		return title
	case <-time.After(10 * time.Second):
		t.Fatalf("no edit was sent; sent so far %q", s.got())
		return ""
	}
}

var ref1 = store.MessageRef{Platform: Name, Channel: channelID, ID: "1001"}

// TestEditorCoalesces: updates that arrive while an edit is on its way are
// folded into one edit with the newest content.
func TestEditorCoalesces(t *testing.T) {
	s := &sentEdits{gate: make(chan struct{}), entered: make(chan string, 100), sent: make(chan string, 100)}
	e := newEditor(10*time.Millisecond, slog.New(slog.DiscardHandler), s.send)
	e.update(ref1, titled("executing"))
	if got := <-s.entered; got != "executing" {
		t.Fatalf("first edit = %q", got)
	}
	for _, p := range []string{"1/7 settled", "2/7 settled", "5/7 settled", "succeeded"} {
		e.update(ref1, titled(p))
	}
	close(s.gate)
	if first, second := s.next(t), s.next(t); first != "executing" || second != "succeeded" {
		t.Errorf("sent %q then %q, want the first state then straight the final one", first, second)
	}
	e.flush(context.Background())
	if got := s.got(); len(got) != 2 {
		t.Errorf("sent %q, want two edits", got)
	}
}

// TestEditorHold: while an interaction response that shows the message is
// pending, no edit may reach Discord; it then carries the newest content,
// and edits go on normally afterwards.
func TestEditorHold(t *testing.T) {
	s := &sentEdits{sent: make(chan string, 100)}
	e := newEditor(time.Millisecond, slog.New(slog.DiscardHandler), s.send)
	e.hold(ref1, titled("approved"))
	e.update(ref1, titled("executing")) // from the background, meanwhile
	var delivered string
	if err := e.deliver(ref1, func(r bot.Reply) error { delivered = r.Title; return nil }); err != nil {
		t.Fatal(err)
	}
	if delivered != "executing" {
		t.Errorf("the response carried %q, want the newest content", delivered)
	}
	e.update(ref1, titled("succeeded"))
	if got := s.next(t); got != "succeeded" {
		t.Errorf("edit after the response = %q", got)
	}
	e.flush(context.Background())
	if got := s.got(); !slices.Equal(got, []string{"succeeded"}) {
		t.Errorf("edits = %q, want only the one after the response", got)
	}

	// Released instead of delivered, the held content goes out as an edit.
	e.hold(ref1, titled("denied"))
	e.release(ref1)
	if got := s.next(t); got != "denied" {
		t.Errorf("released content sent as %q", got)
	}
}

// TestEditorFlush: at shutdown the last content goes out without waiting
// for the interval.
func TestEditorFlush(t *testing.T) {
	s := &sentEdits{sent: make(chan string, 100)}
	e := newEditor(time.Hour, slog.New(slog.DiscardHandler), s.send)
	e.update(ref1, titled("executing"))
	if got := s.next(t); got != "executing" {
		t.Fatalf("first edit = %q", got)
	}
	e.update(ref1, titled("succeeded"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.flush(ctx)
	if got := s.got(); !slices.Equal(got, []string{"executing", "succeeded"}) {
		t.Errorf("edits = %q, want the final state delivered by flush", got)
	}
}

// failingEdits fails the first sends with errs, then records like sentEdits.
type failingEdits struct {
	sentEdits
	mu    sync.Mutex
	errs  []error
	tries int
}

func (f *failingEdits) send(ctx context.Context, ref store.MessageRef, r bot.Reply) error {
	f.mu.Lock()
	f.tries++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	return f.sentEdits.send(ctx, ref, r)
}

func restError(code int) error {
	return &discordgo.RESTError{Response: &http.Response{StatusCode: code, Status: http.StatusText(code)}}
}

// TestEditorRetries: an edit that fails with a 5xx is tried again, backing
// off, until the newest content arrives; one that finds the message gone
// (404) is not retried.
func TestEditorRetries(t *testing.T) {
	f := &failingEdits{sentEdits: sentEdits{sent: make(chan string, 100)}, errs: []error{restError(502), restError(503)}}
	e := newEditor(time.Millisecond, slog.New(slog.DiscardHandler), f.send)
	e.retryBase = time.Millisecond
	e.update(ref1, titled("succeeded"))
	if got := f.next(t); got != "succeeded" {
		t.Errorf("sent %q, want the final state after the retries", got)
	}
	e.flush(context.Background())
	f.mu.Lock()
	tries := f.tries
	f.mu.Unlock()
	if tries != 3 {
		t.Errorf("%d tries, want 3 (two failures, then the edit)", tries)
	}

	gone := &failingEdits{sentEdits: sentEdits{sent: make(chan string, 100)}, errs: []error{restError(404)}}
	e = newEditor(time.Millisecond, slog.New(slog.DiscardHandler), gone.send)
	e.retryBase = time.Millisecond
	e.update(ref1, titled("succeeded"))
	e.flush(context.Background())
	gone.mu.Lock()
	defer gone.mu.Unlock()
	if gone.tries != 1 {
		t.Errorf("%d tries of an edit of a deleted message, want 1", gone.tries)
	}
}
