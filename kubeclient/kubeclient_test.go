package kubeclient_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/deploybot/deploybot/kubeclient"
)

// TestPaths: each client reaches its group's REST path with the verb
// kube-apiserver routes it by, and decodes the answer into its own type.
// The e2e suite runs the same clients against a real kube-apiserver.
func TestPaths(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		var obj any
		switch r.URL.Path {
		case "/apis/apps/v1/namespaces/shop/deployments/web":
			obj = appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: metav1.ObjectMeta{Name: "web", ResourceVersion: "7"}}
		case "/api/v1/namespaces/shop/pods":
			obj = corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}}}}
		case "/apis/authorization.k8s.io/v1/namespaces/shop/localsubjectaccessreviews":
			obj = authorizationv1.LocalSubjectAccessReview{TypeMeta: metav1.TypeMeta{APIVersion: "authorization.k8s.io/v1", Kind: "LocalSubjectAccessReview"}, Status: authorizationv1.SubjectAccessReviewStatus{Allowed: true}}
		case "/apis/image.openshift.io/v1/namespaces/shop/imagestreams/web":
			obj = imagev1.ImageStream{TypeMeta: metav1.TypeMeta{APIVersion: "image.openshift.io/v1", Kind: "ImageStream"}, ObjectMeta: metav1.ObjectMeta{Name: "web"}}
		default:
			w.WriteHeader(http.StatusNotFound)
			obj = metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404}
		}
		_ = json.NewEncoder(w).Encode(obj)
	}))
	defer srv.Close()

	cs, err := kubeclient.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := cs.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || d.Name != "web" || d.ResourceVersion != "7" {
		t.Errorf("get deployment = %+v, %v", d.ObjectMeta, err)
	}
	pods, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 1 {
		t.Errorf("list pods = %+v, %v", pods, err)
	}
	review, err := cs.AuthorizationV1().LocalSubjectAccessReviews("shop").Create(ctx, &authorizationv1.LocalSubjectAccessReview{}, metav1.CreateOptions{})
	if err != nil || !review.Status.Allowed {
		t.Errorf("review = %+v, %v", review, err)
	}
	is, err := cs.ImageStreams("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || is.Name != "web" {
		t.Errorf("get image stream = %+v, %v", is, err)
	}
	if _, err := cs.AppsV1().StatefulSets("shop").Patch(ctx, "worker", types.StrategicMergePatchType, []byte(`{}`), metav1.PatchOptions{}); err == nil {
		t.Error("patching a missing statefulset succeeded")
	}
	want := []string{
		"GET /apis/apps/v1/namespaces/shop/deployments/web",
		"GET /api/v1/namespaces/shop/pods",
		"POST /apis/authorization.k8s.io/v1/namespaces/shop/localsubjectaccessreviews",
		"GET /apis/image.openshift.io/v1/namespaces/shop/imagestreams/web",
		"PATCH /apis/apps/v1/namespaces/shop/statefulsets/worker",
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("requests = %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("request %d = %q, want %q", i, seen[i], want[i])
		}
	}
}
