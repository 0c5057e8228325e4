package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestValidateRepositories pins the checks of the repositories and release
// sections: each case is a snippet appended to the minimal config and the
// exact problems it must report.
func TestValidateRepositories(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "none"},
		{name: "https with a token from the environment", yaml: `repositories:
  - {name: packit-service, url: https://github.com/packit/packit-service.git, services: [packit-service, packit-worker], env: prod, tokenEnv: GITHUB_TOKEN}`},
		{name: "ssh with a key file", yaml: `repositories:
  - {name: ogr, url: "git@github.com:packit/ogr.git", env: prod, sshKeyFile: /etc/deploybot/git/id_ed25519}`},
		{name: "everything wrong", yaml: `repositories:
  - {name: Ogr, url: "ftp://x/y", env: qa, services: [nope], branch: main, stable: main}
  - {name: ogr2, url: "https://bot:tok@github.com/packit/ogr.git", env: prod, tokenEnv: A, tokenFile: /b}
  - {name: ogr3, url: "https://github.com/packit/ogr.git", env: prod, sshKeyFile: /k}`, want: []string{
			`repositories[0].name: "Ogr" is not a valid name (lowercase letters, digits, '-' and '.')`,
			`repositories[0].url: "ftp://x/y" is neither an HTTPS URL nor an SSH one (ssh://git@host/path or git@host:path)`,
			`repositories[0].stable: the stable branch must differ from the rolling branch "main"`,
			`repositories[0].env: "qa" is not an environment (one of stg, prod)`,
			`repositories[0].services[0]: "nope" is not a service`,
			"repositories[1].url: must not carry credentials; use tokenEnv or tokenFile",
			"repositories[1]: name one of tokenEnv, tokenFile and sshKeyFile",
			"repositories[2].sshKeyFile: an SSH key needs an SSH URL",
		}},
		{name: "an alias, a second builder, a refspec in a branch", yaml: `repositories:
  - {name: a, url: https://h/a.git, env: prod, services: [worker]}
  - {name: b, url: https://h/b.git, env: prod, services: [packit-worker], branch: "+main:refs/heads/x"}`, want: []string{
			"repositories[1].services[0]: packit-worker is already built for prod by repositories[0]",
			`repositories[1].branch: "+main:refs/heads/x" is not a branch name deploybot accepts (letters, digits, '.', '_', '-' and '/', not starting with '-' or '.')`,
		}},
		{name: "release settings", yaml: "release: {timeout: 30m, afterBuild: import}\nregistry: {revisionLabel: vcs-ref}"},
		{name: "release settings wrong", yaml: "release: {timeout: -5m, afterBuild: deploy}", want: []string{
			`release.afterBuild: "deploy" is neither "offer" nor "import"`,
			"release.timeout: must not be negative",
		}},
		{name: "a token in the config is not read", yaml: "repositories:\n  - {name: x, url: https://h/x.git, env: prod, token: abc}", want: []string{"parse error"}},
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

// TestRepositoryOf finds the repository by a service's canonical name when
// the config lists an alias.
func TestRepositoryOf(t *testing.T) {
	c, err := Parse([]byte(minimal + "repositories:\n  - {name: packit, url: https://h/p.git, env: prod, services: [worker]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := c.RepositoryOf("packit-worker", "prod"); !ok || r.Name != "packit" {
		t.Errorf("RepositoryOf(packit-worker, prod) = %v %v", r, ok)
	}
	if _, ok := c.RepositoryOf("packit-worker", "stg"); ok {
		t.Error("RepositoryOf(packit-worker, stg) found the prod repository")
	}
}

// snippetProblems parses a config and returns every validation problem
// it reports, or "parse error" for YAML the decoder refuses (an unknown
// field).
func snippetProblems(t *testing.T, yaml string) []string {
	t.Helper()
	_, err := Parse([]byte(yaml))
	var ve *ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		var got []string
		for _, p := range ve.Problems {
			got = append(got, p.String())
		}
		return got
	case strings.Contains(err.Error(), "unknown field"):
		return []string{"parse error"}
	}
	t.Fatalf("Parse: %v", err)
	return nil
}

func TestCompareURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://github.com/packit/ogr.git", "https://github.com/packit/ogr/compare/a...b"},
		{"git@github.com:packit/ogr.git", "https://github.com/packit/ogr/compare/a...b"},
		{"ssh://git@github.com/packit/ogr.git", "https://github.com/packit/ogr/compare/a...b"},
		{"ssh://git@gitlab.example.com:2222/team/app.git", "https://gitlab.example.com/team/app/-/compare/a...b"},
		{"https://gitlab.com/redhat/centos-stream/src/kernel.git", "https://gitlab.com/redhat/centos-stream/src/kernel/-/compare/a...b"},
		{"https://git.example.com/x.git", ""},
	} {
		r := Repository{URL: tc.url}
		if got := r.CompareURL("a", "b"); got != tc.want {
			t.Errorf("CompareURL(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
}
