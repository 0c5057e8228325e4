package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	imageclient "github.com/openshift/client-go/image/clientset/versioned"

	"github.com/deploybot/deploybot/internal/controlplane"
)

// imageStreamCRD serves imagestreams.image.openshift.io/v1 from the API
// server's own storage, so deploybot's OpenShift image client talks real
// REST: real RBAC, real resourceVersion conflicts. Only the ImageStream
// resource itself can be served this way; imagestreamtags and
// imagestreamimports are virtual resources of openshift-apiserver (an
// ImageStreamImport is a create-only call that contacts a registry and
// writes the stream) and stay absent, as on any server without them.
//
// The status subresource is enabled, as in openshift-apiserver: there an
// end user's Update of an ImageStream keeps the stored status (the
// imagestream Strategy's PrepareForUpdate resets stream.Status to the old
// one) and status is written through imagestreams/status or by the
// importer's internal strategy. deploybot never writes status itself (tag
// changes go to spec.tags, imports through ImageStreamImport), so with the
// subresource a spec update that carried a stale status could not roll the
// history back, exactly as on OpenShift. The tests seed status with
// UpdateStatus, which is what the importer's write amounts to.
func imageStreamCRD() *unstructured.Unstructured {
	preserve := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "imagestreams.image.openshift.io"},
		"spec": map[string]any{
			"group": "image.openshift.io",
			"scope": "Namespaced",
			"names": map[string]any{
				"plural":     "imagestreams",
				"singular":   "imagestream",
				"kind":       "ImageStream",
				"listKind":   "ImageStreamList",
				"shortNames": []any{"is"},
			},
			"versions": []any{map[string]any{
				"name":         "v1",
				"served":       true,
				"storage":      true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec":   preserve,
						"status": preserve,
					},
				}},
			}},
		},
	}}
}

var crdOnce struct {
	once sync.Once
	err  error
}

// ensureImageStreamCRD installs the ImageStream CRD once per control plane
// and waits until imagestreams are served.
func ensureImageStreamCRD(t *testing.T, cp *controlplane.ControlPlane) {
	t.Helper()
	crdOnce.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		crdOnce.err = installImageStreamCRD(ctx, cp)
	})
	if crdOnce.err != nil {
		t.Fatalf("installing the ImageStream CRD: %v", crdOnce.err)
	}
}

func installImageStreamCRD(ctx context.Context, cp *controlplane.ControlPlane) error {
	dyn, err := dynamic.NewForConfig(cp.AdminConfig())
	if err != nil {
		return err
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, imageStreamCRD(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the CRD: %w", err)
	}
	if err := poll(ctx, func() (bool, string) {
		u, err := crds.Get(ctx, "imagestreams.image.openshift.io", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("conditions %v", conds)
	}); err != nil {
		return fmt.Errorf("waiting for the CRD to be established: %w", err)
	}
	images, err := imageclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		return err
	}
	if err := poll(ctx, func() (bool, string) {
		_, err := images.ImageV1().ImageStreams("default").List(ctx, metav1.ListOptions{})
		return err == nil, errString(err)
	}); err != nil {
		return fmt.Errorf("waiting for imagestreams to be served: %w", err)
	}
	return nil
}
