package cluster

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestNotServed tells a resource the server does not serve from a missing
// object: only the former makes oc tag fall back to ImageStream.spec.tags.
func TestNotServed(t *testing.T) {
	gr := schema.GroupResource{Group: "image.openshift.io", Resource: "imagestreamtags"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"plain 404 page not found", apierrors.NewGenericServerResponse(404, "POST", gr, "", "404 page not found", 0, true), true},
		{"wrapped plain 404", fmt.Errorf("creating: %w", apierrors.NewGenericServerResponse(404, "POST", gr, "", "404 page not found", 0, true)), true},
		{"missing object", apierrors.NewNotFound(schema.GroupResource{Group: "image.openshift.io", Resource: "imagestreams"}, "packit-worker"), false},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{"not an API error", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notServed(tt.err); got != tt.want {
				t.Errorf("notServed(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
