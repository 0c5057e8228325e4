package cluster_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/plan"
)

// *cluster.Set is what the commands consume.
var _ commands.Cluster = (*cluster.Set)(nil)

// TestAccessCoversExecuteAndFollow checks the list against what Execute and
// Follow really call on the fake clients for a revert with --force: every
// call made must be listed.
func TestAccessCoversExecuteAndFollow(t *testing.T) {
	f := revertWorkerFixture(t)
	// The template already runs #1, so Execute need not wait for a trigger.
	sts, err := f.kube.AppsV1().StatefulSets(testNS).Get(context.Background(), "packit-worker-short-running", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sts.Spec.Template.Spec.Containers[0].Image = ref(worker, 1)
	if _, err := f.kube.AppsV1().StatefulSets(testNS).Update(context.Background(), sts, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.kube.ClearActions()
	f.images.ClearActions()

	p := revertWorkerPlan()
	listed := map[[3]string]bool{}
	for _, a := range plan.AccessFor(p) {
		listed[[3]string{a.Verb, a.Group, a.Resource}] = true
	}
	res, err := f.set.Execute(context.Background(), p, nil)
	if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
		t.Fatalf("Execute = %+v, %v", res, err)
	}
	f.set.Follow(context.Background(), p, res, 50*time.Millisecond, nil)
	calls := 0
	for _, a := range append(f.images.Actions(), f.kube.Actions()...) {
		calls++
		key := [3]string{a.GetVerb(), a.GetResource().Group, a.GetResource().Resource}
		if !listed[key] {
			t.Errorf("a call %v was made that AccessFor does not list", key)
		}
	}
	if calls < 8 {
		t.Errorf("only %d calls recorded; the test exercises too little", calls)
	}
}

func BenchmarkPlanHash(b *testing.B) {
	p := plan.Plan{Action: plan.ActionImport, Env: "prod", Namespace: testNS,
		Policy: plan.Policy{Confirm: true, Approvals: 1, Expiry: time.Hour}}
	for _, s := range []string{"packit-service", "packit-worker", "packit-service-fedmsg", "packit-dashboard", "tokman"} {
		tg := importTarget(s, 1, 2)
		tg.Workloads = []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: s, Triggered: true}}
		p.Targets = append(p.Targets, tg)
	}
	p.Access = plan.AccessFor(p)
	for b.Loop() {
		_ = p.Hash()
	}
}

var _ commands.ImageLookup = (*cluster.Set)(nil)
