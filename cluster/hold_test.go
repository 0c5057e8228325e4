package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	imagev1 "github.com/openshift/api/image/v1"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/plan"
)

// TestHoldAndUnhold: a hold turns the tag's scheduled import off, keeps
// the hold (with what it changed) on the stream and pauses the image
// triggers on the tag — keeping the annotation's other entries and fields
// — with only calls AccessFor lists; unhold restores both exactly.
func TestHoldAndUnhold(t *testing.T) {
	other := `{"from":{"kind":"ImageStreamTag","name":"tokman:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"t\")].image","paused":true}`
	mine := strings.TrimSuffix(strings.TrimPrefix(triggerAnnotation(worker, "w"), "["), "]")
	ann := "[" + mine[:len(mine)-1] + `,"x-extra":"kept"}` + "," + other + "]"
	f := newFixture(t, []runtime.Object{
		deployment("beat", ref(worker, 2), 1, map[string]string{cluster.TriggerAnnotation: ann}),
	}, []*imagev1.ImageStream{imageStream(worker, true, 2, 1)})
	f.push(worker, 2)
	ctx := context.Background()
	hold := &plan.Hold{By: "alice", Reason: "crash-loops", Scheduled: true, Paused: []string{"deployment/beat"}}
	p := plan.Plan{Action: plan.ActionHold, Env: testEnv, Namespace: testNS, Targets: []plan.Target{{
		Service: worker, Stream: worker, Tag: "prod", Hold: hold,
		Workloads: []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "beat", Triggered: true}},
	}}}
	run := func(p plan.Plan) {
		t.Helper()
		listed := map[[4]string]bool{}
		for _, a := range plan.AccessFor(p) {
			listed[[4]string{a.Verb, a.Group, a.Resource, a.Name}] = true
		}
		f.kube.ClearActions()
		f.images.ClearActions()
		res, err := f.set.Execute(ctx, p, nil)
		if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
			t.Fatalf("%s: %+v, %v", p.Action, res, err)
		}
		r := f.set.Follow(ctx, p, res, 0, nil)
		if p.Action == plan.ActionHold && len(r) != 0 || slices.ContainsFunc(r, func(r plan.RolloutResult) bool { return r.Outcome != plan.PhaseSettled }) {
			t.Errorf("%s followed rollouts %+v", p.Action, r)
		}
		for _, a := range append(f.images.Actions(), f.kube.Actions()...) {
			name := ""
			switch a := a.(type) {
			case interface{ GetName() string }:
				name = a.GetName()
			case clienttesting.UpdateAction:
				if o, ok := a.GetObject().(metav1.Object); ok {
					name = o.GetName()
				}
			}
			if !listed[[4]string{a.GetVerb(), a.GetResource().Group, a.GetResource().Resource, name}] {
				t.Errorf("%s made a call AccessFor does not list: %s %s %s", p.Action, a.GetVerb(), a.GetResource().Resource, name)
			}
		}
	}
	beat := func() string {
		d, err := f.kube.AppsV1().Deployments(testNS).Get(ctx, "beat", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Annotations[cluster.TriggerAnnotation]
	}

	run(p)
	ts, err := f.set.Tag(ctx, testEnv, worker, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Scheduled || ts.Hold == nil || ts.Hold.By != "alice" || ts.Hold.Since.IsZero() || !ts.Hold.Scheduled {
		t.Errorf("after hold: scheduled %v, hold %+v", ts.Scheduled, ts.Hold)
	}
	trs, err := cluster.ParseTriggers(beat())
	if err != nil || len(trs) != 2 || !trs[0].Paused || !trs[1].Paused || !strings.Contains(beat(), `"x-extra":"kept"`) {
		t.Errorf("after hold the triggers are %s (%v)", beat(), err)
	}

	p.Action = plan.ActionUnhold
	p.Targets[0].Hold = ts.Hold
	run(p)
	if ts, _ = f.set.Tag(ctx, testEnv, worker, "prod"); !ts.Scheduled || ts.Hold != nil {
		t.Errorf("after unhold: scheduled %v, hold %+v", ts.Scheduled, ts.Hold)
	}
	trs, _ = cluster.ParseTriggers(beat())
	if len(trs) != 2 || trs[0].Paused || !trs[1].Paused || !strings.Contains(beat(), `"x-extra":"kept"`) {
		t.Errorf("after unhold the triggers are %s: the worker's should run again, tokman's stay paused", beat())
	}
}
