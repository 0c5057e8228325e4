package demo

import (
	"context"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/kubefake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestKubeAPIServerSemantics(t *testing.T) {
	ns := "packit--prod"
	newDeployment := func() *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "packit-service", Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: workloadLabels("packit-service")},
				Template: podTemplateFor("packit-service", "quay.io/packit/packit-service:prod"),
			},
		}
	}
	tests := []struct {
		name string
		// write changes the created Deployment through the client.
		write          func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error
		wantErr        func(error) bool
		wantGeneration int64
		wantImage      string
		wantReady      int32
	}{
		{
			name:           "create defaults and starts at generation 1",
			write:          func(context.Context, *kubefake.Clientset, *appsv1.Deployment) error { return nil },
			wantGeneration: 1, wantImage: "quay.io/packit/packit-service:prod",
		},
		{
			name: "a template change bumps the generation",
			write: func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error {
				d.Spec.Template.Spec.Containers[0].Image = "x@sha256:1"
				_, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
				return err
			},
			wantGeneration: 2, wantImage: "x@sha256:1",
		},
		{
			name: "an annotation change bumps a Deployment's generation",
			write: func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error {
				d.Annotations = map[string]string{"kubernetes.io/change-cause": "x"}
				_, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
				return err
			},
			wantGeneration: 2, wantImage: "quay.io/packit/packit-service:prod",
		},
		{
			name: "status written through the main resource is dropped",
			write: func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error {
				d.Status.ReadyReplicas = 5
				_, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
				return err
			},
			wantGeneration: 1, wantImage: "quay.io/packit/packit-service:prod",
		},
		{
			name: "spec written through the status subresource is dropped",
			write: func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error {
				d.Status.ReadyReplicas = 1
				d.Spec.Template.Spec.Containers[0].Image = "x@sha256:1"
				_, err := c.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
				return err
			},
			wantGeneration: 1, wantImage: "quay.io/packit/packit-service:prod", wantReady: 1,
		},
		{
			name: "a stale resourceVersion is a conflict",
			write: func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error {
				stale := d.DeepCopy()
				d.Spec.Paused = true
				if _, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
					return err
				}
				stale.Spec.Template.Spec.Containers[0].Image = "x@sha256:1"
				_, err := c.AppsV1().Deployments(ns).Update(ctx, stale, metav1.UpdateOptions{})
				return err
			},
			wantErr:        apierrors.IsConflict,
			wantGeneration: 2, wantImage: "quay.io/packit/packit-service:prod",
		},
		{
			name: "a JSON patch (kubectl rollout undo) bumps the generation",
			write: func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error {
				patch := []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"x@sha256:2"}]`)
				_, err := c.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
				return err
			},
			wantGeneration: 2, wantImage: "x@sha256:2",
		},
		{
			name: "a strategic merge patch works too",
			write: func(ctx context.Context, c *kubefake.Clientset, d *appsv1.Deployment) error {
				patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"packit-service","image":"x@sha256:3"}]}}}}`)
				_, err := c.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
				return err
			},
			wantGeneration: 2, wantImage: "x@sha256:3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := kubefake.NewClientset()
			InstallKubeAPIServer(c, time.Now)
			d, err := c.AppsV1().Deployments(ns).Create(ctx, newDeployment(), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.UID == "" || d.ResourceVersion == "" || d.CreationTimestamp.IsZero() || *d.Spec.ProgressDeadlineSeconds != 600 || *d.Spec.Replicas != 1 {
				t.Fatalf("created deployment lacks server fields: %+v", d.ObjectMeta)
			}
			err = tt.write(ctx, c, d.DeepCopy())
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("error = %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got, _ := c.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
			if got.Generation != tt.wantGeneration || got.Spec.Template.Spec.Containers[0].Image != tt.wantImage || got.Status.ReadyReplicas != tt.wantReady {
				t.Errorf("generation %d image %s ready %d; want %d %s %d", got.Generation, got.Spec.Template.Spec.Containers[0].Image,
					got.Status.ReadyReplicas, tt.wantGeneration, tt.wantImage, tt.wantReady)
			}
			if tt.wantErr == nil && tt.wantGeneration > 1 && got.ResourceVersion == d.ResourceVersion {
				t.Errorf("resourceVersion not bumped")
			}
		})
	}
}

func TestKubeAPIServerPods(t *testing.T) {
	ctx := context.Background()
	c := kubefake.NewClientset()
	InstallKubeAPIServer(c, time.Now)
	p, err := c.CoreV1().Pods("ns").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: "ns"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Name) != len("web-")+5 || p.Status.Phase != corev1.PodPending {
		t.Errorf("pod %q phase %q: want a generated name and Pending", p.Name, p.Status.Phase)
	}
	p.Labels = map[string]string{"a": "b"}
	p.Status.Phase = corev1.PodRunning
	if _, err := c.CoreV1().Pods("ns").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := c.CoreV1().Pods("ns").Get(ctx, p.Name, metav1.GetOptions{})
	if got.Status.Phase != corev1.PodRunning || got.Labels["a"] == "b" {
		t.Errorf("status update: phase %s labels %v; want Running and no label change", got.Status.Phase, got.Labels)
	}
}
