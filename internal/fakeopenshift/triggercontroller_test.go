package fakeopenshift

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/kubefake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// packitTrigger is the annotation packit puts on its workloads.
func packitTrigger(istag, container string) string {
	return fmt.Sprintf(`[{"from":{"kind":"ImageStreamTag","name":%q},"fieldPath":"spec.template.spec.containers[?(@.name==\"%s\")].image"}]`, istag, container)
}

func podTemplate(containers ...string) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "packit"}}}
	for _, c := range containers {
		t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: c, Image: "packit-worker:prod"})
	}
	return t
}

func deployment(name, annotation string, containers ...string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec:       appsv1.DeploymentSpec{Template: podTemplate(containers...)},
	}
	if annotation != "" {
		d.Annotations = map[string]string{TriggerAnnotation: annotation}
	}
	return d
}

func statefulSet(name, annotation string, containers ...string) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec:       appsv1.StatefulSetSpec{Template: podTemplate(containers...)},
	}
	if annotation != "" {
		s.Annotations = map[string]string{TriggerAnnotation: annotation}
	}
	return s
}

func containerImages(spec corev1.PodSpec) map[string]string {
	m := map[string]string{}
	for _, c := range spec.Containers {
		m[c.Name] = c.Image
	}
	return m
}

func TestTriggerControllerSync(t *testing.T) {
	current := testRepo + "@" + dig(2)
	tests := []struct {
		name string
		objs []runtime.Object
		// want maps "Kind/name" to container → image afterwards.
		want        map[string]map[string]string
		wantErr     bool
		wantUpdates int
	}{
		{
			name:        "deployment follows its tag",
			objs:        []runtime.Object{deployment("packit-service-beat", packitTrigger("packit-worker:prod", "beat"), "beat")},
			want:        map[string]map[string]string{"Deployment/packit-service-beat": {"beat": current}},
			wantUpdates: 1,
		},
		{
			name:        "statefulset follows its tag; other containers untouched",
			objs:        []runtime.Object{statefulSet("packit-worker-short-running", packitTrigger("packit-worker:prod", "worker"), "worker", "sidecar")},
			want:        map[string]map[string]string{"StatefulSet/packit-worker-short-running": {"worker": current, "sidecar": "packit-worker:prod"}},
			wantUpdates: 1,
		},
		{
			name: "someone else's image change (rollout undo) is reverted",
			objs: func() []runtime.Object {
				d := deployment("packit-service-beat", packitTrigger("packit-worker:prod", "beat"), "beat")
				d.Spec.Template.Spec.Containers[0].Image = testRepo + "@" + dig(1)
				return []runtime.Object{d}
			}(),
			want:        map[string]map[string]string{"Deployment/packit-service-beat": {"beat": current}},
			wantUpdates: 1,
		},
		{
			name: "already current: no update",
			objs: func() []runtime.Object {
				d := deployment("packit-service-beat", packitTrigger("packit-worker:prod", "beat"), "beat")
				d.Spec.Template.Spec.Containers[0].Image = current
				return []runtime.Object{d}
			}(),
			want: map[string]map[string]string{"Deployment/packit-service-beat": {"beat": current}},
		},
		{
			name: "paused trigger is ignored",
			objs: []runtime.Object{deployment("beat",
				`[{"from":{"kind":"ImageStreamTag","name":"packit-worker:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"beat\")].image","paused":true}]`, "beat")},
			want: map[string]map[string]string{"Deployment/beat": {"beat": "packit-worker:prod"}},
		},
		{
			name: "tag without an image leaves the workload alone",
			objs: []runtime.Object{deployment("beat", packitTrigger("packit-worker:stg", "beat"), "beat")},
			want: map[string]map[string]string{"Deployment/beat": {"beat": "packit-worker:prod"}},
		},
		{
			name: "missing stream leaves the workload alone",
			objs: []runtime.Object{deployment("beat", packitTrigger("tokman:prod", "beat"), "beat")},
			want: map[string]map[string]string{"Deployment/beat": {"beat": "packit-worker:prod"}},
		},
		{
			name: "container by index and stream in another namespace",
			objs: func() []runtime.Object {
				d := deployment("beat", `[{"from":{"kind":"ImageStreamTag","name":"packit-worker:prod","namespace":"`+testNS+`"},"fieldPath":"spec.template.spec.containers[1].image"}]`, "a", "b")
				d.Namespace = "other"
				return []runtime.Object{d}
			}(),
			want:        map[string]map[string]string{"Deployment/beat": {"a": "packit-worker:prod", "b": current}},
			wantUpdates: 1,
		},
		{
			name:    "fieldPath naming no container is an error and changes nothing",
			objs:    []runtime.Object{deployment("beat", packitTrigger("packit-worker:prod", "nosuch"), "beat")},
			want:    map[string]map[string]string{"Deployment/beat": {"beat": "packit-worker:prod"}},
			wantErr: true,
		},
		{
			name:    "malformed annotation is an error",
			objs:    []runtime.Object{deployment("beat", `[{"from":`, "beat")},
			want:    map[string]map[string]string{"Deployment/beat": {"beat": "packit-worker:prod"}},
			wantErr: true,
		},
		{
			name: "untriggered workload is ignored",
			objs: []runtime.Object{deployment("beat", "", "beat")},
			want: map[string]map[string]string{"Deployment/beat": {"beat": "packit-worker:prod"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := kubefake.NewClientset(tt.objs...)
			images := kubefake.NewImageClientset(seededStream())
			c := NewTriggerController(kube, images.ImageV1())
			err := c.Sync(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Sync error = %v, wantErr %v", err, tt.wantErr)
			}
			updates := 0
			for _, a := range kube.Actions() {
				if a.GetVerb() == "update" {
					updates++
				}
			}
			if updates != tt.wantUpdates {
				t.Errorf("updates = %d, want %d", updates, tt.wantUpdates)
			}
			for key, want := range tt.want {
				var got map[string]string
				for _, o := range tt.objs {
					switch w := o.(type) {
					case *appsv1.Deployment:
						if "Deployment/"+w.Name == key {
							d, err := kube.AppsV1().Deployments(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
							if err != nil {
								t.Fatal(err)
							}
							got = containerImages(d.Spec.Template.Spec)
						}
					case *appsv1.StatefulSet:
						if "StatefulSet/"+w.Name == key {
							s, err := kube.AppsV1().StatefulSets(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
							if err != nil {
								t.Fatal(err)
							}
							got = containerImages(s.Spec.Template.Spec)
						}
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s images = %v, want %v", key, got, want)
				}
			}
		})
	}
}

// TestTriggerControllerRun imports a new image and waits for the watch-driven
// controller to roll it into the workload, then reverts an undo.
func TestTriggerControllerRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kube := kubefake.NewClientset(statefulSet("packit-worker-long-running", packitTrigger("packit-worker:prod", "worker"), "worker"))
	images := kubefake.NewImageClientset(seededStream())
	reg := NewRegistry()
	reg.Push(testRepo, "prod", dig(3))
	Install(images, reg)
	c := NewTriggerController(kube, images.ImageV1(), TriggerResync(time.Hour))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	waitImage := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, err := kube.AppsV1().StatefulSets(testNS).Get(ctx, "packit-worker-long-running", metav1.GetOptions{})
			if err == nil && s.Spec.Template.Spec.Containers[0].Image == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("worker image = %v, want %s", s.Spec.Template.Spec.Containers[0].Image, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitImage(testRepo + "@" + dig(2))

	is, err := images.ImageV1().ImageStreams(testNS).Get(ctx, "packit-worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.ImageV1().ImageStreamImports(testNS).Create(ctx, ocImport(is, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitImage(testRepo + "@" + dig(3))

	// kubectl rollout undo writes the old image; the controller puts the tag's back.
	s, _ := kube.AppsV1().StatefulSets(testNS).Get(ctx, "packit-worker-long-running", metav1.GetOptions{})
	s.Spec.Template.Spec.Containers[0].Image = testRepo + "@" + dig(2)
	if _, err := kube.AppsV1().StatefulSets(testNS).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitImage(testRepo + "@" + dig(3))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestParseFieldPath(t *testing.T) {
	tests := []struct {
		name      string
		fieldPath string
		want      ContainerSelector
		wantErr   bool
	}{
		{name: "by name", fieldPath: `spec.template.spec.containers[?(@.name=="packit-service")].image`, want: ContainerSelector{Index: -1, Name: "packit-service"}},
		{name: "by index", fieldPath: `spec.template.spec.containers[0].image`, want: ContainerSelector{Index: 0}},
		{name: "init container", fieldPath: `spec.template.spec.initContainers[?(@.name=="init")].image`, want: ContainerSelector{Init: true, Index: -1, Name: "init"}},
		{name: "single equals is not understood", fieldPath: `spec.template.spec.containers[?(@.name="x")].image`, wantErr: true},
		{name: "not the image", fieldPath: `spec.template.spec.containers[0].name`, wantErr: true},
		{name: "other spec", fieldPath: `spec.jobTemplate.spec.containers[0].image`, wantErr: true},
		{name: "unterminated", fieldPath: `spec.template.spec.containers[0.image`, wantErr: true},
		{name: "negative index", fieldPath: `spec.template.spec.containers[-1].image`, wantErr: true},
		{name: "empty", fieldPath: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFieldPath(tt.fieldPath)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseFieldPath error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseFieldPath = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseTriggers(t *testing.T) {
	tests := []struct {
		name       string
		annotation string
		wantNames  []string
		wantErr    bool
	}{
		{name: "packit form", annotation: packitTrigger("packit-service:prod", "packit-service"), wantNames: []string{"packit-service:prod"}},
		{name: "with namespace and paused", annotation: `[{"from":{"kind":"ImageStreamTag","name":"a:b","namespace":"ns"},"fieldPath":"x","paused":true}]`, wantNames: []string{"a:b"}},
		{name: "duplicate field paths", annotation: `[{"from":{"name":"a:b"},"fieldPath":"x"},{"from":{"name":"c:d"},"fieldPath":"x"}]`, wantErr: true},
		{name: "not JSON", annotation: `packit-service:prod`, wantErr: true},
		{name: "empty list", annotation: `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTriggers(tt.annotation)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseTriggers error = %v, wantErr %v", err, tt.wantErr)
			}
			var names []string
			for _, tr := range got {
				names = append(names, tr.From.Name)
			}
			if !equalStrings(names, tt.wantNames) {
				t.Errorf("names = %v, want %v", names, tt.wantNames)
			}
		})
	}
}

func FuzzParseFieldPath(f *testing.F) {
	for _, s := range []string{
		`spec.template.spec.containers[?(@.name=="packit-service")].image`,
		`spec.template.spec.initContainers[3].image`,
		`spec.template.spec.containers[`,
		`spec.template.spec.containers[?(@.name=="")].image`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, fieldPath string) {
		sel, err := ParseFieldPath(fieldPath)
		if err != nil {
			return
		}
		if (sel.Index >= 0) == (sel.Name != "") {
			t.Fatalf("ParseFieldPath(%q) = %+v: want exactly one of index and name", fieldPath, sel)
		}
		spec := corev1.PodSpec{Containers: []corev1.Container{{Name: sel.Name}}}
		if sel.Init {
			spec.InitContainers, spec.Containers = spec.Containers, nil
		}
		if sel.Index <= 0 && sel.Container(&spec) == nil {
			t.Fatalf("ParseFieldPath(%q) = %+v does not select the matching container", fieldPath, sel)
		}
	})
}

func FuzzParseTriggers(f *testing.F) {
	f.Add(packitTrigger("packit-service:prod", "packit-service"))
	f.Add(`[{"from":{"kind":"ImageStreamTag","name":"a:b","namespace":"ns"},"fieldPath":"x","paused":true}]`)
	f.Add(`[{}]`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, annotation string) {
		ts, err := ParseTriggers(annotation)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tr := range ts {
			if seen[tr.FieldPath] {
				t.Fatalf("ParseTriggers(%q) accepted duplicate fieldPath %q", annotation, tr.FieldPath)
			}
			seen[tr.FieldPath] = true
			// applying must not panic whatever the trigger says
			meta := metav1.ObjectMeta{Namespace: "ns", Annotations: map[string]string{TriggerAnnotation: annotation}}
			spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}
			_, _ = applyTriggers(&meta, &spec, func(ns, istag string) (string, bool, error) { return "repo@sha256:x", true, nil })
		}
	})
}
