package slack

import (
	"net/http"
	"net/url"
	"os"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestManifestMatchesAdapter keeps deploy/slack/manifest.yaml in step with
// the adapter: the URLs Slack posts to are the routes it serves, and the
// app asks for the scopes of the API methods it calls.
func TestManifestMatchesAdapter(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/slack/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Features struct {
			SlashCommands []struct {
				Command string `json:"command"`
				URL     string `json:"url"`
			} `json:"slash_commands"`
		} `json:"features"`
		OAuth struct {
			Scopes struct {
				Bot []string `json:"bot"`
			} `json:"scopes"`
		} `json:"oauth_config"`
		Settings struct {
			Interactivity struct {
				Enabled    bool   `json:"is_enabled"`
				RequestURL string `json:"request_url"`
			} `json:"interactivity"`
			SocketMode *bool `json:"socket_mode_enabled"`
		} `json:"settings"`
	}
	// Only the fields above are checked; the rest is Slack's schema.
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest is not YAML: %v", err)
	}
	a, err := New(newCountingHandler(), WithSigningSecret(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mux := http.NewServeMux()
	a.Routes(mux)
	served := func(raw string) bool {
		u, err := url.Parse(raw)
		if err != nil {
			return false
		}
		_, pattern := mux.Handler(&http.Request{Method: http.MethodPost, URL: &url.URL{Path: u.Path}, Host: u.Host})
		return pattern != ""
	}
	if len(m.Features.SlashCommands) != 1 || m.Features.SlashCommands[0].Command != "/deploy" || !served(m.Features.SlashCommands[0].URL) {
		t.Errorf("slash commands %+v, want /deploy posting to a route the adapter serves", m.Features.SlashCommands)
	}
	if !m.Settings.Interactivity.Enabled || !served(m.Settings.Interactivity.RequestURL) {
		t.Errorf("interactivity %+v, want enabled and posting to a route the adapter serves", m.Settings.Interactivity)
	}
	if m.Settings.SocketMode == nil {
		t.Error("settings.socket_mode_enabled is missing; it is the toggle the README points to")
	}
	for _, scope := range []string{"commands", "chat:write", "usergroups:read"} {
		if !slices.Contains(m.OAuth.Scopes.Bot, scope) {
			t.Errorf("bot scopes %v lack %s", m.OAuth.Scopes.Bot, scope)
		}
	}
}
