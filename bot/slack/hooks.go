package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
)

// Slack's response_url may be used five times within thirty minutes of the
// event (docs.slack.dev/interactivity/handling-user-interaction). A minute
// of the lifetime is kept as a margin for clock skew and slow deliveries.
const (
	hookUses     = 5
	hookLifetime = 30*time.Minute - time.Minute
)

// hook is one response_url and what is left of it.
type hook struct {
	url     string
	expires time.Time
	used    int
}

// hookBook counts the uses of every response_url, shared between the
// replies to an event and the updates of the message it posted.
type hookBook struct {
	now func() time.Time

	mu    sync.Mutex
	hooks map[string]*hook
}

func newHookBook(now func() time.Time) *hookBook {
	return &hookBook{now: now, hooks: map[string]*hook{}}
}

// get returns the hook for url, first seen in an event received at received.
func (b *hookBook) get(url string, received time.Time) *hook {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if h, ok := b.hooks[url]; ok {
		return h
	}
	if len(b.hooks) > 1024 {
		for u, h := range b.hooks {
			if !now.Before(h.expires) {
				delete(b.hooks, u)
			}
		}
	}
	h := &hook{url: url, expires: received.Add(hookLifetime)}
	b.hooks[url] = h
	return h
}

// take spends one use of h, if it has one left and has not expired.
func (b *hookBook) take(h *hook) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h.used >= hookUses || !b.now().Before(h.expires) {
		return false
	}
	h.used++
	return true
}

// kill marks h as used up, after Slack refused it.
func (b *hookBook) kill(h *hook) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h.used = hookUses
}

// left counts the uses left across hs.
func (b *hookBook) left(hs []*hook) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now, n := b.now(), 0
	for _, h := range hs {
		if h.used < hookUses && now.Before(h.expires) {
			n += hookUses - h.used
		}
	}
	return n
}

// errHeld says an intermediate update was not sent because only the use
// kept for the final state is left.
var errHeld = errors.New("holding the last response_url use for the final state")

// errNoHook says no response_url with a use left is known for a message.
var errNoHook = errors.New("no response_url with a use left")

// takeFor spends a use of one of hs for a message update: the one that
// expires first, so uses that would lapse go first. The last use of all is
// kept for a final update.
func (b *hookBook) takeFor(hs []*hook, final bool) (*hook, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var live []*hook
	left := 0
	for _, h := range hs {
		if h.used < hookUses && now.Before(h.expires) {
			live = append(live, h)
			left += hookUses - h.used
		}
	}
	switch {
	case left == 0:
		return nil, errNoHook
	case left == 1 && !final:
		return nil, errHeld
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].expires.Before(live[j].expires) })
	live[0].used++
	return live[0], nil
}

// postHook sends msg to h's response_url. A 404 or 410 means Slack has
// retired the URL (expired or used up), whatever our count says.
func (a *Adapter) postHook(ctx context.Context, h *hook, msg *slackgo.WebhookMessage) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := slackgo.PostWebhookCustomHTTPContext(ctx, h.url, a.client, msg)
	var sc slackgo.StatusCodeError
	if errors.As(err, &sc) && (sc.Code == http.StatusNotFound || sc.Code == http.StatusGone) {
		a.hooks.kill(h)
	}
	if err != nil {
		return fmt.Errorf("posting to response_url: %w", err)
	}
	return nil
}

// webhookMessage is a rendered reply for response_url.
func webhookMessage(blocks []slackgo.Block, text, responseType string, replace bool) *slackgo.WebhookMessage {
	return &slackgo.WebhookMessage{
		Text:            text,
		Blocks:          &slackgo.Blocks{BlockSet: blocks},
		ResponseType:    responseType,
		ReplaceOriginal: replace,
	}
}
