package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// DockerConfig holds registry credentials from a Docker config JSON file,
// the format of a kubernetes.io/dockerconfigjson pull secret:
//
//	{"auths": {"quay.io": {"auth": "base64(user:password)"}}}
//
// Each entry has "auth", or "username" and "password", or "identitytoken"
// (an OAuth refresh token, as `docker login` stores for some registries).
// Keys may be written as hosts ("quay.io", "127.0.0.1:5000") or URLs
// ("https://index.docker.io/v1/"); docker.io, index.docker.io and
// registry-1.docker.io name the same registry. The older
// kubernetes.io/dockercfg format (the "auths" object alone) is read too.
// credsStore and credHelpers are not supported: a pull secret has neither.
//
// DockerConfig is an authn.Keychain: registries it does not name get
// authn.Anonymous.
type DockerConfig struct {
	auths map[string]authn.AuthConfig // by canonical host
}

var _ authn.Keychain = (*DockerConfig)(nil)

// dockerConfigEntry is one registry's entry. AuthConfig's own UnmarshalJSON
// decodes "auth" but silently drops a malformed one; this keeps the decoding
// (and its errors) here.
type dockerConfigEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// LoadDockerConfig reads a Docker config JSON file.
func LoadDockerConfig(path string) (*DockerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading registry credentials: %w", err)
	}
	dc, err := ParseDockerConfig(data)
	if err != nil {
		return nil, fmt.Errorf("reading registry credentials from %s: %w", path, err)
	}
	return dc, nil
}

// ParseDockerConfig parses Docker config JSON. Its errors never quote
// credentials.
func ParseDockerConfig(data []byte) (*DockerConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, errors.New("not a Docker config JSON object (want {\"auths\": {\"HOST\": {\"auth\": \"...\"}}})")
	}
	raw := top
	if a, ok := top["auths"]; ok {
		raw = nil
		if err := json.Unmarshal(a, &raw); err != nil {
			return nil, errors.New(`"auths" is not an object of registry hosts`)
		}
	} else {
		// No "auths": either the old dockercfg format (hosts at the top) or a
		// config with only other settings (credsStore, proxies, ...).
		for k := range top {
			if !strings.ContainsAny(k, ".:") && k != "localhost" {
				delete(raw, k)
			}
		}
	}
	dc := &DockerConfig{auths: map[string]authn.AuthConfig{}}
	plain := map[string]bool{}
	for _, key := range sortedKeys(raw) {
		host, err := canonicalHost(key)
		if err != nil {
			return nil, err
		}
		var e dockerConfigEntry
		if err := json.Unmarshal(raw[key], &e); err != nil {
			return nil, fmt.Errorf("entry for %s is not an object with auth, username/password or identitytoken", host)
		}
		ac, err := e.authConfig(host)
		if err != nil {
			return nil, err
		}
		if ac == (authn.AuthConfig{}) {
			continue // an empty entry means nothing; anonymous it is
		}
		// Several spellings of one registry (docker.io and
		// https://index.docker.io/v1/ both, as `docker login` leaves them):
		// the plain host wins, else the first in sorted order.
		if _, dup := dc.auths[host]; dup && !plain[host] && strings.ToLower(key) == host {
			dc.auths[host] = ac
			plain[host] = true
		} else if !dup {
			dc.auths[host] = ac
			plain[host] = strings.ToLower(key) == host
		}
	}
	return dc, nil
}

func (e dockerConfigEntry) authConfig(host string) (authn.AuthConfig, error) {
	ac := authn.AuthConfig{
		Username:      e.Username,
		Password:      e.Password,
		IdentityToken: e.IdentityToken,
		RegistryToken: e.RegistryToken,
	}
	if e.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Auth))
		if err != nil {
			return ac, fmt.Errorf("entry for %s: auth is not base64 of user:password", host)
		}
		user, pass, ok := strings.Cut(string(b), ":")
		if !ok {
			return ac, fmt.Errorf("entry for %s: auth decodes to no user:password pair", host)
		}
		ac.Username, ac.Password = user, pass
	}
	if ac.Username == "" && ac.Password != "" {
		return ac, fmt.Errorf("entry for %s has a password but no username", host)
	}
	return ac, nil
}

// Hosts lists the registries the config has credentials for, sorted.
func (dc *DockerConfig) Hosts() []string {
	return sortedKeys(dc.auths)
}

// Has reports whether the config has credentials for registry.
func (dc *DockerConfig) Has(registry string) bool {
	host, err := canonicalHost(registry)
	if err != nil {
		return false
	}
	_, ok := dc.auths[host]
	return ok
}

// Resolve implements authn.Keychain.
func (dc *DockerConfig) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host, err := canonicalHost(r.RegistryStr())
	if err != nil {
		return authn.Anonymous, nil
	}
	ac, ok := dc.auths[host]
	if !ok {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(ac), nil
}

// dockerHub is the canonical name of Docker Hub, the one go-containerregistry
// gives a reference with no registry (name.DefaultRegistry).
const dockerHub = "index.docker.io"

// canonicalHost turns a config key or registry name into the lower-case
// host[:port] it names, with Docker Hub's aliases folded into one.
func canonicalHost(key string) (string, error) {
	k := strings.TrimSpace(key)
	if strings.Contains(k, "://") {
		u, err := url.Parse(k)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("registry key %q is not a host or URL", key)
		}
		k = u.Host
	} else if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i] // "quay.io/v1/" style keys
	}
	k = strings.ToLower(k)
	if k == "" || strings.ContainsAny(k, " \t\r\n@?#") {
		return "", fmt.Errorf("registry key %q is not a host or URL", key)
	}
	switch k {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub, nil
	}
	return k, nil
}

// displayHost is how people write a registry: docker.io for Docker Hub.
func displayHost(registry string) string {
	if h, err := canonicalHost(registry); err == nil && h == dockerHub {
		return "docker.io"
	}
	return registry
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
