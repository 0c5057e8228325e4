package config

import (
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Webhooks configures the registry webhooks of `deploybot serve`
// (POST /registry/webhooks/{source}). Which sources are served is decided
// by their secrets in the environment (DEPLOYBOT_WEBHOOK_SECRET_<SOURCE>),
// never by this file; this section only names registry hosts that the
// sources' bodies do not.
type Webhooks struct {
	// DistributionHost is the host services name a CNCF Distribution
	// registry by (their repository's first component, e.g.
	// registry.example.com or 127.0.0.1:5000). Without it, each event's
	// request.host is used: the Host the pusher sent, which behind a proxy
	// or inside a cluster may be another name than the services use.
	DistributionHost string `json:"distributionHost,omitempty"`
	// HarborHost is the host of the Harbor that sends webhooks; without it,
	// each resource's resource_url says it.
	HarborHost string `json:"harborHost,omitempty"`
}

// registryHost is a registry host with an optional port, lowercase: no
// scheme, no path, as in a pull spec.
var registryHost = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$`)

// validateWebhooks checks the webhooks section's hosts.
func validateWebhooks(ps *problems, w *Webhooks) {
	if w == nil {
		return
	}
	validateRegistryHost(ps, "webhooks.distributionHost", w.DistributionHost)
	validateRegistryHost(ps, "webhooks.harborHost", w.HarborHost)
}

func validateRegistryHost(ps *problems, path, host string) {
	if host == "" {
		return
	}
	switch {
	case strings.Contains(host, "://"):
		ps.add(path, "%q must not have a scheme; write the host as in a pull spec, e.g. registry.example.com", host)
	case strings.Contains(host, "/"):
		ps.add(path, "%q must be a host (and port) only, without a path", host)
	case host != strings.ToLower(host):
		ps.add(path, "%q must be lowercase", host)
	case !registryHost.MatchString(host):
		ps.add(path, "%q is not a registry host such as registry.example.com or 127.0.0.1:5000", host)
	default:
		if _, port, err := net.SplitHostPort(host); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				ps.add(path, "%q has no valid port (1-65535)", host)
			}
		}
	}
}
