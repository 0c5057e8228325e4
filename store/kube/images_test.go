package kube

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/storetest"
)

// withResourceVersions makes c's ConfigMaps behave as the API server's do
// for the store: every write sets a new resourceVersion, and an update or a
// delete naming an older one is a 409 Conflict. kubefake, like client-go's
// fakes, stores objects as given.
func withResourceVersions(c *kubefake.Clientset) *kubefake.Clientset {
	var mu sync.Mutex
	rv := 0
	tr := c.Tracker()
	gvr := corev1.SchemeGroupVersion.WithResource("configmaps")
	current := func(ns, name string) (*corev1.ConfigMap, error) {
		obj, err := tr.Get(gvr, ns, name)
		if err != nil {
			return nil, err
		}
		return obj.(*corev1.ConfigMap), nil
	}
	c.PrependReactor("*", "configmaps", func(action clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		ns := action.GetNamespace()
		switch a := action.(type) {
		case clienttesting.CreateActionImpl:
			cm := a.GetObject().(*corev1.ConfigMap).DeepCopy()
			rv++
			cm.ResourceVersion = strconv.Itoa(rv)
			if err := tr.Create(gvr, cm, ns); err != nil {
				return true, nil, err
			}
			return true, cm.DeepCopy(), nil
		case clienttesting.UpdateActionImpl:
			cm := a.GetObject().(*corev1.ConfigMap).DeepCopy()
			cur, err := current(ns, cm.Name)
			if err != nil {
				return true, nil, err
			}
			if cm.ResourceVersion != cur.ResourceVersion {
				return true, nil, apierrors.NewConflict(gvr.GroupResource(), cm.Name, fmt.Errorf("resourceVersion %s, the object is at %s", cm.ResourceVersion, cur.ResourceVersion))
			}
			rv++
			cm.ResourceVersion = strconv.Itoa(rv)
			if err := tr.Update(gvr, cm, ns); err != nil {
				return true, nil, err
			}
			return true, cm.DeepCopy(), nil
		case clienttesting.DeleteActionImpl:
			cur, err := current(ns, a.Name)
			if err != nil {
				return true, nil, err
			}
			if p := a.DeleteOptions.Preconditions; p != nil && p.ResourceVersion != nil && *p.ResourceVersion != cur.ResourceVersion {
				return true, nil, apierrors.NewConflict(gvr.GroupResource(), a.Name, fmt.Errorf("precondition resourceVersion %s, the object is at %s", *p.ResourceVersion, cur.ResourceVersion))
			}
			return true, nil, tr.Delete(gvr, ns, a.Name)
		}
		return false, nil, nil
	})
	return c
}

// TestContractOnFake runs the store contract suite on kubefake's ConfigMaps
// with resourceVersion checks; e2e runs it on a real API server.
func TestContractOnFake(t *testing.T) {
	storetest.Run(t, func() store.Store {
		s, err := New(withResourceVersions(kubefake.NewClientset()), "deploybot")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestImagesObjects: one ConfigMap per environment and service, with a
// valid and distinct name, labelled and annotated for kubectl users.
func TestImagesObjects(t *testing.T) {
	cs := withResourceVersions(kubefake.NewClientset())
	s, err := New(cs, "deploybot")
	if err != nil {
		t.Fatal(err)
	}
	places := [][2]string{
		{"prod", "web"}, {"prod", "web2"}, {"prodw", "eb"}, {"a/b", "c"}, {"a", "b/c"}, {"a-b", "c"}, {"a", "b-c"},
		{"Prod", "Web"}, {"_", "_"}, {strings.Repeat("e", 300), strings.Repeat("s", 300)},
	}
	names := map[string][2]string{}
	for _, p := range places {
		n := s.imagesName(p[0], p[1])
		if !validName(n) || len(n) > 253 {
			t.Errorf("imagesName(%q, %q) = %q, not a ConfigMap name", p[0], p[1], n)
		}
		if other, dup := names[n]; dup {
			t.Errorf("imagesName(%q, %q) = imagesName(%q, %q) = %q", p[0], p[1], other[0], other[1], n)
		}
		names[n] = p
	}
	if n := s.imagesName("prod", "packit-worker"); !strings.HasPrefix(n, "deploybot-images-prod-packit-worker-") {
		t.Errorf("imagesName(prod, packit-worker) = %q, want it readable", n)
	}
	rec := storetest.NewImage("prod", "web", "v1", time.Now())
	if err := s.RecordImage(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("deploybot").Get(t.Context(), s.ImagesName("prod", "web"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[LabelKind] != KindImages || cm.Labels[LabelInstance] != "deploybot" || cm.Annotations[AnnotationEnv] != "prod" ||
		cm.Annotations[AnnotationService] != "web" || !strings.Contains(cm.Data[imagesKey], rec.Digest) {
		t.Errorf("the images ConfigMap = %+v", cm)
	}
	// A record that changes nothing writes nothing.
	before := cm.ResourceVersion
	if err := s.RecordImage(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	cm, _ = cs.CoreV1().ConfigMaps("deploybot").Get(t.Context(), s.ImagesName("prod", "web"), metav1.GetOptions{})
	if cm.ResourceVersion != before {
		t.Errorf("recording a known record again wrote the ConfigMap (resourceVersion %s → %s)", before, cm.ResourceVersion)
	}
}

// TestImagesRefuseDamage: an images ConfigMap that does not hold what the
// store writes is an error naming it, on read and on write, never an empty
// history that a write would then replace.
func TestImagesRefuseDamage(t *testing.T) {
	digest := storetest.ImageDigest("v1")
	rec := func(env, service, digest string) string {
		return `{"env":"` + env + `","service":"` + service + `","digest":"` + digest + `","ref":"r","seen":"2026-03-03T02:00:00Z"}`
	}
	tests := []struct {
		name string
		data map[string]string
		want string
	}{
		{"no records key", map[string]string{}, "no images.json"},
		{"garbage", map[string]string{imagesKey: "{"}, "unexpected end"},
		{"null", map[string]string{imagesKey: "null"}, "the records are null"},
		{"a record of another service", map[string]string{imagesKey: "[" + rec("prod", "worker", digest) + "]"}, "stored as one of prod/web"},
		{"a bad digest", map[string]string{imagesKey: "[" + rec("prod", "web", "sha256:1") + "]"}, "not a sha256 digest"},
		{"a digest twice", map[string]string{imagesKey: "[" + rec("prod", "web", digest) + "," + rec("prod", "web", digest) + "]"}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := withResourceVersions(kubefake.NewClientset())
			s, err := New(cs, "deploybot")
			if err != nil {
				t.Fatal(err)
			}
			name := s.ImagesName("prod", "web")
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "deploybot", Labels: s.labels(KindImages)}, Data: tt.data}
			if _, err := cs.CoreV1().ConfigMaps("deploybot").Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Images(t.Context(), "prod", "web"); err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Images = %v, want an error naming %s and saying %q", err, name, tt.want)
			}
			if err := s.RecordImage(t.Context(), storetest.NewImage("prod", "web", "v2", time.Now())); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("RecordImage = %v, want an error naming %s", err, name)
			}
			after, err := cs.CoreV1().ConfigMaps("deploybot").Get(t.Context(), name, metav1.GetOptions{})
			if err != nil || after.ResourceVersion != "1" {
				t.Errorf("the damaged ConfigMap was written: %+v, %v", after, err)
			}
		})
	}
}
