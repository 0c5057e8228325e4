package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestValidateDiscord pins the checks of the discord section and of the
// Discord IDs named elsewhere: each case is a YAML snippet appended to the
// minimal config and the exact problems it must report.
func TestValidateDiscord(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "a complete discord section is valid",
			yaml: `
discord:
  prefix: "!dep"
  guilds: ["111111111111111111"]
  channels: ["222222222222222222"]
  apiURL: http://127.0.0.1:9999/api
channels:
  - {platform: discord, id: "222222222222222222", env: prod}
`,
		},
		{
			name: "bad prefixes",
			yaml: `
discord: {prefix: "/deploy"}
`,
			want: []string{`discord.prefix: "/deploy" starts with '/', which Discord keeps for application commands (/deploy is registered anyway); use e.g. !deploy`},
		},
		{
			name: "prefix with a space",
			yaml: `
discord: {prefix: "hey bot"}
`,
			want: []string{`discord.prefix: "hey bot" must be one word without spaces`},
		},
		{
			name: "guild and channel IDs are numeric and listed once",
			yaml: `
discord:
  guilds: ["111", "my-server", "111"]
  channels: ["#deploys"]
`,
			want: []string{
				`discord.guilds[1]: "my-server" is not a Discord guild ID (numeric, quoted)`,
				`discord.guilds[2]: guild 111 is already listed in discord.guilds[0]`,
				`discord.channels[0]: "#deploys" is not a Discord channel ID (numeric, quoted)`,
			},
		},
		{
			name: "api URL needs a scheme and host",
			yaml: `
discord: {apiURL: "127.0.0.1:9999/api"}
`,
			want: []string{`discord.apiURL: "127.0.0.1:9999/api" is not an http(s) URL; it stands in for https://discord.com/api, e.g. http://127.0.0.1:9999/api`},
		},
		{
			name: "identities name users, roles and channels by numeric ID",
			yaml: `
discord:
  guilds: ["111"]
identities:
  users:
    - {platform: discord, id: "111/42", user: alice}
    - {platform: discord, id: "42", user: bob}
    - {platform: discord, id: "alice#1234", user: carol}
    - {platform: discord, id: "111/", user: dave}
    - {platform: discord, id: "999/42", user: erin}
    - {platform: slack, id: "T1/U1", user: frank}
  groups:
    - {platform: discord, id: "Deployers", groups: [packit-devs]}
channels:
  - {platform: discord, id: "deploys", env: prod}
`,
			want: []string{
				`identities.users[2].id: "alice#1234" is not a Discord user ID; write "USER" or "GUILD/USER" with the numeric IDs (Developer Mode → Copy User ID), quoted`,
				`identities.users[3].id: "111/" is not GUILD/USER with numeric Discord IDs`,
				`identities.users[4].id: guild 999 is not in discord.guilds, so this mapping never matches`,
				`identities.groups[0].id: "Deployers" is not a Discord role ID (numeric, quoted)`,
				`channels[0].id: "deploys" is not a Discord channel ID (numeric, quoted)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The snippet replaces the minimal config's identities when it has its own.
			base := minimal
			if strings.Contains(tt.yaml, "\nidentities:") {
				base = base[:strings.Index(base, "identities:")]
			}
			_, err := Parse([]byte(base + tt.yaml))
			var got []string
			if err != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Parse: %v, want a *ValidationError", err)
				}
				for _, p := range ve.Problems {
					got = append(got, p.String())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}
