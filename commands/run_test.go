package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/plan"
)

var (
	alice    = plan.Caller{Platform: "terminal", ChatID: "alice", Name: "alice", User: "alice", Groups: []string{"packit-devs"}}
	carol    = plan.Caller{Platform: "terminal", ChatID: "carol", Name: "carol", User: "carol"}
	stranger = plan.Caller{Platform: "slack", ChatID: "T1/U123", Name: "mallory"}
)

const (
	svcRepo = "quay.io/packit/packit-service"
	wrkRepo = "quay.io/packit/packit-worker"
)

// runWant: the reply has these exact lines, or Run fails with a *UserError
// whose text has userErr, or with another error whose text has internalErr.
type runWant struct {
	lines       []string
	userErr     string
	internalErr string
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		caller plan.Caller
		input  string
		setup  func(*fakeCluster, *fakeAccess)
		want   runWant
	}{
		{name: "help lists every command", caller: alice, input: "help", want: runWant{lines: []string{
			"deploybot commands",
			"import ENV [SERVICE...] [--dry-run]      import the registry's current images into the env's tags (all services by default)",
			"undo SERVICE [ENV] [--to-revision N] [--force] [--dry-run]",
			"Environments: stg, prod.",
			"Services: packit-service (service), packit-worker (worker), packit-dashboard (dashboard), tokman, packit-service-fedmsg (fedmsg).",
		}}},
		{name: "help works unmapped", caller: stranger, input: "help revert", want: runWant{lines: []string{
			"revert: pin the stream tag to an image from its history (oc tag --source=docker REPO@DIGEST)",
			"revert SERVICE [ENV] DIGEST [--dry-run]",
			"  --dry-run             show the plan, change nothing",
			"  --break-glass REASON  change the env inside a freeze window, saying REASON; needs one approval more",
			"revert worker prod 1a2b3c4",
			"stg: needs: confirm by requester, expires in 1h",
			"prod: needs: confirm by requester, 1 approval by someone else, expires in 30m",
		}}},
		{name: "help of a flow command", caller: alice, input: "help approve", want: runWant{lines: []string{
			"approve [ID]",
			"anyone but the requester whose Kubernetes identity passes the same access checks as the request",
		}}},

		{name: "status of an env", caller: alice, input: "status prod", want: runWant{lines: []string{
			"status prod (namespace packit--prod)",
			"packit-worker",
			"image    " + short(wrkRepo, "prod", 2) + "  imported 1h ago",
			"source   tracking quay.io/packit/packit-worker:prod",
			"import   scheduled off",
			"deployment/packit-service-beat           2/2 ready  settled",
			"statefulset/packit-worker-long-running   2/2 ready  settled",
			"statefulset/packit-worker-short-running  2/2 ready  settled",
			"deployment/packit-service-fedmsg  2/2 ready  settled  (does not follow the tag)",
		}}},
		{name: "status shows pinned tags", caller: alice, input: "status stg worker", want: runWant{lines: []string{
			"source   pinned " + wrkRepo + "@" + digest(wrkRepo, "stg", 1) + " (`track packit-worker stg` follows the registry again)",
			"import   scheduled off",
		}}},
		{name: "status shows import errors and rollouts", caller: alice, input: "status prod service",
			setup: func(f *fakeCluster, _ *fakeAccess) {
				ts := f.tags["prod/packit-service:prod"]
				ts.ImportError = "manifest unknown"
				f.tags["prod/packit-service:prod"] = ts
				w := &f.workloads["prod"][0]
				w.Ready, w.Updated, w.Settled = 1, 1, false
			},
			want: runWant{lines: []string{
				"error    last import failed: manifest unknown",
				"deployment/packit-service  1/2 ready  rolling (1/2 updated)",
			}}},
		{name: "status shows a service it cannot read", caller: alice, input: "status stg tokman service", want: runWant{lines: []string{
			"error    reading tokman:stg in stg: imagestreamtags.image.openshift.io \"tokman:stg\" not found",
			"image    " + short(svcRepo, "stg", 5) + "  imported 1h ago",
			"no workloads follow packit-service:stg",
		}}},
		{name: "status without an environment shows every one", caller: alice, input: "status", want: runWant{lines: []string{
			"status of every environment",
			"stg (namespace packit--stg)",
			"SERVICE                IMAGE         SOURCE    IMPORTED   WORKLOADS",
			"packit-service         " + short(svcRepo, "stg", 5) + "  tracking  1h ago     no workloads",
			"packit-worker          " + short(wrkRepo, "stg", 1) + "  pinned    1h ago     1 workload settled",
			"tokman                 error: reading tokman:stg in stg: imagestreamtags.image.openshift.io \"tokman:stg\" not found",
			"prod (namespace packit--prod)",
			"packit-worker          " + short(wrkRepo, "prod", 2) + "  tracking  1h ago     3 workloads settled",
			"packit-service-fedmsg  " + short("quay.io/packit/packit-service-fedmsg", "prod", 2) + "  tracking  1h ago     1 workload settled",
			"`status ENV` shows one environment in full: sources, scheduled imports, import errors, each workload.",
		}}},
		{name: "status of a service in every environment", caller: alice, input: "status worker",
			setup: func(f *fakeCluster, _ *fakeAccess) {
				w := &f.workloads["prod"][1]
				w.Ready, w.Updated, w.Settled = 1, 1, false
			},
			want: runWant{lines: []string{
				"packit-worker  " + short(wrkRepo, "stg", 1) + "  pinned    1h ago     1 workload settled",
				"packit-worker  " + short(wrkRepo, "prod", 2) + "  tracking  1h ago     statefulset/packit-worker-short-running 1/2 ready rolling (1/2 updated)",
			}}},
		{name: "status needs a mapped user", caller: stranger, input: "status prod", want: runWant{
			userErr: `You are not mapped to a Kubernetes identity, so you may run only ` + "`help` and `whoami`" + `. Ask an admin to add you to the config under identities.users with platform: slack, id: "T1/U123"`,
		}},

		{name: "images newest first", caller: carol, input: "images worker prod", want: runWant{lines: []string{
			"images packit-worker:prod (namespace packit--prod)",
			"source: tracking quay.io/packit/packit-worker:prod",
			"  DIGEST        IMPORTED",
			"* " + short(wrkRepo, "prod", 2) + "  1h ago     current",
			"  " + short(wrkRepo, "prod", 1) + "  2h ago",
			"  " + short(wrkRepo, "prod", 0) + "  3h ago",
			"Current image",
			wrkRepo + "@" + digest(wrkRepo, "prod", 2),
			"`revert packit-worker prod DIGEST` pins one of these (7 characters are enough); `images packit-worker prod DIGEST` shows one's full digest.",
		}}},
		{name: "images of one digest shows it in full", caller: carol, input: "images worker prod " + short(wrkRepo, "prod", 1)[:7], want: runWant{lines: []string{
			"image " + short(wrkRepo, "prod", 1) + " of packit-worker:prod (namespace packit--prod)",
			digest(wrkRepo, "prod", 1),
			wrkRepo + "@" + digest(wrkRepo, "prod", 1),
			"imported 2026-11-24 08:00:00 UTC (2h ago), current: no",
			"`revert packit-worker prod " + digest(wrkRepo, "prod", 1) + "` pins it.",
		}}},
		{name: "images of a digest not in the history", caller: carol, input: "images worker prod 0000000", want: runWant{
			userErr: "No image in the history of packit-worker:prod has digest 0000000.",
		}},
		{name: "images of an empty tag", caller: carol, input: "images worker prod",
			setup: func(f *fakeCluster, _ *fakeAccess) {
				f.tags["prod/packit-worker:prod"] = tagWith("packit-worker", "prod", false)
			},
			want: runWant{lines: []string{"Nothing has been imported into this tag yet."}}},
		{name: "images of a missing stream", caller: carol, input: "images tokman stg", want: runWant{
			internalErr: `reading tokman:stg in stg: imagestreamtags.image.openshift.io "tokman:stg" not found`,
		}},

		{name: "history of every workload", caller: carol, input: "history worker prod", want: runWant{lines: []string{
			"history packit-worker (namespace packit--prod)",
			"deployment/packit-service-beat",
			"  REVISION  IMAGE                         CHANGE-CAUSE",
			"  1         packit-worker@" + short(wrkRepo, "prod", 1) + "    image update 1",
			"* 2         packit-worker@" + short(wrkRepo, "prod", 2) + "    image update 2",
			"statefulset/packit-worker-long-running",
			"* 3         packit-worker@" + short(wrkRepo, "prod", 2) + "    image update 3",
		}}},
		{name: "history of one revision", caller: carol, input: "history service prod --revision 1", want: runWant{lines: []string{
			"deployment/packit-service revision 1",
			"created  2026-11-24 08:00:00 UTC (2h ago)",
			"cause    image update 1",
			"image    packit-service: " + svcRepo + "@" + digest(svcRepo, "prod", 1),
		}}},
		{name: "history of a revision some workloads lack", caller: carol, input: "history worker prod --revision 3", want: runWant{lines: []string{
			"statefulset/packit-worker-long-running revision 3",
			"current  yes",
			"deployment/packit-service-beat has no revision 3 (it has 1, 2).",
		}}},
		{name: "history of a revision no workload has", caller: carol, input: "history service prod --revision 9", want: runWant{
			userErr: "deployment/packit-service has no revision 9 (it has 1, 2).",
		}},
		{name: "history of a service without workloads", caller: carol, input: "history service stg", want: runWant{lines: []string{
			"No workloads follow packit-service:stg in stg.",
		}}},

		{name: "whoami lists what may be run", caller: alice, input: "whoami", want: runWant{lines: []string{
			"You are alice on terminal, Kubernetes user alice, groups packit-devs.",
			"prod (namespace packit--prod): needs: confirm by requester, 1 approval by someone else, expires in 30m",
			"import  yes",
			"revert  yes",
			"track   yes",
			"undo    yes",
		}}},
		{name: "whoami of a reader", caller: carol, input: "whoami",
			setup: func(_ *fakeCluster, a *fakeAccess) {
				a.deny = map[string][]plan.Access{"carol": {
					{Verb: "create", Resource: "imagestreamimports"},
					{Verb: "update", Resource: "imagestreamtags"},
					{Verb: "patch", Resource: "deployments"},
				}}
			},
			want: runWant{lines: []string{
				"import  no: may not create imagestreamimports: RBAC: not allowed",
				"revert  no: may not update imagestreamtags packit-service:prod: RBAC: not allowed",
				"undo    no: may not update imagestreamtags packit-service:prod: RBAC: not allowed",
			}}},
		{name: "whoami names the services denied by name", caller: alice, input: "whoami",
			setup: func(_ *fakeCluster, a *fakeAccess) {
				a.deny = map[string][]plan.Access{"alice": {{Verb: "update", Resource: "imagestreamtags", Namespace: "packit--prod", Name: "tokman:prod"}}}
			},
			want: runWant{lines: []string{
				"revert  yes, except tokman (may not update imagestreamtags tokman:prod: RBAC: not allowed)",
				"import  yes",
			}}},
		{name: "whoami unmapped", caller: stranger, input: "whoami", want: runWant{lines: []string{
			"whoami",
			`You are not mapped to a Kubernetes identity, so you may run only ` + "`help` and `whoami`" + `. Ask an admin to add you to the config under identities.users with platform: slack, id: "T1/U123" and your Kubernetes user.`,
		}}},

		{name: "flow commands are not run here", caller: alice, input: "approve #abc123", want: runWant{internalErr: "not a read-only command"}},
		{name: "mutating commands are not run here", caller: alice, input: "import prod", want: runWant{internalErr: "not a read-only command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, a := newFake(), &fakeAccess{}
			if tt.setup != nil {
				tt.setup(f, a)
			}
			d := testDeps(f)
			d.Access = a
			res := Parse(d.Config, Input{Text: tt.input, Now: t0})
			if res.Kind != RunKind {
				t.Fatalf("Parse(%q): %s", tt.input, flatten(res.Reply))
			}
			out, err := Run(context.Background(), d, tt.caller, res.Command)
			checkRun(t, out, err, tt.want)
			// status looks up the running images by digest, for their
			// revision labels (the cluster remembers each digest's answer);
			// no read-only command asks what a tag names now.
			if f.calls["RegistryImage"] > 0 || f.calls["LookupImage"] > 0 && res.Command.Name != "status" {
				t.Errorf("a read-only command asked the registry: %v", f.calls)
			}
		})
	}
}

func checkRun(t *testing.T, out Output, err error, want runWant) {
	t.Helper()
	var ue *UserError
	switch {
	case want.userErr != "":
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want a *UserError with %q", err, want.userErr)
		}
		if text := flatten(ue.Output); !strings.Contains(text, want.userErr) {
			t.Errorf("user error:\n%s\nlacks %q", text, want.userErr)
		}
		if !ue.Output.Private {
			t.Errorf("user error reply is not private")
		}
		return
	case want.internalErr != "":
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), want.internalErr) {
			t.Fatalf("err = %v, want a non-user error with %q", err, want.internalErr)
		}
		return
	case err != nil:
		t.Fatalf("err = %v", err)
	}
	got := map[string]bool{}
	for _, l := range strings.Split(flatten(out), "\n") {
		got[l] = true
	}
	for _, l := range want.lines {
		if !got[l] {
			t.Errorf("reply lacks line %q:\n%s", l, flatten(out))
		}
	}
}

func TestUserErrorText(t *testing.T) {
	tests := []struct {
		name  string
		input *UserError
		want  string
	}{
		{"lines joined", &UserError{Output: Output{Sections: []Section{{Lines: []string{"a.", "b."}}, {Lines: []string{"c."}}}}}, "a. b. c."},
		{"title when no lines", &UserError{Output: Output{Title: "nope"}}, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = fmt.Errorf("planning: %w", tt.input)
			var ue *UserError
			if !errors.As(err, &ue) || ue.Error() != tt.want {
				t.Errorf("errors.As / Error() = %v, want %q", ue, tt.want)
			}
		})
	}
}
