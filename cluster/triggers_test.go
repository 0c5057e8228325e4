package cluster_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/plan"
)

// packitTrigger is the exact annotation packit's workloads carry.
const packitTrigger = `[{"from":{"kind":"ImageStreamTag","name":"packit-service:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"packit-service\")].image"}]`

func trig(kind, name, ns, fieldPath string, paused bool) plan.Trigger {
	var t plan.Trigger
	t.From.Kind, t.From.Name, t.From.Namespace = kind, name, ns
	t.FieldPath, t.Paused = fieldPath, paused
	return t
}

func TestParseTriggers(t *testing.T) {
	const fp = `spec.template.spec.containers[?(@.name=="packit-service")].image`
	tests := []struct {
		name    string
		input   string
		want    []plan.Trigger
		wantErr string
	}{
		{name: "packit form", input: packitTrigger,
			want: []plan.Trigger{trig("ImageStreamTag", "packit-service:prod", "", fp, false)}},
		{name: "empty annotation means no triggers", input: "  ", want: nil},
		{name: "empty list", input: "[]", want: []plan.Trigger{}},
		{name: "namespace and paused",
			input: `[{"from":{"kind":"ImageStreamTag","name":"packit-worker:stg","namespace":"packit--stg"},"fieldPath":"spec.template.spec.containers[0].image","paused":true}]`,
			want:  []plan.Trigger{trig("ImageStreamTag", "packit-worker:stg", "packit--stg", "spec.template.spec.containers[0].image", true)}},
		{name: "two triggers",
			input: `[{"from":{"kind":"ImageStreamTag","name":"a:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"a\")].image"},{"from":{"kind":"ImageStreamTag","name":"b:prod"},"fieldPath":"spec.template.spec.initContainers[?(@.name==\"b\")].image"}]`,
			want: []plan.Trigger{
				trig("ImageStreamTag", "a:prod", "", `spec.template.spec.containers[?(@.name=="a")].image`, false),
				trig("ImageStreamTag", "b:prod", "", `spec.template.spec.initContainers[?(@.name=="b")].image`, false),
			}},
		{name: "garbage", input: `{not json`, wantErr: "parsing image.openshift.io/triggers annotation"},
		{name: "object instead of list", input: `{"from":{"kind":"ImageStreamTag","name":"a:b"}}`, wantErr: "cannot unmarshal"},
		{name: "wrong type", input: `[{"from":"packit-service:prod"}]`, wantErr: "cannot unmarshal"},
		{name: "missing name", input: `[{"from":{"kind":"ImageStreamTag"},"fieldPath":"x"}]`, wantErr: "trigger 0 has no from.kind or from.name"},
		{name: "missing fieldPath", input: `[{"from":{"kind":"ImageStreamTag","name":"a:b"}}]`, wantErr: "trigger 0 has no fieldPath"},
		{name: "null", input: `null`, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cluster.ParseTriggers(tc.input)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTriggers error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTriggers: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseTriggers = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestTriggerFollows(t *testing.T) {
	tests := []struct {
		name string
		trig plan.Trigger
		want bool
	}{
		{"same tag, no namespace", trig("ImageStreamTag", "packit-worker:prod", "", "x", false), true},
		{"same tag, own namespace", trig("ImageStreamTag", "packit-worker:prod", "packit--prod", "x", false), true},
		{"paused still follows (it is reported, not hidden)", trig("ImageStreamTag", "packit-worker:prod", "", "x", true), true},
		{"other namespace", trig("ImageStreamTag", "packit-worker:prod", "packit--stg", "x", false), false},
		{"other tag", trig("ImageStreamTag", "packit-worker:stg", "", "x", false), false},
		{"other stream", trig("ImageStreamTag", "packit-service:prod", "", "x", false), false},
		{"other kind", trig("DockerImage", "packit-worker:prod", "", "x", false), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.trig.Follows("packit--prod", "packit-worker", "prod"); got != tc.want {
				t.Errorf("Follows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTriggerContainer(t *testing.T) {
	tests := []struct {
		name      string
		fieldPath string
		want      plan.ContainerRef
		ok        bool
	}{
		{"by name", `spec.template.spec.containers[?(@.name=="packit-service")].image`, plan.ContainerRef{Name: "packit-service", Index: -1}, true},
		{"init container by name", `spec.template.spec.initContainers[?(@.name=="init")].image`, plan.ContainerRef{Name: "init", Index: -1, Init: true}, true},
		{"by index", `spec.template.spec.containers[1].image`, plan.ContainerRef{Index: 1}, true},
		{"single quotes are not what the controller accepts", `spec.template.spec.containers[?(@.name=='x')].image`, plan.ContainerRef{}, false},
		{"not the image field", `spec.template.spec.containers[0].command`, plan.ContainerRef{}, false},
		{"other spec path", `spec.jobTemplate.spec.template.spec.containers[0].image`, plan.ContainerRef{}, false},
		{"unterminated", `spec.template.spec.containers[0`, plan.ContainerRef{}, false},
		{"negative index", `spec.template.spec.containers[-1].image`, plan.ContainerRef{}, false},
		{"empty name", `spec.template.spec.containers[?(@.name=="")].image`, plan.ContainerRef{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := trig("ImageStreamTag", "a:b", "", tc.fieldPath, false).Container()
			if ok != tc.ok || got != tc.want {
				t.Errorf("Container() = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseTriggers: any annotation value is an error or triggers, never a
// panic, and parsed triggers always have a source and a field path.
func FuzzParseTriggers(f *testing.F) {
	f.Add(packitTrigger)
	f.Add(`[{"from":{"kind":"ImageStreamTag","name":"a:b","namespace":"n"},"fieldPath":"spec.template.spec.containers[0].image","paused":true}]`)
	f.Add(`[{"from":{"kind":"ImageStreamTag","name":"a:b"},"fieldPath":"spec.template.spec.initContainers[?(@.name==\"x\")].image"}]`)
	f.Add(`{not json`)
	f.Add(`[null]`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := cluster.ParseTriggers(s)
		if err != nil {
			return
		}
		for _, tr := range ts {
			if tr.From.Name == "" || tr.From.Kind == "" || tr.FieldPath == "" {
				t.Fatalf("ParseTriggers(%q) accepted an incomplete trigger %+v", s, tr)
			}
			if ref, ok := tr.Container(); ok && ref.Name == "" && ref.Index < 0 {
				t.Fatalf("Container() of %q is ok but names no container", tr.FieldPath)
			}
		}
	})
}

func BenchmarkParseTriggers(b *testing.B) {
	for b.Loop() {
		if _, err := cluster.ParseTriggers(packitTrigger); err != nil {
			b.Fatal(err)
		}
	}
}
