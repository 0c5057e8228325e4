package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/plan"
)

var changedAt = time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)

// entry is a managedFields entry of manager at changedAt+sec owning fields
// (FieldsV1 JSON).
func entry(manager string, op metav1.ManagedFieldsOperationType, sec int, subresource, fields string) metav1.ManagedFieldsEntry {
	at := metav1.NewTime(changedAt.Add(time.Duration(sec) * time.Second))
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, Time: &at, Subresource: subresource,
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
}

const (
	update = metav1.ManagedFieldsOperationUpdate
	apply  = metav1.ManagedFieldsOperationApply

	ownsImage      = `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`
	ownsContainer  = `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:name":{}}}}}}}`
	ownsRestart    = `{"f:spec":{"f:template":{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/restartedAt":{}}}}}}`
	ownsAnnotation = `{"f:metadata":{"f:annotations":{"f:deploybot.io/hold":{}}}}`
	ownsReplicas   = `{"f:spec":{"f:replicas":{}}}`
	ownsSpecTags   = `{"f:spec":{"f:tags":{}}}`
	ownsStatusTags = `{"f:status":{"f:tags":{}}}`
)

func TestWorkloadChangedBy(t *testing.T) {
	tests := []struct {
		name   string
		fields []metav1.ManagedFieldsEntry
		want   string
	}{
		{"no entries", nil, ""},
		{"kubectl set image", []metav1.ManagedFieldsEntry{entry("kubectl-set", update, 0, "", ownsImage)}, "kubectl set image"},
		{"the latest image owner wins", []metav1.ManagedFieldsEntry{
			entry("kubectl-set", update, 10, "", ownsImage), entry("kubectl-edit", update, 20, "", ownsImage),
		}, "kubectl edit"},
		{"the bot's later hold does not take the image from kubectl", []metav1.ManagedFieldsEntry{
			entry("kubectl-set", update, 10, "", ownsImage),
			entry(fieldManager, update, 20, "", `{"f:metadata":{"f:annotations":{}},`+ownsContainer[1:]),
		}, "kubectl set image"},
		{"the bot", []metav1.ManagedFieldsEntry{entry("deploybot", update, 0, "", ownsImage)}, "deploybot"},
		{"status and other subresources do not count", []metav1.ManagedFieldsEntry{
			entry("kubectl-patch", update, 10, "", ownsImage), entry("kube-controller-manager", update, 20, "status", ownsImage),
		}, "kubectl patch"},
		{"only workload fields outside the template", []metav1.ManagedFieldsEntry{entry("kubectl-scale", update, 0, "", ownsReplicas)}, ""},
		{"containers without an image owner", []metav1.ManagedFieldsEntry{
			entry("kubectl-rollout", update, 20, "", ownsRestart), entry("kubectl-replace", update, 10, "", ownsContainer),
		}, "kubectl replace"},
		{"only a restart", []metav1.ManagedFieldsEntry{entry("kubectl-rollout", update, 0, "", ownsRestart)}, "kubectl rollout"},
		{"client-side apply", []metav1.ManagedFieldsEntry{entry("kubectl-client-side-apply", update, 0, "", ownsImage)}, "kubectl apply"},
		{"server-side apply", []metav1.ManagedFieldsEntry{entry("kubectl", apply, 0, "", ownsImage)}, "kubectl apply"},
		{"kubectl without a field manager (rollout undo)", []metav1.ManagedFieldsEntry{entry("kubectl", update, 0, "", ownsImage)}, "kubectl"},
		{"helm", []metav1.ManagedFieldsEntry{entry("helm", update, 0, "", ownsImage)}, "helm"},
		{"Argo CD", []metav1.ManagedFieldsEntry{entry("argocd-controller", apply, 0, "", ownsImage)}, "Argo CD"},
		{"Flux kustomize", []metav1.ManagedFieldsEntry{entry("kustomize-controller", apply, 0, "", ownsImage)}, "Flux"},
		{"Flux helm", []metav1.ManagedFieldsEntry{entry("helm-controller", update, 0, "", ownsImage)}, "Flux"},
		{"another client as it names itself", []metav1.ManagedFieldsEntry{entry("spinnaker", update, 0, "", ownsImage)}, "spinnaker"},
		{"an entry without a time", []metav1.ManagedFieldsEntry{{Manager: "kubectl-set", Operation: update, FieldsV1: metav1.NewFieldsV1(ownsImage)}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := workloadChangedBy(tt.fields); got != tt.want {
				t.Errorf("workloadChangedBy = %q, want %q", got, tt.want)
			}
		})
	}
}

// stream is web with tag prod from spec from, imported at changedAt when
// imported is set.
func stream(from string, scheduled, imported bool, fields ...metav1.ManagedFieldsEntry) *imagev1.ImageStream {
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: "web", ManagedFields: fields},
		Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{{
			Name: "prod", From: &corev1.ObjectReference{Kind: "DockerImage", Name: from},
			ImportPolicy: imagev1.TagImportPolicy{Scheduled: scheduled},
		}}},
	}
	if imported {
		is.Status.Tags = []imagev1.NamedTagEventList{{Tag: "prod", Items: []imagev1.TagEvent{{Created: metav1.NewTime(changedAt), Image: "sha256:1"}}}}
	}
	return is
}

func TestStreamTagChangedBy(t *testing.T) {
	const (
		tracked = "quay.io/packit/web:prod"
		pinned  = "quay.io/packit/web@sha256:0000000000000000000000000000000000000000000000000000000000000001"
	)
	tests := []struct {
		name string
		is   *imagev1.ImageStream
		want string
	}{
		{"no image yet", stream(tracked, true, false, entry("oc", update, 0, "", ownsSpecTags)), ""},
		{"scheduled import", stream(tracked, true, true), "scheduled import"},
		{"an import of an unscheduled tag", stream(tracked, false, true), "an import"},
		{"a digest tagged", stream(pinned, false, true), "oc tag"},
		{"a client named about when the image came", stream(tracked, true, true, entry("oc", update, -1, "", ownsSpecTags)), "oc"},
		{"the client of a pin", stream(pinned, false, true, entry(fieldManager, update, 0, "", ownsSpecTags)), "deploybot"},
		{"a status writer counts", stream(tracked, false, true, entry("skopeo-sync", update, 1, "status", ownsStatusTags)), "skopeo-sync"},
		{"the latest client wins", stream(tracked, false, true,
			entry("oc", update, 0, "", ownsSpecTags), entry("tekton", apply, 1, "", ownsSpecTags)), "tekton"},
		{"a client from before the image", stream(tracked, true, true, entry("oc", update, -3, "", ownsSpecTags)), "scheduled import"},
		{"a client long after the image (another tag's edit)", stream(tracked, true, true, entry("oc", update, 600, "", ownsSpecTags)), "scheduled import"},
		{"server components are not clients", stream(tracked, true, true,
			entry("openshift-controller-manager", update, 0, "status", ownsStatusTags),
			entry("kube-apiserver", update, 0, "", ownsSpecTags),
			entry("", update, 0, "", ownsSpecTags)), "scheduled import"},
		{"a hold moves no image", stream(tracked, false, true, entry(fieldManager, update, 5, "", ownsAnnotation)), "an import"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := streamTagChangedBy(tt.is, "prod"); got != tt.want {
				t.Errorf("streamTagChangedBy = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTagChangedByOnFakeOpenShift pins what Tag says of the changes the
// in-memory OpenShift makes (it writes no managedFields, as the demo runs it).
func TestTagChangedByOnFakeOpenShift(t *testing.T) {
	const repo = "quay.io/packit/web"
	digest := func(n int) string { return fakeopenshift.Digest(repo, "prod", n) }
	newStream := func(name string, scheduled bool) *imagev1.ImageStream {
		is := stream(repo+":prod", scheduled, true)
		is.Name, is.Namespace = name, "ns"
		is.Status.Tags[0].Items[0] = imagev1.TagEvent{Created: metav1.NewTime(changedAt.Add(-time.Hour)), Image: digest(1), DockerImageReference: repo + "@" + digest(1)}
		return is
	}
	images := kubefake.NewImageClientset(newStream("scheduled", true), newStream("manual", false), newStream("pinned", false))
	reg := fakeopenshift.NewRegistry()
	reg.Push(repo, "prod", digest(1))
	reg.Push(repo, "prod", digest(2))
	srv := fakeopenshift.Install(images, reg, fakeopenshift.WithClock(func() time.Time { return changedAt }))
	c := EnvClient{Kube: kubefake.NewClientset(), Images: images.ImageV1(), Namespace: "ns"}
	set := NewSet(map[string]EnvClient{"prod": c})
	ctx := context.Background()

	if err := srv.ImportScheduled(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.importTag(ctx, "manual", "prod"); err != nil {
		t.Fatal(err)
	}
	if err := c.setTag(ctx, "pinned", "prod", repo+"@"+digest(2), false); err != nil {
		t.Fatal(err)
	}
	for stream, want := range map[string]string{"scheduled": "scheduled import", "manual": "an import", "pinned": "oc tag"} {
		ts, err := set.Tag(ctx, "prod", stream, "prod")
		if err != nil {
			t.Fatal(err)
		}
		if ts.Current.Digest != digest(2) {
			t.Errorf("%s: current %s, want the new image %s", stream, ts.Current.Digest, digest(2))
		}
		if ts.ChangedBy != want {
			t.Errorf("%s: ChangedBy = %q, want %q", stream, ts.ChangedBy, want)
		}
	}
}

// noRegistry is a Registry reading the tag never asks.
type noRegistry struct{}

func (noRegistry) Resolve(context.Context, string, string) (plan.Image, error) {
	return plan.Image{}, errors.New("not asked")
}

func (noRegistry) Lookup(context.Context, string, string) (plan.Image, error) {
	return plan.Image{}, errors.New("not asked")
}

// TestKubeTagChangedBy: Tag reads the managedFields of the service's first
// workload on plain Kubernetes.
func TestKubeTagChangedBy(t *testing.T) {
	const repo = "registry.test:5000/shop/web"
	image := repo + "@sha256:" + strings.Repeat("1", 64)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", ManagedFields: []metav1.ManagedFieldsEntry{
			entry(fieldManager, update, 0, "", ownsContainer), entry("kubectl-set", update, 10, "", ownsImage),
		}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}}}},
	}
	set := NewSet(map[string]EnvClient{"prod": {Kube: kubefake.NewClientset(dep), Namespace: "ns", Kubernetes: &Kubernetes{
		Registry: noRegistry{},
		Services: map[string]Service{"web": {Name: "web", Repository: repo, Workloads: []ServiceWorkload{{Kind: "Deployment", Name: "web"}}}},
	}}})
	ts, err := set.Tag(context.Background(), "prod", "web", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if ts.ChangedBy != "kubectl set image" {
		t.Errorf("ChangedBy = %q, want %q", ts.ChangedBy, "kubectl set image")
	}
}
