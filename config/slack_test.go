package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestValidateSlack pins the checks of the slack section and of the Slack
// IDs named elsewhere: each case is a YAML snippet appended to the minimal
// config and the exact problems it must report.
func TestValidateSlack(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// replace edits the minimal config first: old, new.
		replace [2]string
		want    []string
	}{
		{
			name: "a complete slack section is valid",
			yaml: `
slack: {mode: socket, apiURL: "http://127.0.0.1:9999/api/"}
identities:
  users:
    - {platform: slack, id: T0123ABCD/U0456EFGH, user: alice}
    - {platform: slack, id: T0123ABCD/W0456EFGH, user: bob}
  groups:
    - {platform: slack, id: S0789IJKL, groups: [packit-admins]}
channels:
  - {platform: slack, id: C0123DEPLOY, env: prod}
`,
		},
		{
			name: "mode is http or socket",
			yaml: `
slack: {mode: sokcet}
`,
			want: []string{`slack.mode: "sokcet" is not one of http, socket; did you mean "socket"?`},
		},
		{
			name: "api URL needs a scheme and host",
			yaml: `
slack: {apiURL: "slack.example/api"}
`,
			want: []string{`slack.apiURL: "slack.example/api" is not an http(s) URL; it stands in for https://slack.com/api/, e.g. http://127.0.0.1:9999/api/`},
		},
		{
			name: "secrets have no place in the file",
			yaml: `
slack: {signingSecret: "8f742231b10e8888abcd99yyyzzz85a5"}
`,
			want: []string{"parse error"},
		},
		{
			name: "users are TEAM/USER, groups and channels by ID",
			yaml: `
identities:
  users:
    - {platform: slack, id: U0456EFGH, user: alice}
    - {platform: slack, id: "T0123ABCD/@bob", user: bob}
    - {platform: discord, id: "42", user: carol}
  groups:
    - {platform: slack, id: "@packit-admins", groups: [packit-admins]}
channels:
  - {platform: slack, id: "#deploy", env: prod}
`,
			want: []string{
				`identities.users[0].id: "U0456EFGH" is not TEAM/USER: Slack user IDs are scoped by workspace, e.g. T0123ABCD/U0456EFGH (the member ID from the user's profile, after the workspace ID)`,
				`identities.users[1].id: "T0123ABCD/@bob" is not TEAM/USER: Slack user IDs are scoped by workspace, e.g. T0123ABCD/U0456EFGH (the member ID from the user's profile, after the workspace ID)`,
				`identities.groups[0].id: "@packit-admins" is not a Slack user group ID: write its ID (e.g. S0789IJKL), not its @handle or name`,
				`channels[0].id: "#deploy" is not a Slack channel ID: write its ID (e.g. C0123DEPLOY, from the channel's details), not its #name`,
			},
		},
		{
			name:    "an environment's announcement channel by ID",
			replace: [2]string{"approvals: {count: 1}", "approvals: {count: 1}\n    channel: {platform: slack, id: deploy-prod}"},
			want:    []string{`environments[1].channel.id: "deploy-prod" is not a Slack channel ID: write its ID (e.g. C0123DEPLOY, from the channel's details), not its #name`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The snippet replaces the minimal config's identities when it has its own.
			base := minimal
			if tt.replace[0] != "" {
				base = strings.Replace(base, tt.replace[0], tt.replace[1], 1)
			}
			if strings.Contains(tt.yaml, "\nidentities:") {
				base = base[:strings.Index(base, "identities:")]
			}
			_, err := Parse([]byte(base + tt.yaml))
			var got []string
			var ve *ValidationError
			switch {
			case err == nil:
			case errors.As(err, &ve):
				for _, p := range ve.Problems {
					got = append(got, p.String())
				}
			default:
				// Not a validation problem: the YAML itself was refused.
				if !strings.Contains(err.Error(), "unknown field") {
					t.Fatalf("Parse: %v", err)
				}
				got = []string{"parse error"}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// FuzzValidateSlackIDs: any Slack identity, group or channel ID either
// validates or is reported at its own path, never a panic.
func FuzzValidateSlackIDs(f *testing.F) {
	f.Add("T0123ABCD/U0456EFGH", "S0789IJKL", "C0123DEPLOY")
	f.Add("U1", "@admins", "#deploy")
	f.Add("/", "", "é")
	f.Fuzz(func(t *testing.T, user, group, channel string) {
		c := &Config{
			Identities: Identities{
				Users:  []UserMapping{{Platform: "slack", ID: user, User: "alice"}},
				Groups: []GroupMapping{{Platform: "slack", ID: group, Groups: []string{"g"}}},
			},
			Channels: []Channel{{Platform: "slack", ID: channel, Env: "prod"}},
		}
		var ps problems
		validateSlack(&ps, c)
		for _, p := range ps {
			if p.Path != "identities.users[0].id" && p.Path != "identities.groups[0].id" && p.Path != "channels[0].id" {
				t.Fatalf("problem at unexpected path %s", p.Path)
			}
		}
	})
}
