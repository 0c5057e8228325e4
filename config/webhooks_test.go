package config

import (
	"slices"
	"strings"
	"testing"
)

// TestValidateWebhooks pins the checks of the webhooks section: each case
// is a snippet appended to the minimal config and the exact problems it
// must report.
func TestValidateWebhooks(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "no section"},
		{name: "both hosts", yaml: "webhooks: {distributionHost: registry.example.com, harborHost: harbor.example.com}"},
		{name: "a host with a port", yaml: `webhooks: {distributionHost: "127.0.0.1:5000"}`},
		{name: "a scheme", yaml: "webhooks: {harborHost: https://harbor.example.com}",
			want: []string{`webhooks.harborHost: "https://harbor.example.com" must not have a scheme; write the host as in a pull spec, e.g. registry.example.com`}},
		{name: "a path", yaml: "webhooks: {distributionHost: registry.example.com/shop}",
			want: []string{`webhooks.distributionHost: "registry.example.com/shop" must be a host (and port) only, without a path`}},
		{name: "uppercase", yaml: "webhooks: {harborHost: Harbor.example.com}",
			want: []string{`webhooks.harborHost: "Harbor.example.com" must be lowercase`}},
		{name: "a bad port", yaml: `webhooks: {distributionHost: "registry.example.com:99999"}`,
			want: []string{`webhooks.distributionHost: "registry.example.com:99999" has no valid port (1-65535)`}},
		{name: "not a host", yaml: `webhooks: {distributionHost: "registry example"}`,
			want: []string{`webhooks.distributionHost: "registry example" is not a registry host such as registry.example.com or 127.0.0.1:5000`}},
		{name: "secrets are not config", yaml: "webhooks: {quaySecret: x}", want: []string{"parse error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := snippetProblems(t, minimal+tt.yaml+"\n")
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}
