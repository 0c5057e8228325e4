package fakeopenshift

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/openshift/api/image/docker10"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

const (
	testNS   = "packit--prod"
	testRepo = "quay.io/packit/packit-worker"
)

var (
	testNow = time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)
	dig     = func(n int) string { return Digest(testRepo, "prod", n) }
)

// seededStream is packit-worker with tag prod tracking quay.io/packit/packit-worker:prod,
// history digests #2 (current) and #1, as a real server would have stored it.
func seededStream() *imagev1.ImageStream {
	gen := int64(2)
	return &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{
			Name: "packit-worker", Namespace: testNS, ResourceVersion: "500", Generation: 2, UID: "uid-1",
			Annotations: map[string]string{imagev1.DockerImageRepositoryCheckAnnotation: "2025-05-01T00:00:00Z"},
		},
		Spec: imagev1.ImageStreamSpec{
			LookupPolicy: imagev1.ImageLookupPolicy{Local: true},
			Tags: []imagev1.TagReference{{
				Name:            "prod",
				From:            &corev1.ObjectReference{Kind: "DockerImage", Name: testRepo + ":prod"},
				Generation:      &gen,
				ImportPolicy:    imagev1.TagImportPolicy{Scheduled: true, ImportMode: imagev1.ImportModeLegacy},
				ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
			}},
		},
		Status: imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{{
			Tag: "prod",
			Items: []imagev1.TagEvent{
				{Created: metav1.NewTime(testNow.Add(-48 * time.Hour)), DockerImageReference: testRepo + "@" + dig(2), Image: dig(2), Generation: 2},
				{Created: metav1.NewTime(testNow.Add(-96 * time.Hour)), DockerImageReference: testRepo + "@" + dig(1), Image: dig(1), Generation: 1},
			},
		}}},
	}
}

type fixture struct {
	client *kubefake.ImageClientset
	reg    *Registry
	srv    *Server
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	reg := NewRegistry()
	for n := 1; n <= 3; n++ {
		reg.Push(testRepo, "prod", dig(n)) // the registry is one image ahead (#3) of the stream
	}
	client := kubefake.NewImageClientset(seededStream())
	srv := Install(client, reg, append([]Option{WithClock(func() time.Time { return testNow })}, opts...)...)
	return &fixture{client: client, reg: reg, srv: srv}
}

func (f *fixture) stream(t *testing.T) *imagev1.ImageStream {
	t.Helper()
	is, err := f.client.ImageV1().ImageStreams(testNS).Get(context.Background(), "packit-worker", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting stream: %v", err)
	}
	return is
}

// ocImport builds the ImageStreamImport `oc import-image packit-worker:prod` sends.
func ocImport(is *imagev1.ImageStream, importIt bool) *imagev1.ImageStreamImport {
	tag := specTag(is, "prod")
	return &imagev1.ImageStreamImport{
		ObjectMeta: metav1.ObjectMeta{Name: is.Name, Namespace: is.Namespace, ResourceVersion: is.ResourceVersion},
		Spec: imagev1.ImageStreamImportSpec{
			Import: importIt,
			Images: []imagev1.ImageImportSpec{{
				From:            corev1.ObjectReference{Kind: "DockerImage", Name: tag.From.Name},
				To:              &corev1.LocalObjectReference{Name: "prod"},
				ImportPolicy:    imagev1.TagImportPolicy{Scheduled: tag.ImportPolicy.Scheduled, ImportMode: imagev1.ImportModeLegacy},
				ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
			}},
		},
	}
}

func items(is *imagev1.ImageStream, tag string) []string {
	var out []string
	if st := statusTag(is, tag); st != nil {
		for _, it := range st.Items {
			out = append(out, it.Image)
		}
	}
	return out
}

func importCondition(is *imagev1.ImageStream, tag string) *imagev1.TagEventCondition {
	if st := statusTag(is, tag); st != nil {
		for i := range st.Conditions {
			if st.Conditions[i].Type == imagev1.ImportSuccess {
				return &st.Conditions[i]
			}
		}
	}
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestImageStreamImport(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(f *fixture, isi *imagev1.ImageStreamImport)
		// wantErr, when set, checks the Create error.
		wantErr func(error) bool
		// wantStatus is status.images[0].status.status; wantReason its reason.
		wantStatus string
		wantReason metav1.StatusReason
		// wantItems is the stored history afterwards, newest first.
		wantItems []string
		// wantStored says whether the stream was written (resourceVersion moved).
		wantStored bool
		// wantCondition is the stored ImportSuccess=False message ("" = none).
		wantCondition bool
	}{
		{
			name:       "newer digest in the registry becomes the current image",
			wantStatus: metav1.StatusSuccess,
			wantItems:  []string{dig(3), dig(2), dig(1)},
			wantStored: true,
		},
		{
			name:       "unchanged digest stores nothing",
			prepare:    func(f *fixture, _ *imagev1.ImageStreamImport) { f.reg.Push(testRepo, "prod", dig(2)) },
			wantStatus: metav1.StatusSuccess,
			wantItems:  []string{dig(2), dig(1)},
		},
		{
			name:       "dry run (spec.import false) stores nothing",
			prepare:    func(_ *fixture, isi *imagev1.ImageStreamImport) { isi.Spec.Import = false },
			wantStatus: metav1.StatusSuccess,
			wantItems:  []string{dig(2), dig(1)},
		},
		{
			name: "unauthorized pull fails per image and records the condition",
			prepare: func(f *fixture, _ *imagev1.ImageStreamImport) {
				f.reg.Fail(testRepo+":prod", metav1.StatusReasonUnauthorized)
			},
			wantStatus:    metav1.StatusFailure,
			wantReason:    metav1.StatusReasonUnauthorized,
			wantItems:     []string{dig(2), dig(1)},
			wantStored:    true,
			wantCondition: true,
		},
		{
			name: "manifest unknown fails per image",
			prepare: func(_ *fixture, isi *imagev1.ImageStreamImport) {
				isi.Spec.Images[0].From.Name = testRepo + ":nosuchtag"
			},
			wantStatus:    metav1.StatusFailure,
			wantReason:    metav1.StatusReasonNotFound,
			wantItems:     []string{dig(2), dig(1)},
			wantStored:    true,
			wantCondition: true,
		},
		{
			name: "pinned tag re-imports the pinned digest, not the registry tag",
			prepare: func(f *fixture, isi *imagev1.ImageStreamImport) {
				is := seededStream()
				specTag(is, "prod").From.Name = testRepo + "@" + dig(2)
				if err := f.client.Tracker().Update(imageStreamsGVR, is, testNS); err != nil {
					panic(err)
				}
				isi.Spec.Images[0].From.Name = testRepo + "@" + dig(2)
			},
			wantStatus: metav1.StatusSuccess,
			wantItems:  []string{dig(2), dig(1)},
		},
		{
			name:    "stale resourceVersion is a conflict",
			prepare: func(_ *fixture, isi *imagev1.ImageStreamImport) { isi.ResourceVersion = "499" },
			wantErr: apierrors.IsConflict,
		},
		{
			name:    "injected conflict",
			prepare: func(f *fixture, _ *imagev1.ImageStreamImport) { f.srv.ConflictOnNextImport() },
			wantErr: apierrors.IsConflict,
		},
		{
			name:    "different UID is not found",
			prepare: func(_ *fixture, isi *imagev1.ImageStreamImport) { isi.UID = "other" },
			wantErr: apierrors.IsNotFound,
		},
		{
			name:    "only DockerImage sources are valid",
			prepare: func(_ *fixture, isi *imagev1.ImageStreamImport) { isi.Spec.Images[0].From.Kind = "ImageStreamTag" },
			wantErr: apierrors.IsInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.stream(t)
			isi := ocImport(before, true)
			if tt.prepare != nil {
				tt.prepare(f, isi)
			}
			got, err := f.client.ImageV1().ImageStreamImports(testNS).Create(context.Background(), isi, metav1.CreateOptions{})
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("Create error = %v, want a different kind", err)
				}
				if after := f.stream(t); after.ResourceVersion != before.ResourceVersion {
					t.Errorf("a refused import changed the stream")
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if len(got.Status.Images) != 1 {
				t.Fatalf("status.images = %d entries, want 1", len(got.Status.Images))
			}
			st := got.Status.Images[0].Status
			if st.Status != tt.wantStatus || st.Reason != tt.wantReason {
				t.Errorf("status.images[0].status = %s/%s (%s), want %s/%s", st.Status, st.Reason, st.Message, tt.wantStatus, tt.wantReason)
			}
			after := f.stream(t)
			if g := items(after, "prod"); !equalStrings(g, tt.wantItems) {
				t.Errorf("stored history = %v, want %v", g, tt.wantItems)
			}
			if stored := after.ResourceVersion != before.ResourceVersion; stored != tt.wantStored {
				t.Errorf("stream written = %v, want %v", stored, tt.wantStored)
			}
			if c := importCondition(after, "prod"); (c != nil) != tt.wantCondition {
				t.Errorf("ImportSuccess condition = %+v, want present %v", c, tt.wantCondition)
			} else if c != nil && (c.Status != corev1.ConditionFalse || c.Message == "") {
				t.Errorf("ImportSuccess condition = %+v, want False with a message", c)
			}
			if isi.Spec.Import {
				if got.Status.Import == nil || got.Status.Import.ResourceVersion != after.ResourceVersion {
					t.Errorf("status.import is not the stored stream")
				}
			} else if got.Status.Import != nil {
				t.Errorf("dry run returned status.import")
			}
		})
	}
}

func TestImportRecordsServerFields(t *testing.T) {
	f := newFixture(t)
	before := f.stream(t)
	if _, err := f.client.ImageV1().ImageStreamImports(testNS).Create(context.Background(), ocImport(before, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	after := f.stream(t)
	ev := statusTag(after, "prod").Items[0]
	want := imagev1.TagEvent{Created: metav1.NewTime(testNow), DockerImageReference: testRepo + "@" + dig(3), Image: dig(3), Generation: 3}
	if ev != want {
		t.Errorf("new tag event = %+v, want %+v", ev, want)
	}
	ref := specTag(after, "prod")
	if after.Generation != 3 || ref.Generation == nil || *ref.Generation != 3 {
		t.Errorf("generation = %d, spec tag generation = %v; want 3 and 3", after.Generation, ref.Generation)
	}
	if !ref.ImportPolicy.Scheduled || ref.From.Name != testRepo+":prod" {
		t.Errorf("spec tag = %+v, want from %s:prod, scheduled kept", ref, testRepo)
	}
}

func TestImportFailureThenSuccessClearsCondition(t *testing.T) {
	f := newFixture(t)
	f.reg.Fail(testRepo+":prod", metav1.StatusReasonUnauthorized)
	if _, err := f.client.ImageV1().ImageStreamImports(testNS).Create(context.Background(), ocImport(f.stream(t), true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if importCondition(f.stream(t), "prod") == nil {
		t.Fatal("failed import left no condition")
	}
	f.reg.Recover(testRepo + ":prod")
	if _, err := f.client.ImageV1().ImageStreamImports(testNS).Create(context.Background(), ocImport(f.stream(t), true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	after := f.stream(t)
	if c := importCondition(after, "prod"); c != nil {
		t.Errorf("condition after a successful import = %+v, want none", c)
	}
	if got := items(after, "prod")[0]; got != dig(3) {
		t.Errorf("current = %s, want #3", got)
	}
}

func TestImportCreatesMissingStream(t *testing.T) {
	f := newFixture(t)
	isi := ocImport(f.stream(t), true)
	isi.Name, isi.ResourceVersion = "tokman", ""
	if _, err := f.client.ImageV1().ImageStreamImports(testNS).Create(context.Background(), isi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	is, err := f.client.ImageV1().ImageStreams(testNS).Get(context.Background(), "tokman", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("stream not created: %v", err)
	}
	if got := items(is, "prod"); !equalStrings(got, []string{dig(3)}) || is.Generation != 1 {
		t.Errorf("created stream history %v generation %d, want [#3] and 1", got, is.Generation)
	}
}

// ocTag builds the ImageStreamTag `oc tag [--source=docker] REF ns/packit-worker:prod` sends.
func ocTag(ref string, scheduled bool) *imagev1.ImageStreamTag {
	zero := int64(0)
	return &imagev1.ImageStreamTag{
		ObjectMeta: metav1.ObjectMeta{Name: "packit-worker:prod", Namespace: testNS},
		Tag: &imagev1.TagReference{
			Name:            "prod",
			From:            &corev1.ObjectReference{Kind: "DockerImage", Name: ref},
			Generation:      &zero,
			ImportPolicy:    imagev1.TagImportPolicy{Scheduled: scheduled},
			ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
		},
	}
}

func TestImageStreamTagWrites(t *testing.T) {
	pin := testRepo + "@" + dig(1)
	tests := []struct {
		name    string
		opts    []Option
		prepare func(f *fixture)
		call    func(f *fixture) error
		wantErr func(error) bool
		// wantFrom/wantScheduled describe the stored spec tag; wantCurrent the status item.
		wantFrom      string
		wantScheduled bool
		wantCurrent   string
	}{
		{
			name: "update pins the tag and the pinned image becomes current",
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ocTag(pin, false), metav1.UpdateOptions{})
				return err
			},
			wantFrom: pin, wantCurrent: dig(1),
		},
		{
			name: "update back to the registry tag tracks it again with the env's scheduled",
			prepare: func(f *fixture) {
				if _, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ocTag(pin, false), metav1.UpdateOptions{}); err != nil {
					panic(err)
				}
			},
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ocTag(testRepo+":prod", true), metav1.UpdateOptions{})
				return err
			},
			wantFrom: testRepo + ":prod", wantScheduled: true, wantCurrent: dig(3),
		},
		{
			name: "update with a stale resourceVersion is a conflict",
			call: func(f *fixture) error {
				ist := ocTag(pin, false)
				ist.ResourceVersion = "1"
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ist, metav1.UpdateOptions{})
				return err
			},
			wantErr: apierrors.IsConflict,
		},
		{
			name: "update with a resourceVersion of a missing stream is not found",
			call: func(f *fixture) error {
				ist := ocTag(pin, false)
				ist.Name, ist.ResourceVersion = "nosuch:prod", "500"
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ist, metav1.UpdateOptions{})
				return err
			},
			wantErr: apierrors.IsNotFound,
		},
		{
			name: "create of an existing tag already exists",
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Create(context.Background(), ocTag(pin, false), metav1.CreateOptions{})
				return err
			},
			wantErr: apierrors.IsAlreadyExists,
		},
		{
			name: "server without imagestreamtags update: method not supported",
			opts: []Option{WithoutImageStreamTags(metav1.StatusReasonMethodNotAllowed)},
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ocTag(pin, false), metav1.UpdateOptions{})
				return err
			},
			wantErr: apierrors.IsMethodNotSupported,
		},
		{
			name: "old server: update not supported, create still works",
			opts: []Option{WithoutImageStreamTags(metav1.StatusReasonMethodNotAllowed, "update")},
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ocTag(pin, false), metav1.UpdateOptions{})
				if !apierrors.IsMethodNotSupported(err) {
					return fmt.Errorf("update error = %v, want MethodNotSupported", err)
				}
				// the tag exists, so oc's create fallback meets AlreadyExists next
				_, err = f.client.ImageV1().ImageStreamTags(testNS).Create(context.Background(), ocTag(pin, false), metav1.CreateOptions{})
				return err
			},
			wantErr: apierrors.IsAlreadyExists,
		},
		{
			name: "server not serving imagestreamtags: not found on create too",
			opts: []Option{WithoutImageStreamTags(metav1.StatusReasonNotFound)},
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Create(context.Background(), ocTag(pin, false), metav1.CreateOptions{})
				return err
			},
			wantErr: apierrors.IsNotFound,
		},
		{
			name: "forbidden imagestreamtags",
			opts: []Option{WithoutImageStreamTags(metav1.StatusReasonForbidden)},
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ocTag(pin, false), metav1.UpdateOptions{})
				return err
			},
			wantErr: apierrors.IsForbidden,
		},
		{
			name:    "oc tag fallback: ImageStream update inside RetryOnConflict survives one conflict",
			opts:    []Option{WithoutImageStreamTags(metav1.StatusReasonMethodNotAllowed)},
			prepare: func(f *fixture) { f.srv.ConflictOnNextUpdate() },
			call: func(f *fixture) error {
				return retry.RetryOnConflict(retry.DefaultRetry, func() error {
					is, err := f.client.ImageV1().ImageStreams(testNS).Get(context.Background(), "packit-worker", metav1.GetOptions{})
					if err != nil {
						return err
					}
					setSpecTag(is, *ocTag(pin, false).Tag)
					_, err = f.client.ImageV1().ImageStreams(testNS).Update(context.Background(), is, metav1.UpdateOptions{})
					return err
				})
			},
			wantFrom: pin, wantCurrent: dig(1),
		},
		{
			name: "pin to a digest the registry does not have records the failure",
			call: func(f *fixture) error {
				_, err := f.client.ImageV1().ImageStreamTags(testNS).Update(context.Background(), ocTag(testRepo+"@"+dig(9), false), metav1.UpdateOptions{})
				return err
			},
			wantFrom: testRepo + "@" + dig(9), wantCurrent: dig(2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts...)
			if tt.prepare != nil {
				tt.prepare(f)
			}
			before := f.stream(t)
			err := tt.call(f)
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("error = %v, want a different kind", err)
				}
				if f.stream(t).ResourceVersion != before.ResourceVersion {
					t.Errorf("a refused write changed the stream")
				}
				return
			}
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			after := f.stream(t)
			ref := specTag(after, "prod")
			if ref.From.Name != tt.wantFrom || ref.ImportPolicy.Scheduled != tt.wantScheduled {
				t.Errorf("spec tag from %s scheduled %v, want %s %v", ref.From.Name, ref.ImportPolicy.Scheduled, tt.wantFrom, tt.wantScheduled)
			}
			if after.Generation <= before.Generation || ref.Generation == nil || *ref.Generation != after.Generation {
				t.Errorf("generation %d → %d, spec tag generation %v: want a bump carried by the tag", before.Generation, after.Generation, ref.Generation)
			}
			if got := items(after, "prod")[0]; got != tt.wantCurrent {
				t.Errorf("current image = %s, want %s", got, tt.wantCurrent)
			}
		})
	}
}

func TestImageStreamTagGetAndCreate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ist, err := f.client.ImageV1().ImageStreamTags(testNS).Get(ctx, "packit-worker:prod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ist.Image.Name != dig(2) || ist.Image.DockerImageReference != testRepo+"@"+dig(2) || ist.Tag == nil || ist.Tag.From.Name != testRepo+":prod" {
		t.Errorf("get = image %s %s tag %+v", ist.Image.Name, ist.Image.DockerImageReference, ist.Tag)
	}
	for _, name := range []string{"packit-worker:stg", "nosuch:prod"} {
		if _, err := f.client.ImageV1().ImageStreamTags(testNS).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get %s error = %v, want NotFound", name, err)
		}
	}
	if _, err := f.client.ImageV1().ImageStreamTags(testNS).Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsBadRequest(err) {
		t.Errorf("get without a tag error = %v, want BadRequest", err)
	}
	stg := ocTag(testRepo+":stg", true)
	stg.Name, stg.Tag.Name = "packit-worker:stg", "stg"
	f.reg.Push(testRepo, "stg", Digest(testRepo, "stg", 1))
	if _, err := f.client.ImageV1().ImageStreamTags(testNS).Create(ctx, stg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create stg: %v", err)
	}
	if got := items(f.stream(t), "stg"); !equalStrings(got, []string{Digest(testRepo, "stg", 1)}) {
		t.Errorf("stg history after create = %v", got)
	}
	list, err := f.client.ImageV1().ImageStreamTags(testNS).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Errorf("list = %v, %v; want 2 tags", list, err)
	}
}

func TestImageStreamUpdateSemantics(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		mutate  func(is *imagev1.ImageStream)
		wantErr func(error) bool
		// wantGeneration is the stored generation afterwards.
		wantGeneration int64
		wantItems      []string
	}{
		{
			name:           "stale resourceVersion is a conflict",
			mutate:         func(is *imagev1.ImageStream) { is.ResourceVersion = "1" },
			wantErr:        apierrors.IsConflict,
			wantGeneration: 2,
		},
		{
			name:           "status written through the main resource is ignored",
			mutate:         func(is *imagev1.ImageStream) { is.Status.Tags = nil },
			wantGeneration: 2,
			wantItems:      []string{dig(2), dig(1)},
		},
		{
			name:           "a label change keeps the generation",
			mutate:         func(is *imagev1.ImageStream) { is.Labels = map[string]string{"app": "packit"} },
			wantGeneration: 2,
			wantItems:      []string{dig(2), dig(1)},
		},
		{
			// 3 for the spec change, 4 for the import that records the new image
			// (the import resets the spec tag generation, as on a real server).
			name: "a spec change bumps the generation and imports the changed tag",
			mutate: func(is *imagev1.ImageStream) {
				specTag(is, "prod").From.Name = testRepo + "@" + dig(1)
			},
			wantGeneration: 4,
			wantItems:      []string{dig(1), dig(2), dig(1)},
		},
		{
			name: "users cannot set a spec tag generation other than 0",
			mutate: func(is *imagev1.ImageStream) {
				specTag(is, "prod").Generation = int64Ptr(99)
			},
			wantGeneration: 2,
			wantItems:      []string{dig(2), dig(1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			is := f.stream(t)
			tt.mutate(is)
			_, err := f.client.ImageV1().ImageStreams(testNS).Update(ctx, is, metav1.UpdateOptions{})
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("Update error = %v", err)
				}
			} else if err != nil {
				t.Fatalf("Update: %v", err)
			}
			after := f.stream(t)
			if after.Generation != tt.wantGeneration {
				t.Errorf("generation = %d, want %d", after.Generation, tt.wantGeneration)
			}
			if tt.wantErr == nil {
				if after.ResourceVersion == "500" {
					t.Errorf("resourceVersion not bumped")
				}
				if g := items(after, "prod"); !equalStrings(g, tt.wantItems) {
					t.Errorf("history = %v, want %v", g, tt.wantItems)
				}
			}
		})
	}
}

func TestImageStreamPatchBumpsVersion(t *testing.T) {
	f := newFixture(t)
	patch := []byte(`{"metadata":{"labels":{"team":"packit"}}}`)
	if _, err := f.client.ImageV1().ImageStreams(testNS).Patch(context.Background(), "packit-worker", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	after := f.stream(t)
	if after.Labels["team"] != "packit" || after.ResourceVersion == "500" {
		t.Errorf("patched stream labels %v rv %s", after.Labels, after.ResourceVersion)
	}
}

func TestImportScheduled(t *testing.T) {
	f := newFixture(t)
	prodOnly := seededStream()
	prodOnly.Name = "tokman"
	specTag(prodOnly, "prod").ImportPolicy.Scheduled = false
	if err := f.client.Tracker().Add(prodOnly); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.ImportScheduled(); err != nil {
		t.Fatal(err)
	}
	if got := items(f.stream(t), "prod")[0]; got != dig(3) {
		t.Errorf("scheduled tag current = %s, want #3", got)
	}
	tok, _ := f.client.ImageV1().ImageStreams(testNS).Get(context.Background(), "tokman", metav1.GetOptions{})
	if got := items(tok, "prod")[0]; got != dig(2) {
		t.Errorf("unscheduled tag current = %s, want #2 (untouched)", got)
	}
}

// TestImportReportsImageMetadata: a successful import carries the image's
// config in status.images[].image.dockerImageMetadata, a docker10
// DockerImage with its labels and creation time, as openshift-apiserver's
// importer reports it; an image pushed without labels has no Config.
func TestImportReportsImageMetadata(t *testing.T) {
	created := "2025-06-01T10:00:00Z"
	labels := map[string]string{
		"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.created":  created,
	}
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{name: "labelled image", labels: labels},
		{name: "image without labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.reg.PushImage(testRepo, "prod", dig(4), tt.labels)
			res, err := f.client.ImageV1().ImageStreamImports(testNS).Create(context.Background(), ocImport(f.stream(t), false), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			img := res.Status.Images[0].Image
			if img == nil || img.Name != dig(4) || img.DockerImageMetadataVersion != "1.0" {
				t.Fatalf("image = %+v, want %s with metadata version 1.0", img, dig(4))
			}
			var meta docker10.DockerImage
			if err := json.Unmarshal(img.DockerImageMetadata.Raw, &meta); err != nil {
				t.Fatalf("decoding dockerImageMetadata %s: %v", img.DockerImageMetadata.Raw, err)
			}
			if meta.Kind != "DockerImage" || meta.APIVersion != "1.0" || meta.ID != dig(4) {
				t.Errorf("metadata = %s/%s %s, want 1.0/DockerImage %s", meta.APIVersion, meta.Kind, meta.ID, dig(4))
			}
			if tt.labels == nil {
				if meta.Config != nil {
					t.Errorf("config = %+v, want none", meta.Config)
				}
				return
			}
			if meta.Config == nil || !maps.Equal(meta.Config.Labels, tt.labels) {
				t.Errorf("config = %+v, want labels %v", meta.Config, tt.labels)
			}
			if got := meta.Created.UTC().Format(time.RFC3339); got != created {
				t.Errorf("created = %s, want %s", got, created)
			}
		})
	}
}

// TestPushKeepsLabels: pushing a labelled digest again without labels
// (moving a tag back to it) keeps them; Labels hands out a copy.
func TestPushKeepsLabels(t *testing.T) {
	r := NewRegistry()
	r.PushImage(testRepo, "prod", dig(1), map[string]string{"a": "b"})
	r.Push(testRepo, "stg", dig(1))
	got := r.Labels(dig(1))
	if got["a"] != "b" {
		t.Fatalf("labels = %v, want a=b", got)
	}
	got["a"] = "changed"
	if r.Labels(dig(1))["a"] != "b" {
		t.Error("Labels returned the registry's own map")
	}
	if r.Labels(dig(2)) != nil {
		t.Error("an unknown digest has labels")
	}
}
