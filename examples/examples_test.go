package examples_test

import (
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
)

func TestPackitEmbeddedIsValid(t *testing.T) {
	if _, err := config.Parse(examples.Packit); err != nil {
		t.Fatalf("embedded examples/packit.yaml: %v", err)
	}
}

// TestKubernetesEmbeddedIsValid: examples/kubernetes.yaml validates and is
// what it says it is, two plain Kubernetes environments whose services
// list their workloads.
func TestKubernetesEmbeddedIsValid(t *testing.T) {
	cfg, err := config.Parse(examples.Kubernetes)
	if err != nil {
		t.Fatalf("embedded examples/kubernetes.yaml: %v", err)
	}
	for _, e := range cfg.Environments {
		if !e.Kubernetes() {
			t.Errorf("environment %s is on %q, want kubernetes", e.Name, e.Platform)
		}
	}
	for _, s := range cfg.Services {
		if len(s.Workloads) == 0 {
			t.Errorf("service %s lists no workloads", s.Name)
		}
	}
}

// TestPackitRepositories: the packit example releases what move_stable.py
// moves: every service but tokman is built for prod by one repository,
// the libraries build nothing, and every repository pushes with the token
// from GITHUB_TOKEN.
func TestPackitRepositories(t *testing.T) {
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.Services {
		r, ok := cfg.RepositoryOf(s.Name, "prod")
		if ok == (s.Name == "tokman") {
			t.Errorf("service %s: built by a repository = %v", s.Name, ok)
		}
		if ok && r.URL != "https://github.com/packit/"+r.Name+".git" {
			t.Errorf("repository %s: url %s", r.Name, r.URL)
		}
	}
	libraries := map[string]bool{"ogr": true, "specfile": true, "packit": true, "sandcastle": true}
	for _, r := range cfg.Repositories {
		if libraries[r.Name] != (len(r.Services) == 0) {
			t.Errorf("repository %s builds %v", r.Name, r.Services)
		}
		if r.TokenEnv != "GITHUB_TOKEN" || r.Env != "prod" || r.RollingBranch() != "main" || r.StableBranch() != "stable" {
			t.Errorf("repository %s = %+v", r.Name, r)
		}
	}
	if len(cfg.Repositories) != 7 {
		t.Errorf("%d repositories, want 7", len(cfg.Repositories))
	}
}
