package auth

import (
	"slices"
	"strings"

	"github.com/deploybot/deploybot/config"
)

// Identity is the Kubernetes user and groups a chat user acts as.
type Identity struct {
	User   string
	Groups []string
}

// Identify maps a chat user to a Kubernetes identity: the user mapping for
// (platform, chatID), plus the groups of every group mapping for the chat
// groups (Slack user groups, Discord roles) the user is in. A chat user
// without a user mapping is not identified, whatever their chat groups.
func Identify(cfg *config.Config, platform, chatID string, chatGroups []string) (Identity, bool) {
	if cfg == nil || chatID == "" {
		return Identity{}, false
	}
	var m *config.UserMapping
	for i, u := range cfg.Identities.Users {
		if u.Platform == platform && u.ID == chatID {
			m = &cfg.Identities.Users[i]
			break
		}
	}
	if m == nil && platform == "discord" {
		// Discord users may be mapped by bare user ID, valid in every guild.
		if _, user, ok := strings.Cut(chatID, "/"); ok {
			for i, u := range cfg.Identities.Users {
				if u.Platform == platform && u.ID == user {
					m = &cfg.Identities.Users[i]
					break
				}
			}
		}
	}
	if m == nil || m.User == "" {
		return Identity{}, false
	}
	id := Identity{User: m.User}
	add := func(gs []string) {
		for _, g := range gs {
			if g != "" && !slices.Contains(id.Groups, g) {
				id.Groups = append(id.Groups, g)
			}
		}
	}
	add(m.Groups)
	for _, gm := range cfg.Identities.Groups {
		if gm.Platform == platform && slices.Contains(chatGroups, gm.ID) {
			add(gm.Groups)
		}
	}
	return id, true
}
