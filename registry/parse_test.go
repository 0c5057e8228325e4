package registry_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/deploybot/deploybot/registry"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"seconds", "40", 40 * time.Second, true},
		{"zero", "0", 0, true},
		{"spaces", " 7 ", 7 * time.Second, true},
		{"capped at an hour", "86400", time.Hour, true},
		{"huge", "99999999999999999999999", time.Hour, true},
		{"HTTP date", "Mon, 04 May 2026 12:01:30 GMT", 90 * time.Second, true},
		{"RFC 850 date", "Monday, 04-May-26 12:00:10 GMT", 10 * time.Second, true},
		{"date in the past", "Mon, 04 May 2026 11:00:00 GMT", 0, true},
		{"date far ahead", "Tue, 04 May 2027 12:00:00 GMT", time.Hour, true},
		{"empty", "", 0, false},
		{"negative", "-5", 0, false},
		{"fraction", "1.5", 0, false},
		{"words", "soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := registry.ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"40", "0", "Mon, 04 May 2026 12:01:30 GMT", "-1", "1e9", " 3", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := registry.ParseRetryAfter(s, now)
		if d < 0 || d > time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, 1h]", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v but not ok", s, d)
		}
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseDockerConfig(t *testing.T) {
	type cred struct {
		registry string // as a reference names it
		want     authn.AuthConfig
	}
	tests := []struct {
		name   string
		config string
		hosts  []string
		creds  []cred
		err    string
	}{
		{
			name:   "auth field",
			config: `{"auths":{"quay.io":{"auth":"` + b64("robot+ci:pa:ss") + `"}}}`,
			hosts:  []string{"quay.io"},
			creds: []cred{
				{"quay.io", authn.AuthConfig{Username: "robot+ci", Password: "pa:ss"}},
				{"ghcr.io", authn.AuthConfig{}},
			},
		},
		{
			name:   "username and password, URL key, upper case",
			config: `{"auths":{"https://Registry.Example.com:5000/v2/":{"username":"u","password":"p"}}}`,
			hosts:  []string{"registry.example.com:5000"},
			creds: []cred{
				{"registry.example.com:5000", authn.AuthConfig{Username: "u", Password: "p"}},
				{"registry.example.com", authn.AuthConfig{}},
			},
		},
		{
			name:   "identity token",
			config: `{"auths":{"myacr.azurecr.io":{"username":"00000000-0000-0000-0000-000000000000","identitytoken":"tok"}}}`,
			creds:  []cred{{"myacr.azurecr.io", authn.AuthConfig{Username: "00000000-0000-0000-0000-000000000000", IdentityToken: "tok"}}},
		},
		{
			name:   "docker.io aliases",
			config: `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("hub:pw") + `"}}}`,
			hosts:  []string{"index.docker.io"},
			creds: []cred{
				{"index.docker.io", authn.AuthConfig{Username: "hub", Password: "pw"}},
				{"docker.io", authn.AuthConfig{Username: "hub", Password: "pw"}},
				{"registry-1.docker.io", authn.AuthConfig{Username: "hub", Password: "pw"}},
			},
		},
		{
			name: "two spellings of Docker Hub: the plain host wins",
			config: `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("old:1") + `"},` +
				`"docker.io":{"auth":"` + b64("new:2") + `"}}}`,
			creds: []cred{{"docker.io", authn.AuthConfig{Username: "new", Password: "2"}}},
		},
		{
			name:   "old dockercfg format",
			config: `{"quay.io":{"auth":"` + b64("a:b") + `","email":"x@y"}}`,
			creds:  []cred{{"quay.io", authn.AuthConfig{Username: "a", Password: "b"}}},
		},
		{
			name:   "settings only",
			config: `{"credsStore":"desktop","proxies":{}}`,
			hosts:  []string{},
		},
		{
			name:   "empty entry is anonymous",
			config: `{"auths":{"quay.io":{}}}`,
			hosts:  []string{},
		},
		{name: "not JSON", config: `auths: {}`, err: "not a Docker config JSON object"},
		{name: "auths not an object", config: `{"auths":[]}`, err: `"auths" is not an object`},
		{name: "entry not an object", config: `{"auths":{"quay.io":"x"}}`, err: "entry for quay.io is not an object"},
		{name: "bad base64", config: `{"auths":{"quay.io":{"auth":"%%%"}}}`, err: "entry for quay.io: auth is not base64"},
		{name: "no colon", config: `{"auths":{"quay.io":{"auth":"` + b64("justuser") + `"}}}`, err: "no user:password pair"},
		{name: "password without user", config: `{"auths":{"quay.io":{"password":"p"}}}`, err: "password but no username"},
		{name: "bad key", config: `{"auths":{"https://":{"auth":"` + b64("a:b") + `"}}}`, err: "is not a host or URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc, err := registry.ParseDockerConfig([]byte(tt.config))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseDockerConfig = %v, want an error saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.hosts != nil && strings.Join(dc.Hosts(), ",") != strings.Join(tt.hosts, ",") {
				t.Errorf("Hosts() = %q, want %q", dc.Hosts(), tt.hosts)
			}
			for _, c := range tt.creds {
				reg, err := name.NewRegistry(c.registry)
				if err != nil {
					t.Fatal(err)
				}
				a, err := dc.Resolve(reg)
				if err != nil {
					t.Fatal(err)
				}
				got, err := a.Authorization()
				if err != nil {
					t.Fatal(err)
				}
				if *got != c.want {
					t.Errorf("credentials for %s = %+v, want %+v", c.registry, *got, c.want)
				}
			}
		})
	}
}

func FuzzParseDockerConfig(f *testing.F) {
	for _, s := range []string{
		`{"auths":{"quay.io":{"auth":"` + b64("u:p") + `"}}}`,
		`{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"},"docker.io":{"identitytoken":"t"}}}`,
		`{"quay.io":{"auth":"` + b64("a:b") + `"}}`,
		`{"auths":{"":{}}}`, `{}`, `[]`, `null`, `{"auths":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dc, err := registry.ParseDockerConfig(data)
		if err != nil {
			if dc != nil {
				t.Fatal("a config and an error")
			}
			return
		}
		// Every host it claims resolves to credentials, and lookups never fail.
		for _, h := range dc.Hosts() {
			if !dc.Has(h) {
				t.Fatalf("Hosts() has %q but Has(%q) is false", h, h)
			}
			reg, err := name.NewRegistry(h)
			if err != nil {
				continue // a key that is a host to Docker but not to go-containerregistry
			}
			a, err := dc.Resolve(reg)
			if err != nil || a == authn.Anonymous {
				t.Fatalf("Resolve(%q) = %v, %v; want its credentials", h, a, err)
			}
		}
	})
}
