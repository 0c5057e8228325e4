package cluster_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openshift/api/image/docker10"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/registry"
)

const worker = "packit-worker"

func TestTag(t *testing.T) {
	failing := imageStream("failing", false, 1)
	failing.Status.Tags[0].Conditions = []imagev1.TagEventCondition{{
		Type: imagev1.ImportSuccess, Status: corev1.ConditionFalse, Reason: "Unauthorized", Message: "you may not have access",
	}}
	pinned := imageStream("pinned", false, 1, 2)
	pinned.Spec.Tags[0].From.Name = ref("pinned", 1)
	f := newFixture(t, nil, []*imagev1.ImageStream{imageStream(worker, true, 2, 1), failing, pinned})

	tests := []struct {
		name, stream, tag string
		check             func(t *testing.T, st plan.TagState)
		notFound          bool
	}{
		{name: "tracking tag with history", stream: worker, tag: "prod", check: func(t *testing.T, st plan.TagState) {
			if st.SpecFrom != repo(worker)+":prod" || st.SpecFromKind != "DockerImage" || !st.Scheduled || st.Pinned() {
				t.Errorf("spec = %q %q scheduled=%v pinned=%v", st.SpecFrom, st.SpecFromKind, st.Scheduled, st.Pinned())
			}
			if len(st.History) != 2 || st.History[0].Digest != dig(worker, 2) || st.History[1].Digest != dig(worker, 1) {
				t.Fatalf("history = %+v, want digests 2 then 1", st.History)
			}
			if st.Current != st.History[0] || st.Current.Ref != ref(worker, 2) || st.Current.Generation != 2 || st.Current.Created.IsZero() {
				t.Errorf("current = %+v", st.Current)
			}
			if st.ImportError != "" {
				t.Errorf("ImportError = %q, want none", st.ImportError)
			}
		}},
		{name: "last import failed", stream: "failing", tag: "prod", check: func(t *testing.T, st plan.TagState) {
			if st.ImportError != "you may not have access" {
				t.Errorf("ImportError = %q", st.ImportError)
			}
		}},
		{name: "pinned", stream: "pinned", tag: "prod", check: func(t *testing.T, st plan.TagState) {
			if !st.Pinned() || st.Current.Digest != dig("pinned", 1) {
				t.Errorf("state = %+v, want pinned at 1", st)
			}
		}},
		{name: "no such tag", stream: worker, tag: "stg", notFound: true},
		{name: "no such stream", stream: "tokman", tag: "prod", notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := f.set.Tag(context.Background(), testEnv, tc.stream, tc.tag)
			if tc.notFound {
				if !apierrors.IsNotFound(err) {
					t.Fatalf("Tag error = %v, want NotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Tag: %v", err)
			}
			tc.check(t, st)
		})
	}
}

func TestRegistryImage(t *testing.T) {
	refTag := imageStream("follower", false, 1)
	refTag.Spec.Tags[0].From = &corev1.ObjectReference{Kind: "ImageStreamTag", Name: "packit-worker:prod"}
	tests := []struct {
		name    string
		stream  string
		setup   func(f *fixture)
		want    plan.Image
		wantErr string
	}{
		{name: "what an import would bring", stream: worker, setup: func(f *fixture) { f.push(worker, 3) },
			want: plan.Image{Ref: ref(worker, 3), Digest: dig(worker, 3)}},
		{name: "registry refuses", stream: worker, setup: func(f *fixture) {
			f.push(worker, 3)
			f.reg.Fail(repo(worker)+":prod", metav1.StatusReasonUnauthorized)
		}, wantErr: "you may not have access to the container image"},
		{name: "tag gone from registry", stream: worker, wantErr: "not found"},
		{name: "tag that is not a registry image", stream: "follower", wantErr: "cannot be re-imported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil, []*imagev1.ImageStream{imageStream(worker, true, 2, 1), refTag})
			if tc.setup != nil {
				tc.setup(f)
			}
			before := f.stream(t, tc.stream)
			got, err := f.set.RegistryImage(context.Background(), testEnv, tc.stream, "prod")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("RegistryImage error = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil || got != tc.want {
				t.Fatalf("RegistryImage = %+v, %v; want %+v", got, err, tc.want)
			}
			if after := f.stream(t, tc.stream); !reflect.DeepEqual(before, after) {
				t.Errorf("RegistryImage changed the stream:\nbefore %+v\nafter  %+v", before, after)
			}
			for _, isi := range imports(f) {
				if isi.Spec.Import {
					t.Errorf("RegistryImage sent an ImageStreamImport with spec.import true")
				}
			}
		})
	}
}

// imports returns the ImageStreamImports the client created.
func imports(f *fixture) []*imagev1.ImageStreamImport {
	var out []*imagev1.ImageStreamImport
	for _, a := range f.images.Actions() {
		if c, ok := a.(clienttesting.CreateAction); ok && a.GetVerb() == "create" && a.GetResource().Resource == "imagestreamimports" {
			out = append(out, c.GetObject().(*imagev1.ImageStreamImport))
		}
	}
	return out
}

func importPlan(targets ...plan.Target) plan.Plan {
	return plan.Plan{Action: plan.ActionImport, Env: testEnv, Namespace: testNS, Targets: targets}
}

func importTarget(stream string, from, to int) plan.Target {
	t := plan.Target{Service: stream, Stream: stream, Tag: "prod",
		From: plan.Image{Ref: ref(stream, from), Digest: dig(stream, from)}}
	if to > 0 {
		t.To = plan.Image{Ref: ref(stream, to), Digest: dig(stream, to)}
	}
	return t
}

func TestExecuteImport(t *testing.T) {
	tests := []struct {
		name        string
		registryAt  int
		planTo      int
		setup       func(f *fixture)
		wantOutcome string
		wantError   string
		wantCurrent int // the tag's current digest number afterwards
		wantImports int // ImageStreamImports with spec.import true
	}{
		{name: "newer image imported", registryAt: 3, planTo: 3, wantOutcome: plan.PhaseChanged, wantCurrent: 3, wantImports: 1},
		{name: "registry has what the tag has", registryAt: 2, planTo: 2, wantOutcome: plan.PhaseUnchanged, wantCurrent: 2, wantImports: 1},
		{name: "registry refuses the pull", registryAt: 3, planTo: 0,
			setup:       func(f *fixture) { f.reg.Fail(repo(worker)+":prod", metav1.StatusReasonUnauthorized) },
			wantOutcome: plan.PhaseFailed, wantError: "you may not have access", wantCurrent: 2, wantImports: 1},
		{name: "409 conflict is retried with a fresh get", registryAt: 3, planTo: 3,
			setup:       func(f *fixture) { f.srv.ConflictOnNextImport() },
			wantOutcome: plan.PhaseChanged, wantCurrent: 3, wantImports: 2},
		{name: "registry moved since approval", registryAt: 4, planTo: 3, wantOutcome: plan.PhaseFailed,
			wantError:   "the registry moved since the plan was approved: planned " + plan.ShortDigest(dig(worker, 3)) + ", now " + plan.ShortDigest(dig(worker, 4)),
			wantCurrent: 2, wantImports: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil, []*imagev1.ImageStream{imageStream(worker, true, 2, 1)})
			f.push(worker, tc.registryAt)
			if tc.setup != nil {
				tc.setup(f)
			}
			var log progressLog
			res, err := f.set.Execute(context.Background(), importPlan(importTarget(worker, 2, tc.planTo)), log.report)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			tr := res.Targets[0]
			if tr.Outcome != tc.wantOutcome || !strings.Contains(tr.Error, tc.wantError) {
				t.Fatalf("result = %+v, want %s %q", tr, tc.wantOutcome, tc.wantError)
			}
			if tc.wantOutcome == plan.PhaseChanged && (tr.From.Digest != dig(worker, 2) || tr.To.Digest != dig(worker, 3) || tr.To.Ref != ref(worker, 3)) {
				t.Errorf("result from/to = %+v → %+v", tr.From, tr.To)
			}
			st, err := f.set.Tag(context.Background(), testEnv, worker, "prod")
			if err != nil {
				t.Fatal(err)
			}
			if st.Current.Digest != dig(worker, tc.wantCurrent) {
				t.Errorf("current digest = %s, want #%d", plan.ShortDigest(st.Current.Digest), tc.wantCurrent)
			}
			if !st.Scheduled || st.SpecFrom != repo(worker)+":prod" {
				t.Errorf("import changed the tag's spec: %+v", st)
			}
			var real []*imagev1.ImageStreamImport
			for _, isi := range imports(f) {
				if isi.Spec.Import {
					real = append(real, isi)
				}
			}
			if len(real) != tc.wantImports {
				t.Fatalf("%d imports sent, want %d", len(real), tc.wantImports)
			}
			for _, isi := range real {
				checkImportRequest(t, isi)
			}
			if ps := log.snapshot(); len(ps) == 0 || ps[len(ps)-1].Phase != tc.wantOutcome || ps[len(ps)-1].Service != worker {
				t.Errorf("progress = %+v, want a %s report for %s", ps, tc.wantOutcome, worker)
			}
		})
	}
}

// checkImportRequest asserts the ImageStreamImport is the one oc import-image sends.
func checkImportRequest(t *testing.T, isi *imagev1.ImageStreamImport) {
	t.Helper()
	if isi.Name != worker || isi.ResourceVersion == "" || len(isi.Spec.Images) != 1 {
		t.Fatalf("import = %+v, want one image for %s bound to a resourceVersion", isi, worker)
	}
	img := isi.Spec.Images[0]
	want := imagev1.ImageImportSpec{
		From:            corev1.ObjectReference{Kind: "DockerImage", Name: repo(worker) + ":prod"},
		To:              &corev1.LocalObjectReference{Name: "prod"},
		ImportPolicy:    imagev1.TagImportPolicy{Scheduled: true, ImportMode: imagev1.ImportModeLegacy},
		ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
	}
	if !reflect.DeepEqual(img, want) {
		t.Errorf("import image spec = %+v, want %+v", img, want)
	}
}

func TestExecuteImportRunsTargetsInParallelAndInOrder(t *testing.T) {
	streams := []string{"packit-service", worker, "tokman"}
	var iss []*imagev1.ImageStream
	for _, s := range streams {
		iss = append(iss, imageStream(s, false, 1))
	}
	f := newFixture(t, nil, iss)
	p := importPlan()
	for _, s := range streams {
		f.push(s, 2)
		p.Targets = append(p.Targets, importTarget(s, 1, 2))
	}
	p.Targets[1].Unchanged = true // shown, not acted upon
	res, err := f.set.Execute(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{plan.PhaseChanged, plan.PhaseUnchanged, plan.PhaseChanged}
	for i, tr := range res.Targets {
		if tr.Service != streams[i] || tr.Outcome != want[i] {
			t.Errorf("target %d = %+v, want %s %s", i, tr, streams[i], want[i])
		}
	}
	for _, isi := range imports(f) {
		if isi.Name == worker {
			t.Errorf("unchanged target %s was imported", worker)
		}
	}
	if st := f.stream(t, worker); st.Status.Tags[0].Items[0].Image != dig(worker, 1) {
		t.Errorf("unchanged target's tag moved")
	}
}

func TestExecuteRefusesWrongNamespace(t *testing.T) {
	f := newFixture(t, nil, []*imagev1.ImageStream{imageStream(worker, true, 1)})
	p := importPlan(importTarget(worker, 1, 2))
	p.Namespace = "packit--stg"
	if _, err := f.set.Execute(context.Background(), p, nil); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("Execute error = %v, want a namespace mismatch", err)
	}
	p.Namespace, p.Action = testNS, "frobnicate"
	if _, err := f.set.Execute(context.Background(), p, nil); err == nil {
		t.Errorf("unknown action executed")
	}
	if len(imports(f)) != 0 {
		t.Errorf("a refused plan sent imports")
	}
}

func tagPlan(action plan.Action, stream, specFrom string, scheduled bool, to plan.Image) plan.Plan {
	return plan.Plan{Action: action, Env: testEnv, Namespace: testNS, Targets: []plan.Target{{
		Service: stream, Stream: stream, Tag: "prod", SpecFrom: specFrom, Scheduled: scheduled, To: to,
		From: plan.Image{Ref: ref(stream, 2), Digest: dig(stream, 2)},
	}}}
}

// verbs lists "verb resource" of the image client's calls.
func verbs(f *fixture) []string {
	var out []string
	for _, a := range f.images.Actions() {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

func TestExecutePin(t *testing.T) {
	pinTo := plan.Image{Ref: ref(worker, 1), Digest: dig(worker, 1)}
	tests := []struct {
		name      string
		opts      []fakeopenshift.Option
		stream    *imagev1.ImageStream
		setup     func(f *fixture)
		wantErr   string
		wantCalls []string
	}{
		{name: "ImageStreamTag update", wantCalls: []string{"update imagestreamtags"}},
		{name: "update NotFound falls back to create",
			// Older openshift-apiservers answer an ImageStreamTag update of a
			// tag that is not in the stream's spec with NotFound.
			stream: func() *imagev1.ImageStream { s := imageStream(worker, false, 2, 1); s.Spec.Tags = nil; return s }(),
			setup: func(f *fixture) {
				f.images.PrependReactor("update", "imagestreamtags", func(a clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewNotFound(imagev1.Resource("imagestreamtags"), worker+":prod")
				})
			},
			wantCalls: []string{"update imagestreamtags", "create imagestreamtags"}},
		{name: "MethodNotSupported falls back to the stream's spec.tags",
			opts:      []fakeopenshift.Option{fakeopenshift.WithoutImageStreamTags(metav1.StatusReasonMethodNotAllowed)},
			wantCalls: []string{"update imagestreamtags", "create imagestreamtags", "get imagestreams", "update imagestreams"}},
		{name: "Forbidden falls back to the stream's spec.tags",
			opts:      []fakeopenshift.Option{fakeopenshift.WithoutImageStreamTags(metav1.StatusReasonForbidden)},
			wantCalls: []string{"update imagestreamtags", "create imagestreamtags", "get imagestreams", "update imagestreams"}},
		{name: "conflicting stream update is retried",
			opts:      []fakeopenshift.Option{fakeopenshift.WithoutImageStreamTags(metav1.StatusReasonMethodNotAllowed), fakeopenshift.WithConflictOnNextUpdate()},
			wantCalls: []string{"update imagestreamtags", "create imagestreamtags", "get imagestreams", "update imagestreams", "update imagestreamtags", "create imagestreamtags", "get imagestreams", "update imagestreams"}},
		{name: "conflicting tag update is retried", setup: func(f *fixture) { f.srv.ConflictOnNextTagUpdate() },
			wantCalls: []string{"update imagestreamtags", "update imagestreamtags"}},
		{name: "create NotFound is an error, not a fallback",
			opts:      []fakeopenshift.Option{fakeopenshift.WithoutImageStreamTags(metav1.StatusReasonNotFound)},
			wantErr:   "not found",
			wantCalls: []string{"update imagestreamtags", "create imagestreamtags"}},
		{name: "the tag moved since the plan: refused, nothing changed",
			// Someone imported #3 after the Plan (from #2) was approved.
			stream:    imageStream(worker, true, 3, 2, 1),
			wantErr:   "moved since the plan was approved: planned from " + plan.ShortDigest(dig(worker, 2)) + ", now " + plan.ShortDigest(dig(worker, 3)),
			wantCalls: nil},
		{name: "already at the pinned image: pinned again (idempotent)",
			stream:    imageStream(worker, true, 1, 2),
			wantCalls: []string{"update imagestreamtags"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := tc.stream
			if stream == nil {
				stream = imageStream(worker, true, 2, 1)
			}
			f := newFixture(t, nil, []*imagev1.ImageStream{stream}, tc.opts...)
			f.push(worker, 3)
			if tc.setup != nil {
				tc.setup(f)
			}
			f.images.ClearActions()
			res, err := f.set.Execute(context.Background(), tagPlan(plan.ActionPin, worker, ref(worker, 1), false, pinTo), nil)
			if err != nil {
				t.Fatal(err)
			}
			// Every pin first reads the stream: is the tag still where the
			// Plan found it?
			want := append([]string{"get imagestreams"}, tc.wantCalls...)
			if got := verbs(f); !reflect.DeepEqual(got, want) {
				t.Errorf("calls = %v, want %v", got, want)
			}
			tr := res.Targets[0]
			if tc.wantErr != "" {
				if tr.Outcome != plan.PhaseFailed || !strings.Contains(tr.Error, tc.wantErr) {
					t.Fatalf("result = %+v, want failure %q", tr, tc.wantErr)
				}
				return
			}
			if tr.Outcome != plan.PhaseChanged || tr.To != pinTo {
				t.Fatalf("result = %+v, want changed to #1", tr)
			}
			is := f.stream(t, worker)
			var spec *imagev1.TagReference
			for i := range is.Spec.Tags {
				if is.Spec.Tags[i].Name == "prod" {
					spec = &is.Spec.Tags[i]
				}
			}
			if spec == nil || spec.From == nil || spec.From.Kind != "DockerImage" || spec.From.Name != ref(worker, 1) ||
				spec.ImportPolicy.Scheduled || spec.ReferencePolicy.Type != imagev1.SourceTagReferencePolicy {
				t.Errorf("spec tag = %+v, want DockerImage %s, scheduled false, referencePolicy Source", spec, ref(worker, 1))
			}
			st, err := f.set.Tag(context.Background(), testEnv, worker, "prod")
			if err != nil || st.Current.Digest != dig(worker, 1) || !st.Pinned() {
				t.Errorf("tag after pin = %+v, %v; want pinned at #1 (the server imports generation-0 tags)", st, err)
			}
		})
	}
}

func TestExecuteTrack(t *testing.T) {
	tests := []struct {
		name      string
		scheduled bool
	}{
		{"stg: scheduled import restored", true},
		{"prod: scheduled import stays off", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pinned := imageStream(worker, false, 1, 2)
			pinned.Spec.Tags[0].From.Name = ref(worker, 1)
			f := newFixture(t, nil, []*imagev1.ImageStream{pinned})
			f.push(worker, 3)
			p := tagPlan(plan.ActionTrack, worker, repo(worker)+":prod", tc.scheduled, plan.Image{Ref: ref(worker, 3), Digest: dig(worker, 3)})
			res, err := f.set.Execute(context.Background(), p, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr := res.Targets[0]
			if tr.Outcome != plan.PhaseChanged || tr.To.Digest != dig(worker, 3) {
				t.Fatalf("result = %+v, want changed to #3", tr)
			}
			st, err := f.set.Tag(context.Background(), testEnv, worker, "prod")
			if err != nil {
				t.Fatal(err)
			}
			if st.Pinned() || st.SpecFrom != repo(worker)+":prod" || st.Scheduled != tc.scheduled || st.Current.Digest != dig(worker, 3) {
				t.Errorf("tag after track = %+v, want tracking %s:prod, scheduled %v, at #3", st, repo(worker), tc.scheduled)
			}
			is := imports(f)
			if len(is) == 0 || !is[len(is)-1].Spec.Import || is[len(is)-1].Spec.Images[0].ImportPolicy.Scheduled != tc.scheduled {
				t.Errorf("track did not import with scheduled %v: %+v", tc.scheduled, is)
			}
		})
	}
}

// TestImportedImageLabels: the images the server reports for a lookup or an
// import carry the OCI labels of their config (dockerImageMetadata, as JSON
// or as a decoded docker10.DockerImage), read as the image's revision,
// source and creation time; metadata that is missing, unreadable or
// without a config is simply no labels.
func TestImportedImageLabels(t *testing.T) {
	const sha = "3f2a9c1d0e4b5a6978c8d7e6f5a4b3c2d1e0f9a8"
	created := time.Date(2025, 6, 2, 14, 30, 0, 0, time.UTC)
	labels := map[string]string{
		registry.LabelRevision: sha,
		registry.LabelSource:   "https://github.com/packit/packit-service",
		registry.LabelCreated:  created.Format(time.RFC3339),
	}
	labelled := plan.Image{Ref: ref(worker, 3), Digest: dig(worker, 3), Revision: sha, Source: labels[registry.LabelSource], Created: created}
	unlabelled := plan.Image{Ref: ref(worker, 3), Digest: dig(worker, 3)}
	// metadata replaces the importer's dockerImageMetadata in every answer.
	metadata := func(m runtime.RawExtension) func(f *fixture) {
		return func(f *fixture) {
			f.images.PrependReactor("create", "imagestreamimports", func(a clienttesting.Action) (bool, runtime.Object, error) {
				isi := a.(clienttesting.CreateAction).GetObject().(*imagev1.ImageStreamImport).DeepCopy()
				isi.Status.Images = []imagev1.ImageImportStatus{{
					Status: metav1.Status{Status: metav1.StatusSuccess},
					Image:  &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: dig(worker, 3)}, DockerImageReference: ref(worker, 3), DockerImageMetadata: m},
				}}
				return true, isi, nil
			})
		}
	}
	tests := []struct {
		name   string
		labels map[string]string
		setup  func(f *fixture)
		want   plan.Image
	}{
		{name: "labels from the importer's JSON", labels: labels, want: labelled},
		{name: "labels from a decoded DockerImage", setup: metadata(runtime.RawExtension{Object: &docker10.DockerImage{
			Config: &docker10.DockerConfig{Labels: labels},
		}}), want: labelled},
		{name: "image without labels", want: unlabelled},
		{name: "no metadata", setup: metadata(runtime.RawExtension{}), want: unlabelled},
		{name: "unreadable metadata", setup: metadata(runtime.RawExtension{Raw: []byte(`{"Config": [`)}), want: unlabelled},
		{name: "unreadable created label", labels: map[string]string{registry.LabelRevision: sha, registry.LabelCreated: "yesterday"},
			want: plan.Image{Ref: ref(worker, 3), Digest: dig(worker, 3), Revision: sha}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil, []*imagev1.ImageStream{imageStream(worker, true, 2, 1)})
			f.push(worker, 2)
			f.reg.PushImage(repo(worker), "prod", dig(worker, 3), tc.labels)
			if tc.setup != nil {
				tc.setup(f)
			}
			ctx := context.Background()
			if got, err := f.set.RegistryImage(ctx, testEnv, worker, "prod"); err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RegistryImage = %+v, %v; want %+v", got, err, tc.want)
			}
			if got, err := f.set.LookupImage(ctx, testEnv, worker, repo(worker)+"@"+dig(worker, 3)); err != nil || got.Revision != tc.want.Revision || !got.Created.Equal(tc.want.Created) {
				t.Errorf("LookupImage = %+v, %v; want revision %q created %v", got, err, tc.want.Revision, tc.want.Created)
			}
			if tc.setup != nil {
				return // the replaced answers do not import
			}
			res, err := f.set.Execute(ctx, importPlan(importTarget(worker, 2, 3)), func(plan.Progress) {})
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if got := res.Targets[0].To; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("imported image = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestLookupDigestOnce: what a digest names never changes, so looking one
// up (status asks for every running image's revision) makes one
// ImageStreamImport per digest; a tag is asked every time.
func TestLookupDigestOnce(t *testing.T) {
	f := newFixture(t, nil, []*imagev1.ImageStream{imageStream(worker, true, 2, 1)})
	f.push(worker, 2)
	f.reg.PushImage(repo(worker), "prod", dig(worker, 2), map[string]string{registry.LabelRevision: "3f2a9c1d0e4b5a6978c8d7e6f5a4b3c2d1e0f9a8"})
	imports := func() int {
		n := 0
		for _, a := range f.images.Actions() {
			if a.GetVerb() == "create" && a.GetResource().Resource == "imagestreamimports" {
				n++
			}
		}
		return n
	}
	ctx := context.Background()
	for range 3 {
		img, err := f.set.LookupImage(ctx, testEnv, worker, ref(worker, 2))
		if err != nil || img.Revision == "" {
			t.Fatalf("LookupImage = %+v, %v", img, err)
		}
	}
	if n := imports(); n != 1 {
		t.Errorf("3 lookups of one digest made %d ImageStreamImports, want 1", n)
	}
	for range 2 {
		if _, err := f.set.LookupImage(ctx, testEnv, worker, repo(worker)+":prod"); err != nil {
			t.Fatal(err)
		}
	}
	if n := imports(); n != 3 {
		t.Errorf("then 2 lookups of a tag made %d ImageStreamImports in all, want 3", n)
	}
}

// TestRevisionLabel: registry.revisionLabel names the label the revision
// is read from on OpenShift too.
func TestRevisionLabel(t *testing.T) {
	f := newFixture(t, nil, []*imagev1.ImageStream{imageStream(worker, true, 2, 1)})
	f.push(worker, 2)
	f.reg.PushImage(repo(worker), "prod", dig(worker, 2), map[string]string{"vcs-ref": "3f2a9c1", registry.LabelRevision: "not-this"})
	set := cluster.NewSet(map[string]cluster.EnvClient{
		testEnv: {Kube: f.kube, Images: f.images.ImageV1(), Namespace: testNS, RevisionLabel: "vcs-ref"},
	})
	if img, err := set.LookupImage(context.Background(), testEnv, worker, ref(worker, 2)); err != nil || img.Revision != "3f2a9c1" {
		t.Errorf("LookupImage = %+v, %v; want revision 3f2a9c1 from vcs-ref", img, err)
	}
}
