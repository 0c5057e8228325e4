package commands

import (
	"reflect"
	"testing"
	"time"

	"github.com/deploybot/deploybot/plan"
)

func TestRenderPlan(t *testing.T) {
	w2, w3 := image(wrkRepo, "prod", 2), image(wrkRepo, "prod", 3)
	s1, s2 := short(wrkRepo, "prod", 2), short(wrkRepo, "prod", 3)
	tests := []struct {
		name  string
		input plan.Plan
		want  Output
	}{
		{
			name: "import: changed, unchanged and never imported",
			input: plan.Plan{Action: plan.ActionImport, Env: "prod", Namespace: "packit--prod", Policy: prodPolicy,
				Notes: []string{"packit-dashboard: asking the registry failed, left unchanged: boom"},
				Targets: []plan.Target{
					{Service: "packit-worker", From: w2, To: w3, Workloads: workerWorkloads},
					{Service: "packit-dashboard", From: image("quay.io/packit/dashboard", "prod", 1), Unchanged: true, Workloads: []plan.WorkloadRef{{Kind: "Deployment", Name: "packit-dashboard"}}},
					{Service: "tokman", To: image("quay.io/packit/tokman", "prod", 1)},
				}},
			want: Output{Title: "Plan: import prod (namespace packit--prod)", Sections: []Section{
				{Pre: true, Units: true, Lines: []string{
					"packit-worker: " + s1 + " → " + s2,
					"  rolls: deployment/packit-service-beat, statefulset/packit-worker-long-running, statefulset/packit-worker-short-running",
					"packit-dashboard: " + short("quay.io/packit/dashboard", "prod", 1) + " (unchanged)",
					"tokman: none → " + short("quay.io/packit/tokman", "prod", 1),
				}},
				{Lines: []string{"packit-dashboard: asking the registry failed, left unchanged: boom"}},
				{Lines: []string{"needs: confirm by requester, 1 approval by someone else, expires in 30m"}},
			}},
		},
		{
			name: "pin with stuck pods, approvals by two",
			input: plan.Plan{Action: plan.ActionPin, Env: "prod", Namespace: "packit--prod",
				Policy:  plan.Policy{Approvals: 2, Expiry: 90 * time.Minute},
				Targets: []plan.Target{{Service: "packit-worker", From: w3, To: w2, SpecFrom: w2.Ref, Workloads: workerWorkloads[:1], DeletePods: []string{"a-1", "b-0"}}}},
			want: Output{Title: "Plan: revert prod (namespace packit--prod)", Sections: []Section{
				{Pre: true, Units: true, Lines: []string{
					"packit-worker: " + s2 + " → " + s1 + "  (pinned, scheduled import off)",
					"  rolls: deployment/packit-service-beat",
					"  deletes stuck pods: a-1, b-0",
				}},
				{Lines: []string{"needs: 2 approvals by others, expires in 1h30m"}},
			}},
		},
		{
			name: "track, no policy",
			input: plan.Plan{Action: plan.ActionTrack, Env: "stg", Namespace: "packit--stg", Policy: plan.Policy{Expiry: time.Hour},
				Targets: []plan.Target{{Service: "packit-worker", From: w2, To: plan.Image{Ref: wrkRepo + ":stg"}, SpecFrom: wrkRepo + ":stg", Scheduled: true}}},
			want: Output{Title: "Plan: track stg (namespace packit--stg)", Sections: []Section{
				{Pre: true, Units: true, Lines: []string{"packit-worker: " + s1 + " → " + wrkRepo + ":stg  (tracking " + wrkRepo + ":stg, scheduled import on)"}},
				{Lines: []string{"needs: nothing more, runs right away"}},
			}},
		},
		{
			name: "rollback names the workload",
			input: plan.Plan{Action: plan.ActionRollback, Env: "prod", Namespace: "packit--prod", Policy: plan.Policy{Confirm: true, Expiry: 45 * time.Second},
				Targets: []plan.Target{{Service: "packit-service-fedmsg", From: plan.Image{Ref: "fedmsg:prod"}, To: image(fedmsgRepo, "prod", 1), ToRevision: 4, Workloads: []plan.WorkloadRef{fedmsgWorkload}}}},
			want: Output{Title: "Plan: undo prod (namespace packit--prod)", Sections: []Section{
				{Pre: true, Units: true, Lines: []string{"deployment/packit-service-fedmsg: fedmsg:prod → " + short(fedmsgRepo, "prod", 1) + "  (rollback to revision 4)"}},
				{Lines: []string{"needs: confirm by requester, expires in 45s"}},
			}},
		},
		{
			name:  "no targets",
			input: plan.Plan{Action: plan.ActionImport, Env: "prod", Namespace: "packit--prod", Policy: plan.Policy{Confirm: true, Expiry: 2 * time.Hour}},
			want: Output{Title: "Plan: import prod (namespace packit--prod)", Sections: []Section{
				{Pre: true, Units: true, Lines: []string{"no targets"}},
				{Lines: []string{"needs: confirm by requester, expires in 2h"}},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RenderPlan(tt.input); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("RenderPlan =\n%s\nwant\n%s", js(got), js(tt.want))
			}
		})
	}
}

func TestShortRef(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"digest reference", wrkRepo + "@" + digest(wrkRepo, "prod", 1), "packit-worker@" + short(wrkRepo, "prod", 1)},
		{"tag reference stays", "packit-worker:prod", "packit-worker:prod"},
		{"no registry", "img@sha256:abc", "img@abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shortRef(tt.input); got != tt.want {
				t.Errorf("shortRef(%q) = %q, want %q", tt.input, got, tt.want)
			}
		})
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		name  string
		input time.Time
		want  string
	}{
		{"unknown", time.Time{}, "-"},
		{"future", t0.Add(time.Minute), "just now"},
		{"seconds", t0.Add(-45 * time.Second), "45s ago"},
		{"minutes", t0.Add(-12 * time.Minute), "12m ago"},
		{"hours", t0.Add(-47 * time.Hour), "47h ago"},
		{"days", t0.Add(-5 * 24 * time.Hour), "5d ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := age(t0, tt.input); got != tt.want {
				t.Errorf("age = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuiltFrom(t *testing.T) {
	for _, tt := range []struct {
		img  plan.Image
		want string
	}{
		{plan.Image{}, ""},
		{plan.Image{Revision: "3f2a9c1d0e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f", Source: "https://github.com/packit/packit-service"}, "built from packit-service@3f2a9c1"},
		{plan.Image{Revision: "3f2a9c1d0e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f", Source: "https://gitlab.com/org/web.git/"}, "built from web@3f2a9c1"},
		{plan.Image{Revision: "v1.2.3"}, "built from revision v1.2.3"},
		{plan.Image{Source: "https://github.com/packit/ogr"}, ""},
	} {
		if got := builtFrom(tt.img); got != tt.want {
			t.Errorf("builtFrom(%+v) = %q, want %q", tt.img, got, tt.want)
		}
	}
}
