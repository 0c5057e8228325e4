package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/plan"
)

const holdNS = "holds-e2e"

// TestHoldOverREST: hold and unhold against real REST — ImageStreams from
// a CustomResourceDefinition on kube-apiserver (imageStreamCRD) and a real
// Deployment — as the bot's own identity with only the calls AccessFor
// lists granted: the stream's spec tag loses scheduled import and gains the
// deploybot.io/holds annotation the API server validates, the Deployment's
// image trigger on the tag is paused with its other entries and fields
// kept, and unhold restores both. A merge patch carrying a stale
// resourceVersion, as the trigger pause sends, is refused 409 by the
// server, which is what makes a concurrent pause retry instead of lose.
func TestHoldOverREST(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	ensureImageStreamCRD(t, cp)
	ctx := testContext(t, 2*time.Minute)
	createNamespaces(ctx, t, cp, holdNS)
	admin := clientFor(t, cp.AdminConfig())
	adminImages, err := imageclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	const stream, tag = "packit-worker", "prod"
	hold := &plan.Hold{By: "alice", Reason: "crash-loops", Scheduled: true, Paused: []string{"deployment/beat"}}
	p := plan.Plan{Action: plan.ActionHold, Env: imagesEnv, Namespace: holdNS, Targets: []plan.Target{{
		Service: stream, Stream: stream, Tag: tag, Hold: hold,
		Workloads: []plan.WorkloadRef{{Kind: plan.KindDeployment, Name: "beat", Triggered: true}},
	}}}
	// The bot may make exactly the calls AccessFor lists, and nothing else.
	var rules []rbacv1.PolicyRule
	for _, a := range plan.AccessFor(p) {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{a.Group}, Resources: []string{a.Resource}, Verbs: []string{a.Verb}, ResourceNames: nonEmpty(a.Name)})
	}
	applyRBAC(ctx, t, admin, rbacObjects{
		roles:        []rbacv1.Role{{ObjectMeta: metav1.ObjectMeta{Name: "hold", Namespace: holdNS}, Rules: rules}},
		roleBindings: []rbacv1.RoleBinding{roleBinding(holdNS, "deploybot", "hold", userSubject("deploybot"))},
	})

	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: stream, Namespace: holdNS},
		Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{{
			Name: tag, From: &corev1.ObjectReference{Kind: "DockerImage", Name: "quay.io/packit/packit-worker:prod"},
			ImportPolicy: imagev1.TagImportPolicy{Scheduled: true},
		}}},
	}
	if _, err := adminImages.ImageV1().ImageStreams(holdNS).Create(ctx, is, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	triggers := `[{"from":{"kind":"ImageStreamTag","name":"packit-worker:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"w\")].image","x-extra":12345678901234567890},` +
		`{"from":{"kind":"ImageStreamTag","name":"tokman:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"t\")].image","paused":true}]`
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "beat", Namespace: holdNS, Annotations: map[string]string{cluster.TriggerAnnotation: triggers}},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "beat"}},
			Template: podTemplate("beat", "quay.io/packit/packit-worker@sha256:"+strings.Repeat("a", 64)),
		},
	}
	if _, err := admin.AppsV1().Deployments(holdNS).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env, err := cluster.Connect(cp.UserConfig("deploybot"), holdNS)
	if err != nil {
		t.Fatal(err)
	}
	set := cluster.NewSet(map[string]cluster.EnvClient{imagesEnv: env})
	execute := func(p plan.Plan) {
		t.Helper()
		res, err := set.Execute(ctx, p, func(plan.Progress) {})
		if err != nil || res.Targets[0].Outcome != plan.PhaseChanged {
			t.Fatalf("%s: %+v, %v", p.Action, res, err)
		}
	}
	beat := func() string {
		d, err := admin.AppsV1().Deployments(holdNS).Get(ctx, "beat", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Annotations[cluster.TriggerAnnotation]
	}
	waitRBACFor(ctx, t, set, p)

	execute(p)
	ts, err := set.Tag(ctx, imagesEnv, stream, tag)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Scheduled || ts.Hold == nil || ts.Hold.By != "alice" || !ts.Hold.Scheduled || ts.Hold.Since.IsZero() {
		t.Errorf("after hold: scheduled %v, hold %+v", ts.Scheduled, ts.Hold)
	}
	trs, err := cluster.ParseTriggers(beat())
	if err != nil || len(trs) != 2 || !trs[0].Paused || !trs[1].Paused || !strings.Contains(beat(), `"x-extra":12345678901234567890`) {
		t.Errorf("after hold the triggers are %s (%v)", beat(), err)
	}
	t.Logf("after hold: %s annotation %q; triggers %s", cluster.HoldsAnnotation, holdsOf(ctx, t, adminImages, stream), beat())

	// The server enforces the resourceVersion a merge patch carries.
	stale := []byte(`{"metadata":{"resourceVersion":"1","annotations":{"x":"y"}}}`)
	if _, err := admin.AppsV1().Deployments(holdNS).Patch(ctx, "beat", types.MergePatchType, stale, metav1.PatchOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("a merge patch with a stale resourceVersion: %v, want 409 Conflict", err)
	}

	p.Action = plan.ActionUnhold
	p.Targets[0].Hold = ts.Hold
	execute(p)
	if ts, _ = set.Tag(ctx, imagesEnv, stream, tag); !ts.Scheduled || ts.Hold != nil {
		t.Errorf("after unhold: scheduled %v, hold %+v", ts.Scheduled, ts.Hold)
	}
	trs, _ = cluster.ParseTriggers(beat())
	if len(trs) != 2 || trs[0].Paused || !trs[1].Paused || !strings.Contains(beat(), `"x-extra":12345678901234567890`) {
		t.Errorf("after unhold the triggers are %s: the worker's should run again, tokman's stay paused", beat())
	}
	if h := holdsOf(ctx, t, adminImages, stream); h != "" {
		t.Errorf("after unhold the stream still has %s %q", cluster.HoldsAnnotation, h)
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func holdsOf(ctx context.Context, t *testing.T, images imageclient.Interface, stream string) string {
	t.Helper()
	is, err := images.ImageV1().ImageStreams(holdNS).Get(ctx, stream, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return is.Annotations[cluster.HoldsAnnotation]
}

// waitRBACFor waits until the bot's Role applies (RBAC is eventually
// consistent): the stream can be read as the bot.
func waitRBACFor(ctx context.Context, t *testing.T, set *cluster.Set, p plan.Plan) {
	t.Helper()
	waitFor(ctx, t, "the bot's role to apply", func() (bool, string) {
		_, err := set.Tag(ctx, p.Env, p.Targets[0].Stream, p.Targets[0].Tag)
		return err == nil, errText(err)
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
