package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/store"
)

// state is a request message in a given state.
func state(id, text string, final bool) bot.Reply {
	return bot.Reply{Output: commands.Output{Title: "#" + id + " " + text}, RequestID: id, Final: final}
}

// TestResponseURLBudget: without a bot token, a request message lives on
// response_urls with five uses each. Progress goes out while uses last, the
// last use is kept for the final state, and Slack never sees a sixth use.
func TestResponseURLBudget(t *testing.T) {
	progress := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("progress %d", i))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		progress int
		// clicks adds that many clicks' response_urls to the message.
		clicks int
		want   []string
	}{
		{
			name: "2 progress updates: all delivered", progress: 2,
			want: append(append([]string{"posted"}, progress(2)...), "succeeded"),
		},
		{
			name: "40 progress updates on one response_url: 3 shown, 1 use kept for the end", progress: 40,
			want: append(append([]string{"posted"}, progress(3)...), "succeeded"),
		},
		{
			name: "two clicks add ten uses", progress: 40, clicks: 2,
			want: append(append([]string{"posted"}, progress(13)...), "succeeded"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hooks := newHookServer(t)
			a, err := New(newCountingHandler(), WithSigningSecret(testSecret), WithLogger(testLogger(t)),
				WithUpdateInterval(time.Millisecond), WithHookInterval(2*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			a.retryBase = time.Millisecond
			in := &inbound{kind: kindCommand, team: testTeam, user: "U0ALICE", channel: testChannel, responseURL: hooks.url(), received: time.Now()}
			ref, err := a.Post(withInbound(context.Background(), in), testChannel, state("r1", "posted", false))
			if err != nil {
				t.Fatalf("Post: %v", err)
			}
			if ref.ID != hookRefPrefix+"r1" || ref.Channel != testChannel || ref.Platform != Name {
				t.Errorf("ref = %+v", ref)
			}
			for i := range tc.clicks {
				a.handle(inbound{kind: kindAction, team: testTeam, user: "U0BOB", channel: testChannel, responseURL: hooks.url(),
					received: time.Now(), action: &bot.Action{Kind: bot.ActionApprove, RequestID: "r1"}, dedupeKey: fmt.Sprint(i)})
			}
			// One update at a time, each written (or held) before the next,
			// as a slow rollout would report them.
			for i := range tc.progress {
				if err := a.Update(context.Background(), ref, state("r1", fmt.Sprintf("progress %d", i), false)); err != nil {
					t.Fatal(err)
				}
				waitIdle(t, a, "r1")
			}
			if err := a.Update(context.Background(), ref, state("r1", "succeeded", true)); err != nil {
				t.Fatal(err)
			}
			waitIdle(t, a, "r1")
			a.Close()
			posts := hooks.all()
			var got []string
			for _, p := range posts {
				got = append(got, strings.TrimPrefix(p.Blocks, "header: #r1 "))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("response_url posts:\n%q\nwant\n%q", got, tc.want)
			}
			if hooks.violations != 0 {
				t.Errorf("%d posts beyond five uses of a response_url", hooks.violations)
			}
			if p := posts[0]; p.ResponseType != slackgo.ResponseTypeInChannel || p.ReplaceOriginal {
				t.Errorf("first post = %+v, want the in_channel request message", p)
			}
			for _, p := range posts[1:] {
				if p.ResponseType != slackgo.ResponseTypeInChannel || !p.ReplaceOriginal {
					t.Errorf("update %+v does not replace the message", p)
				}
			}
		})
	}
}

// waitIdle waits until the request message has nothing left to write.
func waitIdle(t *testing.T, a *Adapter, id string) {
	t.Helper()
	m := a.messages.get(id)
	poll.Until(t, 5*time.Second, "message "+id+" to have nothing pending", func() (bool, string) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return !m.sending && m.pending == nil, "an update is still pending"
	})
}

// TestHookTakeFor pins how uses are spent: soonest-expiring first, never
// an expired or used-up URL, and the very last use only for a final state.
func TestHookTakeFor(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	book := newHookBook(func() time.Time { return now })
	old := book.get("https://hooks/old", now.Add(-20*time.Minute))
	fresh := book.get("https://hooks/fresh", now)
	gone := book.get("https://hooks/gone", now.Add(-31*time.Minute))
	hs := []*hook{fresh, old, gone}

	for i := range hookUses {
		h, err := book.takeFor(hs, false)
		if err != nil || h != old {
			t.Fatalf("use %d: got %v, %v; want the older URL first", i+1, h, err)
		}
	}
	for i := range hookUses - 1 {
		if h, err := book.takeFor(hs, false); err != nil || h != fresh {
			t.Fatalf("use %d of fresh: got %v, %v", i+1, h, err)
		}
	}
	if _, err := book.takeFor(hs, false); !errors.Is(err, errHeld) {
		t.Fatalf("last use for an intermediate update: err = %v, want errHeld", err)
	}
	if h, err := book.takeFor(hs, true); err != nil || h != fresh {
		t.Fatalf("last use for the final state: %v, %v", h, err)
	}
	if _, err := book.takeFor(hs, true); !errors.Is(err, errNoHook) {
		t.Fatalf("after all uses: err = %v, want errNoHook", err)
	}
}

// TestBotTokenFallbacks: with a bot token the Web API is used, and
// response_url or a retry steps in when it fails.
func TestBotTokenFallbacks(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail map[string][]string
		// private sends a private reply instead of posting a request message.
		private     bool
		wantMethods []string
		wantHooks   []string // response types posted to response_url
		// gone: the message no longer exists, so the final state cannot arrive
		gone bool
	}{
		{
			name:        "posted and updated with the Web API",
			wantMethods: []string{"chat.postMessage", "chat.update"},
		},
		{
			name:        "app not in the channel: the command's response_url posts and updates",
			fail:        map[string][]string{"chat.postMessage": {"not_in_channel"}},
			wantMethods: []string{"chat.postMessage (failed: not_in_channel)"},
			wantHooks:   []string{"in_channel", "in_channel"},
		},
		{
			name:        "chat.update rate limited: retried after Retry-After",
			fail:        map[string][]string{"chat.update": {"ratelimited"}},
			wantMethods: []string{"chat.postMessage", "chat.update (failed: ratelimited)", "chat.update"},
		},
		{
			name:        "chat.update fails with 500 and 503: retried with backoff until the final state arrives",
			fail:        map[string][]string{"chat.update": {"http500", "http503"}},
			wantMethods: []string{"chat.postMessage", "chat.update (failed: http500)", "chat.update (failed: http503)", "chat.update"},
		},
		{
			name:        "chat.update finds the message gone: not retried",
			fail:        map[string][]string{"chat.update": {"message_not_found"}},
			wantMethods: []string{"chat.postMessage", "chat.update (failed: message_not_found)"},
			gone:        true,
		},
		{
			name:        "chat.postMessage rate limited, then 503: retried, then posted",
			fail:        map[string][]string{"chat.postMessage": {"ratelimited", "http503"}},
			wantMethods: []string{"chat.postMessage (failed: ratelimited)", "chat.postMessage (failed: http503)", "chat.postMessage", "chat.update"},
		},
		{
			name:        "private reply",
			private:     true,
			wantMethods: []string{"chat.postEphemeral"},
		},
		{
			name:        "private reply where the app cannot post: ephemeral response_url",
			private:     true,
			fail:        map[string][]string{"chat.postEphemeral": {"channel_not_found"}},
			wantMethods: []string{"chat.postEphemeral (failed: channel_not_found)"},
			wantHooks:   []string{"ephemeral"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSlack(t)
			hooks := newHookServer(t)
			for m, errs := range tc.fail {
				f.failNext(m, errs...)
			}
			a, err := New(newCountingHandler(), WithSigningSecret(testSecret), WithBotToken("xoxb-test"), WithAPIURL(f.url()),
				WithLogger(testLogger(t)), WithUpdateInterval(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			a.retryBase = time.Millisecond
			in := &inbound{kind: kindCommand, team: testTeam, user: "U0ALICE", channel: testChannel, responseURL: hooks.url(), received: time.Now()}
			ctx := withInbound(context.Background(), in)
			if tc.private {
				r := bot.Reply{Output: commands.Output{Private: true, Sections: []commands.Section{{Lines: []string{"no"}}}}}
				if err := (&responder{a: a, in: in}).Respond(ctx, r); err != nil {
					t.Fatalf("Respond: %v", err)
				}
			} else {
				ref, err := a.Post(ctx, testChannel, state("r1", "posted", false))
				if err != nil {
					t.Fatalf("Post: %v", err)
				}
				if err := a.Update(ctx, ref, state("r1", "succeeded", true)); err != nil {
					t.Fatal(err)
				}
			}
			a.Close() // delivers what is pending
			if got := f.methods(); !slices.Equal(got, tc.wantMethods) {
				t.Errorf("Web API calls %q, want %q", got, tc.wantMethods)
			}
			var types []string
			for _, p := range hooks.all() {
				types = append(types, p.ResponseType)
			}
			if !slices.Equal(types, tc.wantHooks) {
				t.Errorf("response_url posts %q, want %q", types, tc.wantHooks)
			}
			if !tc.private && !tc.gone {
				var last string
				if calls := f.all(); len(tc.wantHooks) == 0 {
					last = calls[len(calls)-1].Blocks
				} else {
					ps := hooks.all()
					last = ps[len(ps)-1].Blocks
				}
				if !strings.Contains(last, "#r1 succeeded") {
					t.Errorf("Slack's last version of the message:\n%s\nwant the final state", last)
				}
			}
		})
	}
}

// TestUserGroups: group memberships come from one usergroups.list call per
// TTL, and a failed call leaves everybody in no group.
func TestUserGroups(t *testing.T) {
	f := newFakeSlack(t)
	f.groups = []slackgo.UserGroup{
		{ID: "S0ADMINS", Users: []string{"U0BOB"}},
		{ID: "S0DEVS", Users: []string{"U0ALICE", "U0BOB"}},
	}
	var mu sync.Mutex
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	a, err := New(newCountingHandler(), WithSigningSecret(testSecret), WithBotToken("xoxb-test"), WithAPIURL(f.url()),
		WithLogger(testLogger(t)), WithClock(clock), WithGroupsTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	lists := func() int {
		n := 0
		for _, m := range f.methods() {
			if strings.HasPrefix(m, "usergroups.list") {
				n++
			}
		}
		return n
	}
	steps := []struct {
		name   string
		before func()
		user   string
		want   []string
		calls  int
	}{
		{name: "first lookup reads the groups", user: "U0BOB", want: []string{"S0ADMINS", "S0DEVS"}, calls: 1},
		{name: "within the TTL: cached", user: "U0ALICE", want: []string{"S0DEVS"}, calls: 1},
		{name: "user in no group", user: "U0CAROL", want: nil, calls: 1},
		{name: "after the TTL: read again", before: func() { advance(2 * time.Minute); f.groups = f.groups[1:] }, user: "U0BOB", want: []string{"S0DEVS"}, calls: 2},
		{name: "failed read: no groups", before: func() { advance(2 * time.Minute); f.failNext("usergroups.list", "missing_scope") }, user: "U0BOB", want: nil, calls: 3},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		got := a.groups.of(ctx, testTeam, s.user)
		if !slices.Equal(got, s.want) || lists() != s.calls {
			t.Errorf("%s: groups %v after %d calls, want %v after %d", s.name, got, lists(), s.want, s.calls)
		}
	}
	for _, m := range f.methods() {
		if strings.Contains(m, "without include_users") {
			t.Errorf("called %s", m)
		}
	}
}

// TestAnotherReplicaUpdates: without a bot token, the message one replica
// posted through a command's response_url is updated by another replica
// (the one that executed the request) through the ref stored with the
// request, instead of staying "waiting for approval" on a finished deploy.
func TestAnotherReplicaUpdates(t *testing.T) {
	hooks := newHookServer(t)
	newReplica := func() *Adapter {
		a, err := New(newCountingHandler(), WithSigningSecret(testSecret), WithLogger(testLogger(t)), WithUpdateInterval(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		return a
	}
	first, second := newReplica(), newReplica()
	in := &inbound{kind: kindCommand, team: testTeam, user: "U0ALICE", channel: testChannel, responseURL: hooks.url(), received: time.Now()}
	ref, err := first.Post(withInbound(context.Background(), in), testChannel, state("r1", "waiting for approval", false))
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	if ref.Hook != in.responseURL || !ref.HookAt.Equal(in.received) {
		t.Fatalf("ref = %+v, want it to carry the response_url and when it was issued", ref)
	}
	// The ref as the store gives it back to the other replica.
	raw, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	var stored store.MessageRef
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	if err := second.Update(context.Background(), stored, state("r1", "succeeded", true)); err != nil {
		t.Fatal(err)
	}
	second.Close()
	posts := hooks.all()
	if len(posts) != 2 || !posts[1].ReplaceOriginal || !strings.Contains(posts[1].Blocks, "#r1 succeeded") {
		t.Errorf("response_url posts = %+v, want the post and then the other replica's final update replacing it", posts)
	}
}
