package slack

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
)

// groupCache knows which user groups each user of a workspace is in, from
// usergroups.list with include_users, read once per TTL per workspace: one
// call answers for everybody, where usergroups.users.list would be one call
// per group.
type groupCache struct {
	api *slackgo.Client
	ttl time.Duration
	now func() time.Time
	log *slog.Logger

	mu    sync.Mutex
	teams map[string]*teamGroups
}

type teamGroups struct {
	// byUser maps a user ID to the IDs of their groups.
	byUser  map[string][]string
	expires time.Time
	// loading is closed when the running fetch ends; nil when none runs.
	loading chan struct{}
}

// retryAfterFailure is how soon a failed fetch is tried again.
const retryAfterFailure = 30 * time.Second

func newGroupCache(api *slackgo.Client, ttl time.Duration, now func() time.Time, log *slog.Logger) *groupCache {
	return &groupCache{api: api, ttl: ttl, now: now, log: log, teams: map[string]*teamGroups{}}
}

// of returns the IDs of the user groups user is in. Concurrent callers
// share one fetch. When usergroups.list fails, nobody is in any group until
// a later fetch succeeds: groups only add rights, so an outage must not
// keep a removed member's.
func (g *groupCache) of(ctx context.Context, team, user string) []string {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	t, ok := g.teams[team]
	if !ok {
		t = &teamGroups{}
		g.teams[team] = t
	}
	if t.byUser == nil || !g.now().Before(t.expires) {
		if t.loading == nil {
			t.loading = make(chan struct{})
			go g.fetch(team, t)
		}
		wait := t.loading
		g.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil
		}
		g.mu.Lock()
	}
	groups := slices.Clone(t.byUser[user])
	g.mu.Unlock()
	return groups
}

func (g *groupCache) fetch(team string, t *teamGroups) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	list, err := g.api.GetUserGroupsContext(ctx, slackgo.GetUserGroupsOptionIncludeUsers(true))
	g.mu.Lock()
	defer g.mu.Unlock()
	defer func() { close(t.loading); t.loading = nil }()
	if err != nil {
		g.log.Warn("slack: reading user groups (usergroups.list); treating everyone as in no group until it works", "team", team, "err", err)
		t.byUser, t.expires = map[string][]string{}, g.now().Add(retryAfterFailure)
		return
	}
	byUser := map[string][]string{}
	for _, ug := range list {
		for _, u := range ug.Users {
			byUser[u] = append(byUser[u], ug.ID)
		}
	}
	t.byUser, t.expires = byUser, g.now().Add(g.ttl)
}
