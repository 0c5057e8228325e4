package config

import (
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// Defaults applied by SetDefaults, and the values Execution may take.
const (
	// DefaultApprovalExpiry is how long a request waits for confirmation and
	// approvals unless the environment says otherwise.
	DefaultApprovalExpiry = time.Hour
	// ExecutionServiceAccount executes Plans with the bot's own credentials.
	ExecutionServiceAccount = "serviceaccount"
	// ExecutionImpersonate executes Plans impersonating the requester, so the
	// API server enforces their RBAC a second time.
	ExecutionImpersonate = "impersonate"
)

// Load reads, defaults and validates the config file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a YAML config strictly (unknown and duplicate fields are
// errors), applies defaults and validates it. A validation failure is a
// *ValidationError listing every problem.
func Parse(b []byte) (*Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// SetDefaults fills the optional fields: an environment's Tag is its name,
// approvals expire after an hour, a service's ImageStream is its name,
// Plans execute as the bot's service account, and the HTTP server's limits
// are the defaults of http.go.
func (c *Config) SetDefaults() {
	for i := range c.Environments {
		e := &c.Environments[i]
		if e.Tag == "" {
			e.Tag = e.Name
		}
		if e.Approvals.Expiry.Duration == 0 {
			e.Approvals.Expiry = Duration{DefaultApprovalExpiry}
		}
		if e.TimeZone == "" {
			e.TimeZone = "UTC"
		}
	}
	for i := range c.Services {
		s := &c.Services[i]
		if s.ImageStream == "" {
			s.ImageStream = s.Name
		}
	}
	if c.Execution == "" {
		c.Execution = ExecutionServiceAccount
	}
	c.HTTP = c.HTTP.WithDefaults()
}
