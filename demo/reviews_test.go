package demo

import (
	"context"
	"testing"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/plan"
)

// TestReviewsAreNotKept: the demo answers access reviews without recording
// them. The fake's reactor chain keeps every call it sees until the actions
// are cleared, and `whoami` asks dozens of reviews: 2,000 of them took a
// serve --demo from 33 to 654 MB before the reviews bypassed it.
func TestReviewsAreNotKept(t *testing.T) {
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]kubeclient.Interface{}
	for name, ec := range c.EnvClients() {
		clients[name] = ec.Kube
	}
	checker := access.NewChecker(clients)
	prod, _ := cfg.Env("prod")
	before := len(c.Kube("prod").Actions())
	calls := []plan.Access{{Verb: "create", Group: "image.openshift.io", Resource: "imagestreamimports", Namespace: prod.Namespace}}
	for range 200 {
		if _, err := checker.Denied(context.Background(), "prod", "alice", []string{"packit-devs"}, calls); err != nil {
			t.Fatal(err)
		}
	}
	if grown := len(c.Kube("prod").Actions()) - before; grown > 0 {
		t.Errorf("200 access reviews left %d recorded actions, want none", grown)
	}
}
