package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/plan"
)

// ImageStreams over real REST (see imageStreamCRD for how they are served):
// deploybot's reads, pin (revert) and track go through the real API server,
// its RBAC and its optimistic concurrency. ImageStreamTag is not served, so
// tagging must take oc tag's fallback of editing ImageStream.spec.tags;
// ImageStreamImport is not served either, so an import must fail, clearly
// and per target.

const (
	imagesEnv = "prod"
	imagesNS  = "images-e2e"
	imagesTag = "prod"
)

// fakeDigest is the demo's deterministic digest of the nth image pushed to
// repo:tag: sha256 of "<repo>:<tag>#<n>".
func fakeDigest(repoTag string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", repoTag, n)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func repoOf(stream string) string { return "quay.io/packit/" + stream }

// imageAt is the nth image of the stream's prod tag.
func imageAt(stream string, n int) plan.Image {
	d := fakeDigest(repoOf(stream)+":"+imagesTag, n)
	return plan.Image{Ref: repoOf(stream) + "@" + d, Digest: d}
}

// seedTime is when the seeded history starts, whole seconds (the API keeps
// RFC 3339 seconds).
var seedTime = time.Date(2026, 5, 5, 2, 0, 0, 0, time.UTC)

// seedStream creates an ImageStream the way packit has them: a prod tag
// tracking the registry with scheduled import and three imported images
// (newest first), and a stg tag whose last import failed. Status is written
// as the importer would, through the status subresource.
func seedStream(ctx context.Context, t *testing.T, images imageclient.Interface, name string) *imagev1.ImageStream {
	t.Helper()
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: imagesNS},
		Spec: imagev1.ImageStreamSpec{
			LookupPolicy: imagev1.ImageLookupPolicy{Local: true},
			Tags: []imagev1.TagReference{
				{
					Name:         imagesTag,
					From:         &corev1.ObjectReference{Kind: "DockerImage", Name: repoOf(name) + ":" + imagesTag},
					ImportPolicy: imagev1.TagImportPolicy{Scheduled: true},
				},
				{
					Name: "stg",
					From: &corev1.ObjectReference{Kind: "DockerImage", Name: repoOf(name) + ":stg"},
				},
			},
		},
	}
	created, err := images.ImageV1().ImageStreams(imagesNS).Create(ctx, is, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating image stream %s: %v", name, err)
	}
	var items []imagev1.TagEvent
	for n := 3; n >= 1; n-- {
		img := imageAt(name, n)
		items = append(items, imagev1.TagEvent{
			Created:              metav1.NewTime(seedTime.Add(time.Duration(n) * time.Hour)),
			DockerImageReference: img.Ref,
			Image:                img.Digest,
			Generation:           int64(n),
		})
	}
	created.Status = imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{
		{Tag: imagesTag, Items: items},
		{Tag: "stg", Conditions: []imagev1.TagEventCondition{{
			Type:               imagev1.ImportSuccess,
			Status:             corev1.ConditionFalse,
			LastTransitionTime: metav1.NewTime(seedTime),
			Reason:             "InternalError",
			Message:            "Internal error occurred: quay.io/packit/" + name + ":stg: unauthorized",
		}}},
	}}
	seeded, err := images.ImageV1().ImageStreams(imagesNS).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("writing the status of image stream %s: %v", name, err)
	}
	return seeded
}

func imagesRBAC() rbacObjects {
	g := "image.openshift.io"
	read := []string{"get", "list", "watch"}
	role := func(name string, rules ...rbacv1.PolicyRule) rbacv1.Role {
		return rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: imagesNS}, Rules: rules}
	}
	return rbacObjects{
		roles: []rbacv1.Role{
			// The bot's role as a chart would grant it: everything oc tag and
			// oc import-image use, the OpenShift-only resources included.
			role("bot-images",
				rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{"imagestreams"}, Verbs: append([]string{"update", "patch"}, read...)},
				rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{"imagestreamtags"}, Verbs: []string{"get", "create", "update"}},
				rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{"imagestreamimports"}, Verbs: []string{"create"}}),
			// May edit streams and import, but not touch imagestreamtags:
			// oc tag's Forbidden path.
			role("stream-editor",
				rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{"imagestreams"}, Verbs: append([]string{"update"}, read...)},
				rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{"imagestreamimports"}, Verbs: []string{"create"}}),
			role("stream-viewer",
				rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{"imagestreams"}, Verbs: read}),
		},
		roleBindings: []rbacv1.RoleBinding{
			roleBinding(imagesNS, "deploybot", "bot-images", userSubject("deploybot")),
			roleBinding(imagesNS, "alice", "stream-editor", userSubject("alice")),
			roleBinding(imagesNS, "carol", "stream-viewer", userSubject("carol")),
		},
	}
}

// imagesSet is a cluster.Set acting as user (deploybot's credentials or,
// with execution: impersonate, the requester's identity), through cfg.
func imagesSet(t *testing.T, cfg *rest.Config) *cluster.Set {
	t.Helper()
	env, err := cluster.Connect(cfg, imagesNS)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.NewSet(map[string]cluster.EnvClient{imagesEnv: env})
}

func specTagOf(is *imagev1.ImageStream, tag string) *imagev1.TagReference {
	for i := range is.Spec.Tags {
		if is.Spec.Tags[i].Name == tag {
			return &is.Spec.Tags[i]
		}
	}
	return nil
}

func pinPlan(stream string, to plan.Image) plan.Plan {
	p := plan.Plan{
		Action:    plan.ActionPin,
		Env:       imagesEnv,
		Namespace: imagesNS,
		Targets: []plan.Target{{
			Service:   stream,
			Stream:    stream,
			Tag:       imagesTag,
			From:      imageAt(stream, 3),
			To:        to,
			SpecFrom:  to.Ref,
			Scheduled: false, // oc tag --source=docker REF@DIGEST
		}},
	}
	p.Access = plan.AccessFor(p)
	return p
}

func TestImageStreamsOverREST(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	ensureImageStreamCRD(t, cp)
	ctx := testContext(t, 2*time.Minute)
	createNamespaces(ctx, t, cp, imagesNS)
	admin := clientFor(t, cp.AdminConfig())
	adminImages, err := imageclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	applyRBAC(ctx, t, admin, imagesRBAC())
	probe := seedStream(ctx, t, adminImages, "rbac-probe")
	for _, user := range []string{"deploybot", "alice", "carol"} {
		userImages, err := imageclient.NewForConfig(cp.UserConfig(user))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, user+" may read image streams", func() (bool, string) {
			_, err := userImages.ImageV1().ImageStreams(imagesNS).Get(ctx, probe.Name, metav1.GetOptions{})
			return err == nil, errString(err)
		})
	}

	t.Run("imagestreamtags and imagestreamimports are not served", func(t *testing.T) {
		resources, err := admin.Discovery().ServerResourcesForGroupVersion("image.openshift.io/v1")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range resources.APIResources {
			names = append(names, r.Name)
		}
		if want := []string{"imagestreams", "imagestreams/status"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("image.openshift.io/v1 serves %q, want %q", names, want)
		}
		_, err = adminImages.ImageV1().ImageStreamTags(imagesNS).Get(ctx, probe.Name+":"+imagesTag, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("getting an ImageStreamTag: %v, want NotFound", err)
		}
		_, err = adminImages.ImageV1().ImageStreamImports(imagesNS).Create(ctx, &imagev1.ImageStreamImport{ObjectMeta: metav1.ObjectMeta{Name: probe.Name}}, metav1.CreateOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("creating an ImageStreamImport: %v, want NotFound", err)
		}
	})

	t.Run("Tag reads spec and status", func(t *testing.T) {
		t.Parallel()
		seedStream(ctx, t, adminImages, "packit-service")
		// Reading needs only view rights.
		set := imagesSet(t, cp.UserConfig("carol"))
		got, err := set.Tag(ctx, imagesEnv, "packit-service", imagesTag)
		if err != nil {
			t.Fatal(err)
		}
		var history []plan.TagEvent
		for n := 3; n >= 1; n-- {
			img := imageAt("packit-service", n)
			history = append(history, plan.TagEvent{Created: seedTime.Add(time.Duration(n) * time.Hour), Ref: img.Ref, Digest: img.Digest, Generation: int64(n)})
		}
		want := plan.TagState{
			Stream:       "packit-service",
			Tag:          imagesTag,
			SpecFrom:     repoOf("packit-service") + ":" + imagesTag,
			SpecFromKind: "DockerImage",
			Scheduled:    true,
			Current:      history[0],
			History:      history,
			// The seed's status write came months after the items: it
			// brought none of them, so the tag's policy names the change.
			ChangedBy: "scheduled import",
		}
		if !tagStatesEqual(got, want) {
			t.Fatalf("Tag(prod) = %+v\nwant %+v", got, want)
		}
		if got.Pinned() {
			t.Errorf("a tag tracking %s reads as pinned", got.SpecFrom)
		}
		stg, err := set.Tag(ctx, imagesEnv, "packit-service", "stg")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stg.ImportError, "unauthorized") || len(stg.History) != 0 {
			t.Fatalf("Tag(stg) = %+v, want the failed import's message and no history", stg)
		}
		if _, err := set.Tag(ctx, imagesEnv, "packit-service", "nope"); !apierrors.IsNotFound(err) {
			t.Fatalf("Tag of a missing tag: %v, want NotFound", err)
		}
	})

	// revert: pin the tag to an older image. ImageStreamTag Update and Create
	// fail (not served: 404; or not permitted: 403), so the tag must be set
	// in the stream's spec, leaving everything else of the stream as it was.
	pins := []struct {
		name, user string
		wantErr    []string // empty: must succeed
	}{
		{name: "istags permitted but not served", user: "deploybot"},
		{name: "istags forbidden", user: "alice"},
		{name: "view only", user: "carol", wantErr: []string{"tagging", "cannot update resource \"imagestreams\"", "carol"}},
	}
	for _, tc := range pins {
		t.Run("revert/"+tc.name, func(t *testing.T) {
			t.Parallel()
			stream := "pin-" + tc.user
			before := seedStream(ctx, t, adminImages, stream)
			set := imagesSet(t, cp.UserConfig(tc.user))
			to := imageAt(stream, 1)
			res, err := set.Execute(ctx, pinPlan(stream, to), nil)
			if err != nil {
				t.Fatalf("executing the pin: %v", err)
			}
			after, err := adminImages.ImageV1().ImageStreams(imagesNS).Get(ctx, stream, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Targets[0]
			if len(tc.wantErr) > 0 {
				if r.Outcome != plan.PhaseFailed {
					t.Fatalf("pin as %s: %+v, want failed", tc.user, r)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(r.Error, want) {
						t.Errorf("pin as %s failed with %q, want it to say %q", tc.user, r.Error, want)
					}
				}
				if after.ResourceVersion != before.ResourceVersion {
					t.Errorf("a refused pin changed the stream (resourceVersion %s → %s)", before.ResourceVersion, after.ResourceVersion)
				}
				return
			}
			if r.Outcome != plan.PhaseChanged || r.Error != "" {
				t.Fatalf("pin as %s: %+v, want changed", tc.user, r)
			}
			wantTag := imagev1.TagReference{
				Name:            imagesTag,
				From:            &corev1.ObjectReference{Kind: "DockerImage", Name: to.Ref},
				ImportPolicy:    imagev1.TagImportPolicy{Scheduled: false},
				ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
			}
			if got := specTagOf(after, imagesTag); got == nil || !reflect.DeepEqual(*got, wantTag) {
				t.Fatalf("spec tag %s after the pin: %+v, want %+v", imagesTag, got, wantTag)
			}
			if !reflect.DeepEqual(specTagOf(after, "stg"), specTagOf(before, "stg")) {
				t.Errorf("the pin changed the stg tag: %+v → %+v", specTagOf(before, "stg"), specTagOf(after, "stg"))
			}
			if !reflect.DeepEqual(after.Status, before.Status) {
				t.Errorf("the pin changed the stream's status (history):\nbefore %+v\nafter  %+v", before.Status, after.Status)
			}
			ts, err := set.Tag(ctx, imagesEnv, stream, imagesTag)
			if err != nil || !ts.Pinned() || ts.SpecFrom != to.Ref || ts.Scheduled {
				t.Fatalf("Tag after the pin: %+v, %v; want pinned to %s, not scheduled", ts, err, to.Ref)
			}
		})
	}

	// track: back to the registry tag with the env's scheduled import
	// restored; the import that follows cannot run here, and the result must
	// say that the tag changed but the import failed.
	for _, user := range []string{"deploybot", "alice"} {
		t.Run("track/"+user, func(t *testing.T) {
			t.Parallel()
			stream := "track-" + user
			seedStream(ctx, t, adminImages, stream)
			set := imagesSet(t, cp.UserConfig(user))
			if res, err := set.Execute(ctx, pinPlan(stream, imageAt(stream, 2)), nil); err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
				t.Fatalf("pinning first: %+v, %v", res, err)
			}
			p := pinPlan(stream, plan.Image{})
			p.Action = plan.ActionTrack
			p.Targets[0].From = imageAt(stream, 2)
			p.Targets[0].SpecFrom = repoOf(stream) + ":" + imagesTag
			p.Targets[0].Scheduled = true
			p.Access = plan.AccessFor(p)
			res, err := set.Execute(ctx, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := res.Targets[0]
			if r.Outcome != plan.PhaseFailed || !strings.Contains(r.Error, "now tracks "+p.Targets[0].SpecFrom) ||
				!strings.Contains(r.Error, "imagestreamimports") {
				t.Fatalf("track: %+v, want failed saying the tag tracks %s but importing (imagestreamimports) failed", r, p.Targets[0].SpecFrom)
			}
			ts, err := set.Tag(ctx, imagesEnv, stream, imagesTag)
			if err != nil {
				t.Fatal(err)
			}
			if ts.Pinned() || ts.SpecFrom != p.Targets[0].SpecFrom || !ts.Scheduled {
				t.Fatalf("Tag after track: %+v, want tracking %s with scheduled import restored", ts, p.Targets[0].SpecFrom)
			}
		})
	}

	// Another writer changes the stream between deploybot's Get and its
	// Update: the Update is refused with 409 Conflict and deploybot starts
	// over from a fresh Get, keeping the other writer's change.
	for _, user := range []string{"deploybot", "alice"} {
		t.Run("conflict with a concurrent writer/"+user, func(t *testing.T) {
			t.Parallel()
			stream := "race-" + user
			seedStream(ctx, t, adminImages, stream)
			racer := &racingTransport{
				path: "/apis/image.openshift.io/v1/namespaces/" + imagesNS + "/imagestreams/" + stream,
				race: func(ctx context.Context) error {
					return retry.RetryOnConflict(retry.DefaultRetry, func() error {
						is, err := adminImages.ImageV1().ImageStreams(imagesNS).Get(ctx, stream, metav1.GetOptions{})
						if err != nil {
							return err
						}
						if is.Annotations == nil {
							is.Annotations = map[string]string{}
						}
						is.Annotations["racer"] = "was here"
						specTagOf(is, "stg").ImportPolicy.Scheduled = true
						_, err = adminImages.ImageV1().ImageStreams(imagesNS).Update(ctx, is, metav1.UpdateOptions{})
						return err
					})
				},
			}
			cfg := cp.UserConfig(user)
			cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { racer.base = rt; return racer }
			set := imagesSet(t, cfg)
			to := imageAt(stream, 1)
			res, err := set.Execute(ctx, pinPlan(stream, to), nil)
			if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
				t.Fatalf("pin racing another writer: %+v, %v; want changed", res, err)
			}
			if codes := racer.putCodes(); !reflect.DeepEqual(codes, []int{http.StatusConflict, http.StatusOK}) {
				t.Fatalf("deploybot's stream updates were answered %v, want [409 200]: a conflict, then a retry from a fresh read", codes)
			}
			after, err := adminImages.ImageV1().ImageStreams(imagesNS).Get(ctx, stream, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := specTagOf(after, imagesTag); got.From == nil || got.From.Name != to.Ref || got.ImportPolicy.Scheduled {
				t.Errorf("spec tag %s after the race: %+v, want pinned to %s", imagesTag, got, to.Ref)
			}
			if after.Annotations["racer"] != "was here" || !specTagOf(after, "stg").ImportPolicy.Scheduled {
				t.Errorf("the other writer's change was lost: annotations %v, stg %+v", after.Annotations, specTagOf(after, "stg"))
			}
		})
	}

	// import needs ImageStreamImport, which only openshift-apiserver serves:
	// each target must fail with a reason, none may pass as a success.
	t.Run("import fails per target", func(t *testing.T) {
		t.Parallel()
		before := map[string]*imagev1.ImageStream{}
		for _, s := range []string{"import-a", "import-b"} {
			before[s] = seedStream(ctx, t, adminImages, s)
		}
		p := plan.Plan{Action: plan.ActionImport, Env: imagesEnv, Namespace: imagesNS, Targets: []plan.Target{
			// No planned digest: straight to the import.
			{Service: "import-a", Stream: "import-a", Tag: imagesTag, From: imageAt("import-a", 3)},
			// A planned digest: the registry is asked first.
			{Service: "import-b", Stream: "import-b", Tag: imagesTag, From: imageAt("import-b", 3), To: imageAt("import-b", 4)},
		}}
		p.Access = plan.AccessFor(p)
		set := imagesSet(t, cp.UserConfig("deploybot"))
		var log progressLog
		res, err := set.Execute(ctx, p, log.report)
		if err != nil {
			t.Fatalf("Execute: %v (per-target failures belong in the Result)", err)
		}
		t.Logf("import reported:%s", &log)
		want := map[string][]string{
			"import-a": {"importing import-a:prod", "imagestreamimports"},
			"import-b": {"checking the registry before importing", "import-b", "imagestreamimports"},
		}
		if len(res.Targets) != 2 {
			t.Fatalf("import result %+v, want two targets", res)
		}
		for _, r := range res.Targets {
			if r.Outcome != plan.PhaseFailed {
				t.Errorf("import of %s: %+v, want failed", r.Service, r)
			}
			for _, w := range want[r.Service] {
				if !strings.Contains(r.Error, w) {
					t.Errorf("import of %s failed with %q, want it to say %q", r.Service, r.Error, w)
				}
			}
		}
		if !res.Failed() {
			t.Errorf("Result.Failed() is false for %+v", res)
		}
		for name, is := range before {
			after, err := adminImages.ImageV1().ImageStreams(imagesNS).Get(ctx, name, metav1.GetOptions{})
			if err != nil || after.ResourceVersion != is.ResourceVersion {
				t.Errorf("a failed import changed stream %s (%v)", name, err)
			}
		}
		if _, err := set.RegistryImage(ctx, imagesEnv, "import-a", imagesTag); err == nil || !strings.Contains(err.Error(), "imagestreamimports") {
			t.Errorf("RegistryImage: %v, want an error naming imagestreamimports", err)
		}
	})
}

// tagStatesEqual compares TagStates with times compared as instants.
func tagStatesEqual(a, b plan.TagState) bool {
	norm := func(s plan.TagState) plan.TagState {
		s.Current.Created = s.Current.Created.UTC()
		h := make([]plan.TagEvent, len(s.History))
		for i, e := range s.History {
			e.Created = e.Created.UTC()
			h[i] = e
		}
		s.History = h
		return s
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// racingTransport lets another writer update the stream just before
// deploybot's first PUT of it reaches the API server, so that PUT carries a
// stale resourceVersion. It records the status of every PUT of the stream.
type racingTransport struct {
	base  http.RoundTripper
	path  string
	race  func(context.Context) error
	once  sync.Once
	mu    sync.Mutex
	codes []int
}

func (r *racingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || req.URL.Path != r.path {
		return r.base.RoundTrip(req)
	}
	var raceErr error
	r.once.Do(func() { raceErr = r.race(req.Context()) })
	if raceErr != nil {
		return nil, fmt.Errorf("the concurrent writer failed: %w", raceErr)
	}
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.codes = append(r.codes, resp.StatusCode)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *racingTransport) putCodes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.codes...)
}
