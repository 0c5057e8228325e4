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
