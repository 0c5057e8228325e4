package config

import (
	"fmt"
	"time"
)

// Env returns the environment called name.
func (c *Config) Env(name string) (*Environment, bool) {
	for i := range c.Environments {
		if c.Environments[i].Name == name {
			return &c.Environments[i], true
		}
	}
	return nil, false
}

// Service returns the service whose name or one of whose aliases is word.
func (c *Config) Service(word string) (*Service, bool) {
	for i := range c.Services {
		if c.Services[i].Name == word {
			return &c.Services[i], true
		}
	}
	for i := range c.Services {
		for _, a := range c.Services[i].Aliases {
			if a == word {
				return &c.Services[i], true
			}
		}
	}
	return nil, false
}

// EnvNames returns the environment names in config order.
func (c *Config) EnvNames() []string {
	names := make([]string, 0, len(c.Environments))
	for _, e := range c.Environments {
		names = append(names, e.Name)
	}
	return names
}

// ServiceNames returns the service names in config order (without aliases).
func (c *Config) ServiceNames() []string {
	names := make([]string, 0, len(c.Services))
	for _, s := range c.Services {
		names = append(names, s.Name)
	}
	return names
}

// ServiceWords returns every word that names a service: names and aliases,
// for "did you mean" suggestions.
func (c *Config) ServiceWords() []string {
	var words []string
	for _, s := range c.Services {
		words = append(words, s.Name)
		words = append(words, s.Aliases...)
	}
	return words
}

// ChannelEnv returns the default environment of a chat channel, or "".
func (c *Config) ChannelEnv(platform, channel string) string {
	for _, ch := range c.Channels {
		if ch.Platform == platform && ch.ID == channel {
			return ch.Env
		}
	}
	return ""
}

// Location returns the time zone of the environment's Schedule (UTC when unset).
func (e *Environment) Location() (*time.Location, error) {
	if e.TimeZone == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(e.TimeZone)
}

// NotMapped is the one refusal for a chat user who has no Kubernetes
// identity in identities.users: what they may still do and what an admin
// adds to map them. Typed commands and button clicks alike answer with it.
func NotMapped(platform, chatID string) string {
	if platform == "" {
		platform = "PLATFORM"
	}
	if chatID == "" {
		chatID = "YOUR-ID"
	}
	return fmt.Sprintf("You are not mapped to a Kubernetes identity, so you may run only `help` and `whoami`. "+
		"Ask an admin to add you to the config under identities.users with platform: %s, id: %q and your Kubernetes user.", platform, chatID)
}

// Kubernetes reports whether the environment is a plain Kubernetes one.
func (e *Environment) Kubernetes() bool { return e.Platform == PlatformKubernetes }

// Poll is how often a scheduled plain Kubernetes environment asks the
// registry for its tags.
func (e *Environment) Poll() time.Duration {
	if e.PollInterval.Duration > 0 {
		return e.PollInterval.Duration
	}
	return DefaultPollInterval
}

// ImageTag is the environment's registry and ImageStream tag: Tag, default
// the environment's name.
func (e *Environment) ImageTag() string {
	if e.Tag != "" {
		return e.Tag
	}
	return e.Name
}

// Stream is the name the service's tag is known by: its ImageStream
// (default the service's name), also on a plain Kubernetes environment.
func (s *Service) Stream() string {
	if s.ImageStream != "" {
		return s.ImageStream
	}
	return s.Name
}
