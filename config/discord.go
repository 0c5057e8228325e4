package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// snowflake is a Discord ID: a 64-bit integer written in decimal. YAML
// turns an unquoted one into a number, so they must be quoted strings.
var snowflake = regexp.MustCompile(`^[0-9]{1,20}$`)

// validateDiscord checks the discord section and every Discord ID the config
// names elsewhere (identities, channels), so a pasted user name or a
// GUILD/USER pair in a guild the bot does not serve is found at start-up
// instead of as a user who is silently unmapped.
func validateDiscord(ps *problems, c *Config) {
	var guilds []string
	if d := c.Discord; d != nil {
		switch p := d.Prefix; {
		case p == "":
		case strings.ContainsFunc(p, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }):
			ps.add("discord.prefix", "%q must be one word without spaces", p)
		case strings.HasPrefix(p, "/"):
			ps.add("discord.prefix", "%q starts with '/', which Discord keeps for application commands (/deploy is registered anyway); use e.g. !deploy", p)
		case len(p) > 32:
			ps.add("discord.prefix", "%q is longer than 32 characters", p)
		}
		guilds = d.Guilds
		validateSnowflakes(ps, "discord.guilds", "guild", d.Guilds)
		validateSnowflakes(ps, "discord.channels", "channel", d.Channels)
		if d.APIURL != "" {
			u, err := url.Parse(d.APIURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				ps.add("discord.apiURL", "%q is not an http(s) URL; it stands in for https://discord.com/api, e.g. http://127.0.0.1:9999/api", d.APIURL)
			}
		}
	}
	for i, u := range c.Identities.Users {
		if u.Platform != "discord" || u.ID == "" {
			continue
		}
		p := fmt.Sprintf("identities.users[%d].id", i)
		guild, user, scoped := strings.Cut(u.ID, "/")
		switch {
		case !scoped && !snowflake.MatchString(u.ID):
			ps.add(p, "%q is not a Discord user ID; write \"USER\" or \"GUILD/USER\" with the numeric IDs (Developer Mode → Copy User ID), quoted", u.ID)
		case scoped && (!snowflake.MatchString(guild) || !snowflake.MatchString(user)):
			ps.add(p, "%q is not GUILD/USER with numeric Discord IDs", u.ID)
		case scoped && len(guilds) > 0 && !slices.Contains(guilds, guild):
			ps.add(p, "guild %s is not in discord.guilds, so this mapping never matches", guild)
		}
	}
	for i, g := range c.Identities.Groups {
		if g.Platform == "discord" && g.ID != "" && !snowflake.MatchString(g.ID) {
			ps.add(fmt.Sprintf("identities.groups[%d].id", i), "%q is not a Discord role ID (numeric, quoted)", g.ID)
		}
	}
	for i, ch := range c.Channels {
		if ch.Platform == "discord" && ch.ID != "" && !snowflake.MatchString(ch.ID) {
			ps.add(fmt.Sprintf("channels[%d].id", i), "%q is not a Discord channel ID (numeric, quoted)", ch.ID)
		}
	}
}

func validateSnowflakes(ps *problems, path, what string, ids []string) {
	seen := map[string]int{}
	for i, id := range ids {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !snowflake.MatchString(id) {
			ps.add(p, "%q is not a Discord %s ID (numeric, quoted)", id, what)
			continue
		}
		if j, dup := seen[id]; dup {
			ps.add(p, "%s %s is already listed in %s[%d]", what, id, path, j)
			continue
		}
		seen[id] = i
	}
}
