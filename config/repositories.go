package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Repository is a git repository whose stable branch a release moves: CI
// builds its services' images from that branch and pushes them to the
// tag of Env (the seed's move_stable.py, as one chat flow).
type Repository struct {
	// Name is how commands name it: `release packit-service`.
	Name string `json:"name"`
	// URL is the repository's HTTPS (https://github.com/packit/ogr.git) or
	// SSH (ssh://git@github.com/packit/ogr.git, git@github.com:packit/ogr.git) URL.
	URL string `json:"url"`
	// Branch is the rolling branch releases come from (default main).
	Branch string `json:"branch,omitempty"`
	// Stable is the branch a release moves (default stable).
	Stable string `json:"stable,omitempty"`
	// Services are the services whose images are built from Stable.
	Services []string `json:"services,omitempty"`
	// Env is the environment Stable's images are built for (their tag);
	// a release is checked and approved under its policy.
	Env string `json:"env"`
	// Credentials: a token for HTTPS from the environment variable
	// TokenEnv or the mounted file TokenFile (with Username, default
	// "deploybot"; GitHub and GitLab accept any name with a token), or an
	// SSH private key from the mounted file SSHKeyFile. Never the secret
	// itself in this file.
	TokenEnv   string `json:"tokenEnv,omitempty"`
	TokenFile  string `json:"tokenFile,omitempty"`
	Username   string `json:"username,omitempty"`
	SSHKeyFile string `json:"sshKeyFile,omitempty"`
}

// Release is how `release` follows its pushes.
type Release struct {
	// Timeout bounds waiting for the images a release builds (default 1h).
	Timeout Duration `json:"timeout,omitempty"`
	// AfterBuild is what follows when every image is built: AfterBuildOffer
	// (the default: the release's message offers the import, a button and
	// the command) or AfterBuildImport (the bot opens that import request
	// itself, for the releaser, under the env's confirm and approvals).
	AfterBuild string `json:"afterBuild,omitempty"`
}

// The values of release.afterBuild.
const (
	AfterBuildOffer  = "offer"
	AfterBuildImport = "import"
)

// DefaultReleaseTimeout is how long a release waits for its builds.
const DefaultReleaseTimeout = time.Hour

// BuildTimeout is how long a release waits for its builds.
func (r Release) BuildTimeout() time.Duration {
	if r.Timeout.Duration <= 0 {
		return DefaultReleaseTimeout
	}
	return r.Timeout.Duration
}

// RollingBranch is the branch releases come from.
func (r *Repository) RollingBranch() string {
	if r.Branch == "" {
		return "main"
	}
	return r.Branch
}

// StableBranch is the branch a release moves.
func (r *Repository) StableBranch() string {
	if r.Stable == "" {
		return "stable"
	}
	return r.Stable
}

// Token reads the repository's HTTPS token from where the config says
// ("" when it names none).
func (r *Repository) Token() (string, error) {
	switch {
	case r.TokenEnv != "":
		t := strings.TrimSpace(os.Getenv(r.TokenEnv))
		if t == "" {
			return "", fmt.Errorf("repository %s: the environment variable %s that holds its token is empty", r.Name, r.TokenEnv)
		}
		return t, nil
	case r.TokenFile != "":
		b, err := os.ReadFile(r.TokenFile)
		if err != nil {
			return "", fmt.Errorf("repository %s: reading its token: %w", r.Name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// SSH reports whether the repository's URL is an SSH one.
func (r *Repository) SSH() bool {
	return strings.HasPrefix(r.URL, "ssh://") || (!strings.Contains(r.URL, "://") && strings.Contains(r.URL, "@") && strings.Contains(r.URL, ":"))
}

// CompareURL links the commits between two SHAs on GitHub or GitLab, ""
// for other hosts.
func (r *Repository) CompareURL(from, to string) string {
	u := r.URL
	if r.SSH() && !strings.HasPrefix(u, "ssh://") {
		// git@github.com:packit/ogr.git → ssh://git@github.com/packit/ogr.git
		host, path, _ := strings.Cut(u, ":")
		u = "ssh://" + host + "/" + path
	}
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	if p.Scheme == "ssh" {
		p.Host = p.Hostname() // an SSH port is not the web's
	}
	path := strings.TrimSuffix(strings.TrimSuffix(p.Path, "/"), ".git")
	switch {
	case p.Host == "github.com":
		return "https://github.com" + path + "/compare/" + from + "..." + to
	case p.Host == "gitlab.com" || strings.HasPrefix(p.Host, "gitlab."):
		return "https://" + p.Host + path + "/-/compare/" + from + "..." + to
	}
	return ""
}

// Repository returns the repository named name.
func (c *Config) Repository(name string) (*Repository, bool) {
	for i := range c.Repositories {
		if c.Repositories[i].Name == name {
			return &c.Repositories[i], true
		}
	}
	return nil, false
}

// RepositoryOf returns the repository that builds service for env.
func (c *Config) RepositoryOf(service, env string) (*Repository, bool) {
	for i := range c.Repositories {
		r := &c.Repositories[i]
		if r.Env != env {
			continue
		}
		for _, s := range r.Services {
			if svc, ok := c.Service(s); ok && svc.Name == service {
				return r, true
			}
		}
	}
	return nil, false
}

// branchName is a branch name as a refspec may carry it: no ':', '*', '+',
// spaces or '..'-style tricks.
var branchName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]*$`)

// validateRepositories checks the repositories section.
func (c *Config) validateRepositories(ps *problems) {
	switch c.Release.AfterBuild {
	case "", AfterBuildOffer, AfterBuildImport:
	default:
		ps.add("release.afterBuild", "%q is neither %q nor %q", c.Release.AfterBuild, AfterBuildOffer, AfterBuildImport)
	}
	if c.Release.Timeout.Duration < 0 {
		ps.add("release.timeout", "must not be negative")
	}
	if c.Promote.HealthyFor.Duration < 0 {
		ps.add("promote.healthyFor", "must not be negative")
	}
	seen := map[string]int{}
	builds := map[string]int{} // "env/service" → repository index
	for i, r := range c.Repositories {
		p := fmt.Sprintf("repositories[%d]", i)
		switch {
		case r.Name == "":
			ps.add(p+".name", "required")
		case !streamName.MatchString(r.Name):
			ps.add(p+".name", "%q is not a valid name (lowercase letters, digits, '-' and '.')", r.Name)
		default:
			if j, dup := seen[r.Name]; dup {
				ps.add(p+".name", "%q is already the name of repositories[%d]", r.Name, j)
			}
			seen[r.Name] = i
		}
		switch {
		case r.URL == "":
			ps.add(p+".url", "required: the HTTPS or SSH URL deploybot fetches and pushes")
		case r.SSH():
		default:
			u, err := url.Parse(r.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				ps.add(p+".url", "%q is neither an HTTPS URL nor an SSH one (ssh://git@host/path or git@host:path)", r.URL)
			} else if u.User != nil {
				ps.add(p+".url", "must not carry credentials; use tokenEnv or tokenFile")
			}
		}
		if r.RollingBranch() == r.StableBranch() {
			ps.add(p+".stable", "the stable branch must differ from the rolling branch %q", r.RollingBranch())
		}
		if _, ok := c.Env(r.Env); !ok {
			ps.add(p+".env", "%q is not an environment (one of %s)", r.Env, strings.Join(c.EnvNames(), ", "))
		}
		for j, s := range r.Services {
			svc, ok := c.Service(s)
			if !ok {
				ps.add(fmt.Sprintf("%s.services[%d]", p, j), "%q is not a service", s)
				continue
			}
			key := r.Env + "/" + svc.Name
			if k, dup := builds[key]; dup {
				ps.add(fmt.Sprintf("%s.services[%d]", p, j), "%s is already built for %s by repositories[%d]", svc.Name, r.Env, k)
			} else {
				builds[key] = i
			}
		}
		for _, b := range []struct{ field, name string }{{"branch", r.Branch}, {"stable", r.Stable}} {
			if b.name != "" && !branchName.MatchString(b.name) {
				ps.add(p+"."+b.field, "%q is not a branch name deploybot accepts (letters, digits, '.', '_', '-' and '/', not starting with '-' or '.')", b.name)
			}
		}
		n := 0
		for _, set := range []string{r.TokenEnv, r.TokenFile, r.SSHKeyFile} {
			if set != "" {
				n++
			}
		}
		switch {
		case n > 1:
			ps.add(p, "name one of tokenEnv, tokenFile and sshKeyFile")
		case r.SSHKeyFile != "" && !r.SSH():
			ps.add(p+".sshKeyFile", "an SSH key needs an SSH URL")
		case (r.TokenEnv != "" || r.TokenFile != "") && r.SSH():
			ps.add(p, "a token needs an HTTPS URL")
		}
	}
}
