package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimal is a valid config the validation cases below break one field at a time.
const minimal = `
environments:
  - name: stg
    namespace: packit--stg
  - name: prod
    namespace: packit--prod
    approvals: {count: 1}
services:
  - name: packit-service
    aliases: [service]
    repository: quay.io/packit/packit-service
  - name: packit-worker
    aliases: [worker]
    repository: quay.io/packit/packit-worker
  - name: tokman
    repository: quay.io/packit/tokman
identities:
  users:
    - {platform: terminal, id: alice, user: alice, groups: [packit-devs]}
`

func TestExamplePackitParsesAndValidates(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "examples", "packit.yaml"))
	if err != nil {
		t.Fatalf("examples/packit.yaml: %v", err)
	}
	if got, want := cfg.EnvNames(), []string{"stg", "prod"}; !slices.Equal(got, want) {
		t.Errorf("EnvNames() = %v, want %v", got, want)
	}
	wantServices := []string{"packit-service", "packit-worker", "packit-service-fedmsg", "packit-dashboard", "tokman"}
	if got := cfg.ServiceNames(); !slices.Equal(got, wantServices) {
		t.Errorf("ServiceNames() = %v, want %v", got, wantServices)
	}
	stg, _ := cfg.Env("stg")
	prod, _ := cfg.Env("prod")
	if stg == nil || prod == nil {
		t.Fatalf("stg or prod missing")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"stg namespace", stg.Namespace, "packit--stg"},
		{"stg tag", stg.Tag, "stg"},
		{"stg scheduled", stg.Scheduled, true},
		{"stg confirm", stg.Confirm, true},
		{"stg approvals", stg.Approvals.Count, 0},
		{"prod namespace", prod.Namespace, "packit--prod"},
		{"prod tag", prod.Tag, "prod"},
		{"prod scheduled", prod.Scheduled, false},
		{"prod confirm", prod.Confirm, true},
		{"prod approvals", prod.Approvals.Count, 1},
		{"prod expiry", prod.Approvals.Expiry.Duration, time.Hour},
		{"prod schedule", prod.Schedule, "0 2 * * 2"},
		{"prod time zone", prod.TimeZone, "UTC"},
		{"execution", cfg.Execution, ExecutionServiceAccount},
		{"terminal channel stg", cfg.ChannelEnv("terminal", "stg"), "stg"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	dash, ok := cfg.Service("dashboard")
	if !ok || dash.Name != "packit-dashboard" || dash.Repository != "quay.io/packit/dashboard" || dash.ImageStream != "packit-dashboard" {
		t.Errorf("Service(dashboard) = %+v, %v", dash, ok)
	}
	for _, s := range cfg.Services {
		if len(s.Workloads) != 0 {
			t.Errorf("service %s lists workloads; the example discovers them from triggers", s.Name)
		}
	}
	users := map[string][]string{}
	for _, u := range cfg.Identities.Users {
		if u.Platform == "terminal" {
			users[u.ID+"="+u.User] = u.Groups
		}
	}
	wantUsers := map[string][]string{
		"alice=alice": {"packit-devs"},
		"bob=bob":     {"packit-admins"},
		"carol=carol": {"packit-viewers"},
	}
	if !reflect.DeepEqual(users, wantUsers) {
		t.Errorf("terminal users = %v, want %v", users, wantUsers)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	stg, _ := cfg.Env("stg")
	tok, _ := cfg.Service("tokman")
	tests := []struct {
		name      string
		got, want any
	}{
		{"tag is the env name", stg.Tag, "stg"},
		{"approval expiry", stg.Approvals.Expiry.Duration, time.Hour},
		{"time zone", stg.TimeZone, "UTC"},
		{"image stream is the service name", tok.ImageStream, "tokman"},
		{"execution", cfg.Execution, "serviceaccount"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want are substrings of the error, each expected.
		want []string
	}{
		{
			name: "unknown field",
			yaml: minimal + "\nfoo: 1\n",
			want: []string{`unknown field "foo"`},
		},
		{
			name: "unknown nested field",
			yaml: strings.Replace(minimal, "namespace: packit--stg", "namespace: packit--stg\n    namepsace: x", 1),
			want: []string{`unknown field "namepsace"`},
		},
		{
			name: "duplicate key",
			yaml: minimal + "\nexecution: impersonate\nexecution: serviceaccount\n",
			want: []string{`"execution" already set`},
		},
		{
			name: "duration not a string",
			yaml: strings.Replace(minimal, "{count: 1}", "{count: 1, expiry: 3600}", 1),
			want: []string{`duration is a string`},
		},
		{
			name: "duration malformed",
			yaml: strings.Replace(minimal, "{count: 1}", "{count: 1, expiry: 1 hour}", 1),
			want: []string{`time: unknown unit`},
		},
		{
			name: "not a mapping",
			yaml: "- a\n- b\n",
			want: []string{"parsing config"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // every problem, exactly, in order
	}{
		{
			name:   "valid",
			mutate: func(c *Config) {},
		},
		{
			name: "missing namespace and name",
			mutate: func(c *Config) {
				c.Environments[1].Namespace = ""
				c.Environments[0].Name = ""
			},
			want: []string{
				"environments[0].name: required",
				"environments[1].namespace: required",
			},
		},
		{
			name: "unknown platform, poll interval on OpenShift",
			mutate: func(c *Config) {
				c.Environments[0].Platform = "nomad"
				c.Environments[1].PollInterval = Duration{time.Minute}
			},
			want: []string{
				`environments[0].platform: "nomad" is not one of openshift, kubernetes`,
				"environments[1].pollInterval: only a plain Kubernetes environment polls the registry; on OpenShift the image stream's scheduled import does (every 15 minutes, set in the cluster)",
			},
		},
		{
			name: "plain Kubernetes needs every service's workloads, polls at most every minute",
			mutate: func(c *Config) {
				c.Environments[0].Platform = PlatformKubernetes
				c.Environments[0].PollInterval = Duration{time.Second}
				c.Services[0].Workloads = nil
				c.Services[1].Workloads = []Workload{{Kind: "Deployment", Name: "x", Container: "Bad_Name"}}
				c.Registry.Insecure = []string{"https://registry.test"}
			},
			want: []string{
				"environments[0].pollInterval: 1s is too often to ask a registry (Docker Hub and Quay rate-limit); at least 1m",
				`services[1].workloads[0].container: "Bad_Name" is not a valid container name`,
				`registry.insecure[0]: "https://registry.test" is not a registry host (host or host:port)`,
				"services[0].workloads: required: environment stg is plain Kubernetes, which has no image triggers to find packit-service's workloads by; list them, e.g. {kind: Deployment, name: packit-service, container: packit-service}",
				"services[2].workloads: required: environment stg is plain Kubernetes, which has no image triggers to find tokman's workloads by; list them, e.g. {kind: Deployment, name: tokman, container: tokman}",
			},
		},
		{
			name:   "duplicate env",
			mutate: func(c *Config) { c.Environments[1].Name = "stg" },
			want:   []string{`environments[1].name: "stg" is already the name of environments[0]`},
		},
		{
			name: "bad env name, namespace and tag",
			mutate: func(c *Config) {
				c.Environments[0].Name = "Stage"
				c.Environments[0].Namespace = "packit_stg"
				c.Environments[0].Tag = "-x"
			},
			want: []string{
				`environments[0].name: "Stage" is not a valid name (lowercase letters, digits and '-', at most 63)`,
				`environments[0].namespace: "packit_stg" is not a valid namespace name`,
				`environments[0].tag: "-x" is not a valid image tag`,
			},
		},
		{
			name: "negative approvals",
			mutate: func(c *Config) {
				c.Environments[1].Approvals.Count = -1
				c.Environments[1].Approvals.Expiry.Duration = -time.Minute
			},
			want: []string{
				"environments[1].approvals.count: must not be negative, got -1",
				"environments[1].approvals.expiry: must not be negative, got -1m0s",
			},
		},
		{
			name:   "bad cron",
			mutate: func(c *Config) { c.Environments[0].Schedule = "0 2 * *" },
			want:   []string{`environments[0].schedule: invalid cron expression "0 2 * *" (robfig/cron/v3 standard 5-field parser): expected exactly 5 fields, found 4: [0 2 * *]`},
		},
		{
			name:   "six-field cron is not standard",
			mutate: func(c *Config) { c.Environments[0].Schedule = "0 0 2 * * 2" },
			want:   []string{`environments[0].schedule: invalid cron expression "0 0 2 * * 2" (robfig/cron/v3 standard 5-field parser): expected exactly 5 fields, found 6: [0 0 2 * * 2]`},
		},
		{
			name:   "cron out of range",
			mutate: func(c *Config) { c.Environments[0].Schedule = "0 25 * * 2" },
			want:   []string{`environments[0].schedule: invalid cron expression "0 25 * * 2" (robfig/cron/v3 standard 5-field parser): end of range (25) above maximum (23): 25`},
		},
		{
			name:   "cron descriptor is fine",
			mutate: func(c *Config) { c.Environments[0].Schedule = "@weekly" },
		},
		{
			name:   "time zone in schedule",
			mutate: func(c *Config) { c.Environments[0].Schedule = "CRON_TZ=Europe/Prague 0 2 * * 2" },
			want:   []string{`environments[0].schedule: invalid cron expression "CRON_TZ=Europe/Prague 0 2 * * 2": put the time zone in timeZone, not in the schedule`},
		},
		{
			name:   "unknown time zone",
			mutate: func(c *Config) { c.Environments[1].TimeZone = "Europe/Praha" },
			want:   []string{`environments[1].timeZone: unknown time zone "Europe/Praha" (want an IANA name such as UTC or Europe/Prague)`},
		},
		{
			name:   "Local is not a time zone a config can mean",
			mutate: func(c *Config) { c.Environments[1].TimeZone = "Local" },
			want:   []string{`environments[1].timeZone: unknown time zone "Local" (want an IANA name such as UTC or Europe/Prague)`},
		},
		{
			name:   "IANA time zone",
			mutate: func(c *Config) { c.Environments[1].TimeZone = "Europe/Prague" },
		},
		{
			name:   "empty env channel",
			mutate: func(c *Config) { c.Environments[1].Channels = []string{"deploy", " "} },
			want:   []string{`environments[1].channels[1]: must not be empty`},
		},
		{
			name:   "no environments or services",
			mutate: func(c *Config) { c.Environments = nil; c.Services = nil },
			want: []string{
				"environments: at least one environment is required",
				"services: at least one service is required",
			},
		},
		{
			name:   "alias taken by another service",
			mutate: func(c *Config) { c.Services[2].Aliases = []string{"worker"} },
			want:   []string{`services[2].aliases[0]: "worker" is already an alias of packit-worker`},
		},
		{
			name:   "alias is another service's name",
			mutate: func(c *Config) { c.Services[2].Aliases = []string{"packit-service"} },
			want:   []string{`services[2].aliases[0]: "packit-service" is the name of another service`},
		},
		{
			name:   "alias is own name or repeated",
			mutate: func(c *Config) { c.Services[2].Aliases = []string{"tokman", "tok", "tok"} },
			want: []string{
				`services[2].aliases[0]: "tokman" is the service's own name`,
				`services[2].aliases[2]: "tok" is listed twice`,
			},
		},
		{
			name:   "alias or name is an environment",
			mutate: func(c *Config) { c.Services[2].Aliases = []string{"prod"}; c.Services[1].Name = "stg" },
			want: []string{
				`services[1].name: "stg" is also an environment name, so commands could not tell them apart`,
				`services[2].aliases[0]: "prod" is also an environment name, so commands could not tell them apart`,
			},
		},
		{
			name: "duplicate service and image stream",
			mutate: func(c *Config) {
				c.Services[2].Name = "packit-worker"
				c.Services[2].Aliases = nil
				c.Services[2].ImageStream = ""
			},
			want: []string{
				`services[2].name: "packit-worker" is already the name of services[1]`,
				`services[2].imageStream: "packit-worker" (the default, from name) is already the image stream of services[1]`,
			},
		},
		{
			name:   "explicit image stream clash",
			mutate: func(c *Config) { c.Services[2].ImageStream = "packit-service" },
			want:   []string{`services[2].imageStream: "packit-service" is already the image stream of services[0]`},
		},
		{
			name: "repositories",
			mutate: func(c *Config) {
				c.Services[0].Repository = ""
				c.Services[1].Repository = "quay.io/packit/packit-worker:prod"
				c.Services[2].Repository = "quay.io/packit/tokman@sha256:abc"
			},
			want: []string{
				"services[0].repository: required (the registry repository, e.g. quay.io/packit/packit-worker)",
				`services[1].repository: "quay.io/packit/packit-worker:prod" must not contain a tag; the environment's tag is added to it`,
				`services[2].repository: "quay.io/packit/tokman@sha256:abc" must not contain a digest; the repository is written without tag or digest`,
			},
		},
		{
			name:   "registry port is not a tag",
			mutate: func(c *Config) { c.Services[2].Repository = "registry.example.com:5000/packit/tokman" },
		},
		{
			name:   "repository with scheme",
			mutate: func(c *Config) { c.Services[2].Repository = "https://quay.io/packit/tokman" },
			want:   []string{`services[2].repository: "https://quay.io/packit/tokman" must not have a scheme; write it as in a pull spec, e.g. quay.io/packit/packit-worker`},
		},
		{
			name: "workloads",
			mutate: func(c *Config) {
				c.Services[1].Workloads = []Workload{
					{Kind: "StatefulSet", Name: "packit-worker-long-running"},
					{Kind: "DeploymentConfig", Name: "packit-worker"},
					{Kind: "Deployment"},
					{Kind: "StatefulSet", Name: "packit-worker-long-running"},
				}
			},
			want: []string{
				`services[1].workloads[1].kind: "DeploymentConfig" is not one of Deployment, StatefulSet`,
				`services[1].workloads[2].name: required`,
				`services[1].workloads[3]: StatefulSet packit-worker-long-running is already listed in workloads[0]`,
			},
		},
		{
			name: "identity users",
			mutate: func(c *Config) {
				c.Identities.Users = append(c.Identities.Users,
					UserMapping{Platform: "irc", ID: "x", User: "x"},
					UserMapping{Platform: "terminal", ID: "alice", User: "alice2"},
					UserMapping{Platform: "slak", ID: "T1/U1"},
					UserMapping{ID: "y", User: "system:admin", Groups: []string{""}},
				)
			},
			want: []string{
				`identities.users[1].platform: "irc" is not one of slack, discord, terminal`,
				`identities.users[2].id: terminal user "alice" is already mapped by identities.users[0]`,
				`identities.users[3].platform: "slak" is not one of slack, discord, terminal; did you mean "slack"?`,
				`identities.users[3].user: required (the Kubernetes user name)`,
				`identities.users[4].platform: required (one of slack, discord, terminal)`,
				`identities.users[4].user: "system:admin" is a system user; map chat users to people`,
				`identities.users[4].groups[0]: must not be empty`,
			},
		},
		{
			name: "identity groups",
			mutate: func(c *Config) {
				c.Identities.Groups = []GroupMapping{
					{Platform: "slack", ID: "S1", Groups: []string{"packit-admins"}},
					{Platform: "slack", ID: "S1", Groups: []string{"x"}},
					{Platform: "discord", ID: "998877665544332211"},
				}
			},
			want: []string{
				`identities.groups[1].id: slack group "S1" is already mapped by identities.groups[0]`,
				`identities.groups[2].groups: at least one Kubernetes group is required`,
			},
		},
		{
			name: "channels",
			mutate: func(c *Config) {
				c.Channels = []Channel{
					{Platform: "terminal", ID: "x", Env: "prd"},
					{Platform: "terminal", ID: "x", Env: "stg"},
					{Platform: "slack", ID: "C1"},
					{Platform: "slack", ID: "C2", Env: "qa"},
				}
			},
			want: []string{
				`channels[0].env: unknown environment "prd"; did you mean "prod"?`,
				`channels[1].id: channel "x" of terminal already has an environment in channels[0]`,
				`channels[2].env: required`,
				`channels[3].env: unknown environment "qa"`,
			},
		},
		{
			name:   "execution",
			mutate: func(c *Config) { c.Execution = "sudo" },
			want:   []string{`execution: "sudo" is not one of serviceaccount, impersonate`},
		},
		{
			name:   "impersonate",
			mutate: func(c *Config) { c.Execution = "impersonate" },
		},
		{
			name:   "store backend",
			mutate: func(c *Config) { c.Store.Backend = "etcd" },
			want:   []string{`store.backend: "etcd" is not one of file, kubernetes`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(minimal))
			if err != nil {
				t.Fatalf("minimal config: %v", err)
			}
			tt.mutate(cfg)
			err = cfg.Validate()
			var got []string
			if err != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Validate() error is %T, want *ValidationError", err)
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

func TestValidationErrorListsEveryProblem(t *testing.T) {
	_, err := Parse([]byte("environments: [{name: stg}]\nservices: [{name: a}]\nexecution: x\n"))
	want := `invalid config, 3 problems:
  environments[0].namespace: required
  services[0].repository: required (the registry repository, e.g. quay.io/packit/packit-worker)
  execution: "x" is not one of serviceaccount, impersonate`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func TestLookups(t *testing.T) {
	cfg, err := Parse([]byte(minimal + `
channels:
  - {platform: slack, id: C1, env: prod}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"service by name", serviceName(cfg, "packit-worker"), "packit-worker"},
		{"service by alias", serviceName(cfg, "worker"), "packit-worker"},
		{"unknown service", serviceName(cfg, "wrker"), ""},
		{"env", envName(cfg, "prod"), "prod"},
		{"unknown env", envName(cfg, "prd"), ""},
		{"channel env", cfg.ChannelEnv("slack", "C1"), "prod"},
		{"channel on another platform", cfg.ChannelEnv("discord", "C1"), ""},
		{"suggest service", Suggest("wroker", cfg.ServiceWords()), "worker"},
		{"suggest env", Suggest("prd", cfg.EnvNames()), "prod"},
		{"nothing close", Suggest("xyz", cfg.EnvNames()), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func serviceName(c *Config, word string) string {
	if s, ok := c.Service(word); ok {
		return s.Name
	}
	return ""
}

func envName(c *Config, name string) string {
	if e, ok := c.Env(name); ok {
		return e.Name
	}
	return ""
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "examples", "packit.yaml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(""))
	f.Add([]byte("environments: [{name: prod, namespace: p, schedule: '0 2 * * 2', timeZone: UTC, approvals: {expiry: 1h}}]"))
	f.Add([]byte("services: [{name: a, aliases: [b, b], repository: 'x:y@z'}]"))
	f.Add([]byte("{{{"))
	f.Add([]byte(minimal + "http: {readTimeout: 3s, bodyTimeout: 1s, writeTimeout: 2s, maxConnections: 8}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			return
		}
		// A config Parse accepts is valid, defaulted and resolves its own names.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate rejects: %v", err)
		}
		for _, e := range cfg.Environments {
			if e.Tag == "" || e.Approvals.Expiry.Duration == 0 {
				t.Fatalf("environment %q not defaulted: %+v", e.Name, e)
			}
			if got, ok := cfg.Env(e.Name); !ok || got.Name != e.Name {
				t.Fatalf("Env(%q) did not find it", e.Name)
			}
		}
		for _, s := range cfg.Services {
			for _, w := range append([]string{s.Name}, s.Aliases...) {
				if got, ok := cfg.Service(w); !ok || got.Name != s.Name {
					t.Fatalf("Service(%q) = %v, want %s", w, got, s.Name)
				}
			}
		}
	})
}

func TestFeedChannel(t *testing.T) {
	base := `services: [{name: web, repository: quay.io/o/web}]
environments:
  - name: stg
    namespace: stg
`
	for _, tc := range []struct {
		name, env, want, problem string
	}{
		{name: "no feed", env: "", want: ""},
		{name: "env channel", env: "    channel: {platform: terminal, id: deploys}\n    feed: {}\n", want: "terminal/deploys"},
		{name: "own channel", env: "    channel: {platform: terminal, id: deploys}\n    feed: {channel: {platform: terminal, id: feed}, failuresOnly: true}\n", want: "terminal/feed"},
		{name: "off", env: "    channel: {platform: terminal, id: deploys}\n    feed: {enabled: false}\n", want: ""},
		{name: "no channel", env: "    feed: {}\n", problem: "environments[0].feed: needs a channel to post to"},
		{name: "slack name", env: "    feed: {channel: {platform: slack, id: '#deploys'}}\n", problem: "is not a Slack channel ID"},
		{name: "outside the env's channels", env: "    channels: [deploys]\n    feed: {channel: {platform: terminal, id: feed}}\n", problem: "its Undo and Pin previous buttons would be refused there"},
		{name: "inside the env's channels", env: "    channels: [deploys, feed]\n    feed: {channel: {platform: terminal, id: feed}}\n", want: "terminal/feed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base + tc.env))
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("Parse: %v, want a problem %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ch, ok := cfg.Environments[0].FeedChannel()
			got := ""
			if ok {
				got = ch.Platform + "/" + ch.ID
			}
			if got != tc.want {
				t.Errorf("FeedChannel = %q, want %q", got, tc.want)
			}
		})
	}
}
