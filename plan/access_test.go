package plan_test

import (
	"reflect"
	"testing"

	"github.com/deploybot/deploybot/plan"
)

const (
	testEnv = "prod"
	testNS  = "packit--prod"
)

func acc(verb, group, resource, name string) plan.Access {
	return plan.Access{Verb: verb, Group: group, Resource: resource, Namespace: testNS, Name: name}
}

const img = "image.openshift.io"

func TestAccessFor(t *testing.T) {
	svc := plan.WorkloadRef{Kind: plan.KindDeployment, Name: "packit-service", Triggered: true}
	wrk := plan.WorkloadRef{Kind: plan.KindStatefulSet, Name: "packit-worker-short-running", Triggered: true}
	fedmsg := plan.WorkloadRef{Kind: plan.KindDeployment, Name: "packit-service-fedmsg"}
	follow := func(deps, sets bool) []plan.Access {
		var out []plan.Access
		if deps {
			out = append(out, acc("list", "apps", "deployments", ""), acc("watch", "apps", "deployments", ""))
		}
		if sets {
			out = append(out, acc("list", "apps", "statefulsets", ""), acc("watch", "apps", "statefulsets", ""))
		}
		return append(out, acc("list", "", "pods", ""), acc("watch", "", "pods", ""))
	}
	planOf := func(a plan.Action, ts ...plan.Target) plan.Plan {
		return plan.Plan{Action: a, Env: testEnv, Namespace: testNS, Targets: ts}
	}
	tests := []struct {
		name string
		plan plan.Plan
		want []plan.Access
	}{
		{
			name: "import of two streams, one unchanged",
			plan: planOf(plan.ActionImport,
				plan.Target{Service: "packit-service", Stream: "packit-service", Tag: "prod", Workloads: []plan.WorkloadRef{svc}},
				plan.Target{Service: "tokman", Stream: "tokman", Tag: "prod", Unchanged: true}),
			want: append([]plan.Access{
				acc("get", img, "imagestreams", "packit-service"),
				acc("create", img, "imagestreamimports", ""),
			}, follow(true, false)...),
		},
		{
			name: "revert (pin) with a stuck pod to delete",
			plan: planOf(plan.ActionPin, plan.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "prod",
				Workloads: []plan.WorkloadRef{wrk}, DeletePods: []string{"packit-worker-short-running-1"}}),
			want: []plan.Access{
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
			plan: planOf(plan.ActionTrack, plan.Target{Service: "packit-service", Stream: "packit-service", Tag: "prod", Workloads: []plan.WorkloadRef{svc}}),
			want: append([]plan.Access{
				acc("update", img, "imagestreamtags", "packit-service:prod"),
				acc("create", img, "imagestreamtags", ""),
				acc("get", img, "imagestreams", "packit-service"),
				acc("update", img, "imagestreams", "packit-service"),
				acc("create", img, "imagestreamimports", ""),
			}, follow(true, false)...),
		},
		{
			name: "undo rolls back untriggered workloads only",
			plan: planOf(plan.ActionRollback, plan.Target{Service: "packit-service-fedmsg", Workloads: []plan.WorkloadRef{fedmsg, svc}, ToRevision: 2}),
			want: append([]plan.Access{
				acc("get", "apps", "deployments", "packit-service-fedmsg"),
				acc("list", "apps", "replicasets", ""),
				acc("patch", "apps", "deployments", "packit-service-fedmsg"),
			}, follow(true, false)...),
		},
		{
			name: "undo of a statefulset",
			plan: planOf(plan.ActionRollback, plan.Target{Service: "worker", Workloads: []plan.WorkloadRef{{Kind: "StatefulSet", Name: "w"}}}),
			want: append([]plan.Access{
				acc("get", "apps", "statefulsets", "w"),
				acc("list", "apps", "controllerrevisions", ""),
				acc("patch", "apps", "statefulsets", "w"),
			}, follow(false, true)...),
		},
		{
			name: "nothing to change needs nothing",
			plan: planOf(plan.ActionImport, plan.Target{Service: "tokman", Stream: "tokman", Tag: "prod", Unchanged: true}),
			want: []plan.Access{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := plan.AccessFor(tc.plan)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AccessFor =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}
