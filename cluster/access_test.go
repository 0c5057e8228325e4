package cluster_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/commands"
)

// *cluster.Set is what the commands consume.
var _ commands.Cluster = (*cluster.Set)(nil)

func acc(verb, group, resource, name string) cluster.Access {
	return cluster.Access{Verb: verb, Group: group, Resource: resource, Namespace: testNS, Name: name}
}

const img = "image.openshift.io"

func TestAccessFor(t *testing.T) {
	svc := cluster.WorkloadRef{Kind: cluster.KindDeployment, Name: "packit-service", Triggered: true}
	wrk := cluster.WorkloadRef{Kind: cluster.KindStatefulSet, Name: "packit-worker-short-running", Triggered: true}
	fedmsg := cluster.WorkloadRef{Kind: cluster.KindDeployment, Name: "packit-service-fedmsg"}
	follow := func(deps, sets bool) []cluster.Access {
		var out []cluster.Access
		if deps {
			out = append(out, acc("list", "apps", "deployments", ""), acc("watch", "apps", "deployments", ""))
		}
		if sets {
			out = append(out, acc("list", "apps", "statefulsets", ""), acc("watch", "apps", "statefulsets", ""))
		}
		return append(out, acc("list", "", "pods", ""), acc("watch", "", "pods", ""))
	}
	plan := func(a cluster.Action, ts ...cluster.Target) cluster.Plan {
		return cluster.Plan{Action: a, Env: testEnv, Namespace: testNS, Targets: ts}
	}
	tests := []struct {
		name string
		plan cluster.Plan
		want []cluster.Access
	}{
		{
			name: "import of two streams, one unchanged",
			plan: plan(cluster.ActionImport,
				cluster.Target{Service: "packit-service", Stream: "packit-service", Tag: "prod", Workloads: []cluster.WorkloadRef{svc}},
				cluster.Target{Service: "tokman", Stream: "tokman", Tag: "prod", Unchanged: true}),
			want: append([]cluster.Access{
				acc("get", img, "imagestreams", "packit-service"),
				acc("create", img, "imagestreamimports", ""),
			}, follow(true, false)...),
		},
		{
			name: "revert (pin) with a stuck pod to delete",
			plan: plan(cluster.ActionPin, cluster.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "prod",
				Workloads: []cluster.WorkloadRef{wrk}, DeletePods: []string{"packit-worker-short-running-1"}}),
			want: []cluster.Access{
				acc("update", img, "imagestreamtags", "packit-worker:prod"),
				acc("create", img, "imagestreamtags", ""),
				acc("get", img, "imagestreams", "packit-worker"),
				acc("update", img, "imagestreams", "packit-worker"),
				acc("list", "apps", "statefulsets", ""),
				acc("watch", "apps", "statefulsets", ""),
				acc("get", "", "pods", "packit-worker-short-running-1"),
				acc("delete", "", "pods", "packit-worker-short-running-1"),
				// Follow's statefulset list and watch are already listed.
				acc("list", "", "pods", ""),
				acc("watch", "", "pods", ""),
			},
		},
		{
			name: "track imports too",
			plan: plan(cluster.ActionTrack, cluster.Target{Service: "packit-service", Stream: "packit-service", Tag: "prod", Workloads: []cluster.WorkloadRef{svc}}),
			want: append([]cluster.Access{
				acc("update", img, "imagestreamtags", "packit-service:prod"),
				acc("create", img, "imagestreamtags", ""),
				acc("get", img, "imagestreams", "packit-service"),
				acc("update", img, "imagestreams", "packit-service"),
				acc("create", img, "imagestreamimports", ""),
			}, follow(true, false)...),
		},
		{
			name: "undo rolls back untriggered workloads only",
			plan: plan(cluster.ActionRollback, cluster.Target{Service: "packit-service-fedmsg", Workloads: []cluster.WorkloadRef{fedmsg, svc}, ToRevision: 2}),
			want: append([]cluster.Access{
				acc("get", "apps", "deployments", "packit-service-fedmsg"),
				acc("list", "apps", "replicasets", ""),
				acc("patch", "apps", "deployments", "packit-service-fedmsg"),
			}, follow(true, false)...),
		},
		{
			name: "undo of a statefulset",
			plan: plan(cluster.ActionRollback, cluster.Target{Service: "worker", Workloads: []cluster.WorkloadRef{{Kind: "StatefulSet", Name: "w"}}}),
			want: append([]cluster.Access{
				acc("get", "apps", "statefulsets", "w"),
				acc("list", "apps", "controllerrevisions", ""),
				acc("patch", "apps", "statefulsets", "w"),
			}, follow(false, true)...),
		},
		{
			name: "nothing to change needs nothing",
			plan: plan(cluster.ActionImport, cluster.Target{Service: "tokman", Stream: "tokman", Tag: "prod", Unchanged: true}),
			want: []cluster.Access{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cluster.AccessFor(tc.plan)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AccessFor =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

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

	plan := revertWorkerPlan()
	listed := map[[3]string]bool{}
	for _, a := range cluster.AccessFor(plan) {
		listed[[3]string{a.Verb, a.Group, a.Resource}] = true
	}
	res, err := f.set.Execute(context.Background(), plan, nil)
	if err != nil || res.Targets[0].Outcome != cluster.PhaseChanged {
		t.Fatalf("Execute = %+v, %v", res, err)
	}
	f.set.Follow(context.Background(), plan, res, 50*time.Millisecond, nil)
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
	p := cluster.Plan{Action: cluster.ActionImport, Env: "prod", Namespace: testNS,
		Policy: cluster.Policy{Confirm: true, Approvals: 1, Expiry: time.Hour}}
	for _, s := range []string{"packit-service", "packit-worker", "packit-service-fedmsg", "packit-dashboard", "tokman"} {
		tg := importTarget(s, 1, 2)
		tg.Workloads = []cluster.WorkloadRef{{Kind: cluster.KindDeployment, Name: s, Triggered: true}}
		p.Targets = append(p.Targets, tg)
	}
	p.Access = cluster.AccessFor(p)
	for b.Loop() {
		_ = p.Hash()
	}
}

var _ commands.ImageLookup = (*cluster.Set)(nil)
