package rbac_test

import (
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/internal/rbac"
)

const (
	prod = "packit--prod"
	stg  = "packit--stg"
)

func rule(verbs, groups, resources []string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
}

func s(v ...string) []string { return v }

func role(ns, name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
}

func clusterRole(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
}

func roleBinding(ns, name, kind, roleName string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: roleName},
		Subjects:   subjects,
	}
}

func clusterRoleBinding(name, roleName string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName},
		Subjects:   subjects,
	}
}

func user(n string) rbacv1.Subject  { return rbacv1.Subject{Kind: rbacv1.UserKind, Name: n} }
func group(n string) rbacv1.Subject { return rbacv1.Subject{Kind: rbacv1.GroupKind, Name: n} }

// fixture is a small RBAC world covering each matching rule of the authorizer.
func fixture() []runtime.Object {
	return []runtime.Object{
		clusterRole("view",
			rule(s("get", "list", "watch"), s("apps"), s("deployments", "statefulsets")),
			rule(s("get", "list", "watch"), s("image.openshift.io"), s("imagestreams", "imagestreamtags"))),
		clusterRole("all-scale", rule(s("update"), s("*"), s("*/scale"))),
		clusterRole("pod-logs", rule(s("get"), s(""), s("pods/log"))),
		clusterRole("health", rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/healthz/*")}),
		role(prod, "deployer",
			rule(s("create"), s("image.openshift.io"), s("imagestreamimports")),
			rule(s("update"), s("image.openshift.io"), s("imagestreamtags")),
			rule(s("patch"), s("apps"), s("deployments"))),
		role(prod, "tag-one", rule(s("update"), s("image.openshift.io"), s("imagestreamtags"), "packit-worker:prod")),
		role(stg, "everything", rule(s("*"), s("*"), s("*"))),
		roleBinding(prod, "deployers", "Role", "deployer", group("packit-admins")),
		roleBinding(prod, "alice-tag", "Role", "tag-one", user("alice")),
		roleBinding(prod, "view", "ClusterRole", "view", group("packit-viewers"), group("packit-devs")),
		roleBinding(prod, "broken", "Role", "missing", user("erin")),
		roleBinding(prod, "sa", "ClusterRole", "view", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "deploybot"}),
		roleBinding(stg, "stg-all", "Role", "everything", group("packit-devs")),
		clusterRoleBinding("scalers", "all-scale", user("dave")),
		clusterRoleBinding("authenticated-logs", "pod-logs", group("system:authenticated")),
		clusterRoleBinding("health", "health", group("system:authenticated")),
	}
}

// TestLocalSubjectAccessReview runs every case through the fake's reactor
// (InstallRBACReactor) and through the Reviewer the demo uses, which must
// answer alike and record nothing.
func TestLocalSubjectAccessReview(t *testing.T) {
	for _, via := range []string{"reactor", "reviewer"} {
		t.Run(via, func(t *testing.T) {
			c := kubefake.NewClientset(fixture()...)
			rbac.InstallRBACReactor(c)
			if via == "reviewer" {
				c.SetAuthorization(rbac.NewReviewer(c.Tracker()))
			}
			testLocalSubjectAccessReview(t, c)
			if n := len(c.Actions()); via == "reviewer" && n != 0 {
				t.Errorf("the Reviewer left %d recorded actions, want none", n)
			}
		})
	}
}

func testLocalSubjectAccessReview(t *testing.T, c *kubefake.Clientset) {

	type attrs = authorizationv1.ResourceAttributes
	tests := []struct {
		name       string
		user       string
		groups     []string
		attrs      attrs
		wantAllow  bool
		wantReason string
	}{
		{
			name: "role via group", user: "bob", groups: s("packit-admins"),
			attrs:     attrs{Namespace: prod, Verb: "create", Group: "image.openshift.io", Resource: "imagestreamimports"},
			wantAllow: true, wantReason: `RBAC: allowed by RoleBinding "deployers/packit--prod" of Role "deployer" to Group "packit-admins"`,
		},
		{
			name: "no rule", user: "alice", groups: s("packit-devs"),
			attrs: attrs{Namespace: prod, Verb: "create", Group: "image.openshift.io", Resource: "imagestreamimports"},
		},
		{
			name: "wrong verb", user: "bob", groups: s("packit-admins"),
			attrs: attrs{Namespace: prod, Verb: "delete", Group: "image.openshift.io", Resource: "imagestreamimports"},
		},
		{
			name: "wrong api group", user: "bob", groups: s("packit-admins"),
			attrs: attrs{Namespace: prod, Verb: "create", Group: "", Resource: "imagestreamimports"},
		},
		{
			name: "resourceNames match", user: "alice", groups: s("packit-devs"),
			attrs:     attrs{Namespace: prod, Verb: "update", Group: "image.openshift.io", Resource: "imagestreamtags", Name: "packit-worker:prod"},
			wantAllow: true, wantReason: `RBAC: allowed by RoleBinding "alice-tag/packit--prod" of Role "tag-one" to User "alice"`,
		},
		{
			name: "resourceNames other name", user: "alice", groups: s("packit-devs"),
			attrs: attrs{Namespace: prod, Verb: "update", Group: "image.openshift.io", Resource: "imagestreamtags", Name: "tokman:prod"},
		},
		{
			name: "resourceNames without a name", user: "alice", groups: s("packit-devs"),
			attrs: attrs{Namespace: prod, Verb: "update", Group: "image.openshift.io", Resource: "imagestreamtags"},
		},
		{
			name: "wildcards", user: "alice", groups: s("packit-devs"),
			attrs:     attrs{Namespace: stg, Verb: "delete", Group: "apps", Resource: "statefulsets", Name: "packit-worker-long-running"},
			wantAllow: true, wantReason: `RBAC: allowed by RoleBinding "stg-all/packit--stg" of Role "everything" to Group "packit-devs"`,
		},
		{
			name: "star matches subresources", user: "alice", groups: s("packit-devs"),
			attrs:     attrs{Namespace: stg, Verb: "update", Group: "apps", Resource: "deployments", Subresource: "scale"},
			wantAllow: true, wantReason: `RBAC: allowed by RoleBinding "stg-all/packit--stg" of Role "everything" to Group "packit-devs"`,
		},
		{
			name: "cluster role bindings come first; everyone is authenticated", user: "alice", groups: s("packit-devs"),
			attrs:     attrs{Namespace: stg, Verb: "get", Resource: "pods", Subresource: "log"},
			wantAllow: true, wantReason: `RBAC: allowed by ClusterRoleBinding "authenticated-logs" of ClusterRole "pod-logs" to Group "system:authenticated"`,
		},
		{
			name: "resource/subresource rule does not allow the resource", user: "carol",
			attrs: attrs{Namespace: prod, Verb: "get", Resource: "pods"},
		},
		{
			name: "cluster role through role binding", user: "carol", groups: s("packit-viewers"),
			attrs:     attrs{Namespace: prod, Verb: "get", Group: "image.openshift.io", Resource: "imagestreams", Name: "packit-worker"},
			wantAllow: true, wantReason: `RBAC: allowed by RoleBinding "view/packit--prod" of ClusterRole "view" to Group "packit-viewers"`,
		},
		{
			name: "view does not patch", user: "carol", groups: s("packit-viewers"),
			attrs: attrs{Namespace: prod, Verb: "patch", Group: "apps", Resource: "deployments"},
		},
		{
			name: "role binding is per namespace", user: "carol", groups: s("packit-viewers"),
			attrs: attrs{Namespace: stg, Verb: "get", Group: "image.openshift.io", Resource: "imagestreams"},
		},
		{
			name: "*/subresource", user: "dave",
			attrs:     attrs{Namespace: prod, Verb: "update", Group: "apps", Resource: "statefulsets", Subresource: "scale"},
			wantAllow: true, wantReason: `RBAC: allowed by ClusterRoleBinding "scalers" of ClusterRole "all-scale" to User "dave"`,
		},
		{
			name: "*/subresource does not match the resource", user: "dave",
			attrs: attrs{Namespace: prod, Verb: "update", Group: "apps", Resource: "statefulsets"},
		},
		{
			name: "*/subresource does not match another subresource", user: "dave",
			attrs: attrs{Namespace: prod, Verb: "update", Group: "apps", Resource: "statefulsets", Subresource: "status"},
		},
		{
			name: "missing role", user: "erin",
			attrs:      attrs{Namespace: prod, Verb: "get", Group: "apps", Resource: "deployments"},
			wantReason: `RBAC: role.rbac.authorization.k8s.io "missing" not found`,
		},
		{
			name: "service account in the binding's namespace", user: "system:serviceaccount:packit--prod:deploybot",
			attrs:     attrs{Namespace: prod, Verb: "list", Group: "apps", Resource: "statefulsets"},
			wantAllow: true, wantReason: `RBAC: allowed by RoleBinding "sa/packit--prod" of ClusterRole "view" to ServiceAccount "deploybot/packit--prod"`,
		},
		{
			name: "service account of another namespace", user: "system:serviceaccount:other:deploybot",
			attrs: attrs{Namespace: prod, Verb: "list", Group: "apps", Resource: "statefulsets"},
		},
		{
			name: "groups only", groups: s("packit-admins"),
			attrs:     attrs{Namespace: prod, Verb: "patch", Group: "apps", Resource: "deployments", Name: "packit-service"},
			wantAllow: true, wantReason: `RBAC: allowed by RoleBinding "deployers/packit--prod" of Role "deployer" to Group "packit-admins"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.attrs
			in := &authorizationv1.LocalSubjectAccessReview{
				ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace},
				Spec:       authorizationv1.SubjectAccessReviewSpec{User: tt.user, Groups: tt.groups, ResourceAttributes: &a},
			}
			out, err := c.AuthorizationV1().LocalSubjectAccessReviews(a.Namespace).Create(t.Context(), in, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if out.Status.Allowed != tt.wantAllow || out.Status.Reason != tt.wantReason {
				t.Errorf("status = {allowed %v, reason %q}, want {%v, %q}", out.Status.Allowed, out.Status.Reason, tt.wantAllow, tt.wantReason)
			}
			if out.Status.Denied {
				t.Errorf("RBAC never denies explicitly; got denied")
			}
		})
	}
}

func TestLocalSubjectAccessReviewValidation(t *testing.T) {
	c := kubefake.NewClientset(fixture()...)
	rbac.InstallRBACReactor(c)
	ra := func(ns string) *authorizationv1.ResourceAttributes {
		return &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "pods"}
	}
	tests := []struct {
		name    string
		ns      string
		review  authorizationv1.LocalSubjectAccessReview
		wantErr func(error) bool
	}{
		{
			name:    "attributes namespace differs",
			ns:      prod,
			review:  authorizationv1.LocalSubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: ra(stg)}},
			wantErr: apierrors.IsInvalid,
		},
		{
			name:    "object namespace differs from the URL",
			ns:      prod,
			review:  authorizationv1.LocalSubjectAccessReview{ObjectMeta: metav1.ObjectMeta{Namespace: stg}, Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: ra(prod)}},
			wantErr: apierrors.IsBadRequest,
		},
		{
			name:    "no user or group",
			ns:      prod,
			review:  authorizationv1.LocalSubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: ra(prod)}},
			wantErr: apierrors.IsInvalid,
		},
		{
			name:    "no attributes",
			ns:      prod,
			review:  authorizationv1.LocalSubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice"}},
			wantErr: apierrors.IsInvalid,
		},
		{
			name: "non-resource attributes",
			ns:   prod,
			review: authorizationv1.LocalSubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice",
				NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/healthz", Verb: "get"}}},
			wantErr: apierrors.IsInvalid,
		},
		{
			name:    "namespace defaulted from the URL",
			ns:      prod,
			review:  authorizationv1.LocalSubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: ra(prod)}},
			wantErr: func(err error) bool { return err == nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.AuthorizationV1().LocalSubjectAccessReviews(tt.ns).Create(t.Context(), &tt.review, metav1.CreateOptions{})
			if !tt.wantErr(err) {
				t.Errorf("Create error = %v", err)
			}
		})
	}
}

func TestSubjectAccessReview(t *testing.T) {
	c := kubefake.NewClientset(fixture()...)
	rbac.InstallRBACReactor(c)
	tests := []struct {
		name       string
		spec       authorizationv1.SubjectAccessReviewSpec
		wantAllow  bool
		wantReason string
	}{
		{
			name: "cluster-wide uses cluster role bindings",
			spec: authorizationv1.SubjectAccessReviewSpec{User: "dave",
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "update", Group: "apps", Resource: "deployments", Subresource: "scale"}},
			wantAllow: true, wantReason: `RBAC: allowed by ClusterRoleBinding "scalers" of ClusterRole "all-scale" to User "dave"`,
		},
		{
			name: "cluster-wide ignores role bindings",
			spec: authorizationv1.SubjectAccessReviewSpec{User: "carol", Groups: s("packit-viewers"),
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Group: "image.openshift.io", Resource: "imagestreams"}},
		},
		{
			name: "non-resource URL with prefix wildcard",
			spec: authorizationv1.SubjectAccessReviewSpec{User: "carol",
				NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "get", Path: "/healthz/ready"}},
			wantAllow: true, wantReason: `RBAC: allowed by ClusterRoleBinding "health" of ClusterRole "health" to Group "system:authenticated"`,
		},
		{
			name: "non-resource URL outside the prefix",
			spec: authorizationv1.SubjectAccessReviewSpec{User: "carol",
				NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "get", Path: "/metrics"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{Spec: tt.spec}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if out.Status.Allowed != tt.wantAllow || out.Status.Reason != tt.wantReason {
				t.Errorf("status = {allowed %v, reason %q}, want {%v, %q}", out.Status.Allowed, out.Status.Reason, tt.wantAllow, tt.wantReason)
			}
		})
	}
}

func TestRBACChangesApplyToTheNextReview(t *testing.T) {
	c := kubefake.NewClientset(fixture()...)
	rbac.InstallRBACReactor(c)
	review := func() bool {
		t.Helper()
		out, err := c.AuthorizationV1().LocalSubjectAccessReviews(prod).Create(t.Context(), &authorizationv1.LocalSubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice", Groups: s("packit-devs"),
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: prod, Verb: "create", Group: "image.openshift.io", Resource: "imagestreamimports"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return out.Status.Allowed
	}
	if review() {
		t.Fatal("alice may import on prod before any binding")
	}
	rb := roleBinding(prod, "alice-deploys", "Role", "deployer", user("alice"))
	if _, err := c.RbacV1().RoleBindings(prod).Create(t.Context(), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !review() {
		t.Error("alice may not import on prod after being bound to deployer")
	}
	if err := c.RbacV1().RoleBindings(prod).Delete(t.Context(), rb.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if review() {
		t.Error("alice may still import on prod after the binding was deleted")
	}
}
