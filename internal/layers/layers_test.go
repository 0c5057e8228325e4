package layers_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/deploybot/deploybot"

// deps returns the packages pkg links (go list -deps), itself included.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestNoClientGo: everything that only talks about a Plan (the vocabulary,
// the grammar, the lifecycle, the scheduler, the dispatcher, the chat
// adapters and the store's contract) stays free of client-go, so it builds
// and tests fast and stays light. Only cluster, auth, store/kube and the
// wiring reach the API server.
func TestNoClientGo(t *testing.T) {
	for _, pkg := range []string{"plan", "config", "commands", "store", "store/bolt", "lifecycle", "schedule", "clock", "release",
		"bot", "bot/slack", "bot/discord", "bot/terminal"} {
		t.Run(pkg, func(t *testing.T) {
			for _, d := range deps(t, pkg) {
				if strings.HasPrefix(d, "k8s.io/client-go") || strings.HasPrefix(d, "github.com/openshift/client-go") {
					t.Errorf("%s links %s", pkg, d)
				}
			}
		})
	}
}

// TestImportDirection: the lower layers never import the higher ones.
func TestImportDirection(t *testing.T) {
	forbidden := map[string][]string{
		"plan":       {module + "/"}, // a leaf: nothing of ours
		"kubeclient": {module + "/"}, // a leaf: client-go's generic clients and our scheme
		"auth":       {module + "/commands", module + "/bot", module + "/lifecycle", module + "/store"},
		"store":      {module + "/cluster", module + "/commands", module + "/bot"},
		"commands":   {module + "/cluster", module + "/bot", module + "/lifecycle", module + "/store"},
		"lifecycle":  {module + "/bot", module + "/commands", module + "/schedule", module + "/cluster"},
		"schedule":   {module + "/bot", module + "/cluster"},
		"cluster":    {module + "/commands", module + "/bot", module + "/demo", module + "/internal/"},
		// The git client reads the config's repositories and answers in
		// the Plan's vocabulary, nothing above.
		// The releaser pushes through a git client and watches a registry
		// through interfaces of its own (the registry client's errors
		// aside); it changes no cluster.
		"release": {module + "/commands", module + "/bot", module + "/lifecycle", module + "/schedule", module + "/cluster", module + "/store", module + "/gitrepo", module + "/demo", module + "/internal/"},
		"gitrepo": {module + "/commands", module + "/bot", module + "/lifecycle", module + "/schedule", module + "/cluster", module + "/store", module + "/demo", module + "/internal/"},
	}
	for pkg, bad := range forbidden {
		t.Run(pkg, func(t *testing.T) {
			for _, d := range deps(t, pkg) {
				for _, b := range bad {
					if d != module+"/"+pkg && strings.HasPrefix(d, b) && !(b == module+"/" && d == module+"/"+pkg) {
						t.Errorf("%s links %s", pkg, d)
					}
				}
			}
		})
	}
}

// TestClusterHoldsNoScaffolding: cluster/ is production reads and actions
// only; the demo and the fakes live elsewhere.
func TestClusterHoldsNoScaffolding(t *testing.T) {
	out, err := exec.Command("go", "list", module+"/cluster/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if pkgs := strings.Fields(string(out)); len(pkgs) != 1 || pkgs[0] != module+"/cluster" {
		t.Errorf("cluster/ holds packages %v, want only cluster itself", pkgs)
	}
}

// TestLightBinary: the released binary (demo included) links only the API
// groups deploybot uses, through package kubeclient. client-go's generated
// clientsets, their fakes, the informer factory, the leader-election locks
// and OpenShift's clientset each link the scheme, clients or informers of
// every API group, about 12 MB of binary and 10 MiB of resident memory.
func TestLightBinary(t *testing.T) {
	heavy := []string{
		"k8s.io/client-go/kubernetes", // also kubernetes/scheme, kubernetes/fake, kubernetes/typed/...
		"k8s.io/client-go/informers",  // the factory of every group's informers
		"k8s.io/client-go/applyconfigurations",
		"k8s.io/client-go/discovery",
		"k8s.io/client-go/tools/leaderelection",
		"github.com/openshift/client-go",
	}
	for _, d := range deps(t, "cmd/deploybot") {
		for _, h := range heavy {
			if d == h || strings.HasPrefix(d, h+"/") {
				t.Errorf("cmd/deploybot links %s", d)
			}
		}
	}
}
