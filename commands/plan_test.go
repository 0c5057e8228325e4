package commands

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/plan"
)

var (
	prodPolicy = plan.Policy{Confirm: true, Approvals: 1, Expiry: 30 * time.Minute}
	stgPolicy  = plan.Policy{Confirm: true, Expiry: time.Hour}

	serviceWorkload = plan.WorkloadRef{Kind: plan.KindDeployment, Name: "packit-service", Triggered: true}
	workerWorkloads = []plan.WorkloadRef{
		{Kind: plan.KindDeployment, Name: "packit-service-beat", Triggered: true},
		{Kind: plan.KindStatefulSet, Name: "packit-worker-long-running", Triggered: true},
		{Kind: plan.KindStatefulSet, Name: "packit-worker-short-running", Triggered: true},
	}
	fedmsgRepo     = "quay.io/packit/packit-service-fedmsg"
	fedmsgWorkload = plan.WorkloadRef{Kind: plan.KindDeployment, Name: "packit-service-fedmsg"}
)

// prodPlan is a prod Plan with the access plan.AccessFor gives it.
func prodPlan(action plan.Action, notes []string, targets ...plan.Target) plan.Plan {
	return withAccess(plan.Plan{Action: action, Env: "prod", Namespace: "packit--prod", Targets: targets, Policy: prodPolicy, Notes: notes})
}

func stgPlan(action plan.Action, notes []string, targets ...plan.Target) plan.Plan {
	return withAccess(plan.Plan{Action: action, Env: "stg", Namespace: "packit--stg", Targets: targets, Policy: stgPolicy, Notes: notes})
}

func withAccess(p plan.Plan) plan.Plan {
	p.Access = plan.AccessFor(p)
	return p
}

// pinned is the target of pinning stream:tag from image `from` to image n of repo.
func pinned(service, repo, tag string, from plan.Image, n int, ws ...plan.WorkloadRef) plan.Target {
	to := image(repo, tag, n)
	return plan.Target{Service: service, Stream: service, Tag: tag, From: from, To: to, SpecFrom: to.Ref, Workloads: ws}
}

// planWant: BuildPlan gives exactly plan, or fails with a *UserError whose
// text has userErr, or with another error whose text has internalErr.
type planWant struct {
	plan        plan.Plan
	userErr     string
	internalErr string
}

func TestBuildPlan(t *testing.T) {
	stuckPod := []plan.StuckPod{{Name: "packit-worker-long-running-1", Revision: "packit-worker-long-running-7d9f", Reason: "CrashLoopBackOff"}}
	withStuck := func(f *fakeCluster) {
		f.stuck = map[string][]plan.StuckPod{"prod/packit-worker-long-running": stuckPod}
	}
	worker2 := image(wrkRepo, "prod", 2)
	undoNote := func(subject, verb, stream, to, why string) string {
		return subject + " " + verb + " " + stream + " through image.openshift.io/triggers, and the image-trigger controller would re-apply the tag's image after a rollout undo. " +
			"So this undo pins the tag to " + to + ", the image of " + why + "."
	}
	workersNote := "deployment/packit-service-beat, statefulset/packit-worker-long-running, statefulset/packit-worker-short-running"

	tests := []struct {
		name   string
		input  string
		caller plan.Caller
		setup  func(*fakeCluster)
		want   planWant
	}{
		// import
		{name: "import one service", input: "import prod worker", want: planWant{plan: prodPlan(plan.ActionImport, nil,
			plan.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "prod", From: worker2, To: image(wrkRepo, "prod", 3), Workloads: workerWorkloads},
		)}},
		{name: "import every service; a registry failure leaves one unchanged", input: "import prod", want: planWant{plan: prodPlan(plan.ActionImport,
			[]string{"packit-dashboard: asking the registry failed, left unchanged: " + registryError("quay.io/packit/dashboard:prod", "unauthorized: access to the requested resource is not authorized").Error()},
			plan.Target{Service: "packit-service", Stream: "packit-service", Tag: "prod", From: image(svcRepo, "prod", 2), To: image(svcRepo, "prod", 3), Workloads: []plan.WorkloadRef{serviceWorkload}},
			plan.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "prod", From: worker2, To: image(wrkRepo, "prod", 3), Workloads: workerWorkloads},
			plan.Target{Service: "packit-dashboard", Stream: "packit-dashboard", Tag: "prod", From: image("quay.io/packit/dashboard", "prod", 1), Unchanged: true,
				Workloads: []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "packit-dashboard", Triggered: true}}},
			plan.Target{Service: "tokman", Stream: "tokman", Tag: "prod", From: image("quay.io/packit/tokman", "prod", 4), To: image("quay.io/packit/tokman", "prod", 4), Unchanged: true,
				Workloads: []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "tokman", Triggered: true}}},
			plan.Target{Service: "packit-service-fedmsg", Stream: "packit-service-fedmsg", Tag: "prod", From: image(fedmsgRepo, "prod", 2), To: image(fedmsgRepo, "prod", 2), Unchanged: true,
				Workloads: []plan.WorkloadRef{fedmsgWorkload}},
		)}},
		{name: "import of a pinned tag re-imports the pinned image", input: "import stg worker", want: planWant{plan: stgPlan(plan.ActionImport,
			[]string{"packit-worker is pinned to " + wrkRepo + "@" + digest(wrkRepo, "stg", 1) + ", so import re-imports that image; `track packit-worker stg` follows the registry again."},
			plan.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "stg", From: image(wrkRepo, "stg", 1), To: image(wrkRepo, "stg", 1), Unchanged: true,
				Workloads: []plan.WorkloadRef{{Kind: plan.KindStatefulSet, Name: "packit-worker", Triggered: true}}},
		)}},
		{name: "import of a stream that is missing fails", input: "import stg tokman", want: planWant{
			internalErr: `reading tokman:stg in stg: imagestreamtags.image.openshift.io "tokman:stg" not found`,
		}},
		{name: "import needs a mapped user", input: "import prod", caller: stranger, want: planWant{userErr: "You are not mapped to a Kubernetes identity"}},

		// revert
		{name: "revert to a prefix", input: "revert worker prod " + digest(wrkRepo, "prod", 0)[7:14], want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{"The tag stays pinned, also through imports, until `track packit-worker prod`."},
			pinned("packit-worker", wrkRepo, "prod", worker2, 0, workerWorkloads...),
		)}},
		{name: "revert to a full digest", input: "revert service prod " + digest(svcRepo, "prod", 1), want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{"The tag stays pinned, also through imports, until `track packit-service prod`."},
			pinned("packit-service", svcRepo, "prod", image(svcRepo, "prod", 2), 1, serviceWorkload),
		)}},
		{name: "revert to the current image pins it", input: "revert service prod " + digest(svcRepo, "prod", 2)[7:19], want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{"packit-service already runs " + short(svcRepo, "prod", 2) + "; pinning keeps it there.", "The tag stays pinned, also through imports, until `track packit-service prod`."},
			pinned("packit-service", svcRepo, "prod", image(svcRepo, "prod", 2), 2, serviceWorkload),
		)}},
		{name: "revert to where the tag is pinned changes nothing", input: "revert worker stg " + digest(wrkRepo, "stg", 1)[7:14], want: planWant{plan: func() plan.Plan {
			t := pinned("packit-worker", wrkRepo, "stg", image(wrkRepo, "stg", 1), 1, plan.WorkloadRef{Kind: plan.KindStatefulSet, Name: "packit-worker", Triggered: true})
			t.Unchanged = true
			return stgPlan(plan.ActionPin, []string{"packit-worker:stg is already pinned to " + t.SpecFrom + "."}, t)
		}()}},
		{name: "revert to a digest not in the history lists it", input: "revert worker prod 0000000", want: planWant{
			userErr: "No image in the history of packit-worker:prod has digest 0000000.\nHistory\n  DIGEST        IMPORTED\n* " + short(wrkRepo, "prod", 2) + "  1h ago     current",
		}},
		{name: "revert to an ambiguous prefix lists the matches", input: "revert worker prod abcdef1",
			setup: func(f *fakeCluster) {
				ts := f.tags["prod/packit-worker:prod"]
				ts.History[1].Digest = "sha256:abcdef1" + strings.Repeat("1", 57)
				ts.History[2].Digest = "sha256:abcdef1" + strings.Repeat("2", 57)
				f.tags["prod/packit-worker:prod"] = ts
			},
			want: planWant{userErr: "Digest prefix abcdef1 matches 2 images of packit-worker:prod; give more characters.\nMatches\nabcdef1" + strings.Repeat("1", 57)},
		},

		// track
		{name: "track a pinned tag restores the env's scheduled import", input: "track worker stg", want: planWant{plan: stgPlan(plan.ActionTrack,
			[]string{"Unpins packit-worker:stg from " + wrkRepo + "@" + digest(wrkRepo, "stg", 1) + ".", "Scheduled import goes back on, as stg is configured."},
			plan.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "stg", From: image(wrkRepo, "stg", 1), To: image(wrkRepo, "stg", 2),
				SpecFrom: wrkRepo + ":stg", Scheduled: true, Workloads: []plan.WorkloadRef{{Kind: plan.KindStatefulSet, Name: "packit-worker", Triggered: true}}},
		)}},
		{name: "track a tracking tag imports the registry's image", input: "track worker prod", want: planWant{plan: prodPlan(plan.ActionTrack, nil,
			plan.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "prod", From: worker2, To: image(wrkRepo, "prod", 3),
				SpecFrom: wrkRepo + ":prod", Workloads: workerWorkloads},
		)}},
		{name: "track with nothing to do", input: "track service stg", want: planWant{plan: stgPlan(plan.ActionTrack,
			[]string{"packit-service:stg already tracks " + svcRepo + ":stg with scheduled import on, and has its image."},
			plan.Target{Service: "packit-service", Stream: "packit-service", Tag: "stg", From: image(svcRepo, "stg", 5), To: image(svcRepo, "stg", 5),
				SpecFrom: svcRepo + ":stg", Scheduled: true, Unchanged: true, Workloads: []plan.WorkloadRef{}},
		)}},
		{name: "track when the registry fails", input: "track dashboard prod", want: planWant{
			userErr: "Asking the registry for quay.io/packit/dashboard:prod failed, so tracking it would not import anything: " +
				registryError("quay.io/packit/dashboard:prod", "unauthorized: access to the requested resource is not authorized").Error(),
		}},

		// undo
		{name: "undo a triggered deployment pins the tag", input: "undo service prod", want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{
				undoNote("deployment/packit-service", "follows", "packit-service:prod", short(svcRepo, "prod", 1),
					"revision 1 of deployment/packit-service, the newest earlier revision with a different image"),
				"The tag stays pinned, also through imports, until `track packit-service prod`.",
			},
			pinned("packit-service", svcRepo, "prod", image(svcRepo, "prod", 2), 1, serviceWorkload),
		)}},
		{name: "undo to a revision", input: "undo worker prod --to-revision 1", want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{
				undoNote(workersNote, "follow", "packit-worker:prod", short(wrkRepo, "prod", 1), "revision 1 of deployment/packit-service-beat"),
				"Revision numbers are those of deployment/packit-service-beat (`history packit-worker prod`).",
				"The tag stays pinned, also through imports, until `track packit-worker prod`.",
			},
			pinned("packit-worker", wrkRepo, "prod", worker2, 1, workerWorkloads...),
		)}},
		{name: "undo to a missing revision", input: "undo service prod --to-revision 9", want: planWant{
			userErr: "deployment/packit-service has no revision 9 (it has 1, 2); `history packit-service prod` lists them.",
		}},
		{name: "undo with only one revision", input: "undo worker stg", want: planWant{
			userErr: "statefulset/packit-worker has no earlier revision with an image other than the current " + short(wrkRepo, "stg", 1) + ", so there is nothing to undo.",
		}},
		{name: "undo to a revision without a digest", input: "undo service prod",
			setup: func(f *fakeCluster) {
				f.revisions["prod/Deployment/packit-service"][0].Images = map[string]string{"packit-service": "packit-service:prod"}
			},
			want: planWant{userErr: "deployment/packit-service has no earlier revision with an image other than the current"},
		},
		{name: "undo to a given revision without a digest", input: "undo service prod --to-revision 1",
			setup: func(f *fakeCluster) {
				f.revisions["prod/Deployment/packit-service"][0].Images = map[string]string{"packit-service": "packit-service:prod"}
			},
			want: planWant{userErr: `Revision 1 of deployment/packit-service ran "packit-service:prod", which names no image digest, so the tag cannot be pinned to it.`},
		},
		{name: "undo an untriggered deployment rolls it back", input: "undo fedmsg prod", want: planWant{plan: prodPlan(plan.ActionRollback, nil,
			plan.Target{Service: "packit-service-fedmsg", From: image(fedmsgRepo, "prod", 2), To: image(fedmsgRepo, "prod", 1), Workloads: []plan.WorkloadRef{fedmsgWorkload}, ToRevision: 1},
		)}},
		{name: "undo to the current revision changes nothing", input: "undo fedmsg prod --to-revision 2", want: planWant{plan: prodPlan(plan.ActionRollback,
			[]string{"deployment/packit-service-fedmsg is already at revision 2."},
			plan.Target{Service: "packit-service-fedmsg", From: image(fedmsgRepo, "prod", 2), To: image(fedmsgRepo, "prod", 2), Workloads: []plan.WorkloadRef{fedmsgWorkload}, ToRevision: 2, Unchanged: true},
		)}},
		{name: "undo a paused deployment is refused", input: "undo fedmsg prod",
			setup: func(f *fakeCluster) { f.workloads["prod"][6].Paused = true },
			want:  planWant{userErr: "deployment/packit-service-fedmsg is paused, so it cannot be rolled back; resume it first"},
		},
		{name: "undo without workloads", input: "undo service stg", want: planWant{
			userErr: "No workloads follow packit-service:stg in stg, so there is nothing to undo.",
		}},
		{name: "undo with a stuck pod offers --force instead of going back further", input: "undo worker prod", setup: withStuck, want: planWant{
			userErr: "packit-worker is already rolling back to " + short(wrkRepo, "prod", 2) + ", but OrderedReady will not replace pods that never became Ready:\n" +
				"• packit-worker-long-running-1 of statefulset/packit-worker-long-running, on revision packit-worker-long-running-7d9f: CrashLoopBackOff\n" +
				"`undo packit-worker prod --force` deletes them so the controller recreates them; `--to-revision N` goes back elsewhere.",
		}},
		{name: "undo --force deletes the stuck pod and keeps the image", input: "undo worker prod --force", setup: withStuck, want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{
				undoNote(workersNote, "follow", "packit-worker:prod", short(wrkRepo, "prod", 2),
					"the current revision 2 of deployment/packit-service-beat (stuck pods are deleted so they are recreated on it)"),
				"packit-worker already runs " + short(wrkRepo, "prod", 2) + "; pinning keeps it there.",
				"The tag stays pinned, also through imports, until `track packit-worker prod`.",
				"--force deletes these stuck pods so the controller recreates them:",
				"• packit-worker-long-running-1 of statefulset/packit-worker-long-running, on revision packit-worker-long-running-7d9f: CrashLoopBackOff",
			},
			func() plan.Target {
				t := pinned("packit-worker", wrkRepo, "prod", worker2, 2, workerWorkloads...)
				t.DeletePods = []string{"packit-worker-long-running-1"}
				return t
			}(),
		)}},
		{name: "undo to a revision with a stuck pod offers --force", input: "undo worker prod --to-revision 1", setup: withStuck, want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{
				undoNote(workersNote, "follow", "packit-worker:prod", short(wrkRepo, "prod", 1), "revision 1 of deployment/packit-service-beat"),
				"Revision numbers are those of deployment/packit-service-beat (`history packit-worker prod`).",
				"The tag stays pinned, also through imports, until `track packit-worker prod`.",
				"These pods are stuck and OrderedReady will not replace them:",
				"• packit-worker-long-running-1 of statefulset/packit-worker-long-running, on revision packit-worker-long-running-7d9f: CrashLoopBackOff",
				"Add --force to delete them as part of this undo: `undo packit-worker prod --force`.",
			},
			pinned("packit-worker", wrkRepo, "prod", worker2, 1, workerWorkloads...),
		)}},
		{name: "undo --force with nothing stuck says so", input: "undo service prod --force", want: planWant{plan: prodPlan(plan.ActionPin,
			[]string{
				undoNote("deployment/packit-service", "follows", "packit-service:prod", short(svcRepo, "prod", 1),
					"revision 1 of deployment/packit-service, the newest earlier revision with a different image"),
				"The tag stays pinned, also through imports, until `track packit-service prod`.",
				"--force: no pod is stuck now, so none is deleted. If one stays stuck after this undo, `undo packit-service prod --force` deletes it.",
			},
			pinned("packit-service", svcRepo, "prod", image(svcRepo, "prod", 2), 1, serviceWorkload),
		)}},

		// not plans
		{name: "a read-only command has no plan", input: "status prod", want: planWant{internalErr: "it changes no cluster"}},
		{name: "a flow command has no plan", input: "approve #abc123", want: planWant{internalErr: "it changes no cluster"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			if tt.setup != nil {
				tt.setup(f)
			}
			d := testDeps(f)
			caller := alice
			if tt.caller.ChatID != "" {
				caller = tt.caller
			}
			res := Parse(d.Config, Input{Text: tt.input, Now: t0})
			if res.Kind != RunKind {
				t.Fatalf("Parse(%q): %s", tt.input, flatten(res.Reply))
			}
			p, err := BuildPlan(context.Background(), d, caller, res.Command)
			var ue *UserError
			switch {
			case tt.want.userErr != "":
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a *UserError with %q", err, tt.want.userErr)
				}
				if text := flatten(ue.Output); !strings.Contains(text, tt.want.userErr) {
					t.Errorf("user error:\n%s\nlacks\n%s", text, tt.want.userErr)
				}
				return
			case tt.want.internalErr != "":
				if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want.internalErr) {
					t.Fatalf("err = %v, want a non-user error with %q", err, tt.want.internalErr)
				}
				return
			case err != nil:
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(normalize(p), normalize(tt.want.plan)) {
				t.Errorf("plan =\n%s\nwant\n%s", js(p), js(tt.want.plan))
			}
			for _, m := range []string{"RegistryImage", "LookupImage"} {
				if res.Command.Name != "import" && res.Command.Name != "track" && f.calls[m] > 0 {
					t.Errorf("%s asked the registry (%s)", res.Command.Name, m)
				}
			}
		})
	}
}

// normalize makes nil and empty slices compare equal; JSON does not tell
// them apart either, so they hash the same.
func normalize(p plan.Plan) plan.Plan {
	var q plan.Plan
	b, _ := json.Marshal(p)
	_ = json.Unmarshal(b, &q)
	return q
}

func js(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// TestTrackWithoutImageLookup pins the fallback for a Cluster that cannot
// look up the registry tag of a pinned stream: the Plan names it and says the
// digest is learned on import.
func TestTrackWithoutImageLookup(t *testing.T) {
	f := newFake()
	d := testDeps(plainCluster{f})
	res := Parse(d.Config, Input{Text: "track worker stg", Now: t0})
	p, err := BuildPlan(context.Background(), d, alice, res.Command)
	if err != nil {
		t.Fatal(err)
	}
	want := stgPlan(plan.ActionTrack,
		[]string{
			"The digest " + wrkRepo + ":stg has now is known once it is imported.",
			"Unpins packit-worker:stg from " + wrkRepo + "@" + digest(wrkRepo, "stg", 1) + ".",
			"Scheduled import goes back on, as stg is configured.",
		},
		plan.Target{Service: "packit-worker", Stream: "packit-worker", Tag: "stg", From: image(wrkRepo, "stg", 1), To: plan.Image{Ref: wrkRepo + ":stg"},
			SpecFrom: wrkRepo + ":stg", Scheduled: true, Workloads: []plan.WorkloadRef{{Kind: plan.KindStatefulSet, Name: "packit-worker", Triggered: true}}},
	)
	if !reflect.DeepEqual(normalize(p), normalize(want)) {
		t.Errorf("plan =\n%s\nwant\n%s", js(p), js(want))
	}
	if f.calls["RegistryImage"] != 0 {
		t.Errorf("RegistryImage of a pinned tag would answer with the pinned image; it was asked")
	}
}

// TestBuildPlanIsStable pins that the same state gives the same hash, though
// services are read in parallel: approvals bind to it.
func TestBuildPlanIsStable(t *testing.T) {
	d := testDeps(newFake())
	res := Parse(d.Config, Input{Text: "import prod", Now: t0})
	first, err := BuildPlan(context.Background(), d, alice, res.Command)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		p, err := BuildPlan(context.Background(), d, alice, res.Command)
		if err != nil {
			t.Fatal(err)
		}
		if p.Hash() != first.Hash() {
			t.Fatalf("hash changed between identical builds:\n%s\n%s", js(first), js(p))
		}
	}
	d.Cluster.(*fakeCluster).registry[wrkRepo+":prod"] = image(wrkRepo, "prod", 4)
	p, err := BuildPlan(context.Background(), d, alice, res.Command)
	if err != nil {
		t.Fatal(err)
	}
	if p.Hash() == first.Hash() {
		t.Errorf("a newer registry image did not change the hash")
	}
}

// TestTrackLooksUpTheRegistryTag pins why ImageLookup exists: for a pinned
// tag, RegistryImage would answer with the pinned image, so track asks about
// REPOSITORY:TAG instead.
func TestTrackLooksUpTheRegistryTag(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"pinned tag", "track worker stg", []string{wrkRepo + ":stg"}},
		{"tracking tag", "track worker prod", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			d := testDeps(f)
			res := Parse(d.Config, Input{Text: tt.input, Now: t0})
			if _, err := BuildPlan(context.Background(), d, alice, res.Command); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.lookups, tt.want) {
				t.Errorf("looked up %v, want %v", f.lookups, tt.want)
			}
			if wantRegistry := len(tt.want) == 0; (f.calls["RegistryImage"] > 0) != wantRegistry {
				t.Errorf("RegistryImage calls = %d, want them: %v", f.calls["RegistryImage"], wantRegistry)
			}
		})
	}
}
