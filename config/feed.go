package config

import (
	"fmt"
	"slices"
	"strings"
)

// Feed is an environment's deploy feed: the changes to its images that
// were made without the bot (a scheduled import, oc tag, kubectl set
// image) are posted to a channel, one message per change that follows the
// rollout to its end, with Undo and Pin previous buttons when it fails.
type Feed struct {
	// Enabled turns the feed off when false; giving feed: turns it on.
	Enabled *bool `json:"enabled,omitempty"`
	// Channel is where the feed posts; default the env's channel.
	Channel *ChannelRef `json:"channel,omitempty"`
	// FailuresOnly posts only the changes whose rollout failed.
	FailuresOnly bool `json:"failuresOnly,omitempty"`
}

// FeedChannel is where env's deploy feed posts, and whether it has one
// (a feed that is configured and not turned off).
func (e *Environment) FeedChannel() (ChannelRef, bool) {
	f := e.Feed
	if f == nil || (f.Enabled != nil && !*f.Enabled) {
		return ChannelRef{}, false
	}
	if f.Channel != nil {
		return *f.Channel, true
	}
	if e.Channel != nil {
		return *e.Channel, true
	}
	return ChannelRef{}, false
}

// validateFeeds checks every environment's feed section.
func validateFeeds(ps *problems, c *Config) {
	for i := range c.Environments {
		e := &c.Environments[i]
		if e.Feed == nil {
			continue
		}
		p := fmt.Sprintf("environments[%d].feed", i)
		if ch := e.Feed.Channel; ch != nil {
			validatePlatform(ps, p+".channel.platform", ch.Platform)
			if strings.TrimSpace(ch.ID) == "" {
				ps.add(p+".channel.id", "required (the channel the feed posts to)")
			} else if ch.Platform == "slack" && !slackID.MatchString(ch.ID) {
				ps.add(p+".channel.id", slackChannelProblem, ch.ID)
			}
		}
		ch, ok := e.FeedChannel()
		switch {
		case !ok && (e.Feed.Enabled == nil || *e.Feed.Enabled):
			ps.add(p, "needs a channel to post to: feed.channel, or environments[%d].channel", i)
		case ok && len(e.Channels) > 0 && !slices.Contains(e.Channels, ch.ID):
			ps.add(p, "posts to %q, which is not one of environments[%d].channels, where %s may be changed: its Undo and Pin previous buttons would be refused there", ch.ID, i, e.Name)
		}
	}
}
