package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/internal/rbac"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/plan"
)

const prodNS = "packit--prod"

// demoRBAC is the demo's intent: packit-admins (bob) may import and tag on
// prod; packit-devs (alice) and packit-viewers (carol) may only read there.
func demoRBAC() []runtime.Object {
	return []runtime.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: prodNS, Name: "deployer"}, Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"create"}, APIGroups: []string{"image.openshift.io"}, Resources: []string{"imagestreamimports"}},
			{Verbs: []string{"get", "update", "create"}, APIGroups: []string{"image.openshift.io"}, Resources: []string{"imagestreamtags", "imagestreams"}},
		}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: prodNS, Name: "reader"}, Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"image.openshift.io"}, Resources: []string{"imagestreams", "imagestreamtags"}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: prodNS, Name: "admins"},
			RoleRef:  rbacv1.RoleRef{Kind: "Role", Name: "deployer"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "packit-admins"}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: prodNS, Name: "readers"},
			RoleRef:  rbacv1.RoleRef{Kind: "Role", Name: "reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "packit-devs"}, {Kind: rbacv1.GroupKind, Name: "packit-viewers"}}},
	}
}

var (
	importCall = plan.Access{Verb: "create", Group: "image.openshift.io", Resource: "imagestreamimports", Namespace: prodNS}
	tagCall    = plan.Access{Verb: "update", Group: "image.openshift.io", Resource: "imagestreamtags", Namespace: prodNS, Name: "packit-worker:prod"}
	readCall   = plan.Access{Verb: "get", Group: "image.openshift.io", Resource: "imagestreams", Namespace: prodNS, Name: "packit-worker"}
	scaleCall  = plan.Access{Verb: "update", Group: "apps", Resource: "statefulsets", Subresource: "scale", Namespace: prodNS}
)

func newChecker(t *testing.T) (*Checker, *kubefake.Clientset) {
	c := kubefake.NewClientset(demoRBAC()...)
	rbac.InstallRBACReactor(c)
	return NewChecker(map[string]kubeclient.Interface{"prod": c}), c
}

func TestCheckerDenied(t *testing.T) {
	checker, _ := newChecker(t)
	tests := []struct {
		name   string
		user   string
		groups []string
		calls  []plan.Access
		want   []plan.Denial
	}{
		{
			name: "bob may import and tag", user: "bob", groups: []string{"packit-admins"},
			calls: []plan.Access{readCall, importCall, tagCall},
		},
		{
			name: "alice may read but not import", user: "alice", groups: []string{"packit-devs"},
			calls: []plan.Access{readCall, importCall, tagCall},
			want: []plan.Denial{
				{Access: importCall, Reason: "RBAC: no rule allows create imagestreamimports"},
				{Access: tagCall, Reason: "RBAC: no rule allows update imagestreamtags"},
			},
		},
		{
			name: "subresource named in the reason", user: "bob", groups: []string{"packit-admins"},
			calls: []plan.Access{scaleCall},
			want:  []plan.Denial{{Access: scaleCall, Reason: "RBAC: no rule allows update statefulsets/scale"}},
		},
		{
			name: "identical calls asked once", user: "carol", groups: []string{"packit-viewers"},
			calls: []plan.Access{importCall, readCall, importCall},
			want:  []plan.Denial{{Access: importCall, Reason: "RBAC: no rule allows create imagestreamimports"}},
		},
		{
			name: "no calls", user: "carol",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checker.Denied(t.Context(), "prod", tt.user, tt.groups, tt.calls)
			if err != nil {
				t.Fatalf("Denied: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Denied = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCheckerAsksOneReviewPerCall(t *testing.T) {
	checker, c := newChecker(t)
	// Record each review as the API server receives it; the RBAC reactor
	// behind this one answers.
	var seen []authorizationv1.LocalSubjectAccessReview
	c.PrependReactor("create", "localsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lsar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.LocalSubjectAccessReview)
		if a.GetNamespace() != lsar.Spec.ResourceAttributes.Namespace {
			t.Errorf("review for namespace %s sent to %s", lsar.Spec.ResourceAttributes.Namespace, a.GetNamespace())
		}
		seen = append(seen, *lsar.DeepCopy())
		return false, nil, nil
	})
	var calls []plan.Access
	for i := range 40 {
		calls = append(calls, plan.Access{Verb: "get", Group: "image.openshift.io", Resource: "imagestreams", Namespace: prodNS, Name: fmt.Sprintf("s%d", i)})
	}
	groups := []string{"packit-devs"}
	denied, err := checker.Denied(t.Context(), "prod", "alice", groups, calls)
	if err != nil || len(denied) != 0 {
		t.Fatalf("Denied = %v, %v; want all allowed", denied, err)
	}
	if len(seen) != len(calls) {
		t.Fatalf("%d reviews for %d calls", len(seen), len(calls))
	}
	for _, r := range seen {
		ra := r.Spec.ResourceAttributes
		if r.Spec.User != "alice" || !slices.Equal(r.Spec.Groups, []string{"packit-devs", AuthenticatedGroup}) ||
			ra.Verb != "get" || ra.Group != "image.openshift.io" || ra.Resource != "imagestreams" || !strings.HasPrefix(ra.Name, "s") {
			t.Errorf("review spec = %+v %+v", r.Spec, ra)
		}
	}
	if !slices.Equal(groups, []string{"packit-devs"}) {
		t.Errorf("Denied changed the caller's groups to %v", groups)
	}
}

func TestCheckerReasonFromServer(t *testing.T) {
	checker, c := newChecker(t)
	c.PrependReactor("create", "localsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lsar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.LocalSubjectAccessReview).DeepCopy()
		lsar.Status = authorizationv1.SubjectAccessReviewStatus{Denied: true, Reason: "denied by policy webhook", EvaluationError: "webhook timed out"}
		return true, lsar, nil
	})
	got, err := checker.Denied(t.Context(), "prod", "bob", nil, []plan.Access{importCall})
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.Denial{{Access: importCall, Reason: "denied by policy webhook (webhook timed out)"}}
	if !slices.Equal(got, want) {
		t.Errorf("Denied = %+v, want %+v", got, want)
	}
}

func TestCheckerErrors(t *testing.T) {
	checker, c := newChecker(t)
	forbidden := apierrors.NewForbidden(authorizationv1.Resource("localsubjectaccessreviews"), "", errors.New("the bot may not review access"))
	c.PrependReactor("create", "localsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lsar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.LocalSubjectAccessReview)
		if lsar.Spec.ResourceAttributes.Resource == "imagestreamimports" {
			return true, nil, forbidden
		}
		return false, nil, nil
	})
	tests := []struct {
		name    string
		env     string
		user    string
		calls   []plan.Access
		wantErr string
		wantIs  error
	}{
		{"unknown env", "qa", "bob", []plan.Access{readCall}, `checking access on qa: no cluster client for environment "qa"`, nil},
		{"no user", "prod", "", []plan.Access{readCall}, "checking access on prod: no Kubernetes user to check", nil},
		{"API error", "prod", "bob", []plan.Access{readCall, importCall},
			"checking whether bob may create imagestreamimports in packit--prod: " + forbidden.Error(), forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checker.Denied(t.Context(), tt.env, tt.user, nil, tt.calls)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Denied = %v, %v; want error %q", got, err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error does not wrap %v", tt.wantIs)
			}
		})
	}
}
